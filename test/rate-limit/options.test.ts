/**
 * Options are checked when the limiter is made: a typo or a bad value is a ConfigError naming the
 * option (with a did-you-mean for typos), never a limiter that silently limits nothing. Defaults
 * come from the settings (RATE_LIMIT_REQUESTS, RATE_LIMIT_WINDOW, REDIS_URL).
 */
import request from 'supertest';
import * as core from '../../lib/index';
import { EXPRESS, eachExpress } from '../support/express';
import { appWith, draft8, limitedApp, limiterScope, REDIS_URL, settings, uniqueName } from './support';

const scope = limiterScope('options');

/** The ConfigError `make` throws (fails the test when it throws nothing or something else). */
function configError(make: () => unknown): core.ConfigError {
  let made: unknown;
  try {
    made = make();
  } catch (error) {
    expect(error).toBeInstanceOf(core.ConfigError);
    return error as core.ConfigError;
  }
  // Whatever was made must not stay open.
  void (made as { close?: () => Promise<void> } | undefined)?.close?.();
  throw new Error('expected a ConfigError, nothing was thrown');
}

describe('unknown options', () => {
  it('rejects a typo with a did-you-mean', () => {
    const error = configError(() => core.rateLimit({ limt: 5 } as core.RateLimitOptions));
    expect(error.message).toContain('rateLimit: unknown option "limt". Did you mean "limit"?');
    expect(error.code).toBe('CONFIG_INVALID');
    expect(error.issues).toEqual([expect.objectContaining({ name: 'limt' })]);
  });

  it('rejects a typo in loginRateLimit() under its own name', () => {
    const error = configError(() => core.loginRateLimit({ windowMS: 1000 } as core.RateLimitOptions));
    expect(error.message).toContain('loginRateLimit: unknown option "windowMS". Did you mean "windowMs"?');
  });

  it('rejects express-rate-limit options it does not take, without a far-fetched suggestion', () => {
    const error = configError(() => core.rateLimit({ standardHeaders: 'draft-8' } as core.RateLimitOptions));
    expect(error.message).toContain('unknown option "standardHeaders".');
    expect(error.message).not.toContain('Did you mean');
  });

  it('rejects options that are not an object', () => {
    const error = configError(() => core.rateLimit('100' as core.RateLimitOptions));
    expect(error.issues).toEqual([expect.objectContaining({ name: 'options' })]);
  });
});

describe.each(eachExpress)('%s: app.use(core.rateLimit) without calling it', (_label, variant) => {
  it.each([
    ['rateLimit', core.rateLimit],
    ['loginRateLimit', core.loginRateLimit],
  ] as const)('%s is refused on every request, never passed through unlimited', async (factory, fn) => {
    const app = appWith(variant, (a) => a.use(fn as unknown as import('express').RequestHandler));
    for (let i = 0; i < 3; i++) {
      const res = await request(app).get('/');
      expect(res.status).toBe(500);
      expect(res.body).toMatchObject({ success: false, error_code: 'CONFIG_INVALID' });
    }
    // What the error says (the log line of that 500): how to mount it.
    const error = configError(() => fn({ method: 'GET', headers: {} } as unknown as core.RateLimitOptions));
    expect(error.message).toContain(`app.use(core.${factory}()), not app.use(core.${factory})`);
  });
});

describe('invalid values name the option', () => {
  const cases: [string, Record<string, unknown>][] = [
    ['windowMs', { windowMs: 0 }],
    ['windowMs', { windowMs: -1000 }],
    ['windowMs', { windowMs: 1.5 }],
    ['windowMs', { windowMs: '60000' }],
    ['windowMs', { windowMs: Number.NaN }],
    ['limit', { limit: 0 }],
    ['limit', { limit: -5 }],
    ['limit', { limit: 2.5 }],
    ['limit', { limit: '100' }],
    ['limit', { limit: Number.POSITIVE_INFINITY }],
    ['cost', { cost: -1 }],
    ['cost', { cost: 101 }],
    ['cost', { cost: 1.5 }],
    ['cost', { cost: '10' }],
    ['failMode', { failMode: 'half-open' }],
    ['failMode', { failMode: true }],
    ['headers', { headers: 'draft-9' }],
    ['headers', { headers: true }],
    ['name', { name: '' }],
    ['name', { name: 'has space' }],
    ['name', { name: 'colon:inside' }],
    ['name', { name: 'a'.repeat(65) }],
    ['name', { name: 42 }],
    ['prefix', { prefix: 'p'.repeat(129) }],
    ['prefix', { prefix: 7 }],
    ['keyBy', { keyBy: 'email' }],
    ['usernameFields', { usernameFields: [] }],
    ['usernameFields', { usernameFields: 'username' }],
    ['usernameFields', { usernameFields: [''] }],
    ['ipv6Subnet', { ipv6Subnet: 31 }],
    ['ipv6Subnet', { ipv6Subnet: 65 }],
    ['ipv6Subnet', { ipv6Subnet: 56.5 }],
    ['tiers', { tiers: [] }],
    ['tiers', { tiers: null }],
    ['tiers.admin', { tiers: { admin: 0 } }],
    ['tiers.admin', { tiers: { admin: '1000' } }],
    ['skip', { skip: true }],
    ['redis', { redis: 6379 }],
    ['redis', { redis: { host: '127.0.0.1' } }],
  ];
  it.each(cases)('%s: %j', (option, input) => {
    const error = configError(() => core.rateLimit({ settings, ...input }));
    expect(error.issues.map((i) => i.name)).toEqual([option]);
    expect(error.message).toContain(` ${option} must be `);
  });

  it('reports the bad option of loginRateLimit() too', () => {
    const error = configError(() => core.loginRateLimit({ settings, limit: 0 }));
    expect(error.issues.map((i) => i.name)).toEqual(['limit']);
  });
});

describe('defaults', () => {
  it('take limit and window from RATE_LIMIT_REQUESTS and RATE_LIMIT_WINDOW, and count in memory without REDIS_URL', async () => {
    const env = core.loadSettings({
      NODE_ENV: 'test',
      LOG_LEVEL: 'ERROR',
      RATE_LIMIT_REQUESTS: '3',
      RATE_LIMIT_WINDOW: '7',
    });
    const name = uniqueName('env');
    const limiter = scope.track(core.rateLimit({ settings: env, name }));
    expect(limiter.stats()).toEqual({ name, limited: 0, fallback: 0, refused: 0, store: 'memory' });
    const app = limitedApp(EXPRESS[1]!, limiter);
    const res = await request(app).get('/');
    expect(res.headers['ratelimit-policy']).toMatch(/; q=3; w=7; /);
    expect(draft8(res, name)).toEqual({ r: 2, t: 7 });
    await request(app).get('/');
    await request(app).get('/');
    expect((await request(app).get('/')).status).toBe(429);
    expect(limiter.stats().limited).toBe(1);
  });

  it('count in Redis when REDIS_URL is set', async () => {
    const env = core.loadSettings({ NODE_ENV: 'test', LOG_LEVEL: 'ERROR', REDIS_URL });
    const name = uniqueName('env-redis');
    const limiter = scope.track(core.rateLimit({ settings: env, name, prefix: scope.prefix }));
    expect(limiter.stats().store).toBe('redis');
    expect(limiter.limiterName).toBe(name);
    expect((await request(limitedApp(EXPRESS[0]!, limiter)).get('/')).status).toBe(200);
    expect(await scope.admin().get(scope.redisKey(name, 'ip:127.0.0.1'))).toBe('1');
  });

  it('are 100 per 60 s, named api, under caduceus:rl:, when nothing is configured', async () => {
    const limiter = scope.track(core.rateLimit({ settings, redis: false }));
    expect(limiter.limiterName).toBe('api');
    const res = await request(limitedApp(EXPRESS[1]!, limiter)).get('/');
    expect(res.headers['ratelimit-policy']).toMatch(/^"api"; q=100; w=60; /);
    const login = scope.track(core.loginRateLimit({ settings, redis: false }));
    expect(login.limiterName).toBe('login');
  });
});
