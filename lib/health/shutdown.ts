import { constants } from 'node:os';
import type { Settings } from '../config/index.js';
import { loadSettings } from '../config/index.js';
import { ConfigError, positiveInteger, readOptions } from '../errors/index.js';
import type { Logger } from '../logging/index.js';
import { createLogger, flushLogger } from '../logging/index.js';
import type { ShutdownServer } from './drain.js';
import { ConnectionTracker, drain } from './drain.js';
import { errorOutput } from './report.js';
import type { Closable } from './resources.js';
import { readClosables, release } from './resources.js';

export type { ShutdownServer } from './drain.js';
export type { Closable } from './resources.js';

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

  const tracker = new ConnectionTracker(server);
  let running: Promise<void> | undefined;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (running !== undefined) {
      logger.warn('shutdown already in progress', { signal });
      return;
    }
    void shutdown(`signal ${signal}`);
  };
  for (const signal of signals) process.on(signal, onSignal);

  async function run(reason: string): Promise<void> {
    let code = 1;
    try {
      const drained = await drain(tracker, reason, { timeoutMs, delayMs, beforeClose, health, logger });
      const released = await release(resources, resourceTimeoutMs, logger);
      code = drained && released ? 0 : 1;
      logger.info('shutdown complete', { exit_code: code });
    } catch (err) {
      logger.error('shutdown failed', { error: errorOutput(err) });
    }
    await flushLogger(logger).catch(() => undefined);
    tracker.detach();
    for (const signal of signals) process.removeListener(signal, onSignal);
    if (exit !== false) exit(code);
  }

  function shutdown(reason = 'shutdown() called'): Promise<void> {
    running ??= run(reason);
    return running;
  }

  return {
    shutdown,
    get shuttingDown() {
      return tracker.draining;
    },
  };
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
  const closables = readClosables(value);
  if (typeof closables === 'number')
    throw ConfigError.option(
      'gracefulShutdown',
      `resources[${closables}]`,
      'an object with close() or shutdown(), or a function',
      value[closables],
    );
  return closables;
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
