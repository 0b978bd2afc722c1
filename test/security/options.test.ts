/**
 * security() options are checked when the middleware is made: a typo is a ConfigError with a
 * did-you-mean, a bad value a ConfigError naming the option, and `app.use(core.security)` (the
 * factory instead of the middleware) is refused on every request — never a middleware that
 * silently protects nothing.
 */
import request from 'supertest';
import * as core from '../../lib/index';
import { eachExpress } from '../support/express';
import { configError, secureApp, settings, silent } from './support';

/** security() with quiet defaults and the options under test (nothing connects: redis is off). */
const make = (options: Record<string, unknown>) => () =>
  core.security({ settings, logger: silent, ...options });

describe('unknown options', () => {
  it.each([
    [{ thraets: {} }, 'security: unknown option "thraets". Did you mean "threats"?'],
    [{ threats: { mdoe: 'block' } }, 'security.threats: unknown option "mdoe". Did you mean "mode"?'],
    [{ threats: { denylist: [] } }, 'security.threats: unknown option "denylist". Did you mean "denyList"?'],
    [
      { threats: { ban: { treshold: 3 } } },
      'security.threats.ban: unknown option "treshold". Did you mean "threshold"?',
    ],
    [{ limits: { bodysize: '1mb' } }, 'security.limits: unknown option "bodysize". Did you mean "bodySize"?'],
    [
      { parameterPolution: 'last' },
      'security: unknown option "parameterPolution". Did you mean "parameterPollution"?',
    ],
    [{ allowArray: ['id'] }, 'security: unknown option "allowArray". Did you mean "allowArrays"?'],
    [
      { cors: { credential: true } },
      'security.cors: unknown option "credential". Did you mean "credentials"?',
    ],
  ])('%j → %s', (options, message) => {
    const error = configError(make(options));
    expect(error.message).toContain(message);
    expect(error.code).toBe('CONFIG_INVALID');
  });

  it('lists the known options, without a far-fetched suggestion', () => {
    const error = configError(make({ xssFilter: true }));
    expect(error.message).toContain(
      'security: unknown option "xssFilter". Known options: helmet, cacheControl',
    );
    expect(error.message).not.toContain('Did you mean');
    expect(error.issues).toEqual([
      expect.objectContaining({ name: 'xssFilter', received: 'an unknown option' }),
    ]);
  });

  it('refuses options that are not an object', () => {
    const error = configError(() => core.security('block' as core.SecurityOptions));
    expect(error.message).toContain('security: options must be an options object');
  });
});

describe.each(eachExpress)('%s: app.use(core.security) without calling it', (_name, variant) => {
  it('is refused on every request with 500 CONFIG_INVALID, never passed through unprotected', async () => {
    const app = secureApp(variant, core.security as unknown as import('express').RequestHandler);
    for (let i = 0; i < 3; i++) {
      const res = await request(app).get('/api/v1/patients');
      expect(res.status).toBe(500);
      expect(res.body).toMatchObject({ success: false, error_code: 'CONFIG_INVALID' });
    }
    const error = configError(() => core.security({ method: 'GET', headers: {} } as core.SecurityOptions));
    expect(error.message).toContain('app.use(core.security()), not app.use(core.security)');
  });
});

describe('invalid values name the option', () => {
  const cases: [string, Record<string, unknown>][] = [
    ['threats.mode', { threats: { mode: 'strict' } }],
    ['threats.mode', { threats: { mode: 'BLOCK' } }],
    ['limits.urlLength', { limits: { urlLength: -1 } }],
    ['limits.urlLength', { limits: { urlLength: 0 } }],
    ['limits.urlLength', { limits: { urlLength: 1.5 } }],
    ['limits.urlLength', { limits: { urlLength: '8192' } }],
    ['limits.headerCount', { limits: { headerCount: 0 } }],
    ['limits.headerLength', { limits: { headerLength: Number.POSITIVE_INFINITY } }],
    ['limits.queryParameters', { limits: { queryParameters: Number.NaN } }],
    ['limits.jsonDepth', { limits: { jsonDepth: -32 } }],
    ['limits.bodySize', { limits: { bodySize: 'huge' } }],
    ['limits.bodySize', { limits: { bodySize: '1 tb' } }],
    ['limits.bodySize', { limits: { bodySize: 0 } }],
    ['limits.bodySize', { limits: { bodySize: 1.5 } }],
    ['parameterPollution', { parameterPollution: 'x' }],
    ['parameterPollution', { parameterPollution: true }],
    ['allowArrays', { allowArrays: 'id' }],
    ['allowArrays', { allowArrays: ['id', 7] }],
    ['threats.ban.threshold', { threats: { ban: { threshold: 0 } } }],
    ['threats.ban.threshold', { threats: { ban: { threshold: -1 } } }],
    ['threats.ban.windowMs', { threats: { ban: { windowMs: 0 } } }],
    ['threats.ban.durationMs', { threats: { ban: { durationMs: 1.5 } } }],
    ['threats.signatures', { threats: { signatures: 'yes' } }],
    ['threats.prefix', { threats: { prefix: 'has space' } }],
    ['threats.prefix', { threats: { prefix: '' } }],
    ['ipv6Subnet', { threats: { ipv6Subnet: 16 } }],
    ['ipv6Subnet', { threats: { ipv6Subnet: 65 } }],
    ['ipv6Subnet', { threats: { ipv6Subnet: 48.5 } }],
    ['threats.redis', { threats: { redis: 6379 } }],
    ['helmet', { helmet: 'on' }],
    ['helmet', { helmet: null }],
    ['cacheControl', { cacheControl: 42 }],
    ['cacheControl', { cacheControl: 'no-store\r\nX-Injected: 1' }],
    ['permissionsPolicy', { permissionsPolicy: true }],
    ['permissionsPolicy', { permissionsPolicy: 'camera=()\nX-Injected: 1' }],
    ['onEvent', { onEvent: 'log' }],
    ['json', { json: 'false' }],
  ];

  it.each(cases)('%s: %j', (option, options) => {
    const error = configError(make({ threats: { redis: false }, ...options, ...withRedisOff(options) }));
    expect(error.message).toMatch(new RegExp(`^security(?:\\.threats)?: ${escape(option)} must be `));
    expect(error.code).toBe('CONFIG_INVALID');
    expect(error.issues[0]?.name).toBe(option);
  });

  it('threats, ban and limits must be objects (or false where allowed)', () => {
    expect(configError(make({ threats: 'on' })).message).toContain(
      'security.threats: options must be an options object',
    );
    expect(configError(make({ threats: { ban: true } })).message).toContain(
      'security.threats.ban: options must be an options object',
    );
    expect(configError(make({ limits: 1024 })).message).toContain(
      'security.limits: options must be an options object',
    );
  });

  it('says what a value was without echoing it (it may be a secret)', () => {
    const error = configError(make({ threats: { redis: false, prefix: 'redis://:hunter2@host' } }));
    expect(error.message).not.toContain('hunter2');
  });
});

describe('valid options are taken as given', () => {
  it.each([
    [{ limits: { bodySize: '512kb' } }],
    [{ limits: { bodySize: 2048 } }],
    [{ limits: { bodySize: '1.5mb' } }],
    [{ parameterPollution: false }],
    [{ threats: false }],
    [{ threats: { ban: false, redis: false } }],
    [{ threats: { ipv6Subnet: 32, redis: false } }],
    [{ threats: { ipv6Subnet: 64, redis: false } }],
    [{ helmet: false, cacheControl: false, permissionsPolicy: false, cors: false }],
  ])('%j', (options) => {
    const security = make(options)();
    expect(typeof security).toBe('function');
    expect(security.stats()).toEqual({});
  });
});

/** The threats object of `options` with redis off (so no case connects), unless it is not an object. */
function withRedisOff(options: Record<string, unknown>): Record<string, unknown> {
  const threats = options.threats;
  if (typeof threats !== 'object' || threats === null || 'redis' in threats) return {};
  return { threats: { redis: false, ...threats } };
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
