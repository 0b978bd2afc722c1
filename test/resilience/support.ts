/**
 * Shared by the resilience suites: settings that read nothing from the environment, a silent logger,
 * breakers that are closed after each test, and small helpers for promises and failing calls.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import * as core from '../../lib/index';
import { captureLogger, type CapturedLogger } from '../support/logs';
import { testMetrics } from '../support/metrics';

export const settings = core.loadSettings({
  NODE_ENV: 'test',
  APP_NAME: 'caduceus-test',
  LOG_LEVEL: 'ERROR',
});
export const silent = core.createLogger('test', { settings, console: false });

export interface Made<F> {
  breaker: core.CircuitBreaker<F>;
  metrics: core.Metrics;
  logs: CapturedLogger;
}

export interface Maker {
  <F = never>(options?: Partial<core.CircuitBreakerOptions<F>>): Made<F>;
  /** Close every breaker made since the last call. */
  closeAll(): Promise<void>;
}

/**
 * Breakers for one suite, each with its own metrics registry and captured logger; call
 * `closeAll()` after each test (then no timer is left behind).
 */
export function breakers(): Maker {
  const open: core.CircuitBreaker<unknown>[] = [];
  const make = <F = never>(options: Partial<core.CircuitBreakerOptions<F>> = {}): Made<F> => {
    const metrics = testMetrics();
    const logs = captureLogger('circuit-breaker');
    const breaker = core.circuitBreaker<F>({
      name: 'labs',
      metrics,
      logger: logs.logger,
      settings,
      ...options,
    });
    open.push(breaker);
    return { breaker, metrics, logs };
  };
  return Object.assign(make, {
    closeAll: async () => {
      await Promise.all(open.splice(0).map((b) => b.close()));
    },
  });
}

/** A dependency error of the kind a network client throws. */
export function refused(): Error {
  return Object.assign(new Error('connect ECONNREFUSED 10.0.0.7:443 (patient 123)'), {
    code: 'ECONNREFUSED',
  });
}

export const fail = (): Promise<never> => Promise.reject(refused());
export const ok = (): Promise<string> => Promise.resolve('ok');

/** The rejection of a promise (fails the test when it resolves). */
export async function rejectionOf(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

/** Settle every promise, returning what each did. */
export function settleAll<T>(promises: Promise<T>[]): Promise<PromiseSettledResult<T>[]> {
  return Promise.allSettled(promises);
}

export interface Deferred<T> {
  promise: Promise<T>;
  resolve: (value: T) => void;
  reject: (err: unknown) => void;
}

export function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/**
 * A local server that never answers (until `release()`): what a hung dependency looks like. It
 * records each request's socket closing, so a test can see a cancelled call really went away.
 */
export interface SlowServer {
  url: string;
  /** Requests received so far. */
  readonly received: number;
  /** Resolves when `n` requests have arrived. */
  arrived(n: number): Promise<void>;
  /** Resolves when `n` sockets have closed. */
  socketsClosed(n: number): Promise<void>;
  close(): Promise<void>;
}

export async function slowServer(
  handler?: (req: IncomingMessage, res: ServerResponse, count: number) => void,
): Promise<SlowServer> {
  let received = 0;
  let closed = 0;
  const waiters: { kind: 'arrived' | 'closed'; n: number; resolve: () => void }[] = [];
  const check = (): void => {
    for (const w of [...waiters]) {
      if ((w.kind === 'arrived' ? received : closed) >= w.n) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve();
      }
    }
  };
  const sockets = new Set<Socket>();
  const server: Server = createServer((req, res) => {
    received++;
    req.socket.once('close', () => {
      closed++;
      check();
    });
    handler?.(req, res, received);
    check();
  });
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const waitFor = (kind: 'arrived' | 'closed', n: number): Promise<void> =>
    new Promise((resolve) => {
      waiters.push({ kind, n, resolve });
      check();
    });
  return {
    url: `http://127.0.0.1:${port}/labs`,
    get received() {
      return received;
    },
    arrived: (n) => waitFor('arrived', n),
    socketsClosed: (n) => waitFor('closed', n),
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => {
          resolve();
        });
      }),
  };
}
