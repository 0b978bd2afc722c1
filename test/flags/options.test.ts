/**
 * featureFlags() options: bad ones throw a ConfigError at creation that names the option (and,
 * for `flags`, the flag and field); the store defaults to Redis when REDIS_URL is set; nothing is
 * mutated.
 */
import * as core from '../../lib/index';
import { captureLogger } from '../support/logs';
import { memoryFlags, REDIS_URL, settings } from './support';

function make(options: Record<string, unknown>): core.FeatureFlags {
  return core.featureFlags({ settings, metrics: false, logger: captureLogger('flags').logger, ...options });
}

describe('bad options throw a ConfigError at creation', () => {
  it.each([
    [{ store: 'disk' }, /featureFlags: store must be 'memory' or 'redis', got a string of 4 characters/],
    [{ stor: 'memory' }, /unknown option "stor". Did you mean "store"\?/],
    [{ prefix: '' }, /featureFlags: prefix must be a string of 1 to 128 characters/],
    [{ environment: 42 }, /featureFlags: environment must be a string of 1 to 64 characters, got 42/],
    [{ flags: [] }, /featureFlags: flags must be an object of flag name → definition/],
    [{ flags: { 'bad name': { enabled: true } } }, /flags has an invalid name "bad name"/],
    [
      { flags: { beta: { enabled: true, percentage: 200 } } },
      /invalid definition of flag "beta": flags.beta.percentage must be a number from 0 to 100/,
    ],
    [
      { store: 'redis' },
      /featureFlags: redis must be a redis:\/\/ URL or an ioredis client with store 'redis'/,
    ],
    [{ store: 'memory', redis: REDIS_URL }, /redis is given but store is 'memory'/],
    [
      { redis: 42 },
      /featureFlags: redis must be a redis:\/\/ URL or an ioredis client \(Redis or Cluster\), got 42/,
    ],
    [{ metrics: {} }, /featureFlags: metrics must be a Metrics/],
  ])('%j', (options, message) => {
    let thrown: unknown;
    try {
      make(options)
        .close()
        .catch(() => undefined);
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(core.ConfigError);
    expect((thrown as Error).message).toMatch(message);
    expect((thrown as Error).message).toContain('docs/error-codes.md#CONFIG_INVALID');
  });

  it('names every problem of a bad flag in the issues', () => {
    const err = (() => {
      try {
        make({ flags: { beta: { enabled: 'yes', roles: 'admin' } } });
      } catch (e) {
        return e as core.ConfigError;
      }
      return undefined;
    })();
    expect(err?.issues.map((i) => i.name)).toEqual(['flags.beta.enabled', 'flags.beta.roles']);
  });

  it('refuses to be passed to app.use() uncalled (app.use(core.featureFlags))', () => {
    expect(() => core.featureFlags({ method: 'GET', headers: {} } as never)).toThrow(
      /call it to get the middleware/,
    );
  });
});

describe('defaults', () => {
  it("store: 'redis' when REDIS_URL is set, 'memory' otherwise; the environment is NODE_ENV", async () => {
    const withRedis = core.loadSettings({ NODE_ENV: 'test', REDIS_URL });
    const shared = make({ settings: withRedis });
    expect(shared.status().store).toBe('redis');
    await shared.close();
    const local = make({});
    expect(local.status().store).toBe('memory');
    const forced = make({ settings: withRedis, store: 'memory' });
    expect(forced.status().store).toBe('memory');
    const none = make({ settings: withRedis, redis: false });
    expect(none.status().store).toBe('memory');
    const staged = make({
      settings: core.loadSettings({ NODE_ENV: 'staging' }),
      flags: { s: { enabled: true, environments: ['staging'] } },
    });
    expect(staged.isEnabled('s')).toBe(true);
  });

  it('warns in production that a memory store is per instance', () => {
    const log = captureLogger('flags');
    core.featureFlags({
      settings: core.loadSettings({ NODE_ENV: 'production', JWT_SECRET_KEY: 'x'.repeat(40) }),
      metrics: false,
      logger: log.logger,
    });
    expect(log.lines()).toEqual([
      expect.objectContaining({
        level: 'warn',
        message:
          'feature flags: memory store, this instance only (set REDIS_URL to share flags between instances)',
      }),
    ]);
  });

  it('never mutates the options or the definitions it is given', async () => {
    const definition = { enabled: true, startsAt: 0, users: ['a'] };
    const options = Object.freeze({
      store: 'memory' as const,
      flags: Object.freeze({ f: Object.freeze(definition) }),
    });
    const flags = memoryFlags(options);
    expect(flags.getFlag('f')).toEqual({ enabled: true, startsAt: '1970-01-01T00:00:00.000Z', users: ['a'] });
    await flags.setFlag('g', definition);
    expect(definition).toEqual({ enabled: true, startsAt: 0, users: ['a'] });
  });
});
