import type { IncomingMessage, ServerResponse } from 'node:http';
import { constants } from 'node:os';
import { performance } from 'node:perf_hooks';
import type { Settings } from '../config/index.js';
import { loadSettings } from '../config/index.js';
import { ConfigError, positiveInteger, readOptions } from '../errors/index.js';
import type { Logger } from '../logging/index.js';
import { createLogger, flushLogger } from '../logging/index.js';
import { errorOutput, roundMs } from './report.js';

/** What `gracefulShutdown()` needs of a server: an `http.Server` or `https.Server` (what `app.listen()` returns). */
export interface ShutdownServer {
  close(callback?: (err?: Error) => void): unknown;
  closeIdleConnections(): void;
  closeAllConnections(): void;
  prependListener(event: 'request', listener: (req: IncomingMessage, res: ServerResponse) => void): unknown;
  removeListener(event: 'request', listener: (req: IncomingMessage, res: ServerResponse) => void): unknown;
}

/**
 * Something to release after the server stopped: an object with `close()` (a Database, a rate
 * limiter, an Auth, the health router, an ioredis client's `quit` wrapped in a function…), with
 * `shutdown()` (the Tracing of `startTracing()`), or a function. A string `name` is used in the logs.
 */
export type Closable =
  | { readonly name?: unknown; close(): unknown }
  | { readonly name?: unknown; shutdown(): unknown }
  | (() => unknown);

export interface GracefulShutdownOptions {
  /** Released one after the other, in this order, once the server has stopped. Default none. */
  resources?: readonly Closable[];
  /**
   * Time from the signal for in-flight requests to finish (`delayMs` and `beforeClose` included);
   * then the remaining connections are destroyed and the exit code is 1. Default 10000 ms.
   */
  timeoutMs?: number;
  /** Time each resource gets to close; one that takes longer is left behind (exit code 1). Default 5000 ms. */
  resourceTimeoutMs?: number;
  /** Signals that start the shutdown; `[]` for none (call `shutdown()` yourself). Default `['SIGTERM', 'SIGINT']`. */
  signals?: readonly NodeJS.Signals[];
  /** The router of `health()`: its readiness fails as soon as the shutdown starts. Default none. */
  health?: { markShuttingDown(): void };
  /**
   * Keep accepting for this long after readiness turned to fail, so load balancers see it before
   * the listener closes (every answer meanwhile carries `Connection: close`). Default 0.
   */
  delayMs?: number;
  /** Awaited before the listener closes (after `delayMs`): deregister from discovery, stop consumers. Default none. */
  beforeClose?: () => unknown;
  /** Where the shutdown is reported. Default `createLogger('shutdown')`. */
  logger?: Logger;
  /** Called with the exit code at the end; `false`: do not exit. Default `process.exit`. */
  exit?: ((code: number) => void) | false;
  /** Settings for the default logger. Default `loadSettings(process.env)`. */
  settings?: Settings;
}

export interface GracefulShutdown {
  /** Start the shutdown (what a signal does); every call returns the same promise. */
  shutdown(reason?: string): Promise<void>;
  readonly shuttingDown: boolean;
}

const KNOWN = [
  'resources',
  'timeoutMs',
  'resourceTimeoutMs',
  'signals',
  'health',
  'delayMs',
  'beforeClose',
  'logger',
  'exit',
  'settings',
] as const satisfies readonly (keyof GracefulShutdownOptions)[];

/** After the deadline destroyed the connections, wait this long at most for the listener to close. */
const CLOSE_GRACE_MS = 1000;
const UNCATCHABLE = new Set(['SIGKILL', 'SIGSTOP']);

/**
 * Stop without dropping requests. On SIGTERM or SIGINT (or `shutdown()`): readiness fails, the
 * server stops accepting connections, in-flight requests finish (their responses carry
 * `Connection: close`), idle keep-alive connections are closed, then `resources` close in order
 * and the process exits 0 — or 1 when `timeoutMs` passed first (the remaining connections are
 * destroyed) or a resource failed to close.
 *
 * @example
 * const server = app.listen(3000);
 * core.gracefulShutdown(server, { health, resources: [limiter, auth, flags, db], delayMs: 5000 });
 */
export function gracefulShutdown(
  server: ShutdownServer,
  input: Readonly<GracefulShutdownOptions> = {},
): GracefulShutdown {
  readServer(server);
  const options = readOptions<GracefulShutdownOptions>('gracefulShutdown', input, KNOWN);
  const timeoutMs = positiveInteger('gracefulShutdown', 'timeoutMs', options.timeoutMs ?? 10_000);
  const resourceTimeoutMs = positiveInteger(
    'gracefulShutdown',
    'resourceTimeoutMs',
    options.resourceTimeoutMs ?? 5000,
  );
  const delayMs = options.delayMs ?? 0;
  if (!Number.isInteger(delayMs) || delayMs < 0 || delayMs >= timeoutMs)
    throw ConfigError.option(
      'gracefulShutdown',
      'delayMs',
      `a non-negative integer below timeoutMs (${timeoutMs})`,
      delayMs,
    );
  const resources = readResources(options.resources ?? []);
  const signals = readSignals(options.signals ?? ['SIGTERM', 'SIGINT']);
  const { health, beforeClose } = options;
  if (health !== undefined && typeof (health as Partial<typeof health>).markShuttingDown !== 'function')
    throw ConfigError.option('gracefulShutdown', 'health', 'the router of core.health()', health);
  if (beforeClose !== undefined && typeof beforeClose !== 'function')
    throw ConfigError.option('gracefulShutdown', 'beforeClose', 'a function', beforeClose);
  const exit = options.exit ?? ((code: number) => process.exit(code));
  if (exit !== false && typeof exit !== 'function')
    throw ConfigError.option('gracefulShutdown', 'exit', 'a function (code) => void, or false', exit);
  const logger =
    options.logger ?? createLogger('shutdown', { settings: options.settings ?? loadSettings(process.env) });

  // Responses in progress: at the shutdown, those not yet started are told `Connection: close`.
  const inFlight = new Set<ServerResponse>();
  let draining = false;
  const closeIdle = (): void => {
    server.closeIdleConnections();
  };
  function forget(this: ServerResponse): void {
    inFlight.delete(this);
    // Its connection is idle now (or gone): close it rather than wait for keep-alive to time out.
    if (draining) setImmediate(closeIdle);
  }
  function trackRequest(_req: IncomingMessage, res: ServerResponse): void {
    if (draining) res.setHeader('Connection', 'close');
    inFlight.add(res);
    res.once('close', forget);
  }
  // First, so the header is set before the application can send anything.
  server.prependListener('request', trackRequest);

  let running: Promise<void> | undefined;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (running !== undefined) {
      logger.warn('shutdown already in progress', { signal });
      return;
    }
    void shutdown(`signal ${signal}`);
  };
  for (const signal of signals) process.on(signal, onSignal);

  const detach = (): void => {
    server.removeListener('request', trackRequest);
    for (const signal of signals) process.removeListener(signal, onSignal);
  };

  /** Close the listener and the idle connections; busy ones are told to close after their answer. */
  function stopAccepting(): Promise<void> {
    const closed = new Promise<void>((resolve) => {
      // ERR_SERVER_NOT_RUNNING (never listened, or closed already) is closed as well.
      server.close(() => {
        resolve();
      });
    });
    closeIdle();
    for (const res of inFlight) if (!res.headersSent) res.setHeader('Connection', 'close');
    return closed;
  }

  async function drain(reason: string): Promise<boolean> {
    const started = performance.now();
    draining = true;
    health?.markShuttingDown();
    const inFlightAtStart = inFlight.size;
    // Without a delay the listener closes in this tick, before the line is logged: a client that
    // connects after reading it is refused, never accepted and then reset.
    let closed = delayMs === 0 && beforeClose === undefined ? stopAccepting() : undefined;
    logger.info('shutting down', {
      reason,
      in_flight: inFlightAtStart,
      delay_ms: delayMs,
      timeout_ms: timeoutMs,
    });
    // An object, not a `let`: the timer callback sets it (flow analysis cannot see that).
    const deadlineState = { passed: false };
    let onDeadline: () => void = () => undefined;
    const deadline = new Promise<void>((resolve) => (onDeadline = resolve));
    const timer = setTimeout(() => {
      deadlineState.passed = true;
      logger.warn('shutdown timed out: destroying the remaining connections', { in_flight: inFlight.size });
      server.closeAllConnections();
      onDeadline();
    }, timeoutMs);
    let clean = true;
    try {
      if (closed === undefined) {
        clean = await Promise.race([beforeListenerCloses(), deadline.then(() => true)]);
        closed = stopAccepting();
      }
      if (deadlineState.passed) server.closeAllConnections();
      const stopped = closed;
      await Promise.race([stopped, deadline.then(() => Promise.race([stopped, wait(CLOSE_GRACE_MS)]))]);
    } finally {
      clearTimeout(timer);
    }
    const forced = deadlineState.passed;
    logger.info(forced ? 'server stopped (forced)' : 'server stopped: every request answered', {
      duration_ms: roundMs(performance.now() - started),
    });
    return clean && !forced;
  }

  /** `delayMs`, then `beforeClose()`; false when `beforeClose` failed. */
  async function beforeListenerCloses(): Promise<boolean> {
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

  async function release(): Promise<boolean> {
    let clean = true;
    for (const [index, resource] of resources.entries()) {
      const name = nameOf(resource, index);
      try {
        if ((await bounded(() => closeOne(resource), resourceTimeoutMs)) === 'timeout') {
          clean = false;
          logger.error('resource did not close in time', { resource: name, timeout_ms: resourceTimeoutMs });
        } else logger.info('resource closed', { resource: name });
      } catch (err) {
        clean = false;
        logger.error('resource failed to close', { resource: name, error: errorOutput(err) });
      }
    }
    return clean;
  }

  async function run(reason: string): Promise<void> {
    let code = 1;
    try {
      const drained = await drain(reason);
      const released = await release();
      code = drained && released ? 0 : 1;
      logger.info('shutdown complete', { exit_code: code });
    } catch (err) {
      logger.error('shutdown failed', { error: errorOutput(err) });
    }
    await flushLogger(logger).catch(() => undefined);
    detach();
    if (exit !== false) exit(code);
  }

  function shutdown(reason = 'shutdown() called'): Promise<void> {
    running ??= run(reason);
    return running;
  }

  return {
    shutdown,
    get shuttingDown() {
      return draining;
    },
  };
}

function wait(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function bounded(fn: () => unknown, ms: number): Promise<'done' | 'timeout'> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => {
      resolve('timeout');
    }, ms);
  });
  try {
    return await Promise.race([
      Promise.resolve()
        .then(fn)
        .then(() => 'done' as const),
      timeout,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

function closeOne(resource: Closable): unknown {
  if (typeof (resource as { close?: unknown }).close === 'function')
    return (resource as { close(): unknown }).close();
  if (typeof (resource as { shutdown?: unknown }).shutdown === 'function')
    return (resource as { shutdown(): unknown }).shutdown();
  return (resource as () => unknown)();
}

function nameOf(resource: Closable, index: number): string {
  const { name } = resource as { name?: unknown };
  return typeof resource !== 'function' && typeof name === 'string' && name !== ''
    ? name
    : `resources[${index}]`;
}

function readServer(server: unknown): void {
  const s = server as Partial<Record<keyof ShutdownServer, unknown>> & { listen?: unknown; use?: unknown };
  if (typeof server === 'function' && typeof s.listen === 'function' && typeof s.use === 'function')
    throw new ConfigError(
      'gracefulShutdown: pass the server app.listen() returns, not the app: gracefulShutdown(app.listen(port))',
    );
  const needed = [
    'close',
    'closeIdleConnections',
    'closeAllConnections',
    'prependListener',
    'removeListener',
  ];
  if (
    typeof server !== 'object' ||
    server === null ||
    needed.some((m) => typeof s[m as keyof ShutdownServer] !== 'function')
  )
    throw ConfigError.option(
      'gracefulShutdown',
      'server',
      'an http.Server or https.Server (from app.listen())',
      server,
    );
}

function readResources(value: unknown): readonly Closable[] {
  if (!Array.isArray(value))
    throw ConfigError.option('gracefulShutdown', 'resources', 'an array of things to close', value);
  value.forEach((r: unknown, i) => {
    const ok =
      typeof r === 'function' ||
      (typeof r === 'object' &&
        r !== null &&
        (typeof (r as { close?: unknown }).close === 'function' ||
          typeof (r as { shutdown?: unknown }).shutdown === 'function'));
    if (!ok)
      throw ConfigError.option(
        'gracefulShutdown',
        `resources[${i}]`,
        'an object with close() or shutdown(), or a function',
        r,
      );
  });
  return [...(value as Closable[])];
}

function readSignals(value: unknown): readonly NodeJS.Signals[] {
  const valid = (s: unknown): boolean =>
    typeof s === 'string' && s in constants.signals && !UNCATCHABLE.has(s);
  if (!Array.isArray(value) || !value.every(valid))
    throw ConfigError.option(
      'gracefulShutdown',
      'signals',
      "an array of signal names such as 'SIGTERM' (not SIGKILL or SIGSTOP)",
      value,
    );
  return [...new Set(value as NodeJS.Signals[])];
}
