/**
 * A limiter's controls: `stats()` for the metrics endpoint, `resetKey()` to free a client (with the
 * key from `req.rateLimit.key`), and `close()`, which closes the Redis connection it opened.
 */
import request from 'supertest';
import * as core from '../../lib/index';
import { CountingForwarder } from '../auth/redis-support';
import { eachExpress } from '../support/express';
import { limitedApp, limiterScope, uniqueName, within } from './support';

const scope = limiterScope('controls');
const IP_KEY = 'ip:127.0.0.1';

async function statuses(
  app: import('express').Express,
  n: number,
  headers: Record<string, string> = {},
): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push((await request(app).get('/').set(headers)).status);
  return out;
}

describe.each(eachExpress)('%s', (_label, variant) => {
  it('stats() counts the requests answered 429, exactly', async () => {
    const name = uniqueName('stats');
    const limiter = scope.limiter({ name, limit: 3 });
    expect(limiter.stats()).toEqual({ name, limited: 0, fallback: 0, refused: 0, store: 'redis' });
    const app = limitedApp(variant, limiter);
    expect(await statuses(app, 7)).toEqual([200, 200, 200, 429, 429, 429, 429]);
    expect(limiter.stats()).toEqual({ name, limited: 4, fallback: 0, refused: 0, store: 'redis' });
    // In parallel too.
    await Promise.all(Array.from({ length: 10 }, () => request(app).get('/')));
    expect(limiter.stats().limited).toBe(14);
  });

  it.each([
    ['Redis', true],
    ['memory', false],
  ] as const)('resetKey(req.rateLimit.key) frees that client only (%s store)', async (_store, redis) => {
    const name = uniqueName('reset');
    const limiter = scope.limiter({
      name,
      limit: 2,
      keyBy: (req) => req.get('x-api-key'),
      ...(redis ? {} : { redis: false }),
    });
    const app = limitedApp(variant, limiter);
    const first = await request(app).get('/').set('x-api-key', 'client-a');
    const key = (first.body as { key: string }).key;
    expect(key).toBe('key:client-a');
    expect(await statuses(app, 2, { 'x-api-key': 'client-a' })).toEqual([200, 429]);
    expect(await statuses(app, 3, { 'x-api-key': 'client-b' })).toEqual([200, 200, 429]);

    await limiter.resetKey(key);
    expect(await scope.admin().exists(scope.redisKey(name, key))).toBe(0);
    expect(await statuses(app, 3, { 'x-api-key': 'client-a' })).toEqual([200, 200, 429]);
    expect(await statuses(app, 1, { 'x-api-key': 'client-b' })).toEqual([429]);
    if (redis) expect(await scope.admin().get(scope.redisKey(name, key))).toBe('3');
  });

  it('resetKey(req.rateLimit.key) frees a client of a limiter with a cost', async () => {
    const name = uniqueName('reset-cost');
    const limiter = scope.limiter({ name, limit: 25, cost: 10 });
    const app = limitedApp(variant, limiter);
    const first = await request(app).get('/');
    expect(first.status).toBe(200);
    expect(await statuses(app, 2)).toEqual([200, 429]);

    // The key as the application sees it (documented: "`key` as in `req.rateLimit.key`").
    await limiter.resetKey((first.body as { key: string }).key);
    expect(await scope.admin().exists(scope.redisKey(name, IP_KEY))).toBe(0);
    expect(await statuses(app, 3)).toEqual([200, 200, 429]);
  });

  it('close() closes the Redis connection the limiter opened, and may be called twice', async () => {
    const forwarder = new CountingForwarder();
    const url = await forwarder.listen();
    try {
      const limiter = scope.track(
        core.rateLimit({
          name: uniqueName('close'),
          prefix: scope.prefix,
          redis: url,
          logger: scope.log().logger,
          limit: 5,
        }),
      );
      expect((await request(limitedApp(variant, limiter)).get('/')).status).toBe(200);
      expect(forwarder.open).toBe(1);
      await limiter.close();
      const closed = await within(
        1000,
        () => forwarder.open,
        (n) => n === 0,
      );
      expect(closed.value).toBe(0);
      await expect(limiter.close()).resolves.toBeUndefined();
    } finally {
      await forwarder.close();
    }
  });
});
