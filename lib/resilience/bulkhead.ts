import { ConfigError, ServiceUnavailableError } from '../errors/index.js';
import { abortReason, callSignal, isSignal } from './abort.js';

/** A concurrency limit from `bulkhead()`. */
export interface Bulkhead {
  /**
   * Run `fn` when a slot is free: at once, after waiting in the queue, or not at all — a 503
   * `BULKHEAD_FULL` with `Retry-After: 1` when every slot and queue place is taken. An aborting
   * `signal` takes a waiting call out of the queue (rejecting with its reason) and is passed to `fn`.
   */
  execute<T>(fn: (signal: AbortSignal) => Promise<T>, signal?: AbortSignal): Promise<T>;
  /** Calls running now. */
  readonly active: number;
  /** Calls waiting for a slot. */
  readonly queued: number;
  /** The limits it was made with. */
  readonly limit: number;
  readonly queue: number;
}

/**
 * At most `limit` calls at once, up to `queue` more waiting in order; anything beyond is refused
 * fast. Waiting calls leave the queue as soon as their signal aborts.
 *
 * A small hand-written queue rather than cockatiel's `BulkheadPolicy`: cockatiel keeps an aborted
 * call in its queue (holding the place) until a slot frees.
 *
 * @example
 * const pdf = core.bulkhead(4, 20);                      // 4 renders at once, 20 waiting
 * app.get('/reports/:id.pdf', core.asyncHandler(async (req, res) => res.send(await pdf.execute(() => render(req.params.id)))));
 */
export function bulkhead(limit: number, queue = 0): Bulkhead {
  if (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 1)
    throw ConfigError.option('bulkhead', 'limit', 'a positive integer', limit);
  if (typeof queue !== 'number' || !Number.isInteger(queue) || queue < 0)
    throw ConfigError.option('bulkhead', 'queue', 'an integer of 0 or more', queue);
  let active = 0;
  /** Start functions of the calls waiting for a slot, oldest first. */
  const waiting: (() => void)[] = [];

  const release = (): void => {
    active--;
    waiting.shift()?.();
  };

  const run = async <T>(fn: (signal: AbortSignal) => Promise<T>, signal: AbortSignal): Promise<T> => {
    try {
      return await fn(signal);
    } finally {
      release();
    }
  };

  return {
    get active() {
      return active;
    },
    get queued() {
      return waiting.length;
    },
    limit,
    queue,
    execute<T>(fn: (signal: AbortSignal) => Promise<T>, input?: AbortSignal): Promise<T> {
      if (typeof fn !== 'function')
        return Promise.reject(ConfigError.option('bulkhead', 'fn', 'a function', fn));
      if (!isSignal(input))
        return Promise.reject(ConfigError.option('bulkhead', 'signal', 'an AbortSignal', input));
      const signal = callSignal(input);
      if (signal.aborted) return Promise.reject(abortReason(signal));
      if (active < limit) {
        active++;
        return run(fn, signal);
      }
      if (waiting.length >= queue)
        return Promise.reject(
          new ServiceUnavailableError('Too many concurrent requests, please try again later', 1, {
            code: 'BULKHEAD_FULL',
          }),
        );
      return new Promise<T>((resolve, reject) => {
        const start = (): void => {
          signal.removeEventListener('abort', onAbort);
          active++;
          run(fn, signal).then(resolve, reject);
        };
        const onAbort = (): void => {
          const at = waiting.indexOf(start);
          if (at !== -1) waiting.splice(at, 1);
          reject(abortReason(signal));
        };
        waiting.push(start);
        signal.addEventListener('abort', onAbort, { once: true });
      });
    },
  };
}
