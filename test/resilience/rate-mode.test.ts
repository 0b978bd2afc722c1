/**
 * `mode: 'rate'`: cockatiel's SamplingBreaker — the failure rate over a rolling window, once the
 * window holds `minimumRequests` calls — with buckets older than the window forgotten.
 */
import * as core from '../../lib/index';
import { breakers, fail, ok, rejectionOf } from './support';

const make = breakers();

beforeEach(() => {
  jest.useFakeTimers({ now: new Date('2025-01-01T00:00:00Z'), doNotFake: ['setImmediate', 'nextTick'] });
});
afterEach(async () => {
  await make.closeAll();
  expect(jest.getTimerCount()).toBe(0);
  jest.useRealTimers();
});

async function calls(
  breaker: core.CircuitBreaker<unknown>,
  failures: number,
  successes: number,
): Promise<void> {
  for (let i = 0; i < successes; i++) await breaker.execute(ok);
  for (let i = 0; i < failures; i++) await rejectionOf(breaker.execute(fail));
}

function rate(options: Partial<core.CircuitBreakerOptions> = {}): core.CircuitBreaker {
  return make({ mode: 'rate', failureRate: 0.5, windowMs: 10_000, minimumRequests: 10, ...options }).breaker;
}

describe('rate mode', () => {
  it('does not open below the minimum volume, however many of the calls fail', async () => {
    const breaker = rate();
    await calls(breaker, 9, 0);
    expect(breaker.state).toBe('closed');
    expect(breaker.stats()).toMatchObject({ mode: 'rate', failures: 9, requests: 9 });
    await calls(breaker, 1, 0);
    expect(breaker.state).toBe('open');
  });

  it('opens when more than failureRate of the window failed', async () => {
    const breaker = rate();
    await calls(breaker, 5, 5); // 50%: not more than half
    expect(breaker.state).toBe('closed');
    await calls(breaker, 1, 0); // 6 of 11
    expect(breaker.state).toBe('open');
  });

  it('a low failure rate under heavy traffic keeps it closed', async () => {
    const breaker = rate({ failureRate: 0.2 });
    for (let round = 0; round < 20; round++) await calls(breaker, 1, 9); // 10%
    expect(breaker.state).toBe('closed');
    expect(breaker.stats().requests).toBe(200);
  });

  it('failures older than the window are forgotten, even after a quiet spell', async () => {
    const breaker = rate();
    await calls(breaker, 9, 0);
    await jest.advanceTimersByTimeAsync(10_000);
    await calls(breaker, 1, 0);
    expect(breaker.state).toBe('closed');
    expect(breaker.stats()).toMatchObject({ failures: 1, requests: 1 });
  });

  it('the window slides: calls from its first half expire while later ones still count', async () => {
    const breaker = rate();
    await calls(breaker, 5, 0); // t = 0
    await jest.advanceTimersByTimeAsync(6000);
    await calls(breaker, 4, 0); // t = 6 s: 9 in the window
    expect(breaker.stats().requests).toBe(9);
    await jest.advanceTimersByTimeAsync(5000); // t = 11 s: the first five are out
    expect(breaker.stats().requests).toBe(4);
    await calls(breaker, 5, 0); // 9 again
    expect(breaker.state).toBe('closed');
    await calls(breaker, 1, 0);
    expect(breaker.state).toBe('open');
  });

  it('half-open then closed: the window starts again from the probe alone', async () => {
    const breaker = rate({ recoveryTimeout: 2000 });
    await calls(breaker, 10, 0);
    await jest.advanceTimersByTimeAsync(2000);
    expect(breaker.state).toBe('half_open');
    await breaker.execute(ok);
    expect(breaker.state).toBe('closed');
    expect(breaker.stats()).toMatchObject({ failures: 0, requests: 1 });
    await calls(breaker, 8, 0); // 9 calls: below the minimum
    expect(breaker.state).toBe('closed');
    await calls(breaker, 1, 0);
    expect(breaker.state).toBe('open');
  });

  it('a failed probe reopens at once, whatever the volume', async () => {
    const breaker = rate({ recoveryTimeout: 2000 });
    await calls(breaker, 10, 0);
    await jest.advanceTimersByTimeAsync(2000);
    await rejectionOf(breaker.execute(fail));
    expect(breaker.state).toBe('open');
  });

  it.each([1, 3, 10, 25])('minimumRequests %i is exact for odd window sizes', async (minimumRequests) => {
    const breaker = rate({ windowMs: 1234, minimumRequests, failureRate: 0.01 });
    await calls(breaker, minimumRequests - 1, 0);
    expect(breaker.state).toBe('closed');
    await calls(breaker, 1, 0);
    expect(breaker.state).toBe('open');
  });
});
