import type { CircuitState, IBreaker } from 'cockatiel';
import { SamplingBreaker } from 'cockatiel';

interface SamplingWindow {
  startedAt: number;
  failures: number;
  successes: number;
}

interface SamplingState {
  windows: SamplingWindow[];
  currentWindow: number;
  currentFailures: number;
  currentSuccesses: number;
}

/** cockatiel's window layout for a sampling duration: at least 5 buckets, at most a second each. */
function layout(windowMs: number): { buckets: number; duration: number } {
  const buckets = Math.max(5, Math.ceil(windowMs / 1000));
  return { buckets, duration: Math.round(windowMs / buckets) * buckets };
}

/**
 * cockatiel's `SamplingBreaker` (opens when more than `failureRate` of the calls in the last
 * `windowMs` failed, once at least `minimumRequests` were made), with one correction: buckets older
 * than the window are emptied before each call is counted. cockatiel rotates a single bucket per
 * call, so after a quiet spell its total still held calls from minutes ago.
 */
export class RateBreaker implements IBreaker {
  readonly #inner: SamplingBreaker;
  readonly #duration: number;

  constructor(failureRate: number, windowMs: number, minimumRequests: number) {
    const { duration } = layout(windowMs);
    this.#duration = duration;
    // cockatiel opens only when `total >= duration × minimumRps / 1000`; half a request below the
    // minimum keeps that exact whatever the rounding of the bucket size.
    const minimumRps = ((minimumRequests - 0.5) * 1000) / duration;
    this.#inner = new SamplingBreaker({ threshold: failureRate, duration: windowMs, minimumRps });
  }

  get state(): unknown {
    return this.#inner.state;
  }

  set state(value: unknown) {
    this.#inner.state = value;
  }

  /** Failures and calls counted in the window now. */
  counts(): { failures: number; requests: number } {
    this.#expire();
    const state = this.#inner.state as SamplingState;
    return { failures: state.currentFailures, requests: state.currentFailures + state.currentSuccesses };
  }

  success(state: CircuitState): void {
    this.#expire();
    this.#inner.success(state);
  }

  failure(state: CircuitState): boolean {
    this.#expire();
    return this.#inner.failure(state);
  }

  #expire(): void {
    const state = this.#inner.state as SamplingState;
    const now = Date.now();
    let changed = false;
    for (const bucket of state.windows) {
      if (now - bucket.startedAt < this.#duration || bucket.failures + bucket.successes === 0) continue;
      state.currentFailures -= bucket.failures;
      state.currentSuccesses -= bucket.successes;
      bucket.failures = 0;
      bucket.successes = 0;
      changed = true;
    }
    if (changed) this.#inner.state = state;
  }
}
