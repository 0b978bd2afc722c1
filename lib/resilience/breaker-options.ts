import type { Settings } from '../config/index.js';
import { loadSettings } from '../config/index.js';
import { ConfigError, readOptions } from '../errors/index.js';
import type { Logger } from '../logging/index.js';
import { createLogger } from '../logging/index.js';
import type { Metrics } from '../metrics/index.js';
import { metricsFor } from '../metrics/index.js';
import { MAX_TIMER_MS } from './abort.js';
import { isDependencyFailure } from './classify.js';

/** `closed`: calls go through; `open`: calls are refused fast; `half_open`: the next call is a probe. */
export type CircuitBreakerState = 'closed' | 'open' | 'half_open';

/** How a breaker decides to open: failures in a row, or the failure rate over a rolling window. */
export type CircuitBreakerMode = 'consecutive' | 'rate';

/** How a call ended, as `circuit_breaker_calls_total{result}` and `stats().calls` count it. */
export type CallResult = 'success' | 'failure' | 'rejected' | 'fallback' | 'cancelled';

/** A change of state, as `onStateChange` listeners and `onEvent` receive it. */
export interface StateChange {
  readonly name: string;
  readonly from: CircuitBreakerState;
  readonly to: CircuitBreakerState;
  /** When, in epoch milliseconds. */
  readonly at: number;
  /** On opening: the failure's code or class (`ECONNREFUSED`, `TIMEOUT`, `TypeError`), never its message. */
  readonly reason?: string;
}

/** Everything a breaker reports to `onEvent`, in the order it happens. */
export type CircuitBreakerEvent =
  | ({ readonly type: 'state_change' } & StateChange)
  | {
      readonly type: 'success';
      readonly name: string;
      readonly durationMs: number;
      /** Set when the call threw an error `expectedException` does not count (a 404). */
      readonly error?: unknown;
    }
  | { readonly type: 'failure'; readonly name: string; readonly durationMs: number; readonly error: unknown }
  | { readonly type: 'rejected'; readonly name: string; readonly retryAfterSeconds: number }
  | { readonly type: 'fallback'; readonly name: string; readonly error: unknown }
  | { readonly type: 'cancelled'; readonly name: string };

/** Everything `circuitBreaker()` accepts. `F` is what the fallback returns. */
export interface CircuitBreakerOptions<F = never> {
  /** The dependency's name: `service_name` label, `details.service` of a 503, log field. 1–64 of `A–Z a–z 0–9 _ . -`. Required. */
  name: string;
  /** `'consecutive'` (failures in a row) or `'rate'` (failure rate over a rolling window). Default `'consecutive'`. */
  mode?: CircuitBreakerMode;
  /** Consecutive mode: failures in a row that open the circuit. Default 5. */
  failureThreshold?: number;
  /** Rate mode: the circuit opens when more than this share of the window's calls failed (0 < rate < 1). Default 0.5. */
  failureRate?: number;
  /** Rate mode: the rolling window in milliseconds (at least 100). Default 60 000. */
  windowMs?: number;
  /** Rate mode: calls the window needs before the rate can open the circuit. Default 10. */
  minimumRequests?: number;
  /** Milliseconds an open circuit refuses calls before it lets one probe through (half-open). Default 30 000. */
  recoveryTimeout?: number;
  /**
   * Which errors count as the dependency's failures. Default: every error except one carrying an
   * HTTP status below 500 (an AppError, an HTTP client's error, a Response) — a 404 from the
   * dependency is an answer, not an outage. A call the caller cancelled (its signal aborted) never
   * counts, except that a cancelled probe reopens the circuit.
   */
  expectedException?: (err: unknown) => boolean;
  /**
   * The answer when the circuit refuses a call (its `CircuitOpenError`) or a call fails: cached data,
   * a default. Errors that do not count, and cancelled calls, still reject. Default none.
   */
  fallback?: (err: unknown) => F | Promise<F>;
  /** Told of every call and change of state; a throw is logged and ignored. Default none. */
  onEvent?: (event: CircuitBreakerEvent) => void;
  /**
   * Where `circuit_breaker_state`, `circuit_breaker_transitions_total` and
   * `circuit_breaker_calls_total` are reported (read at scrape time); `false`: nowhere. Default `getMetrics()`.
   */
  metrics?: Metrics | false;
  /** Where the open (warn) and close (info) lines go. Default `createLogger('circuit-breaker')`. */
  logger?: Logger;
  /** Settings to read defaults from. Default `loadSettings(process.env)`. */
  settings?: Settings;
}

/** The options, checked and with their defaults. */
export interface BreakerConfig<F> {
  name: string;
  mode: CircuitBreakerMode;
  failureThreshold: number;
  failureRate: number;
  windowMs: number;
  minimumRequests: number;
  recoveryTimeout: number;
  expectedException: (err: unknown) => boolean;
  fallback: ((err: unknown) => F | Promise<F>) | undefined;
  onEvent: ((event: CircuitBreakerEvent) => void) | undefined;
  metrics: Metrics | undefined;
  logger: Logger;
}

const KNOWN = [
  'name',
  'mode',
  'failureThreshold',
  'failureRate',
  'windowMs',
  'minimumRequests',
  'recoveryTimeout',
  'expectedException',
  'fallback',
  'onEvent',
  'metrics',
  'logger',
  'settings',
] as const satisfies readonly (keyof CircuitBreakerOptions)[];

const RATE_ONLY = ['failureRate', 'windowMs', 'minimumRequests'] as const;
const NAME = /^[\w.-]{1,64}$/;
const FACTORY = 'circuitBreaker';

function integer(option: string, value: unknown, min: number, max = MAX_TIMER_MS): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max)
    throw ConfigError.option(FACTORY, option, `an integer from ${min} to ${max}`, value);
  return value;
}

function optionalFunction<T>(option: string, value: T | undefined): T | undefined {
  if (value !== undefined && typeof value !== 'function')
    throw ConfigError.option(FACTORY, option, 'a function', value);
  return value;
}

function readMode(options: Partial<CircuitBreakerOptions<unknown>>): CircuitBreakerMode {
  const mode: unknown = options.mode ?? 'consecutive';
  if (mode !== 'consecutive' && mode !== 'rate')
    throw ConfigError.option(FACTORY, 'mode', "'consecutive' or 'rate'", mode);
  const misplaced =
    mode === 'rate'
      ? options.failureThreshold === undefined
        ? undefined
        : 'failureThreshold'
      : RATE_ONLY.find((key) => options[key] !== undefined);
  if (misplaced !== undefined)
    throw new ConfigError(
      `${FACTORY}: ${misplaced} does not apply to mode '${mode}' (failureThreshold is for 'consecutive'; failureRate, windowMs and minimumRequests for 'rate')`,
      [{ name: misplaced, expected: `an option of mode '${mode}'`, received: 'an option of the other mode' }],
    );
  return mode;
}

export function readBreakerOptions<F>(input: Readonly<CircuitBreakerOptions<F>>): BreakerConfig<F> {
  if ((input as unknown) === undefined)
    throw new ConfigError(
      `${FACTORY}: options with a name are required — core.circuitBreaker({ name: 'labs' })`,
    );
  const options = readOptions<CircuitBreakerOptions<F>>(FACTORY, input, KNOWN);
  const { name } = options;
  if (typeof name !== 'string' || !NAME.test(name))
    throw ConfigError.option(FACTORY, 'name', '1–64 characters of A–Z a–z 0–9 _ . -', name);
  const mode = readMode(options);
  const failureRate = options.failureRate ?? 0.5;
  if (typeof failureRate !== 'number' || !(failureRate > 0 && failureRate < 1))
    throw ConfigError.option(FACTORY, 'failureRate', 'a number between 0 and 1 (exclusive)', failureRate);
  const { logger } = options;
  if (logger !== undefined && (typeof logger !== 'object' || typeof logger.warn !== 'function'))
    throw ConfigError.option(FACTORY, 'logger', 'a Logger from core.createLogger()', logger);
  const settings =
    options.settings ??
    (logger === undefined || options.metrics === undefined ? loadSettings(process.env) : undefined);
  return {
    name,
    mode,
    failureThreshold: integer('failureThreshold', options.failureThreshold ?? 5, 1, 1_000_000),
    failureRate,
    windowMs: integer('windowMs', options.windowMs ?? 60_000, 100),
    minimumRequests: integer('minimumRequests', options.minimumRequests ?? 10, 1, 1_000_000),
    recoveryTimeout: integer('recoveryTimeout', options.recoveryTimeout ?? 30_000, 1),
    expectedException:
      optionalFunction('expectedException', options.expectedException) ?? isDependencyFailure,
    fallback: optionalFunction('fallback', options.fallback),
    onEvent: optionalFunction('onEvent', options.onEvent),
    metrics: metricsFor(FACTORY, options.metrics, settings),
    logger: logger ?? createLogger('circuit-breaker', { settings }),
  };
}
