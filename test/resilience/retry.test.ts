/**
 * `retry()`: exponential backoff with full jitter (bounds, cap, distribution), `Retry-After`, which
 * errors are retried, the abort signal, `onRetry` and `retries_total`. Fake timers measure the waits.
 */
import * as core from '../../lib/index';
import { testMetrics, valueOf } from '../support/metrics';
import { refused, rejectionOf } from './support';

beforeEach(() => {
  jest.useFakeTimers({ now: new Date('2025-01-01T00:00:00Z'), doNotFake: ['setImmediate', 'nextTick'] });
});
afterEach(() => {
  expect(jest.getTimerCount()).toBe(0);
  jest.restoreAllMocks();
  jest.useRealTimers();
});

/** A function failing `failures` times with `error()`, then answering; records when each attempt ran. */
function flaky(failures: number, error: () => unknown = refused) {
  const at: number[] = [];
  const attempts: number[] = [];
  const fn = jest.fn(async (_signal: AbortSignal, attempt: number) => {
    at.push(Date.now());
    attempts.push(attempt);
    await Promise.resolve();
    if (at.length <= failures) throw error();
    return `answer ${at.length}`;
  });
  /** The waits between attempts, in ms. */
  const waits = () => at.slice(1).map((t, i) => t - (at[i] as number));
  return { fn, at, attempts, waits };
}

/** Run a retry to completion under fake timers. */
async function settle<T>(promise: Promise<T>): Promise<PromiseSettledResult<T>> {
  const [[result]] = await Promise.all([Promise.allSettled([promise] as const), jest.runAllTimersAsync()]);
  return result;
}

describe('backoff with full jitter', () => {
  it('waits random(0, baseDelay·2ⁿ): the top of the range when random() is near 1', async () => {
    jest.spyOn(Math, 'random').mockReturnValue(0.999);
    const dep = flaky(3);
    const result = await settle(core.retry(dep.fn, { baseDelay: 100 }));
    expect(result).toEqual({ status: 'fulfilled', value: 'answer 4' });
    expect(dep.waits()).toEqual([99, 199, 399]);
    expect(dep.attempts).toEqual([0, 1, 2, 3]);
  });

  it('…and nothing at all when random() is 0', async () => {
    jest.spyOn(Math, 'random').mockReturnValue(0);
    const dep = flaky(3);
    await settle(core.retry(dep.fn, { baseDelay: 100 }));
    expect(dep.waits()).toEqual([0, 0, 0]);
  });

  it('maxDelay caps the range', async () => {
    jest.spyOn(Math, 'random').mockReturnValue(0.999);
    const dep = flaky(5);
    await settle(core.retry(dep.fn, { maxRetries: 5, baseDelay: 1000, maxDelay: 3000 }));
    expect(dep.waits()).toEqual([999, 1998, 2997, 2997, 2997]);
  });

  it('the defaults: 3 retries, base 1 s, so at most 1 s, 2 s, 4 s', async () => {
    jest.spyOn(Math, 'random').mockReturnValue(0.5);
    const dep = flaky(10);
    const result = await settle(core.retry(dep.fn));
    expect(result.status).toBe('rejected');
    expect(dep.fn).toHaveBeenCalledTimes(4);
    expect(dep.waits()).toEqual([500, 1000, 2000]);
  });

  it('the waits spread uniformly over [0, cap) for each attempt', async () => {
    const byAttempt: number[][] = [[], [], []];
    for (let run = 0; run < 400; run++) {
      await settle(
        core.retry(flaky(3).fn, {
          baseDelay: 1000,
          maxDelay: 3000,
          onRetry: ({ attempt, delayMs }) => byAttempt[attempt]?.push(delayMs),
        }),
      );
    }
    const caps = [1000, 2000, 3000];
    byAttempt.forEach((delays, attempt) => {
      const cap = caps[attempt] as number;
      expect(delays).toHaveLength(400);
      expect(Math.min(...delays)).toBeGreaterThanOrEqual(0);
      expect(Math.max(...delays)).toBeLessThan(cap);
      const mean = delays.reduce((a, b) => a + b, 0) / delays.length;
      expect(Math.abs(mean - cap / 2)).toBeLessThan(cap * 0.06);
      // Each quarter of the range holds about a quarter of the waits.
      for (let q = 0; q < 4; q++) {
        const share = delays.filter((d) => d >= (q * cap) / 4 && d < ((q + 1) * cap) / 4).length / 400;
        expect(Math.abs(share - 0.25)).toBeLessThan(0.08);
      }
    });
  });
});

describe('Retry-After', () => {
  const nowPlus = (ms: number) => new Date(Date.now() + ms).toUTCString();

  it.each<[string, () => unknown, number]>([
    ['retryAfter seconds (RateLimitError)', () => new core.RateLimitError(5), 5000],
    ['retryAfter seconds (ServiceUnavailableError)', () => new core.ServiceUnavailableError('busy', 2), 2000],
    [
      'a headers object',
      () => Object.assign(new Error('503'), { status: 503, headers: { 'Retry-After': '3' } }),
      3000,
    ],
    [
      'a Headers instance',
      () => Object.assign(new Error('503'), { status: 503, headers: new Headers({ 'retry-after': '4' }) }),
      4000,
    ],
    [
      "an HTTP client's error.response",
      () => Object.assign(new Error('429'), { response: { status: 429, headers: { 'retry-after': '6' } } }),
      6000,
    ],
    ['a rejected Response', () => new Response(null, { status: 503, headers: { 'Retry-After': '2' } }), 2000],
    [
      'an HTTP date',
      () => Object.assign(new Error('503'), { status: 503, headers: { 'retry-after': nowPlus(7000) } }),
      7000,
    ],
  ])('is honoured from %s', async (_what, error, expected) => {
    jest.spyOn(Math, 'random').mockReturnValue(0.5);
    const dep = flaky(1, error);
    const result = await settle(core.retry(dep.fn, { baseDelay: 100 }));
    expect(result.status).toBe('fulfilled');
    expect(dep.waits()).toEqual([expected]);
  });

  it('is a minimum: a longer jittered wait stays', async () => {
    jest.spyOn(Math, 'random').mockReturnValue(0.999);
    const dep = flaky(1, () => new core.ServiceUnavailableError('busy', 1));
    await settle(core.retry(dep.fn, { baseDelay: 4000 }));
    expect(dep.waits()).toEqual([3996]);
  });

  it('is capped by maxDelay', async () => {
    const dep = flaky(1, () => new core.RateLimitError(3600));
    await settle(core.retry(dep.fn, { maxDelay: 2500 }));
    expect(dep.waits()).toEqual([2500]);
  });

  it('an unreadable Retry-After falls back to the backoff', async () => {
    jest.spyOn(Math, 'random').mockReturnValue(0.5);
    const dep = flaky(1, () =>
      Object.assign(new Error('503'), { status: 503, headers: { 'retry-after': 'soon' } }),
    );
    await settle(core.retry(dep.fn, { baseDelay: 100 }));
    expect(dep.waits()).toEqual([50]);
  });
});

describe('which errors are retried', () => {
  const fetchFailed = () => new TypeError('fetch failed', { cause: refused() });
  it.each<[string, () => unknown, boolean]>([
    ['ECONNREFUSED', refused, true],
    ['ECONNRESET', () => Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }), true],
    ["fetch's TypeError caused by ECONNREFUSED", fetchFailed, true],
    [
      'undici headers timeout',
      () => Object.assign(new Error('t'), { code: 'UND_ERR_HEADERS_TIMEOUT' }),
      true,
    ],
    ['TimeoutError (504)', () => new core.TimeoutError(), true],
    ["AbortSignal.timeout()'s TimeoutError", () => new DOMException('timed out', 'TimeoutError'), true],
    ['ServiceUnavailableError (503)', () => new core.ServiceUnavailableError(), true],
    ['CircuitOpenError (503)', () => new core.CircuitOpenError('labs', 1), true],
    ['RateLimitError (429)', () => new core.RateLimitError(0), true],
    [
      'an HTTP client error with statusCode 502',
      () => Object.assign(new Error('bad gateway'), { statusCode: 502 }),
      true,
    ],
    ['a rejected 500 Response', () => new Response(null, { status: 500 }), true],
    ['NotFoundError (404)', () => new core.NotFoundError('Lab'), false],
    ['ValidationError (422)', () => new core.ValidationError(), false],
    ['UnauthorizedError (401)', () => new core.UnauthorizedError(), false],
    ['ConfigError', () => new core.ConfigError('bad'), false],
    [
      'an HTTP client error with status 400',
      () => Object.assign(new Error('bad request'), { status: 400 }),
      false,
    ],
    ['a programming error (TypeError)', () => new TypeError('x is not a function'), false],
    ['a plain Error', () => new Error('boom'), false],
    ['a string', () => 'boom', false],
  ])('%s → %s', async (_what, error, retried) => {
    jest.spyOn(Math, 'random').mockReturnValue(0);
    const dep = flaky(1, error);
    const result = await settle(core.retry(dep.fn));
    expect(dep.fn).toHaveBeenCalledTimes(retried ? 2 : 1);
    expect(result.status).toBe(retried ? 'fulfilled' : 'rejected');
    expect(core.isTransient(error())).toBe(retried);
  });

  it('retryOn decides instead, told the error and the attempt', async () => {
    jest.spyOn(Math, 'random').mockReturnValue(0);
    const retryOn = jest.fn((_err: unknown, attempt: number) => attempt < 1);
    const dep = flaky(5, () => new Error('custom'));
    const result = await settle(core.retry(dep.fn, { retryOn }));
    expect(result).toMatchObject({ status: 'rejected', reason: { message: 'custom' } });
    expect(dep.fn).toHaveBeenCalledTimes(2);
    expect(retryOn.mock.calls).toEqual([
      [expect.objectContaining({ message: 'custom' }), 0],
      [expect.objectContaining({ message: 'custom' }), 1],
    ]);
  });

  it('maxRetries: 0 calls once; the last error is the one rejected', async () => {
    let n = 0;
    const fn = jest.fn(() =>
      Promise.reject(Object.assign(new Error(`attempt ${n++}`), { code: 'ECONNRESET' })),
    );
    expect(await settle(core.retry(fn, { maxRetries: 0 }))).toMatchObject({
      reason: { message: 'attempt 0' },
    });
    expect(await settle(core.retry(fn, { maxRetries: 2, baseDelay: 0 }))).toMatchObject({
      reason: { message: 'attempt 3' },
    });
  });
});

describe('the abort signal', () => {
  it('ends a wait at once: rejects with the reason, no further attempt, no timer left', async () => {
    jest.spyOn(Math, 'random').mockReturnValue(0.5);
    const dep = flaky(5);
    const controller = new AbortController();
    const running = core.retry(dep.fn, { baseDelay: 10_000, signal: controller.signal });
    await jest.advanceTimersByTimeAsync(1000); // 4 s of the 5 s wait left
    expect(jest.getTimerCount()).toBe(1);
    controller.abort(new Error('client went away'));
    expect(await rejectionOf(running)).toMatchObject({ message: 'client went away' });
    expect(jest.getTimerCount()).toBe(0);
    expect(dep.fn).toHaveBeenCalledTimes(1);
  });

  it('an abort during an attempt stops there, whatever the attempt rejects with', async () => {
    const controller = new AbortController();
    const fn = jest.fn(
      (signal: AbortSignal) =>
        new Promise<never>((_resolve, reject) => {
          signal.addEventListener('abort', () => {
            reject(refused());
          });
        }),
    );
    const running = core.retry(fn, { signal: controller.signal });
    controller.abort();
    expect(await rejectionOf(running)).toMatchObject({ name: 'AbortError' });
    expect(fn).toHaveBeenCalledTimes(1);
  });

  it('an aborted signal calls nothing; fn always gets the signal', async () => {
    const fn = jest.fn(() => Promise.resolve(1));
    await expect(core.retry(fn, { signal: AbortSignal.abort() })).rejects.toMatchObject({
      name: 'AbortError',
    });
    expect(fn).not.toHaveBeenCalled();
    const signal = new AbortController().signal;
    await core.retry(fn, { signal });
    expect(fn).toHaveBeenCalledWith(signal, 0);
  });
});

describe('onRetry and retries_total', () => {
  it('onRetry is told each retry before its wait', async () => {
    jest.spyOn(Math, 'random').mockReturnValue(0.5);
    const events: core.RetryEvent[] = [];
    await settle(core.retry(flaky(2).fn, { baseDelay: 100, onRetry: (e) => events.push(e) }));
    expect(events).toEqual([
      { error: expect.objectContaining({ code: 'ECONNREFUSED' }), attempt: 0, delayMs: 50 },
      { error: expect.objectContaining({ code: 'ECONNREFUSED' }), attempt: 1, delayMs: 100 },
    ]);
  });

  it('a throw from onRetry stops retrying and rejects with it', async () => {
    const dep = flaky(5);
    const result = await settle(
      core.retry(dep.fn, {
        onRetry: () => {
          throw new Error('enough');
        },
      }),
    );
    expect(result).toMatchObject({ status: 'rejected', reason: { message: 'enough' } });
    expect(dep.fn).toHaveBeenCalledTimes(1);
  });

  it('retries_total{operation} counts retries of a named operation', async () => {
    const metrics = testMetrics();
    await settle(core.retry(flaky(2).fn, { name: 'labs.fetch', baseDelay: 0, metrics }));
    await settle(core.retry(flaky(9).fn, { name: 'labs.fetch', baseDelay: 0, metrics }));
    await settle(core.retry(flaky(1).fn, { name: 'pharmacy', baseDelay: 0, metrics }));
    expect(await valueOf(metrics, 'retries_total', { operation: 'labs.fetch' })).toBe(5);
    expect(await valueOf(metrics, 'retries_total', { operation: 'pharmacy' })).toBe(1);
  });

  it('retryWithBackoff is the same function', () => {
    expect(core.retryWithBackoff).toBe(core.retry);
  });
});
