/**
 * An application's own ioredis client as `redis`, with ioredis' default options (offline queue on,
 * no command timeout): the limiter counts through it, leaves it open on close(), and never lets a
 * request wait in its offline queue while the connection is down.
 */
import type { Express } from 'express';
import { Redis, type RedisOptions } from 'ioredis';
import request from 'supertest';
import { TcpProxy } from '../faults/proxy';
import { EXPRESS } from '../support/express';
import { expectUnavailable, limitedApp, limiterScope, REDIS_URL, uniqueName, within } from './support';

const scope = limiterScope('client');
const IP_KEY = 'ip:127.0.0.1';
/** While the line is cut, a request is answered in this time. */
const CUT_MS = 500;
/** Reconnection after the line is back (ioredis' default back-off: 50 ms per attempt, at most 2 s). */
const RECOVERY_MS = 6000;

const clients: Redis[] = [];
const proxies: TcpProxy[] = [];

/** An application's client with ioredis' defaults, closed after the test. */
function appClient(url: string, options: RedisOptions = {}): Redis {
  const client = new Redis(url, options);
  // The application's own error listener (ioredis prints unhandled 'error' events otherwise).
  client.on('error', () => undefined);
  clients.push(client);
  return client;
}

async function proxied(): Promise<{ proxy: TcpProxy; url: string }> {
  const proxy = new TcpProxy(6379);
  proxies.push(proxy);
  return { proxy, url: `redis://127.0.0.1:${await proxy.start()}` };
}

afterEach(async () => {
  await Promise.all(proxies.splice(0).map((p) => p.close()));
  for (const client of clients.splice(0)) client.disconnect();
});

async function timedStatuses(apps: readonly Express[], n: number) {
  const out: { status: number; ms: number; res: request.Response }[] = [];
  for (let i = 0; i < n; i++) {
    const start = Date.now();
    const res = await request(apps[i % apps.length] as Express).get('/');
    out.push({ status: res.status, ms: Date.now() - start, res });
  }
  return out;
}

it('counts through the application’s client and leaves it open, without its listeners, on close()', async () => {
  const client = appClient(REDIS_URL);
  const listeners = { ready: client.listenerCount('ready'), error: client.listenerCount('error') };
  const name = uniqueName('own');
  // Passed while it is still connecting, as an application that creates both at start-up does.
  const limiter = scope.limiter({ name, limit: 3, redis: client });
  expect(limiter.stats().store).toBe('redis');
  const apps = EXPRESS.map((variant) => limitedApp(variant, limiter));
  expect((await timedStatuses(apps, 4)).map((a) => a.status)).toEqual([200, 200, 200, 429]);
  expect(await scope.admin().get(scope.redisKey(name, IP_KEY))).toBe('4');

  await limiter.close();
  expect(client.status).toBe('ready');
  expect(await client.ping()).toBe('PONG');
  expect({ ready: client.listenerCount('ready'), error: client.listenerCount('error') }).toEqual(listeners);
});

it('answers fast while the client’s connection is cut (nothing waits in its offline queue), and counts in Redis again after', async () => {
  const { proxy, url } = await proxied();
  const client = appClient(url);
  const name = uniqueName('own-cut');
  const log = scope.log();
  const limiter = scope.limiter({ name, limit: 4, redis: client, logger: log.logger });
  const apps = EXPRESS.map((variant) => limitedApp(variant, limiter));
  const key = scope.redisKey(name, IP_KEY);
  expect((await timedStatuses(apps, 1)).map((a) => a.status)).toEqual([200]);

  await proxy.cut();
  const during = await timedStatuses(apps, 6);
  // Fail-open: a fresh in-memory budget of 4 on this instance.
  expect(during.map((a) => a.status)).toEqual([200, 200, 200, 200, 429, 429]);
  expect(Math.max(...during.map((a) => a.ms))).toBeLessThan(CUT_MS);
  expect(limiter.stats()).toMatchObject({ fallback: 6, limited: 2 });
  expect((client as unknown as { offlineQueue: { length: number } }).offlineQueue.length).toBe(0);

  await proxy.restore();
  const back = await within(
    RECOVERY_MS,
    async () => {
      await request(apps[0] as Express).get('/');
      return Number(await scope.admin().get(key));
    },
    (n) => n > 1,
    100,
  );
  expect(back.value).toBe(2);
  expect(
    log.lines().filter((l) => l.message === 'rate limiter: redis is back, counting in redis again'),
  ).toHaveLength(1);
});

it('fail-closed: answers 503 at once while the client’s connection is cut', async () => {
  const { proxy, url } = await proxied();
  const client = appClient(url);
  const limiter = scope.limiter({
    name: uniqueName('own-closed'),
    limit: 4,
    redis: client,
    failMode: 'closed',
  });
  const apps = EXPRESS.map((variant) => limitedApp(variant, limiter));
  expect((await timedStatuses(apps, 1)).map((a) => a.status)).toEqual([200]);
  await proxy.cut();
  const during = await timedStatuses(apps, 4);
  for (const answer of during) expectUnavailable(answer.res);
  expect(Math.max(...during.map((a) => a.ms))).toBeLessThan(CUT_MS);
  expect(limiter.stats().refused).toBe(4);
});

it('gives up on a client without a command timeout within a second during a silent partition', async () => {
  const { proxy, url } = await proxied();
  const client = appClient(url);
  const limiter = scope.limiter({ name: uniqueName('own-hole'), limit: 4, redis: client });
  const apps = EXPRESS.map((variant) => limitedApp(variant, limiter));
  expect((await timedStatuses(apps, 1)).map((a) => a.status)).toEqual([200]);
  await proxy.freeze();
  const start = Date.now();
  const during = await Promise.all(apps.map((app) => request(app).get('/')));
  expect(during.map((r) => r.status)).toEqual([200, 200]);
  expect(Date.now() - start).toBeLessThan(2000);
  expect(limiter.stats().fallback).toBe(2);
});

it('connects a lazyConnect client it is given, instead of waiting for it on every request', async () => {
  const client = appClient(REDIS_URL, { lazyConnect: true });
  const name = uniqueName('own-lazy');
  const limiter = scope.limiter({ name, limit: 3, redis: client });
  const apps = EXPRESS.map((variant) => limitedApp(variant, limiter));
  const answers = await timedStatuses(apps, 4);
  expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 429]);
  // Counted in Redis, and no request held for the connect timeout.
  expect(await scope.admin().get(scope.redisKey(name, IP_KEY))).toBe('4');
  expect(Math.max(...answers.map((a) => a.ms))).toBeLessThan(CUT_MS);
});
