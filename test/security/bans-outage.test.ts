/**
 * Bans while Redis is out of reach (a TcpProxy between security() and Redis, cut or frozen):
 * bans already known keep being enforced, new violations are counted on the instance (a ban still
 * happens), no request waits on Redis or fails, the outage is logged once, and bans are shared
 * through Redis again once it is back.
 */
import type { Express } from 'express';
import { Redis } from 'ioredis';
import request from 'supertest';
import * as core from '../../lib/index';
import { TcpProxy } from '../faults/proxy';
import { eachExpress, EXPRESS, type ExpressVariant } from '../support/express';
import { captureLogger, type CapturedLogger } from '../support/logs';
import { requireService } from '../support/services';
import {
  bannedInRedis,
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
  within,
} from './support';

const SENTINEL = '192.0.2.254';
const BAN = { threshold: 2, windowMs: 30_000, durationMs: 60_000 };

let admin: Redis;
let proxy: TcpProxy;
let security: core.SecurityMiddleware | undefined;
let prefix: string;

beforeAll(async () => {
  await requireService('Redis', REDIS_HOST, REDIS_PORT);
  admin = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
});
beforeEach(async () => {
  proxy = new TcpProxy(REDIS_PORT, REDIS_HOST);
  await proxy.start();
  prefix = banPrefix('outage');
  await seedBan(admin, prefix, SENTINEL);
});
afterEach(async () => {
  await security?.close();
  security = undefined;
  await proxy.close();
  await deleteBanKeys(admin, prefix);
});
afterAll(async () => {
  await admin.quit();
});

/** security() through the proxy, with a captured log, once it has connected and loaded the list. */
async function start(variant: ExpressVariant, log: CapturedLogger): Promise<Express> {
  security = core.security({
    settings,
    logger: log.logger,
    cors: false,
    threats: { redis: `redis://${REDIS_HOST}:${proxy.port}`, prefix, ban: BAN },
  });
  const app = secureApp(variant, security, { trustProxy: true });
  expect((await refusedWithin(app, SENTINEL, 3_000)).value).toBe(403);
  return app;
}

/** Lines that are not security events: the connection's warnings and infos. */
function connectionLines(log: CapturedLogger): { level: unknown; message: unknown; redis: unknown }[] {
  return log
    .lines()
    .filter((l) => typeof l.message === 'string' && !l.message.startsWith('security event: '))
    .map((l) => ({ level: l.level, message: l.message, redis: l.redis }));
}

async function logged(log: CapturedLogger, message: string, redis: string, ms: number): Promise<boolean> {
  const found = await within(
    ms,
    () => connectionLines(log).some((l) => l.message === message && l.redis === redis),
    Boolean,
  );
  return found.value;
}

const violate = async (app: Express, ip: string) => {
  const started = Date.now();
  const res = await request(app).get(PROBE_PATH).set('X-Forwarded-For', ip);
  expectRefusal(res, 403, 'THREAT_DETECTED');
  return Date.now() - started;
};
const benign = (app: Express, ip: string) => request(app).get(BENIGN_PATH).set('X-Forwarded-For', ip);

describe.each(eachExpress)('%s: Redis cut while bans are shared', (_name, variant) => {
  it('keeps known bans, bans locally, logs the outage once, and shares bans again after', async () => {
    const log = captureLogger('security');
    const app = await start(variant, log);
    const known = '198.51.100.60';
    for (let i = 0; i < BAN.threshold; i++) await violate(app, known);
    await expectBanned(app, known);
    expect(await bannedInRedis(admin, prefix, known)).not.toBeNull();

    await proxy.cut();
    expect(await logged(log, 'redis unavailable', 'security', 2_000)).toBe(true);

    // Known bans hold; new violations still ban (on this instance); nobody else is affected.
    for (let i = 0; i < 3; i++) expectRefusal(await benign(app, known), 403, 'CLIENT_BLOCKED');
    const during = '198.51.100.61';
    for (let i = 0; i < BAN.threshold; i++) expect(await violate(app, during)).toBeLessThan(500);
    expectRefusal(await benign(app, during), 403, 'CLIENT_BLOCKED');
    for (let i = 0; i < 5; i++) expect((await benign(app, '198.51.100.62')).status).toBe(200);

    await proxy.restore();
    expect(await logged(log, 'redis reconnected', 'security', 5_000)).toBe(true);

    // Shared again: a ban made now is in Redis; the bans of before and during still hold.
    const after = '198.51.100.63';
    for (let i = 0; i < BAN.threshold; i++) await violate(app, after);
    await expectBanned(app, after);
    expect(await bannedInRedis(admin, prefix, after)).not.toBeNull();
    expectRefusal(await benign(app, known), 403, 'CLIENT_BLOCKED');
    expectRefusal(await benign(app, during), 403, 'CLIENT_BLOCKED');

    // One warning for the whole outage, one recovery. The subscriber connection reports its own
    // outage at most once too (whether its socket noticed the cut before the restore is timing).
    const lines = connectionLines(log);
    const warnings = lines.filter((l) => l.level === 'warn');
    expect(warnings.filter((l) => l.redis === 'security')).toEqual([
      { level: 'warn', message: 'redis unavailable', redis: 'security' },
    ]);
    expect(warnings.filter((l) => l.redis === 'security:sub').length).toBeLessThanOrEqual(1);
    expect(lines.filter((l) => l.message === 'redis reconnected' && l.redis === 'security')).toHaveLength(1);
  });
});

describe('Redis frozen (a silent partition)', () => {
  it('no request waits on Redis; violations time out into local counts and still ban; warned once', async () => {
    const variant = EXPRESS[1] as ExpressVariant;
    const log = captureLogger('security');
    const app = await start(variant, log);
    await proxy.freeze();

    const ip = '198.51.100.70';
    for (let i = 0; i < BAN.threshold; i++) expect(await violate(app, ip)).toBeLessThan(500);
    for (let i = 0; i < 3; i++) {
      const started = Date.now();
      expect((await benign(app, '198.51.100.71')).status).toBe(200);
      expect(Date.now() - started).toBeLessThan(500);
    }
    // Each violation waits for its command timeout (1 s) in the background, then counts here.
    const banned = await refusedWithin(app, ip, 4_000);
    expect(banned.value).toBe(403);
    expect(
      connectionLines(log).filter(
        (l) =>
          l.message === 'ban list: redis unavailable, counting violations on this instance until it returns',
      ),
    ).toHaveLength(1);

    await proxy.cut();
    await proxy.restore();
    expect(await logged(log, 'redis reconnected', 'security', 5_000)).toBe(true);
    const after = '198.51.100.72';
    for (let i = 0; i < BAN.threshold; i++) await violate(app, after);
    expect(await bannedInRedis(admin, prefix, after)).not.toBeNull();
  });
});
