import { timeout as timeoutPolicy, TimeoutStrategy } from 'cockatiel';
import { ConfigError, readOptions, TimeoutError } from '../errors/index.js';
import { aborted, abortReason, isSignal, MAX_TIMER_MS } from './abort.js';

export interface TimeoutOptions {
  /** Cancels the call too (the caller gave up): rejects with the signal's reason. Default none. */
  signal?: AbortSignal;
}

const KNOWN = ['signal'] as const satisfies readonly (keyof TimeoutOptions)[];

/**
 * Run `fn` with a time limit. `fn` receives an AbortSignal that aborts when `ms` have passed (pass it
 * to `fetch`, a database query, …), and the promise rejects with a 504 `TimeoutError` at that moment
 * even if `fn` ignores the signal. An aborting `options.signal` cancels the call as well, rejecting
 * with its reason. The signal is not aborted when `fn` settles, so a response body can still be read.
 *
 * @example
 * const res = await core.timeout((signal) => fetch(url, { signal }), 2000);
 */
export async function timeout<T>(
  fn: (signal: AbortSignal) => Promise<T>,
  ms: number,
  input: Readonly<TimeoutOptions> = {},
): Promise<T> {
  const options = readOptions<TimeoutOptions>('timeout', input, KNOWN);
  if (typeof fn !== 'function') throw ConfigError.option('timeout', 'fn', 'a function', fn);
  if (typeof ms !== 'number' || !Number.isInteger(ms) || ms <= 0 || ms > MAX_TIMER_MS)
    throw ConfigError.option('timeout', 'ms', `an integer from 1 to ${MAX_TIMER_MS}`, ms);
  const outer = options.signal;
  if (!isSignal(outer)) throw ConfigError.option('timeout', 'signal', 'an AbortSignal', outer);
  if (outer?.aborted === true) throw abortReason(outer);

  // cockatiel keeps the timer, links the outer signal and races `fn` against the deadline.
  const policy = timeoutPolicy(ms, { strategy: TimeoutStrategy.Aggressive, abortOnReturn: false });
  const inner: { signal?: AbortSignal } = {};
  try {
    return await policy.execute(({ signal }) => {
      inner.signal = signal;
      return fn(signal);
    }, outer);
  } catch (err) {
    if (outer !== undefined && aborted(outer)) throw abortReason(outer);
    if (aborted(inner.signal))
      throw new TimeoutError('Operation timed out', ms, { details: { timeout_ms: ms } });
    throw err;
  }
}
