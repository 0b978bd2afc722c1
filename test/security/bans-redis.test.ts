/**
 * Bans shared through Redis (127.0.0.1:6379), between security() middlewares of separate apps —
 * one on Express 4, one on Express 5, as in a fleet mid-upgrade: violations counted together,
 * a ban known everywhere within a second (pub/sub), loaded by an instance that starts later,
 * lifted everywhere by unban(). Each test has its own key prefix; its keys are deleted after.
 */
import type { Express } from 'express';
import { Redis } from 'ioredis';
import request from 'supertest';
import * as core from '../../lib/index';
import { EXPRESS, type ExpressVariant } from '../support/express';
import { requireService } from '../support/services';
import {
  allowedWithin,
  banChannel,
  bannedInRedis,
  banListKey,
  banPrefix,
  BENIGN_PATH,
  deleteBanKeys,
  expectBanned,
  expectRefusal,
  PROBE_PATH,
  REDIS_HOST,
  REDIS_PORT,
  REDIS_URL,
  refusedWithin,
  secureApp,
  seedBan,
  settings,
  silent,
  within,
} from './support';

const [EXPRESS_4, EXPRESS_5] = EXPRESS as [ExpressVariant, ExpressVariant];
/** Banned in Redis before an instance starts: an instance that refuses it has connected and loaded the list. */
const SENTINEL = '192.0.2.254';
const BAN = { threshold: 4, windowMs: 10_000, durationMs: 60_000 };

let admin: Redis;
const open: core.SecurityMiddleware[] = [];
const prefixes: string[] = [];

beforeAll(async () => {
  await requireService('Redis', REDIS_HOST, REDIS_PORT);
  admin = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
});
afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.close()));
  for (const prefix of prefixes.splice(0)) await deleteBanKeys(admin, prefix);
});
afterAll(async () => {
  await admin.quit();
});

async function newPrefix(tag: string): Promise<string> {
  const prefix = banPrefix(tag);
  prefixes.push(prefix);
  await seedBan(admin, prefix, SENTINEL);
  return prefix;
}

interface Instance {
  app: Express;
  security: core.SecurityMiddleware;
}

/** An app with security() sharing bans under `prefix`, once it has connected and loaded the list. */
async function instance(variant: ExpressVariant, prefix: string, redis = REDIS_URL): Promise<Instance> {
  const security = core.security({
    settings,
    logger: silent,
    cors: false,
    threats: { redis, prefix, ban: BAN },
  });
  open.push(security);
  const app = secureApp(variant, security, { trustProxy: true });
  const ready = await refusedWithin(app, SENTINEL, 3_000);
  expect(ready.value).toBe(403);
  return { app, security };
}

/** Subscribers on the ban channel of `prefix`, as Redis counts them. */
async function subscribers(prefix: string): Promise<number> {
  const [, count] = (await admin.pubsub('NUMSUB', banChannel(prefix))) as [string, number];
  return count;
}

/** Waits up to `ms` for `n` subscribers (the assertions come after, in the test). */
async function subscribed(prefix: string, n: number, ms = 1_000): Promise<number> {
  return (
    await within(
      ms,
      () => subscribers(prefix),
      (count) => count >= n,
    )
  ).value;
}

const violate = async (app: Express, ip: string) => {
  expectRefusal(await request(app).get(PROBE_PATH).set('X-Forwarded-For', ip), 403, 'THREAT_DETECTED');
};
const benign = (app: Express, ip: string) => request(app).get(BENIGN_PATH).set('X-Forwarded-For', ip);

describe('bans shared through Redis', () => {
  it('every instance subscribes to the ban channel', async () => {
    const prefix = await newPrefix('sub');
    await instance(EXPRESS_4, prefix);
    await instance(EXPRESS_5, prefix);
    expect(await subscribed(prefix, 2, 2_000)).toBe(2);
  });

  it('violations sent to A and B together reach the threshold, and both refuse the client within a second', async () => {
    const prefix = await newPrefix('share');
    const a = await instance(EXPRESS_4, prefix);
    const b = await instance(EXPRESS_5, prefix);
    await subscribed(prefix, 2);
    const ip = '198.51.100.20';

    // Three violations, split: below the threshold on both, though neither saw more than two.
    await violate(a.app, ip);
    await violate(b.app, ip);
    await violate(a.app, ip);
    expect((await benign(a.app, ip)).status).toBe(200);
    expect((await benign(b.app, ip)).status).toBe(200);

    // The fourth, on B, bans the client in Redis…
    await violate(b.app, ip);
    const score = await bannedInRedis(admin, prefix, ip);
    expect(score).toBeGreaterThan(Date.now() + BAN.durationMs - 5_000);
    expect(score).toBeLessThanOrEqual(Date.now() + BAN.durationMs);

    // …and on both instances.
    const onB = await refusedWithin(b.app, ip, 1_000);
    const onA = await refusedWithin(a.app, ip, 1_000);
    expect({ a: onA.value, b: onB.value }).toEqual({ a: 403, b: 403 });
    const refused = await benign(a.app, ip);
    expectRefusal(refused, 403, 'CLIENT_BLOCKED');
    expect(Number(refused.headers['retry-after'])).toBeGreaterThan(55);
    // Nobody else.
    expect((await benign(a.app, '198.51.100.21')).status).toBe(200);
    expect((await benign(b.app, '198.51.100.21')).status).toBe(200);
  });

  it('an instance created after the ban loads it when it connects', async () => {
    const prefix = await newPrefix('late');
    const a = await instance(EXPRESS_4, prefix);
    const ip = '198.51.100.30';
    for (let i = 0; i < BAN.threshold; i++) await violate(a.app, ip);
    await expectBanned(a.app, ip);

    const c = await instance(EXPRESS_5, prefix);
    const res = await benign(c.app, ip);
    expectRefusal(res, 403, 'CLIENT_BLOCKED');
    expect(Number(res.headers['retry-after'])).toBeGreaterThan(55);
    expect((await benign(c.app, '198.51.100.31')).status).toBe(200);
  });

  it('unban() on one instance lifts the ban on the others', async () => {
    const prefix = await newPrefix('unban');
    const b = await instance(EXPRESS_5, prefix);
    const ip = '198.51.100.40';
    for (let i = 0; i < BAN.threshold; i++) await violate(b.app, ip);
    await expectBanned(b.app, ip);
    // C knows the ban from the list it loads when it starts (not through pub/sub).
    const c = await instance(EXPRESS_4, prefix);
    expectRefusal(await benign(c.app, ip), 403, 'CLIENT_BLOCKED');
    await subscribed(prefix, 2);

    await b.security.unban(ip);
    expect((await benign(b.app, ip)).status).toBe(200);
    expect(await admin.zscore(banListKey(prefix), ip)).toBeNull();
    const onC = await allowedWithin(c.app, ip, 1_000);
    expect(onC.value).toBe(200);
    // An instance started now does not load it either.
    const d = await instance(EXPRESS_5, prefix);
    expect((await benign(d.app, ip)).status).toBe(200);
  });

  it('instances with another prefix share nothing', async () => {
    const one = await instance(EXPRESS_5, await newPrefix('one'));
    const other = await instance(EXPRESS_5, await newPrefix('other'));
    const ip = '198.51.100.50';
    for (let i = 0; i < BAN.threshold; i++) await violate(one.app, ip);
    await expectBanned(one.app, ip);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect((await benign(other.app, ip)).status).toBe(200);
  });
});
