import type { Logger } from '../logging/index.js';
import type { Metrics } from '../metrics/index.js';
import type { Settings } from '../config/index.js';

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

/** What `stats()` reports. */
export interface CircuitBreakerStats {
  readonly name: string;
  readonly mode: CircuitBreakerMode;
  readonly state: CircuitBreakerState;
  /** Calls since start, by result — the same counts as `circuit_breaker_calls_total`. */
  readonly calls: Readonly<Record<CallResult, number>>;
  /** Consecutive mode: failures in a row now. Rate mode: failures in the window. */
  readonly failures: number;
  /** Rate mode: calls in the window. Consecutive mode: undefined. */
  readonly requests: number | undefined;
  /** When the circuit last opened (epoch ms), while it is open or half-open. */
  readonly openedAt: number | undefined;
  /** While open: milliseconds until a probe may pass. Otherwise 0. */
  readonly retryAfterMs: number;
}

/** A TC39 (TypeScript 5 standard) method decorator for async methods. */
export type BreakerDecorator<F> = <This, A extends unknown[], T>(
  method: (this: This, ...args: A) => Promise<T>,
  context: ClassMethodDecoratorContext<This, (this: This, ...args: A) => Promise<T>>,
) => (this: This, ...args: A) => Promise<T | F>;

/** A circuit breaker from `circuitBreaker()`; `F` is what its fallback returns (`never` without one). */
export interface CircuitBreaker<F = never> {
  readonly name: string;
  readonly state: CircuitBreakerState;
  /**
   * Run `fn` through the breaker. Open: rejects at once with a 503 `CircuitOpenError` (or answers
   * with the fallback). `fn` receives `signal` (a fresh one when none is given).
   */
  execute<T>(fn: (signal: AbortSignal) => Promise<T>, signal?: AbortSignal): Promise<T | F>;
  /** `fn` behind the breaker, with the same parameters (and `this`). */
  wrap<A extends unknown[], T>(fn: (...args: A) => Promise<T>): (...args: A) => Promise<T | F>;
  /** A standard method decorator: `@labs.decorate() async fetchResults(id) { … }`. */
  decorate(): BreakerDecorator<F>;
  /** Listen to state changes; returns the function that stops listening. */
  onStateChange(listener: (change: StateChange) => void): () => void;
  stats(): CircuitBreakerStats;
  /** Close the circuit and forget its failures (an operator's override); the call counts stay. */
  reset(): void;
  /** Stop reporting metrics, drop listeners and the half-open timer. Calls still work. */
  close(): Promise<void>;
}
