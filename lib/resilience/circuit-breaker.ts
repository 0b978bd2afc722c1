import type { CircuitBreakerPolicy, IDisposable } from 'cockatiel';
import {
  BrokenCircuitError,
  circuitBreaker as cockatielBreaker,
  CircuitState,
  ConsecutiveBreaker,
  handleType,
  IsolatedCircuitError,
} from 'cockatiel';
import { CircuitOpenError, ConfigError } from '../errors/index.js';
import { aborted, abortReason, callSignal, isSignal } from './abort.js';
import type { BreakerCounters } from './breaker-metrics.js';
import { reportBreaker } from './breaker-metrics.js';
import type { BreakerConfig } from './breaker-options.js';
import type {
  BreakerDecorator,
  CallResult,
  CircuitBreaker,
  CircuitBreakerEvent,
  CircuitBreakerOptions,
  CircuitBreakerState,
  CircuitBreakerStats,
  StateChange,
} from './breaker-types.js';
import { readBreakerOptions } from './breaker-options.js';
import { errorKind } from './classify.js';
import { RateBreaker } from './rate-breaker.js';

/** A failure that counts, boxed on its way through cockatiel so that its filter is a type check. */
class Failure extends Error {
  constructor(readonly error: unknown) {
    super('counted failure');
  }
}

function emptyCalls(): Record<CallResult, number> {
  return { success: 0, failure: 0, rejected: 0, fallback: 0, cancelled: 0 };
}

class Breaker<F> implements CircuitBreaker<F> {
  readonly name: string;
  readonly #calls = emptyCalls();
  readonly #transitions = new Map<CircuitBreakerState, Map<CircuitBreakerState, number>>();
  readonly #config: BreakerConfig<F>;
  #engine!: CircuitBreakerPolicy;
  #counter!: ConsecutiveBreaker | RateBreaker;
  #subscription: IDisposable | undefined;
  #state: CircuitBreakerState = 'closed';
  #openedAt: number | undefined;
  #timer: NodeJS.Timeout | undefined;
  readonly #listeners = new Set<(change: StateChange) => void>();
  #stopMetrics: (() => void)[] = [];
  #closed = false;

  constructor(config: BreakerConfig<F>) {
    this.#config = config;
    this.name = config.name;
    this.#startEngine();
    if (config.metrics !== undefined) {
      const state = () => this.#state;
      const counters: BreakerCounters = {
        name: this.name,
        get state() {
          return state();
        },
        calls: this.#calls,
        transitions: this.#transitions,
      };
      this.#stopMetrics = reportBreaker(config.metrics, counters);
    }
  }

  get state(): CircuitBreakerState {
    return this.#state;
  }

  async execute<T>(fn: (signal: AbortSignal) => Promise<T>, signal?: AbortSignal): Promise<T | F> {
    if (typeof fn !== 'function') throw ConfigError.option('circuitBreaker', 'execute(fn)', 'a function', fn);
    if (!isSignal(signal)) throw ConfigError.option('circuitBreaker', 'signal', 'an AbortSignal', signal);
    const call = callSignal(signal);
    if (call.aborted) throw this.#cancelled(abortReason(call));
    const refusal = this.#refusal();
    if (refusal !== undefined) return this.#refuse(refusal);
    const engine = this.#engine;
    // Past the recovery timeout, the call that reaches an open engine is the probe.
    const probe = engine.state === CircuitState.Open;
    const started = performance.now();
    try {
      const value = await engine.execute(({ signal: s }) => this.#attempt(fn, s, probe), call);
      this.#count('success');
      this.#emit({ type: 'success', name: this.name, durationMs: performance.now() - started });
      return value;
    } catch (thrown) {
      const error = thrown instanceof Failure ? thrown.error : thrown;
      if (aborted(call)) throw this.#cancelled(error);
      if (thrown instanceof BrokenCircuitError || thrown instanceof IsolatedCircuitError)
        return this.#refuse(1);
      const durationMs = performance.now() - started;
      if (!(thrown instanceof Failure)) {
        this.#count('success');
        this.#emit({ type: 'success', name: this.name, durationMs, error });
        throw error;
      }
      this.#emit({ type: 'failure', name: this.name, durationMs, error });
      return this.#fallbackOr(error, 'failure');
    }
  }

  wrap<A extends unknown[], T>(fn: (...args: A) => Promise<T>): (...args: A) => Promise<T | F> {
    if (typeof fn !== 'function') throw ConfigError.option('circuitBreaker', 'wrap(fn)', 'a function', fn);
    const execute = this.execute.bind(this);
    const wrapped = function (this: unknown, ...args: A): Promise<T | F> {
      return execute(() => fn.apply(this, args));
    };
    Object.defineProperty(wrapped, 'name', { value: fn.name });
    return wrapped;
  }

  decorate(): BreakerDecorator<F> {
    return (method, context) => {
      if (typeof context !== 'object' || (context as { kind?: unknown } | null)?.kind !== 'method')
        throw new ConfigError(
          'circuitBreaker: decorate() is a standard (TC39) method decorator — turn off experimentalDecorators, or use breaker.wrap(fn)',
        );
      return this.wrap(method);
    };
  }

  onStateChange(listener: (change: StateChange) => void): () => void {
    if (typeof listener !== 'function')
      throw ConfigError.option('circuitBreaker', 'onStateChange(listener)', 'a function', listener);
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  }

  stats(): CircuitBreakerStats {
    const counts =
      this.#counter instanceof RateBreaker
        ? this.#counter.counts()
        : { failures: this.#counter.state, requests: undefined };
    return {
      name: this.name,
      mode: this.#config.mode,
      state: this.#state,
      calls: { ...this.#calls },
      failures: counts.failures,
      requests: counts.requests,
      openedAt: this.#openedAt,
      retryAfterMs:
        this.#state === 'open' && this.#openedAt !== undefined
          ? Math.max(0, this.#openedAt + this.#config.recoveryTimeout - Date.now())
          : 0,
    };
  }

  reset(): void {
    this.#startEngine();
    this.#transition('closed');
  }

  close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    for (const stop of this.#stopMetrics) stop();
    this.#stopMetrics = [];
    this.#listeners.clear();
    return Promise.resolve();
  }

  /** A new cockatiel engine (state machine) and failure counter; the old one's events are ignored. */
  #startEngine(): void {
    const { mode, failureThreshold, failureRate, windowMs, minimumRequests, recoveryTimeout } = this.#config;
    this.#subscription?.dispose();
    this.#counter =
      mode === 'rate'
        ? new RateBreaker(failureRate, windowMs, minimumRequests)
        : new ConsecutiveBreaker(failureThreshold);
    const engine = cockatielBreaker(handleType(Failure), {
      halfOpenAfter: recoveryTimeout,
      breaker: this.#counter,
    });
    this.#engine = engine;
    this.#subscription = engine.onStateChange((state) => {
      if (state === CircuitState.Closed) this.#transition('closed');
      else if (state === CircuitState.HalfOpen) this.#transition('half_open');
      else if (state === CircuitState.Open) {
        const last = engine.lastFailure;
        const error = last !== undefined && 'error' in last ? last.error : undefined;
        this.#transition('open', errorKind(error instanceof Failure ? error.error : error));
      }
    });
  }

  async #attempt<T>(
    fn: (signal: AbortSignal) => Promise<T>,
    signal: AbortSignal,
    probe: boolean,
  ): Promise<T> {
    try {
      return await fn(signal);
    } catch (err) {
      // A cancelled call says nothing about the dependency — but a cancelled probe must not close
      // the circuit (cockatiel closes it on an error that does not count), so it reopens it.
      if (aborted(signal) ? probe : this.#counts(err)) throw new Failure(err);
      throw err;
    }
  }

  #counts(err: unknown): boolean {
    try {
      return this.#config.expectedException(err);
    } catch (predicateError) {
      this.#config.logger.error('circuit breaker expectedException threw: the error counts as a failure', {
        service_name: this.name,
        error: errorKind(predicateError),
      });
      return true;
    }
  }

  /** Seconds to wait when the call must be refused now, else undefined. */
  #refusal(): number | undefined {
    const state = this.#engine.state;
    // Half-open: one probe is in flight; everyone else fails fast instead of queueing behind it.
    if (state === CircuitState.HalfOpen) return 1;
    if (state !== CircuitState.Open) return undefined;
    const left = (this.#openedAt ?? 0) + this.#config.recoveryTimeout - Date.now();
    return left > 0 ? Math.ceil(left / 1000) : undefined;
  }

  #refuse(retryAfterSeconds: number): Promise<F> {
    this.#emit({ type: 'rejected', name: this.name, retryAfterSeconds });
    return this.#fallbackOr(new CircuitOpenError(this.name, retryAfterSeconds), 'rejected');
  }

  async #fallbackOr(error: unknown, result: 'failure' | 'rejected'): Promise<F> {
    const { fallback } = this.#config;
    if (fallback === undefined) {
      this.#count(result);
      throw error;
    }
    try {
      const value = await fallback(error);
      this.#count('fallback');
      this.#emit({ type: 'fallback', name: this.name, error });
      return value;
    } catch (fallbackError) {
      this.#count(result);
      throw fallbackError;
    }
  }

  #cancelled(reason: unknown): Error {
    this.#count('cancelled');
    this.#emit({ type: 'cancelled', name: this.name });
    return reason as Error;
  }

  #count(result: CallResult): void {
    this.#calls[result]++;
  }

  #transition(to: CircuitBreakerState, reason?: string): void {
    const from = this.#state;
    if (from === to) return;
    this.#state = to;
    const at = Date.now();
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (to === 'open') {
      this.#openedAt = at;
      // Report half-open when the probe is allowed, not only when traffic brings one.
      if (!this.#closed) {
        this.#timer = setTimeout(() => {
          this.#transition('half_open');
        }, this.#config.recoveryTimeout);
        this.#timer.unref();
      }
    } else if (to === 'closed') this.#openedAt = undefined;
    let byTarget = this.#transitions.get(from);
    if (byTarget === undefined) {
      byTarget = new Map<CircuitBreakerState, number>();
      this.#transitions.set(from, byTarget);
    }
    byTarget.set(to, (byTarget.get(to) ?? 0) + 1);
    this.#log(from, to, reason);
    const change: StateChange = {
      name: this.name,
      from,
      to,
      at,
      ...(reason === undefined ? {} : { reason }),
    };
    for (const listener of this.#listeners)
      this.#safely(() => {
        listener(change);
      });
    this.#emit({ type: 'state_change', ...change });
  }

  #log(from: CircuitBreakerState, to: CircuitBreakerState, reason: string | undefined): void {
    const { logger, recoveryTimeout } = this.#config;
    const fields = { service_name: this.name, from, to };
    if (to === 'open')
      logger.warn('circuit breaker opened: calls fail fast', {
        ...fields,
        error: reason,
        retry_after_ms: recoveryTimeout,
      });
    else if (to === 'closed') logger.info('circuit breaker closed', fields);
    else logger.debug('circuit breaker half-open: the next call is a probe', fields);
  }

  #emit(event: CircuitBreakerEvent): void {
    const { onEvent } = this.#config;
    if (onEvent !== undefined)
      this.#safely(() => {
        onEvent(event);
      });
  }

  #safely(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.#config.logger.error('circuit breaker listener threw', {
        service_name: this.name,
        error: errorKind(err),
      });
    }
  }
}

/**
 * A circuit breaker on cockatiel's state machine: after `failureThreshold` failures in a row (or a
 * failure rate over a window, `mode: 'rate'`) calls fail fast with a 503 `CIRCUIT_OPEN` and
 * `Retry-After` for `recoveryTimeout`; then one probe goes through (everyone else is still refused)
 * and its outcome closes or reopens the circuit.
 *
 * @example
 * const labs = core.circuitBreaker({ name: 'labs', failureThreshold: 5, recoveryTimeout: 30_000 });
 * app.get('/patients/:id/labs', core.asyncHandler(async (req, res) => {
 *   res.json(await labs.execute((signal) => fetchLabs(req.params.id, signal)));
 * }));
 */
export function circuitBreaker<F = never>(options: Readonly<CircuitBreakerOptions<F>>): CircuitBreaker<F> {
  return new Breaker(readBreakerOptions(options));
}
