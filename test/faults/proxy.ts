/**
 * A TCP proxy to put between a pool and its database, so a test can cut the line, partition it or
 * restore it on the same port.
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

  constructor(
    private readonly targetPort: number,
    private readonly targetHost = '127.0.0.1',
  ) {}

  get port(): number {
    return this.#port;
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
      client.pipe(upstream).pipe(client);
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

  #track(socket: Socket): void {
    this.#sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => this.#sockets.delete(socket));
  }
}
