/**
 * The rate limiter when Redis goes away: a TCP proxy between the limiter and Redis is cut,
 * partitioned (no byte crosses, nothing is closed) and restored. Fail-open limiters keep limiting
 * in memory on the instance, fail-closed ones (and the login limiter by default) answer 503; no
 * request waits on a reconnect, the outage is logged once and the recovery once, and counting goes
 * back to Redis without a restart — also for a limiter that started while Redis was unreachable.
 */
import type { Express } from 'express';
import request from 'supertest';
import { EXPRESS } from '../support/express';
import type { CapturedLogger } from '../support/logs';
import {
  appWith,
  expectLimited,
  expectUnavailable,
  limitedApp,
  limiterScope,
  uniqueName,
  within,
} from '../rate-limit/support';
import { TcpProxy } from './proxy';

const scope = limiterScope('faults');
// No listener for unhandled rejections here: jest 30 fails the running test on one by itself, so
// every test also proves there was none.

/** While the line is cut, a request is answered in this time (no reconnect is waited for). */
const CUT_MS = 500;
/** During a silent partition: the 1 s command timeout plus slack. */
const PARTITION_MS = 2000;
/** Reconnection after the line is back (the client's back-off is capped at 3 s). */
const RECOVERY_MS = 6000;
const IP_KEY = 'ip:127.0.0.1';

const OUTAGE_OPEN = 'rate limiter: redis unavailable, counting in memory on this instance until it returns';
const OUTAGE_CLOSED = 'rate limiter: redis unavailable, refusing requests with 503 until it returns';
const BACK = 'rate limiter: redis is back, counting in redis again';

const proxies: TcpProxy[] = [];

/** A proxy in front of Redis, closed after the test. */
async function line(
  mode: 'forward' | 'cut' | 'blackhole' = 'forward',
): Promise<{ proxy: TcpProxy; url: string }> {
  const proxy = new TcpProxy(6379);
  proxies.push(proxy);
  const port = await proxy.start(mode === 'blackhole' ? 'blackhole' : 'forward');
  if (mode === 'cut') await proxy.cut();
  return { proxy, url: `redis://127.0.0.1:${port}` };
}

// The proxies go first: resetting sockets that a QUIT is already closing leaks their handles.
afterEach(async () => {
  await Promise.all(proxies.splice(0).map((p) => p.close()));
});

/** How many lines of `log` have `message` (and `limiter` when given). */
function count(log: CapturedLogger, message: string): number {
  return log.lines().filter((l) => l.message === message).length;
}

interface Timed {
  status: number;
  ms: number;
  res: request.Response;
}

async function timed(send: () => request.Test): Promise<Timed> {
  const start = Date.now();
  const res = await send();
  return { status: res.status, ms: Date.now() - start, res };
}

/** `n` requests one after the other, alternating over `apps` (Express 4 and 5). */
async function sequence(
  apps: readonly Express[],
  n: number,
  send = (app: Express) => request(app).get('/'),
): Promise<Timed[]> {
  const out: Timed[] = [];
  for (let i = 0; i < n; i++) out.push(await timed(() => send(apps[i % apps.length] as Express)));
  return out;
}

const statuses = (answers: readonly Timed[]) => answers.map((a) => a.status);
const slowest = (answers: readonly Timed[]) => Math.max(...answers.map((a) => a.ms));

/** Send requests until one is counted in Redis again (the key's count grows past `from`). */
async function untilCountedInRedis(app: Express, key: string, from: number): Promise<number> {
  const { value } = await within(
    RECOVERY_MS,
    async () => {
      await request(app).get('/');
      return Number((await scope.admin().get(key)) ?? 0);
    },
    (n) => n > from,
    100,
  );
  return value;
}

describe('a fail-open limiter (the default) when Redis goes away', () => {
  it('keeps limiting in memory while the line is cut, fast, warns once per outage, and counts in Redis again after', async () => {
    const { proxy, url } = await line();
    const log = scope.log();
    const name = uniqueName('open');
    const limiter = scope.limiter({ name, limit: 5, redis: url, logger: log.logger });
    // The same limiter on Express 4 and Express 5: one instance's budget.
    const apps = EXPRESS.map((variant) => limitedApp(variant, limiter));
    const key = scope.redisKey(name, IP_KEY);

    expect(statuses(await sequence(apps, 2))).toEqual([200, 200]);
    expect(await scope.admin().get(key)).toBe('2');

    await proxy.cut();
    const during = await sequence(apps, 8);
    // The in-memory fallback knows nothing of Redis' 2: a fresh budget of 5 on this instance — not unlimited.
    expect(statuses(during)).toEqual([200, 200, 200, 200, 200, 429, 429, 429]);
    for (const answer of during.filter((a) => a.status === 429)) expectLimited(answer.res, 60);
    expect(slowest(during)).toBeLessThan(CUT_MS);
    // And in parallel: no request queues behind another.
    const burst = await Promise.all(
      apps.flatMap((app) => Array.from({ length: 10 }, () => timed(() => request(app).get('/')))),
    );
    expect(statuses(burst)).toEqual(burst.map(() => 429));
    expect(slowest(burst)).toBeLessThan(CUT_MS);
    expect(limiter.stats()).toEqual({ name, limited: 23, fallback: 28, refused: 0, store: 'redis' });
    // Nothing reached Redis.
    expect(await scope.admin().get(key)).toBe('2');
    // One warning for the whole outage, not one per request (and one from the connection).
    expect(count(log, OUTAGE_OPEN)).toBe(1);
    expect(count(log, 'redis unavailable')).toBe(1);
    expect(count(log, BACK)).toBe(0);

    await proxy.restore();
    // Counting lands in Redis again: the count grows past 2, one per request.
    expect(await untilCountedInRedis(apps[0] as Express, key, 2)).toBe(3);
    expect(statuses(await sequence(apps, 3))).toEqual([200, 200, 429]);
    expect(await scope.admin().get(key)).toBe('6');
    expect(count(log, BACK)).toBe(1);
    expect(count(log, 'redis reconnected')).toBe(1);
    const back = log.lines().find((l) => l.message === BACK);
    expect(back).toMatchObject({ level: 'info', limiter: name });
    const warning = log.lines().find((l) => l.message === OUTAGE_OPEN);
    expect(warning).toMatchObject({ level: 'warn', limiter: name });

    // A second outage is a second warning, and a second recovery line.
    await proxy.cut();
    expect(statuses(await sequence(apps, 3))).toEqual([429, 429, 429]);
    expect(count(log, OUTAGE_OPEN)).toBe(2);
    await proxy.restore();
    await untilCountedInRedis(apps[1] as Express, key, 6);
    expect(count(log, BACK)).toBe(2);
  });

  it('answers within the command timeout during a silent partition, and recovers after it', async () => {
    const { proxy, url } = await line();
    const log = scope.log();
    const name = uniqueName('partition');
    const limiter = scope.limiter({ name, limit: 3, redis: url, logger: log.logger });
    const apps = EXPRESS.map((variant) => limitedApp(variant, limiter));
    const key = scope.redisKey(name, IP_KEY);
    expect(statuses(await sequence(apps, 1))).toEqual([200]);

    await proxy.freeze();
    // Nothing is closed, nothing answers: each request gives up on Redis after a second.
    const during = await Promise.all(
      apps.flatMap((app) => [1, 2].map(() => timed(() => request(app).get('/')))),
    );
    expect(statuses(during).sort()).toEqual([200, 200, 200, 429]);
    expect(slowest(during)).toBeLessThan(PARTITION_MS);
    expect(limiter.stats()).toMatchObject({ fallback: 4, limited: 1 });
    expect(count(log, OUTAGE_OPEN)).toBe(1);

    await proxy.cut();
    await proxy.restore();
    // Redis had seen 1 hit; the partitioned hits never arrived.
    expect(await untilCountedInRedis(apps[1] as Express, key, 1)).toBe(2);
    expect(count(log, BACK)).toBe(1);
  });
});

describe('a fail-closed limiter when Redis goes away', () => {
  it('answers 503 SERVICE_UNAVAILABLE naming redis while the line is cut, fast, and recovers after', async () => {
    const { proxy, url } = await line();
    const log = scope.log();
    const name = uniqueName('closed');
    const limiter = scope.limiter({ name, limit: 3, redis: url, logger: log.logger, failMode: 'closed' });
    const apps = EXPRESS.map((variant) => limitedApp(variant, limiter));
    const key = scope.redisKey(name, IP_KEY);
    expect(statuses(await sequence(apps, 1))).toEqual([200]);

    await proxy.cut();
    const during = await sequence(apps, 6);
    expect(statuses(during)).toEqual([503, 503, 503, 503, 503, 503]);
    for (const answer of during) expectUnavailable(answer.res);
    expect(slowest(during)).toBeLessThan(CUT_MS);
    expect(limiter.stats()).toEqual({ name, limited: 0, fallback: 0, refused: 6, store: 'redis' });
    expect(count(log, OUTAGE_CLOSED)).toBe(1);

    await proxy.restore();
    expect(await untilCountedInRedis(apps[0] as Express, key, 1)).toBe(2);
    expect(statuses(await sequence(apps, 2))).toEqual([200, 429]);
    expect(count(log, BACK)).toBe(1);
  });

  it('answers 503 within the command timeout during a silent partition, and does not count what it refused', async () => {
    const { proxy, url } = await line();
    const name = uniqueName('closed-partition');
    const limiter = scope.limiter({ name, limit: 3, redis: url, failMode: 'closed' });
    const apps = EXPRESS.map((variant) => limitedApp(variant, limiter));
    const key = scope.redisKey(name, IP_KEY);
    expect(statuses(await sequence(apps, 1))).toEqual([200]);
    await proxy.freeze();
    const during = await Promise.all(apps.map((app) => timed(() => request(app).get('/'))));
    for (const answer of during) expectUnavailable(answer.res);
    expect(slowest(during)).toBeLessThan(PARTITION_MS);
    expect(limiter.stats().refused).toBe(2);

    await proxy.cut();
    await proxy.restore();
    // The two requests refused with 503 were not served: they must not use up the client's budget
    // once Redis is back (the timed-out commands must not be replayed on reconnect).
    expect(await untilCountedInRedis(apps[0] as Express, key, 1)).toBe(2);
    expect(statuses(await sequence(apps, 2))).toEqual([200, 429]);
  });

  it('is what loginRateLimit() does by default', async () => {
    const { proxy, url } = await line();
    const log = scope.log();
    const name = uniqueName('login');
    const login = scope.login({ name, redis: url, logger: log.logger });
    const apps = EXPRESS.map((variant) =>
      appWith(variant, (app) => {
        app.post('/login', variant.express.json(), login, (_req, res) => {
          res.status(401).json({ success: false });
        });
      }),
    );
    const attempt = (app: Express) => request(app).post('/login').send({ username: 'ada' });
    expect(statuses(await sequence(apps, 2, attempt))).toEqual([401, 401]);

    await proxy.cut();
    const during = await sequence(apps, 4, attempt);
    for (const answer of during) expectUnavailable(answer.res);
    expect(slowest(during)).toBeLessThan(CUT_MS);
    expect(login.stats()).toMatchObject({ refused: 4, fallback: 0 });
    expect(count(log, OUTAGE_CLOSED)).toBe(1);

    await proxy.restore();
    const back = await within(
      RECOVERY_MS,
      () => attempt(apps[0] as Express),
      (res) => res.status !== 503,
      100,
    );
    expect(back.value.status).toBe(401);
    // Two attempts before the outage and this one: two left.
    expect(statuses(await sequence(apps, 3, attempt))).toEqual([401, 401, 429]);
  });
});

describe('a limiter started while Redis is unreachable', () => {
  it('serves at once (fail-open, limited in memory) and counts in Redis once Redis is back', async () => {
    const { proxy, url } = await line('cut');
    const log = scope.log();
    const name = uniqueName('startup');
    const limiter = scope.limiter({ name, limit: 4, redis: url, logger: log.logger });
    const apps = EXPRESS.map((variant) => limitedApp(variant, limiter));
    const key = scope.redisKey(name, IP_KEY);

    const during = await sequence(apps, 6);
    expect(statuses(during)).toEqual([200, 200, 200, 200, 429, 429]);
    expect(slowest(during)).toBeLessThan(CUT_MS);
    expect(limiter.stats()).toMatchObject({ fallback: 6, limited: 2 });
    expect(count(log, OUTAGE_OPEN)).toBe(1);
    expect(await scope.admin().exists(key)).toBe(0);

    await proxy.restore();
    // Its scripts were never loaded: they are loaded on the first connection, and counting starts.
    expect(await untilCountedInRedis(apps[0] as Express, key, 0)).toBe(1);
    expect(statuses(await sequence(apps, 4))).toEqual([200, 200, 200, 429]);
    expect(await scope.admin().get(key)).toBe('5');
    expect(count(log, BACK)).toBe(1);
  });

  it('fail-closed: answers 503 at once, then serves once Redis is back', async () => {
    const { proxy, url } = await line('cut');
    const name = uniqueName('startup-closed');
    const limiter = scope.limiter({ name, limit: 2, redis: url, failMode: 'closed' });
    const apps = EXPRESS.map((variant) => limitedApp(variant, limiter));
    const during = await Promise.all(
      apps.flatMap((app) => [1, 2, 3].map(() => timed(() => request(app).get('/')))),
    );
    for (const answer of during) expectUnavailable(answer.res);
    expect(slowest(during)).toBeLessThan(CUT_MS);

    await proxy.restore();
    expect(await untilCountedInRedis(apps[1] as Express, scope.redisKey(name, IP_KEY), 0)).toBe(1);
    expect(statuses(await sequence(apps, 2))).toEqual([200, 429]);
  });

  it('waits at most the connect timeout once when Redis accepts connections but never answers', async () => {
    const { proxy, url } = await line('blackhole');
    const limiter = scope.limiter({ name: uniqueName('startup-hole'), limit: 3, redis: url });
    const apps = EXPRESS.map((variant) => limitedApp(variant, limiter));
    const first = await timed(() => request(apps[0] as Express).get('/'));
    expect(first.status).toBe(200);
    expect(first.ms).toBeLessThan(2000 + 500);
    // Redis is known to be unreachable now: the others do not wait again.
    const after = await sequence(apps, 4);
    expect(statuses(after)).toEqual([200, 200, 429, 429]);
    expect(slowest(after)).toBeLessThan(CUT_MS);
    await proxy.cut();
  });
});
