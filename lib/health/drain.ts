/**
 * The server half of a graceful shutdown: knowing which responses are in progress, closing the
 * listener and the idle keep-alive connections, telling busy ones to close after their answer, and
 * destroying what is left when time is up.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { Logger } from '../logging/index.js';
import { errorOutput, roundMs } from './report.js';

/** What `gracefulShutdown()` needs of a server: an `http.Server` or `https.Server` (what `app.listen()` returns). */
export interface ShutdownServer {
  close(callback?: (err?: Error) => void): unknown;
  closeIdleConnections(): void;
  closeAllConnections(): void;
  prependListener(event: 'request', listener: (req: IncomingMessage, res: ServerResponse) => void): unknown;
  removeListener(event: 'request', listener: (req: IncomingMessage, res: ServerResponse) => void): unknown;
}

/** After the deadline destroyed the connections, wait this long at most for the listener to close. */
const CLOSE_GRACE_MS = 1000;

/**
 * Tracks the responses in progress (a Set entry and one shared listener per request; no closure is
 * made per request) so that, once draining, every answer carries `Connection: close` and every
 * connection is closed as soon as its answer is out, instead of after the keep-alive timeout.
 */
export class ConnectionTracker {
  readonly #server: ShutdownServer;
  readonly #inFlight = new Set<ServerResponse>();
  #draining = false;
  readonly #closeIdle = (): void => {
    this.#server.closeIdleConnections();
  };
  /** One listener for every response of this server (`this` is the response). */
  readonly #forget: (this: ServerResponse) => void;
  readonly #track = (_req: IncomingMessage, res: ServerResponse): void => {
    if (this.#draining) res.setHeader('Connection', 'close');
    this.#inFlight.add(res);
    res.once('close', this.#forget);
  };

  constructor(server: ShutdownServer) {
    this.#server = server;
    const inFlight = this.#inFlight;
    const closeIdle = this.#closeIdle;
    const isDraining = (): boolean => this.#draining;
    this.#forget = function forgetResponse(this: ServerResponse) {
      inFlight.delete(this);
      // Its connection is idle now (or gone): close it rather than wait for keep-alive to time out.
      if (isDraining()) setImmediate(closeIdle);
    };
    // First, so the header is set before the application can send anything.
    server.prependListener('request', this.#track);
  }

  get inFlight(): number {
    return this.#inFlight.size;
  }

  get draining(): boolean {
    return this.#draining;
  }

  /** Answers from now on carry `Connection: close`. */
  startDraining(): void {
    this.#draining = true;
  }

  /** Close the listener and the idle connections; busy ones close after their answer. Resolves once closed. */
  stopAccepting(): Promise<void> {
    this.startDraining();
    const closed = new Promise<void>((resolve) => {
      // ERR_SERVER_NOT_RUNNING (never listened, or closed already) counts as closed.
      this.#server.close(() => {
        resolve();
      });
    });
    this.#closeIdle();
    for (const res of this.#inFlight) if (!res.headersSent) res.setHeader('Connection', 'close');
    return closed;
  }

  destroyAll(): void {
    this.#server.closeAllConnections();
  }

  detach(): void {
    this.#server.removeListener('request', this.#track);
  }
}

export interface DrainOptions {
  timeoutMs: number;
  delayMs: number;
  beforeClose: (() => unknown) | undefined;
  health: { markShuttingDown(): void } | undefined;
  logger: Logger;
}

/**
 * Readiness fails, then (after `delayMs` and `beforeClose`) the listener closes and the connections
 * drain; at `timeoutMs` from the start the remaining ones are destroyed. True when it was clean.
 */
export async function drain(
  tracker: ConnectionTracker,
  reason: string,
  options: DrainOptions,
): Promise<boolean> {
  const { timeoutMs, delayMs, beforeClose, health, logger } = options;
  const started = performance.now();
  tracker.startDraining();
  health?.markShuttingDown();
  const inFlight = tracker.inFlight;
  // Without a delay the listener closes in this tick, before the line is logged: a client that
  // connects after reading it is refused, never accepted and then reset.
  let closed = delayMs === 0 && beforeClose === undefined ? tracker.stopAccepting() : undefined;
  logger.info('shutting down', { reason, in_flight: inFlight, delay_ms: delayMs, timeout_ms: timeoutMs });
  // An object, not a `let`: the timer callback sets it (flow analysis cannot see that).
  const deadline = { passed: false, reached: Promise.resolve() };
  let onDeadline: () => void = () => undefined;
  deadline.reached = new Promise<void>((resolve) => (onDeadline = resolve));
  const timer = setTimeout(() => {
    deadline.passed = true;
    logger.warn('shutdown timed out: destroying the remaining connections', { in_flight: tracker.inFlight });
    tracker.destroyAll();
    onDeadline();
  }, timeoutMs);
  let clean = true;
  try {
    if (closed === undefined) {
      clean = await Promise.race([
        beforeListenerCloses(delayMs, beforeClose, logger),
        deadline.reached.then(() => true),
      ]);
      closed = tracker.stopAccepting();
    }
    if (deadline.passed) tracker.destroyAll();
    const stopped = closed;
    await Promise.race([stopped, deadline.reached.then(() => Promise.race([stopped, wait(CLOSE_GRACE_MS)]))]);
  } finally {
    clearTimeout(timer);
  }
  logger.info(deadline.passed ? 'server stopped (forced)' : 'server stopped: every request answered', {
    duration_ms: roundMs(performance.now() - started),
  });
  return clean && !deadline.passed;
}

/** `delayMs`, then `beforeClose()`; false when `beforeClose` failed. */
async function beforeListenerCloses(
  delayMs: number,
  beforeClose: (() => unknown) | undefined,
  logger: Logger,
): Promise<boolean> {
  if (delayMs > 0) await wait(delayMs);
  if (beforeClose === undefined) return true;
  try {
    await beforeClose();
    return true;
  } catch (err) {
    logger.error('beforeClose failed', { error: errorOutput(err) });
    return false;
  }
}

export function wait(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
