/**
 * Bad options fail when the factory is called, with a ConfigError naming the option — never later,
 * and never as a crash: a call with bad arguments rejects with a ConfigError too.
 */
import * as core from '../../lib/index';
import { settings, silent } from './support';

const base = { name: 'labs', metrics: false, logger: silent, settings } as const;

function configError(fn: () => unknown): core.ConfigError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(core.ConfigError);
    return err as core.ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('circuitBreaker options', () => {
  it.each([
    ['name', { name: undefined }, 'name must be 1–64 characters'],
    ['name', { name: '' }, 'name must be'],
    ['name', { name: 'labs service' }, 'name must be'],
    ['name', { name: 'x'.repeat(65) }, 'name must be'],
    ['mode', { mode: 'sliding' }, "mode must be 'consecutive' or 'rate'"],
    ['failureThreshold', { failureThreshold: 0 }, 'failureThreshold must be an integer from 1'],
    ['failureThreshold', { failureThreshold: 2.5 }, 'failureThreshold must be'],
    [
      'recoveryTimeout',
      { recoveryTimeout: -1 },
      'recoveryTimeout must be an integer from 1 to 2147483647, got -1',
    ],
    ['recoveryTimeout', { recoveryTimeout: 3e9 }, 'recoveryTimeout must be'],
    [
      'recoveryTimeout',
      { recoveryTimeout: '30s' },
      'recoveryTimeout must be an integer from 1 to 2147483647, got a string of 3 characters',
    ],
    [
      'failureRate',
      { mode: 'rate', failureRate: 1 },
      'failureRate must be a number between 0 and 1 (exclusive), got 1',
    ],
    ['failureRate', { mode: 'rate', failureRate: 0 }, 'failureRate must be'],
    ['failureRate', { mode: 'rate', failureRate: Number.NaN }, 'failureRate must be'],
    ['windowMs', { mode: 'rate', windowMs: 50 }, 'windowMs must be an integer from 100'],
    ['minimumRequests', { mode: 'rate', minimumRequests: 0 }, 'minimumRequests must be'],
    ['failureRate', { failureRate: 0.3 }, "failureRate does not apply to mode 'consecutive'"],
    [
      'failureThreshold',
      { mode: 'rate', failureThreshold: 3 },
      "failureThreshold does not apply to mode 'rate'",
    ],
    ['expectedException', { expectedException: 'TypeError' }, 'expectedException must be a function'],
    ['fallback', { fallback: 'cached' }, 'fallback must be a function'],
    ['onEvent', { onEvent: {} }, 'onEvent must be a function'],
    ['metrics', { metrics: {} }, 'metrics must be a Metrics'],
    ['logger', { logger: console.log }, 'logger must be a Logger'],
  ])('%s: %j', (option, bad, message) => {
    const err = configError(() => core.circuitBreaker({ ...base, ...bad } as never));
    expect(err.message).toContain(`circuitBreaker: ${message}`);
    expect(err.issues[0]?.name).toBe(option);
    expect(err.code).toBe('CONFIG_INVALID');
  });

  it('unknown options get a hint', () => {
    const err = configError(() => core.circuitBreaker({ ...base, recoveryTimeoutMs: 100 } as never));
    expect(err.message).toContain('unknown option "recoveryTimeoutMs". Did you mean "recoveryTimeout"?');
  });

  it('missing options say what to pass', () => {
    expect(configError(() => core.circuitBreaker(undefined as never)).message).toContain(
      "core.circuitBreaker({ name: 'labs' })",
    );
  });

  it('does not modify the options object', async () => {
    const options = Object.freeze({ ...base, failureThreshold: undefined });
    const breaker = core.circuitBreaker(options);
    await breaker.close();
    expect(options).toEqual({ ...base, failureThreshold: undefined });
  });

  it('execute() with a bad argument rejects with a ConfigError, never throws synchronously', async () => {
    const breaker = core.circuitBreaker(base);
    const notFn = breaker.execute('fetch' as never);
    await expect(notFn).rejects.toBeInstanceOf(core.ConfigError);
    await expect(breaker.execute(() => Promise.resolve(1), {} as never)).rejects.toThrow(
      /signal must be an AbortSignal/,
    );
    await breaker.close();
  });
});

describe('retry, timeout and bulkhead arguments', () => {
  const fn = () => Promise.resolve(1);
  it.each([
    [{ maxRetries: -1 }, 'retry: maxRetries must be an integer from 0'],
    [{ baseDelay: 1.5 }, 'retry: baseDelay must be'],
    [{ maxDelay: Infinity }, 'retry: maxDelay must be'],
    [{ retryOn: true }, 'retry: retryOn must be a function'],
    [{ onRetry: 1 }, 'retry: onRetry must be a function'],
    [{ signal: 'abort' }, 'retry: signal must be an AbortSignal'],
    [{ name: 'GET /patients/:id' }, 'retry: name must be'],
    [{ retries: 3 }, 'retry: unknown option "retries"'],
  ])('retry %j', async (bad, message) => {
    await expect(core.retry(fn, bad as never)).rejects.toThrow(message);
    await expect(core.retry(fn, bad as never)).rejects.toBeInstanceOf(core.ConfigError);
  });

  it('retry needs a function', async () => {
    await expect(core.retry('x' as never)).rejects.toThrow('retry: fn must be a function');
  });

  it.each([
    [0, 'timeout: ms must be an integer from 1 to 2147483647, got 0'],
    [Number.NaN, 'timeout: ms must be'],
    ['1000', 'timeout: ms must be'],
    [2 ** 31, 'timeout: ms must be'],
  ])('timeout ms %p', async (ms, message) => {
    await expect(core.timeout(fn, ms as never)).rejects.toThrow(message);
  });

  it('timeout options are checked', async () => {
    await expect(core.timeout(fn, 10, { signal: {} } as never)).rejects.toThrow(
      'timeout: signal must be an AbortSignal',
    );
    await expect(core.timeout(fn, 10, { sigal: 1 } as never)).rejects.toThrow('Did you mean "signal"?');
  });

  it.each([
    [0, 0, 'bulkhead: limit must be a positive integer, got 0'],
    [1.5, 0, 'bulkhead: limit must be'],
    [2, -1, 'bulkhead: queue must be an integer of 0 or more, got -1'],
    [2, '10', 'bulkhead: queue must be'],
  ])('bulkhead(%p, %p)', (limit, queue, message) => {
    expect(() => core.bulkhead(limit, queue as never)).toThrow(message);
  });
});
