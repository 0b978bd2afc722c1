import { fullJitterGenerator } from 'cockatiel';
import { ConfigError, readOptions } from '../errors/index.js';
import type { Metrics } from '../metrics/index.js';
import { metricsFor } from '../metrics/index.js';
import { aborted, abortReason, callSignal, isSignal, MAX_TIMER_MS, sleep } from './abort.js';
import { isTransient, retryAfterMs } from './classify.js';

/** What `onRetry` is told before each wait. */
export interface RetryEvent {
  /** The error of the attempt that failed. */
  readonly error: unknown;
  /** Number of the attempt that failed: 0 is the first call. */
  readonly attempt: number;
  /** How long the next attempt waits, in milliseconds. */
  readonly delayMs: number;
}

/** Everything `retry()` accepts. */
export interface RetryOptions {
  /** Attempts after the first one: `maxRetries: 3` calls `fn` at most 4 times. Default 3. */
  maxRetries?: number;
  /** Backoff base in milliseconds: the wait after attempt `n` is random in [0, min(maxDelay, baseDelay·2ⁿ)). Default 1000. */
  baseDelay?: number;
  /** Longest wait between attempts in milliseconds, `Retry-After` included. Default 30 000. */
  maxDelay?: number;
  /**
   * Whether an error is worth another attempt; `attempt` is the number of the attempt that failed
   * (0 first). Default: broken or refused connections, timeouts, HTTP 5xx, 429 and 408 — never a
   * 4xx AppError, a configuration error or an unknown error.
   */
  retryOn?: (err: unknown, attempt: number) => boolean;
  /** Stops the wait and any further attempt, rejecting with its reason. Also passed to `fn`. Default none. */
  signal?: AbortSignal;
  /** Names the operation: the `operation` label of `retries_total`. Without it nothing is counted. Default none. */
  name?: string;
  /** Called before each wait; a throw stops retrying and rejects with it. Default none. */
  onRetry?: (event: RetryEvent) => void;
  /** Where `retries_total{operation}` is counted (when `name` is set); `false`: nowhere. Default `getMetrics()`. */
  metrics?: Metrics | false;
}

const KNOWN = [
  'maxRetries',
  'baseDelay',
  'maxDelay',
  'retryOn',
  'signal',
  'name',
  'onRetry',
  'metrics',
] as const satisfies readonly (keyof RetryOptions)[];

const NAME = /^[\w.-]{1,64}$/;

interface RetryPlan {
  maxRetries: number;
  baseDelay: number;
  maxDelay: number;
  retryOn: (err: unknown, attempt: number) => boolean;
  onRetry: ((event: RetryEvent) => void) | undefined;
  count: (() => void) | undefined;
}

function readPlan(input: Readonly<RetryOptions>): RetryPlan & { signal: AbortSignal | undefined } {
  const options = readOptions<RetryOptions>('retry', input, KNOWN);
  const integer = (option: 'maxRetries' | 'baseDelay' | 'maxDelay', fallback: number): number => {
    const value = options[option] ?? fallback;
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > MAX_TIMER_MS)
      throw ConfigError.option('retry', option, `an integer from 0 to ${MAX_TIMER_MS}`, value);
    return value;
  };
  const { retryOn, onRetry, signal, name } = options;
  if (retryOn !== undefined && typeof retryOn !== 'function')
    throw ConfigError.option('retry', 'retryOn', 'a function', retryOn);
  if (onRetry !== undefined && typeof onRetry !== 'function')
    throw ConfigError.option('retry', 'onRetry', 'a function', onRetry);
  if (!isSignal(signal)) throw ConfigError.option('retry', 'signal', 'an AbortSignal', signal);
  if (name !== undefined && (typeof name !== 'string' || !NAME.test(name)))
    throw ConfigError.option('retry', 'name', '1–64 characters of A–Z a–z 0–9 _ . -', name);
  const target = name === undefined ? undefined : metricsFor('retry', options.metrics);
  const counter = target?.counter('retries_total', 'Retries made, by operation.', ['operation']);
  return {
    maxRetries: integer('maxRetries', 3),
    baseDelay: integer('baseDelay', 1000),
    maxDelay: integer('maxDelay', 30_000),
    retryOn: retryOn ?? ((err) => isTransient(err)),
    onRetry,
    signal,
    count:
      counter === undefined || name === undefined
        ? undefined
        : () => {
            counter.inc({ operation: name });
          },
  };
}

/** The wait after a failed attempt: full jitter (cockatiel's generator), at least `Retry-After`, at most `maxDelay`. */
function delayAfter(plan: RetryPlan, attempt: number, error: unknown): number {
  const [jittered] = fullJitterGenerator(attempt, {
    generator: fullJitterGenerator,
    initialDelay: plan.baseDelay,
    maxDelay: plan.maxDelay,
    exponent: 2,
  });
  const asked = retryAfterMs(error, Date.now());
  return Math.min(plan.maxDelay, Math.max(jittered, asked ?? 0));
}

/**
 * Call `fn` until it succeeds, retrying errors `retryOn` accepts with exponential backoff and full
 * jitter, honouring a `Retry-After` the error carries. `fn` receives the signal and the attempt
 * number (0 first). An aborting `signal` ends the wait at once and rejects with its reason.
 *
 * @example
 * const labs = await core.retry((signal) => fetchLabs(id, signal), { maxRetries: 2, baseDelay: 200, name: 'labs' });
 */
export async function retry<T>(
  fn: (signal: AbortSignal, attempt: number) => Promise<T>,
  options: Readonly<RetryOptions> = {},
): Promise<T> {
  if (typeof fn !== 'function') throw ConfigError.option('retry', 'fn', 'a function', fn);
  const plan = readPlan(options);
  const signal = callSignal(plan.signal);
  for (let attempt = 0; ; attempt++) {
    if (signal.aborted) throw abortReason(signal);
    try {
      return await fn(signal, attempt);
    } catch (error) {
      if (aborted(signal)) throw abortReason(signal);
      if (attempt >= plan.maxRetries || !plan.retryOn(error, attempt)) throw error;
      const delayMs = delayAfter(plan, attempt, error);
      plan.onRetry?.({ error, attempt, delayMs });
      plan.count?.();
      await sleep(delayMs, signal);
    }
  }
}

/**
 * The seed's name for {@link retry}: the same function.
 *
 * @alias
 */
export const retryWithBackoff = retry;
