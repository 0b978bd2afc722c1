/**
 * Misconfiguration of health() and gracefulShutdown() throws a ConfigError when they are called,
 * naming the option and what was expected; the caller's options object is never modified.
 */
import http from 'node:http';
import express from 'express';
import * as core from '../../lib/index';
import { settings, silent } from './support';

function configError(fn: () => unknown): core.ConfigError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(core.ConfigError);
    return err as core.ConfigError;
  }
  throw new Error('no ConfigError thrown');
}

const quiet = { settings, logger: silent };

describe('health() options', () => {
  it.each([
    [{ timeoutMs: 0 }, /timeoutMs must be a positive integer, got 0/],
    [{ cacheMs: -1 }, /cacheMs must be a non-negative integer/],
    [{ path: 'health' }, /path must be a path such as '\/health'/],
    [{ path: '/health/' }, /path must be/],
    [{ path: '/health/:id' }, /path must be/],
    [{ database: {} }, /database must be a Database from createDatabase\(\)/],
    [{ redis: 42 }, /redis must be a redis:\/\/ URL or an ioredis client/],
    [{ flags: { enabled: true } }, /flags must be a feature-flag service with status\(\)/],
    [{ breakers: { name: 'x', state: 'open' } }, /breakers must be an iterable/],
    [
      { breakers: new Map([['labs', { name: 'labs', state: 'open' }]]) },
      /breakers\[0\] must be .*map\.values\(\)/,
    ],
    [
      {
        breakers: [
          { name: 'labs', state: 'open' },
          { name: 'labs', state: 'closed' },
        ],
      },
      /breakers\[1\] must be a breaker with a name of its own/,
    ],
    [{ checks: [] }, /checks must be an object of name → async check function/],
    [{ checks: { 'has space': () => undefined } }, /checks must be names of 1–64 characters/],
    [{ checks: { labs: 'https://labs' } }, /checks\.labs must be a function/],
    [{ critical: 'database' }, /critical must be an array of check names/],
    [
      { critical: ['databse'], checks: { labs: () => undefined } },
      /critical\[0\] must be the name of a configured check \(labs\), got "databse"/,
    ],
    [{ timeoutMS: 100 }, /unknown option "timeoutMS". Did you mean "timeoutMs"\?/],
  ])('%p', (options, message) => {
    const error = configError(() => core.health({ ...quiet, ...(options as core.HealthOptions) }));
    expect(error.message).toMatch(message);
    expect(error.message).toMatch(/See docs\/error-codes.md#CONFIG_INVALID$/);
  });

  it('a custom check may not take a built-in name', () => {
    const db = core.createDatabase({ url: 'sqlite::memory:', ...quiet, metrics: false });
    try {
      expect(
        configError(() =>
          core.health({ ...quiet, database: db, checks: { 'database:responseTime': () => undefined } }),
        ).message,
      ).toMatch(/checks\.database:responseTime must be a name no built-in check uses/);
    } finally {
      void db.close();
    }
  });

  it('critical takes a check by id or by its report key', async () => {
    const router = core.health({
      ...quiet,
      breakers: [{ name: 'labs', state: 'open' }],
      flags: { status: () => ({ store: 'memory', healthy: true, flags: 0 }) },
      critical: ['circuitBreaker:labs', 'featureFlags:store'],
    });
    expect((await router.check()).status).toBe('fail');
    await router.close();
  });

  it('app.use(core.health) without the call is refused', () => {
    expect(configError(() => core.health({ method: 'GET', headers: {}, url: '/' } as never)).message).toMatch(
      /call it to get the middleware/,
    );
  });

  it("does not modify the caller's options", () => {
    const options = Object.freeze({
      ...quiet,
      checks: Object.freeze({ a: () => undefined }),
      cacheMs: undefined,
    });
    expect(() => core.health(options)).not.toThrow();
  });
});

describe('gracefulShutdown() options', () => {
  const server = http.createServer();

  it.each([
    [{ timeoutMs: -1 }, /timeoutMs must be a positive integer/],
    [{ resourceTimeoutMs: 1.5 }, /resourceTimeoutMs must be a positive integer/],
    [{ delayMs: 10_000 }, /delayMs must be a non-negative integer below timeoutMs \(10000\)/],
    [{ signals: ['SIGKILL'] }, /signals must be an array of signal names/],
    [{ signals: ['TERM'] }, /signals must be an array of signal names/],
    [
      { resources: [{ end() {} }] },
      /resources\[0\] must be an object with close\(\) or shutdown\(\), or a function/,
    ],
    [{ resources: {} }, /resources must be an array/],
    [{ health: {} }, /health must be the router of core.health\(\)/],
    [{ exit: 1 }, /exit must be a function \(code\) => void, or false/],
    [{ beforeClose: 'now' }, /beforeClose must be a function/],
    [{ signal: ['SIGTERM'] }, /unknown option "signal". Did you mean "signals"\?/],
  ])('%p', (options, message) => {
    expect(
      configError(() =>
        core.gracefulShutdown(server, {
          logger: silent,
          signals: [],
          ...(options as core.GracefulShutdownOptions),
        }),
      ).message,
    ).toMatch(message);
  });

  it('the app instead of the server is refused with the fix', () => {
    expect(configError(() => core.gracefulShutdown(express() as never)).message).toMatch(
      /pass the server app.listen\(\) returns, not the app/,
    );
    expect(configError(() => core.gracefulShutdown({} as never)).message).toMatch(
      /server must be an http.Server or https.Server/,
    );
  });
});
