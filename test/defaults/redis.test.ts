/**
 * core.defaults() with REDIS_URL in the settings (real Redis at 127.0.0.1:6379): the rate limit
 * counts in Redis, so two instances share one budget — how a service scales out unchanged. Keys
 * are under prefixes unique to this jest worker and run, and deleted after the suite.
 */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import request from 'supertest';
import * as core from '../../lib/index';
import { deleteKeys, REDIS_HOST, REDIS_PORT, REDIS_URL, redisPrefix } from '../auth/redis-support';
import { EXPRESS } from '../support/express';
import { testMetrics } from '../support/metrics';
import { requireService, workerSchema } from '../support/services';
import { appWith, closeChains, quietSettings, track } from './support';

const prefix = redisPrefix('defaults');
/** security() bans: 1–64 characters of A–Z a–z 0–9 _ : . - */
const banPrefix = `caduceus-test-${workerSchema('w')}-${randomBytes(3).toString('hex')}`;
let admin: Redis | undefined;

beforeAll(async () => {
  await requireService('Redis', REDIS_HOST, REDIS_PORT);
  admin = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
});
afterEach(closeChains);
afterAll(async () => {
  if (admin === undefined) return;
  await deleteKeys(admin, prefix);
  await deleteKeys(admin, banPrefix);
  await admin.quit();
});

/** One instance of the service: its own chain (and Redis connections), the same settings. */
function instance(variant: (typeof EXPRESS)[number], settings: core.Settings) {
  const chain = track(
    core.defaults({
      settings,
      registry: testMetrics(),
      logging: false,
      security: { threats: { prefix: banPrefix } },
      rateLimit: { prefix, limit: 3 },
    }),
  );
  return { chain, app: appWith(variant, chain) };
}

it('counts requests in Redis when the settings name REDIS_URL: one budget for every instance', async () => {
  const settings = quietSettings({ REDIS_URL });
  const [a, b] = EXPRESS.map((variant) => instance(variant, settings)) as [
    ReturnType<typeof instance>,
    ReturnType<typeof instance>,
  ];
  expect(a.chain.rateLimit?.stats().store).toBe('redis');
  expect(b.chain.rateLimit?.stats().store).toBe('redis');

  // Express 4 and Express 5 instances, alternately: the fourth request is over the shared limit.
  const statuses: number[] = [];
  for (const target of [a, b, a, b]) statuses.push((await request(target.app).get('/patients/p1')).status);
  expect(statuses).toEqual([200, 200, 200, 429]);

  const keys = await admin!.keys(`${prefix}*`);
  expect(keys).toEqual([`${prefix}api:ip:127.0.0.1`]);
  expect(Number(await admin!.get(keys[0]!))).toBeGreaterThanOrEqual(3);
});

it('counts in memory without REDIS_URL, or with rateLimit.redis: false', () => {
  const memory = track(core.defaults({ settings: quietSettings(), registry: testMetrics() }));
  expect(memory.rateLimit?.stats().store).toBe('memory');
  const off = track(
    core.defaults({
      settings: quietSettings({ REDIS_URL }),
      registry: testMetrics(),
      security: { threats: { redis: false } },
      rateLimit: { redis: false },
    }),
  );
  expect(off.rateLimit?.stats().store).toBe('memory');
});
