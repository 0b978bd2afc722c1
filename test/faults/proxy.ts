/**
 * A TCP proxy to put between a pool and its database, so a test can cut the line, partition it,
 * slow it down or restore it on the same port.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';

export type ProxyMode =
  /** Pipe bytes both ways. */
  | 'forward'
  /** Accept connections and never forward a byte (a network partition / a hung server). */
  | 'blackhole';

export class TcpProxy {
  #server: Server | undefined;
  readonly #sockets = new Set<Socket>();
  #port = 0;
  #connections = 0;
  #latencyMs = 0;

  constructor(
    private readonly targetPort: number,
    private readonly targetHost = '127.0.0.1',
  ) {}

  get port(): number {
    return this.#port;
  }

  /**
   * Delay every chunk by this many milliseconds in each direction, on open connections too (a
   * round trip costs twice it). Order is kept. 0 (the default) forwards at once.
   */
  set latencyMs(ms: number) {
    if (!Number.isFinite(ms) || ms < 0) throw new RangeError(`latencyMs must be >= 0, got ${ms}`);
    this.#latencyMs = ms;
  }

  get latencyMs(): number {
    return this.#latencyMs;
  }

  /** Connections accepted since the proxy was created. */
  get connections(): number {
    return this.#connections;
  }

  /** Listen (on a free port the first time, on the same port after a cut). */
  async start(mode: ProxyMode = 'forward'): Promise<number> {
    if (this.#server !== undefined) throw new Error('proxy already listening');
    const server = createServer((client) => {
      this.#connections += 1;
      this.#track(client);
      if (mode === 'blackhole') return;
      const upstream = connect(this.targetPort, this.targetHost);
      this.#track(upstream);
      upstream.on('error', () => client.destroy());
      client.on('error', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
      client.on('close', () => upstream.destroy());
      this.#relay(client, upstream);
      this.#relay(upstream, client);
    });
    this.#server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.#port, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    const address = server.address();
    if (address === null || typeof address === 'string') throw new Error('proxy has no port');
    this.#port = address.port;
    return this.#port;
  }

  /** Cut the line: every open connection reset, the port closed (new connections refused). */
  async cut(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    const closed =
      server === undefined
        ? Promise.resolve()
        : new Promise<void>((resolve) =>
            server.close(() => {
              resolve();
            }),
          );
    // A socket a client already half-closed (QUIT) cannot be reset; its handle would leak.
    for (const socket of this.#sockets) {
      if (socket.readyState === 'open') socket.resetAndDestroy();
      else socket.destroy();
    }
    this.#sockets.clear();
    await closed;
  }

  /**
   * A graceful hang-up, as a server that shuts down cleanly does: every open connection ended
   * (FIN, no reset, so the client sees no error), the port closed.
   */
  async hangUp(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    const closed = new Promise<void>((resolve) => {
      if (server === undefined) resolve();
      else
        server.close(() => {
          resolve();
        });
    });
    // end(), not destroy(): a socket destroyed with unread bytes in its buffer sends a reset.
    for (const socket of this.#sockets) socket.end();
    await closed;
  }

  /**
   * A silent partition: open connections stay up but no byte crosses any more, and new connections
   * are accepted and never forwarded. `restore()` after a `cut()` ends it.
   */
  async freeze(): Promise<void> {
    for (const socket of this.#sockets) {
      socket.unpipe();
      socket.pause();
    }
    const server = this.#server;
    this.#server = undefined;
    if (server !== undefined) {
      // Keep the frozen sockets; stop listening (the listening handle closes at once; the 'close'
      // event would wait for the frozen sockets), then listen again on the same port as a black hole.
      server.close();
      await this.start('blackhole');
    }
  }

  /** Listen again on the same port. */
  restore(mode: ProxyMode = 'forward'): Promise<number> {
    return this.start(mode);
  }

  async close(): Promise<void> {
    await this.cut();
  }

  /**
   * `from` → `to`, each chunk held `latencyMs` (read when it arrives) in a queue drained in order by
   * one timer; with no latency and nothing queued, written at once as a pipe would.
   */
  #relay(from: Socket, to: Socket): void {
    const queue: { at: number; chunk: Buffer }[] = [];
    let timer: NodeJS.Timeout | undefined;
    let ended = false;
    const drain = (): void => {
      timer = undefined;
      const now = Date.now();
      while (queue.length > 0 && queue[0]!.at <= now) {
        const { chunk } = queue.shift()!;
        if (!to.destroyed) to.write(chunk);
      }
      if (queue.length > 0) timer = setTimeout(drain, queue[0]!.at - now);
      else if (ended && !to.destroyed) to.end();
    };
    from.on('data', (chunk: Buffer) => {
      const ms = this.#latencyMs;
      if (ms === 0 && queue.length === 0) {
        to.write(chunk);
        return;
      }
      queue.push({ at: Date.now() + ms, chunk });
      timer ??= setTimeout(drain, Math.max(0, queue[0]!.at - Date.now()));
    });
    from.on('end', () => {
      ended = true;
      if (queue.length === 0 && !to.destroyed) to.end();
    });
    from.on('close', () => {
      clearTimeout(timer);
      queue.length = 0;
    });
  }

  #track(socket: Socket): void {
    this.#sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => this.#sockets.delete(socket));
  }
}
