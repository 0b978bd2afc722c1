/**
 * The Redis store against a real Redis: two instances with their own connections see each other's
 * changes within a second, the `flags` option seeds only an empty store, evaluations never wait on
 * Redis, an application's client stays open, and a definition written by hand that does not
 * validate is ignored with one warning.
 */
import { Redis } from 'ioredis';
import * as core from '../../lib/index';
import { captureLogger } from '../support/logs';
import { count, REDIS_URL, redisScope, settings, within } from './support';

const scope = redisScope('redis');
const ALICE = { userId: 'alice', roles: ['patient'] };

describe('two instances on one Redis', () => {
  it('a change made on one is seen by the other within a second: create, replace, delete', async () => {
    const prefix = scope.prefix();
    const a = scope.open({ prefix });
    const b = scope.open({ prefix });
    await Promise.all([a.ready(), b.ready()]);
    expect(b.isEnabled('launch', ALICE)).toBe(false);

    await a.setFlag('launch', { enabled: true, users: ['alice'] });
    // The writer sees its own change at once.
    expect(a.isEnabled('launch', ALICE)).toBe(true);
    const created = await within(1_000, () => b.isEnabled('launch', ALICE), Boolean);
    expect(created.value).toBe(true);
    expect(created.ms).toBeLessThan(1_000);

    await b.setFlag('launch', { enabled: true, users: ['bob'] });
    const replaced = await within(
      1_000,
      () => a.isEnabled('launch', ALICE),
      (on) => !on,
    );
    expect(replaced.value).toBe(false);
    expect(a.getFlag('launch')).toEqual({ enabled: true, users: ['bob'] });

    await a.deleteFlag('launch');
    const deleted = await within(
      1_000,
      () => b.getFlag('launch'),
      (d) => d === undefined,
    );
    expect(deleted.value).toBeUndefined();
    expect(deleted.ms).toBeLessThan(1_000);
  });

  it('stores definitions as JSON in one hash, <prefix>definitions', async () => {
    const prefix = scope.prefix();
    const flags = scope.open({ prefix });
    await flags.ready();
    await flags.setFlag('x', { enabled: true, startsAt: 0 });
    expect(JSON.parse((await scope.admin().hget(`${prefix}definitions`, 'x')) as string)).toEqual({
      enabled: true,
      startsAt: '1970-01-01T00:00:00.000Z',
    });
  });
});

describe('seeding', () => {
  it('the flags option seeds an empty store; an instance started later with other flags keeps what is there', async () => {
    const prefix = scope.prefix();
    const first = scope.open({ prefix, flags: { x: { enabled: true } } });
    await first.ready();
    expect(await scope.admin().hkeys(`${prefix}definitions`)).toContain('x');

    const second = scope.open({ prefix, flags: { y: { enabled: true } } });
    // Until it has read Redis, an instance evaluates its own seed; then what Redis holds.
    expect(Object.keys(second.listFlags())).toEqual(['y']);
    await second.ready();
    expect(Object.keys(second.listFlags())).toEqual(['x']);
    expect(second.isEnabled('y', ALICE)).toBe(false);
  });

  it('deleting every flag does not bring the seed back at the next start', async () => {
    const prefix = scope.prefix();
    const first = scope.open({ prefix, flags: { x: { enabled: true } } });
    await first.ready();
    await first.deleteFlag('x');
    await first.close();
    const again = scope.open({ prefix, flags: { x: { enabled: true } } });
    await again.ready();
    expect(again.listFlags()).toEqual({});
  });
});

describe('status() and ready()', () => {
  it('is healthy with the flag count and the time of the last load', async () => {
    const flags = scope.open({
      prefix: scope.prefix(),
      flags: { a: { enabled: true }, b: { enabled: false } },
    });
    const before = Date.now();
    await flags.ready();
    await within(1_000, () => flags.status().healthy, Boolean);
    const status = flags.status();
    expect(status).toEqual({ store: 'redis', healthy: true, flags: 2, lastSyncAt: expect.any(Number) });
    expect(status.lastSyncAt).toBeGreaterThanOrEqual(before - 1_000);
    // What core.health({ flags }) reads.
    const forHealth: core.HealthFlags = flags;
    expect(await forHealth.status()).toEqual(status);
    await flags.close();
    expect(flags.status().healthy).toBe(false);
  });

  it('ready() rejects with 503 (dependency redis) when Redis cannot be reached at start-up', async () => {
    const log = captureLogger('flags');
    const flags = scope.open({
      prefix: scope.prefix(),
      redis: 'redis://127.0.0.1:1',
      log,
      flags: { a: { enabled: true } },
    });
    const err = (await flags.ready().catch((e: unknown) => e)) as core.AppError;
    expect(err.status).toBe(503);
    expect(err.details).toEqual({ dependency: 'redis' });
    // The seed still serves.
    expect(flags.isEnabled('a', ALICE)).toBe(true);
    expect(flags.status()).toEqual({ store: 'redis', healthy: false, flags: 1 });
  });
});

describe("an application's ioredis client", () => {
  it('is used (a subscriber is duplicated from it) and left open by close()', async () => {
    const client = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
    try {
      const prefix = scope.prefix();
      const flags = scope.open({ prefix, redis: client });
      await flags.ready();
      await flags.setFlag('z', { enabled: true });
      await flags.close();
      expect(client.status).toBe('ready');
      expect(await client.hexists(`${prefix}definitions`, 'z')).toBe(1);
    } finally {
      await client.quit();
    }
  });
});

describe('a definition in Redis that does not validate', () => {
  it('is ignored (the flag is off) with one warning; the others load', async () => {
    const prefix = scope.prefix();
    const key = `${prefix}definitions`;
    await scope
      .admin()
      .hset(key, 'good', JSON.stringify({ enabled: true }), 'bad', '{"enabled":"yes"}', 'junk', '{');
    const log = captureLogger('flags');
    const flags = scope.open({ prefix, log });
    await flags.ready();
    expect(Object.keys(flags.listFlags())).toEqual(['good']);
    expect(flags.isEnabled('bad', ALICE)).toBe(false);
    await flags.setFlag('other', { enabled: true });
    await within(
      1_000,
      () => count(log, 'feature flags: ignoring an invalid definition stored in redis'),
      (n) => n >= 2,
    );
    const warned = log
      .lines()
      .filter((l) => l.message === 'feature flags: ignoring an invalid definition stored in redis');
    expect(warned.map((l) => l.flag).sort()).toEqual(['bad', 'junk']);
  });
});

describe('start-up line', () => {
  it('says once which store is used', () => {
    const log = captureLogger('flags');
    scope.open({ prefix: scope.prefix(), log });
    const memory = captureLogger('flags');
    core.featureFlags({ store: 'memory', settings, metrics: false, logger: memory.logger });
    expect(count(log, 'feature flags: redis store, shared by every instance')).toBe(1);
    expect(
      count(
        memory,
        'feature flags: memory store, this instance only (set REDIS_URL to share flags between instances)',
      ),
    ).toBe(1);
  });
});
