/**
 * The breaker's state machine with fake timers: consecutive mode, half-open with one probe under
 * concurrency, which errors count, fallback, events, logs, reset and cancellation.
 */
import * as core from '../../lib/index';
import { breakers, deferred, fail, ok, refused, rejectionOf, settleAll } from './support';

const make = breakers();

beforeEach(() => {
  // setImmediate and nextTick stay real: winston's streams use them, and the timer count below is
  // about the breaker's own timers.
  jest.useFakeTimers({ now: new Date('2025-01-01T00:00:00Z'), doNotFake: ['setImmediate', 'nextTick'] });
});
afterEach(async () => {
  await make.closeAll();
  expect(jest.getTimerCount()).toBe(0);
  jest.useRealTimers();
});

/** A rejection with something that is not an Error (a Response, as some HTTP code throws). */
async function rejectWith(value: unknown): Promise<never> {
  await Promise.resolve();
  throw value;
}

async function failTimes(breaker: core.CircuitBreaker<unknown>, n: number): Promise<void> {
  for (let i = 0; i < n; i++) await rejectionOf(breaker.execute(fail));
}

describe('consecutive mode', () => {
  it('stays closed below the threshold and opens at it', async () => {
    const { breaker } = make({ failureThreshold: 3 });
    await failTimes(breaker, 2);
    expect(breaker.state).toBe('closed');
    await failTimes(breaker, 1);
    expect(breaker.state).toBe('open');
  });

  it('the failures reach the caller as they were until the circuit opens', async () => {
    const { breaker } = make({ failureThreshold: 2 });
    const err = await rejectionOf(breaker.execute(fail));
    expect(err).toMatchObject({ code: 'ECONNREFUSED' });
  });

  it('a success in between starts the count again', async () => {
    const { breaker } = make({ failureThreshold: 3 });
    await failTimes(breaker, 2);
    await breaker.execute(ok);
    await failTimes(breaker, 2);
    expect(breaker.state).toBe('closed');
    expect(breaker.stats().failures).toBe(2);
  });

  it('an open circuit refuses without calling fn: 503 CIRCUIT_OPEN with the seconds until half-open', async () => {
    const { breaker } = make({ failureThreshold: 1, recoveryTimeout: 30_000 });
    await failTimes(breaker, 1);
    await jest.advanceTimersByTimeAsync(10_500);
    const fn = jest.fn(ok);
    const err = await rejectionOf(breaker.execute(fn));
    expect(fn).not.toHaveBeenCalled();
    expect(err).toBeInstanceOf(core.CircuitOpenError);
    expect(err).toMatchObject({
      status: 503,
      code: 'CIRCUIT_OPEN',
      circuit: 'labs',
      retryAfter: 20,
      headers: { 'Retry-After': '20' },
      details: { service: 'labs' },
    });
    expect(breaker.stats().retryAfterMs).toBe(19_500);
  });

  it('after recoveryTimeout it is half-open, and a successful probe closes it', async () => {
    const { breaker } = make({ failureThreshold: 2, recoveryTimeout: 5000 });
    await failTimes(breaker, 2);
    await jest.advanceTimersByTimeAsync(4999);
    expect(breaker.state).toBe('open');
    await jest.advanceTimersByTimeAsync(1);
    expect(breaker.state).toBe('half_open');
    await expect(breaker.execute(ok)).resolves.toBe('ok');
    expect(breaker.state).toBe('closed');
    // Closed again: a full threshold is needed to reopen.
    await failTimes(breaker, 1);
    expect(breaker.state).toBe('closed');
  });

  it('a failed probe reopens it for another full recoveryTimeout', async () => {
    const { breaker } = make({ failureThreshold: 2, recoveryTimeout: 5000 });
    await failTimes(breaker, 2);
    await jest.advanceTimersByTimeAsync(5000);
    await rejectionOf(breaker.execute(fail));
    expect(breaker.state).toBe('open');
    expect(await rejectionOf(breaker.execute(ok))).toMatchObject({ code: 'CIRCUIT_OPEN', retryAfter: 5 });
    await jest.advanceTimersByTimeAsync(5000);
    expect(breaker.state).toBe('half_open');
    await expect(breaker.execute(ok)).resolves.toBe('ok');
  });

  it('without traffic it waits half-open; the next call is the probe even long after', async () => {
    const { breaker } = make({ failureThreshold: 1, recoveryTimeout: 1000 });
    await failTimes(breaker, 1);
    await jest.advanceTimersByTimeAsync(3_600_000);
    expect(breaker.state).toBe('half_open');
    await rejectionOf(breaker.execute(fail));
    expect(breaker.state).toBe('open');
  });
});

describe('half-open: exactly one probe', () => {
  it('10 concurrent calls: 1 probe runs, 9 are refused at once; its success closes the circuit', async () => {
    const { breaker } = make({ failureThreshold: 1, recoveryTimeout: 1000 });
    await failTimes(breaker, 1);
    await jest.advanceTimersByTimeAsync(1000);
    const gate = deferred<string>();
    const fn = jest.fn(() => gate.promise);
    const calls = Array.from({ length: 10 }, () => breaker.execute(fn));
    // The nine are refused before the probe answers.
    const refusedNow = await settleAll(calls.slice(1));
    expect(fn).toHaveBeenCalledTimes(1);
    expect(refusedNow.map((r) => r.status)).toEqual(Array(9).fill('rejected'));
    for (const r of refusedNow)
      expect((r as PromiseRejectedResult).reason).toMatchObject({ code: 'CIRCUIT_OPEN', retryAfter: 1 });
    expect(breaker.state).toBe('half_open');
    gate.resolve('fresh');
    await expect(calls[0]).resolves.toBe('fresh');
    expect(breaker.state).toBe('closed');
    expect(breaker.stats().calls).toMatchObject({ success: 1, failure: 1, rejected: 9 });
  });

  it('10 concurrent calls: the probe fails, the circuit reopens, and nothing else ran', async () => {
    const { breaker } = make({ failureThreshold: 1, recoveryTimeout: 1000 });
    await failTimes(breaker, 1);
    await jest.advanceTimersByTimeAsync(1000);
    const gate = deferred<string>();
    const fn = jest.fn(() => gate.promise);
    const calls = Array.from({ length: 10 }, () => breaker.execute(fn));
    gate.reject(refused());
    const results = await settleAll(calls);
    expect(fn).toHaveBeenCalledTimes(1);
    expect(results.filter((r) => r.status === 'rejected')).toHaveLength(10);
    expect((results[0] as PromiseRejectedResult).reason).toMatchObject({ code: 'ECONNREFUSED' });
    expect(breaker.state).toBe('open');
  });
});

describe('which errors count: expectedException', () => {
  it('by default an AppError below 500 (a 404 from the dependency) is an answer, not a failure', async () => {
    const { breaker } = make({ failureThreshold: 2 });
    for (let i = 0; i < 5; i++) {
      const err = await rejectionOf(breaker.execute(() => Promise.reject(new core.NotFoundError('Lab', 1))));
      expect(err).toBeInstanceOf(core.NotFoundError);
    }
    expect(breaker.state).toBe('closed');
    expect(breaker.stats().calls.success).toBe(5);
  });

  it('by default an HTTP client error or a Response below 500 does not count either', async () => {
    const { breaker } = make({ failureThreshold: 1 });
    await rejectionOf(
      breaker.execute(() => Promise.reject(Object.assign(new Error('x'), { statusCode: 404 }))),
    );
    await rejectionOf(
      breaker.execute(() => Promise.reject(Object.assign(new Error('x'), { response: { status: 409 } }))),
    );
    await rejectionOf(breaker.execute(() => rejectWith(new Response(null, { status: 422 }))));
    expect(breaker.state).toBe('closed');
    await rejectionOf(breaker.execute(() => rejectWith(new Response(null, { status: 502 }))));
    expect(breaker.state).toBe('open');
  });

  it('by default a 5xx AppError, a TimeoutError and a plain Error count', async () => {
    const { breaker } = make({ failureThreshold: 3 });
    await rejectionOf(breaker.execute(() => Promise.reject(new core.ServiceUnavailableError())));
    await rejectionOf(breaker.execute(() => Promise.reject(new core.TimeoutError())));
    await rejectionOf(breaker.execute(() => Promise.reject(new Error('boom'))));
    expect(breaker.state).toBe('open');
  });

  it('a predicate decides instead', async () => {
    const { breaker } = make({
      failureThreshold: 1,
      expectedException: (err) => (err as { code?: string }).code === 'ECONNREFUSED',
    });
    await rejectionOf(breaker.execute(() => Promise.reject(new Error('validation'))));
    expect(breaker.state).toBe('closed');
    await failTimes(breaker, 1);
    expect(breaker.state).toBe('open');
  });

  it('a predicate that throws counts the error as a failure and logs it', async () => {
    const { breaker, logs } = make({
      failureThreshold: 1,
      expectedException: () => {
        throw new TypeError('bug in predicate');
      },
    });
    await failTimes(breaker, 1);
    expect(breaker.state).toBe('open');
    expect(logs.lines().some((l) => l.level === 'error' && l.error === 'TypeError')).toBe(true);
  });
});

describe('fallback', () => {
  it('answers for failures and refused calls; errors that do not count still reject', async () => {
    const fallback = jest.fn((err: unknown) => `cached (${(err as { code: string }).code})`);
    const { breaker } = make({ failureThreshold: 1, fallback });
    await expect(breaker.execute(fail)).resolves.toBe('cached (ECONNREFUSED)');
    await expect(breaker.execute(ok)).resolves.toBe('cached (CIRCUIT_OPEN)');
    breaker.reset();
    await expect(breaker.execute(() => Promise.reject(new core.NotFoundError('Lab')))).rejects.toBeInstanceOf(
      core.NotFoundError,
    );
    expect(breaker.stats().calls).toMatchObject({ fallback: 2, success: 1, failure: 0, rejected: 0 });
  });

  it('counts fallback answers apart from failures and refusals', async () => {
    const { breaker } = make({ failureThreshold: 1, fallback: () => Promise.resolve(null) });
    await breaker.execute(fail);
    await breaker.execute(ok);
    await breaker.execute(ok);
    expect(breaker.stats().calls).toEqual({ success: 0, failure: 0, rejected: 0, fallback: 3, cancelled: 0 });
  });

  it("a fallback that throws rejects with the fallback's error", async () => {
    const { breaker } = make({
      failureThreshold: 1,
      fallback: () => {
        throw new core.ServiceUnavailableError('Lab results are unavailable');
      },
    });
    expect(await rejectionOf(breaker.execute(fail))).toMatchObject({
      message: 'Lab results are unavailable',
    });
    expect(breaker.stats().calls.failure).toBe(1);
  });
});

describe('events and logs', () => {
  it('onStateChange reports every transition until disposed', async () => {
    const { breaker } = make({ failureThreshold: 1, recoveryTimeout: 1000 });
    const changes: string[] = [];
    const stop = breaker.onStateChange((c) =>
      changes.push(`${c.from}>${c.to}${c.reason ? ` (${c.reason})` : ''}`),
    );
    await failTimes(breaker, 1);
    await jest.advanceTimersByTimeAsync(1000);
    await breaker.execute(ok);
    stop();
    await failTimes(breaker, 1);
    expect(changes).toEqual(['closed>open (ECONNREFUSED)', 'open>half_open', 'half_open>closed']);
  });

  it('onEvent sees each call and change in order; a throwing listener is logged, not fatal', async () => {
    const events: string[] = [];
    const { breaker, logs } = make({
      failureThreshold: 1,
      fallback: () => 'cached',
      onEvent: (e) => {
        events.push(e.type === 'state_change' ? `${e.type}:${e.to}` : e.type);
        if (e.type === 'fallback') throw new RangeError('listener bug');
      },
    });
    breaker.onStateChange(() => {
      throw new Error('listener bug');
    });
    await breaker.execute(ok);
    await breaker.execute(fail);
    await breaker.execute(ok);
    expect(events).toEqual(['success', 'state_change:open', 'failure', 'fallback', 'rejected', 'fallback']);
    const errors = logs.lines().filter((l) => l.level === 'error');
    expect(errors.map((l) => l.error)).toEqual(['Error', 'RangeError', 'RangeError']);
  });

  it('logs one warn per opening with the error code, never the message, and info on close', async () => {
    const { breaker, logs } = make({ failureThreshold: 2, recoveryTimeout: 1000 });
    await failTimes(breaker, 2);
    await failTimes(breaker, 3); // refused: no further lines
    await jest.advanceTimersByTimeAsync(1000);
    await breaker.execute(ok);
    const lines = logs.lines().filter((l) => l.level === 'warn' || l.level === 'info');
    expect(lines).toEqual([
      expect.objectContaining({
        level: 'warn',
        message: 'circuit breaker opened: calls fail fast',
        service_name: 'labs',
        error: 'ECONNREFUSED',
        retry_after_ms: 1000,
      }),
      expect.objectContaining({ level: 'info', message: 'circuit breaker closed', service_name: 'labs' }),
    ]);
    expect(logs.raw()).not.toContain('10.0.0.7');
    expect(logs.raw()).not.toContain('patient');
  });

  it('logs the class of an error without a code', async () => {
    const { breaker, logs } = make({ failureThreshold: 1 });
    await rejectionOf(breaker.execute(() => Promise.reject(new TypeError('fetch of /patients/123 failed'))));
    expect(logs.lines().find((l) => l.level === 'warn')).toMatchObject({ error: 'TypeError' });
    expect(logs.raw()).not.toContain('/patients/123');
  });
});

describe('cancellation', () => {
  it('a call whose signal was already aborted is not run and not counted', async () => {
    const { breaker } = make({ failureThreshold: 1 });
    const fn = jest.fn(ok);
    const err = await rejectionOf(breaker.execute(fn, AbortSignal.abort(new Error('gone'))));
    expect(err).toMatchObject({ message: 'gone' });
    expect(fn).not.toHaveBeenCalled();
    expect(breaker.stats().calls.cancelled).toBe(1);
  });

  it('a call cancelled by its caller does not count against the dependency', async () => {
    const { breaker } = make({ failureThreshold: 1, fallback: () => 'cached' });
    const controller = new AbortController();
    const call = breaker.execute(
      (signal) =>
        new Promise((_resolve, reject) => {
          signal.addEventListener('abort', () => {
            reject(signal.reason as Error);
          });
        }),
      controller.signal,
    );
    controller.abort();
    expect(await rejectionOf(call)).toMatchObject({ name: 'AbortError' });
    expect(breaker.state).toBe('closed');
    expect(breaker.stats().calls).toMatchObject({ cancelled: 1, failure: 0, fallback: 0 });
  });

  it('a cancelled probe reopens the circuit rather than closing it', async () => {
    const { breaker } = make({ failureThreshold: 1, recoveryTimeout: 1000 });
    await failTimes(breaker, 1);
    await jest.advanceTimersByTimeAsync(1000);
    const controller = new AbortController();
    const probe = breaker.execute(
      (signal) =>
        new Promise((_resolve, reject) => {
          signal.addEventListener('abort', () => {
            reject(signal.reason as Error);
          });
        }),
      controller.signal,
    );
    controller.abort();
    await rejectionOf(probe);
    expect(breaker.state).toBe('open');
  });

  it('fn receives a signal of its own when the caller gives none', async () => {
    const { breaker } = make();
    const seen: AbortSignal[] = [];
    await breaker.execute((signal) => {
      seen.push(signal);
      return ok();
    });
    await breaker.execute((signal) => {
      seen.push(signal);
      return ok();
    });
    expect(seen[0]).toBeInstanceOf(AbortSignal);
    expect(seen[0]).not.toBe(seen[1]);
  });
});

describe('reset, stats and close', () => {
  it('reset() closes an open circuit and forgets its failures; the call counts stay', async () => {
    const { breaker } = make({ failureThreshold: 2 });
    await failTimes(breaker, 2);
    breaker.reset();
    expect(breaker.state).toBe('closed');
    expect(breaker.stats()).toMatchObject({ failures: 0, openedAt: undefined, retryAfterMs: 0 });
    expect(breaker.stats().calls.failure).toBe(2);
    await failTimes(breaker, 1);
    expect(breaker.state).toBe('closed');
  });

  it('stats() describes the breaker', async () => {
    const { breaker } = make({ failureThreshold: 3, recoveryTimeout: 2000 });
    await breaker.execute(ok);
    await failTimes(breaker, 3);
    expect(breaker.stats()).toEqual({
      name: 'labs',
      mode: 'consecutive',
      state: 'open',
      calls: { success: 1, failure: 3, rejected: 0, fallback: 0, cancelled: 0 },
      failures: 3,
      requests: undefined,
      openedAt: Date.now(),
      retryAfterMs: 2000,
    });
  });

  it('close() clears the half-open timer; calls still work', async () => {
    const { breaker } = make({ failureThreshold: 1 });
    await failTimes(breaker, 1);
    expect(jest.getTimerCount()).toBe(1);
    await breaker.close();
    expect(jest.getTimerCount()).toBe(0);
    await expect(breaker.execute(ok)).rejects.toMatchObject({ code: 'CIRCUIT_OPEN' });
  });

  it('is the shape the health checks read', () => {
    const { breaker } = make();
    const shape: { readonly name: string; readonly state: 'closed' | 'open' | 'half_open' } = breaker;
    expect(shape).toMatchObject({ name: 'labs', state: 'closed' });
  });
});
