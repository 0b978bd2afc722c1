/**
 * `cost`: a request may use more than one unit of the budget (an export costs 10), or none (free).
 * A cost function's mistakes count as one unit: they neither crash the request nor let it through uncounted.
 */
import type { Request } from 'express';
import request from 'supertest';
import * as core from '../../lib/index';
import { EXPRESS, eachExpress, type ExpressVariant } from '../support/express';
import { appWith, draft8, expectLimited, limitedApp, limiterScope, uniqueName } from './support';

const scope = limiterScope('cost');
const IP_KEY = 'ip:127.0.0.1';

async function statuses(app: import('express').Express, n: number, path = '/'): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const res = await request(app).get(path);
    if (res.status === 429) expectLimited(res, 60);
    out.push(res.status);
  }
  return out;
}

/** The units a limiter with this cost function charged one request, read from Redis. */
async function charged(
  variant: ExpressVariant,
  cost: (req: Request) => number,
): Promise<{ status: number; count: string | null }> {
  const name = uniqueName('costfn');
  const app = limitedApp(variant, scope.limiter({ name, limit: 500, cost }));
  const res = await request(app).get('/');
  return { status: res.status, count: await scope.admin().get(scope.redisKey(name, IP_KEY)) };
}

describe.each(eachExpress)('%s', (_label, variant) => {
  it.each([
    ['Redis', true],
    ['memory', false],
  ] as const)('cost 10 with limit 25 refuses the third request (%s store)', async (_store, redis) => {
    const name = uniqueName('cost10');
    const app = limitedApp(
      variant,
      scope.limiter({ name, limit: 25, cost: 10, ...(redis ? {} : { redis: false }) }),
    );
    const remaining: (number | undefined)[] = [];
    for (let i = 0; i < 3; i++) {
      const res = await request(app).get('/');
      remaining.push(draft8(res, name)?.r);
      if (i < 2) expect(res.status).toBe(200);
      else expectLimited(res, 60);
    }
    expect(remaining).toEqual([15, 5, 0]);
    expect(await scope.admin().get(scope.redisKey(name, IP_KEY))).toBe(redis ? '30' : null);
  });

  it('charges what a cost function says per route, and nothing when it says 0', async () => {
    const name = uniqueName('routes');
    const limiter = scope.limiter({
      name,
      limit: 12,
      cost: (req) => (req.path === '/export' ? 5 : req.path === '/health' ? 0 : 1),
    });
    const app = appWith(variant, (a) => {
      a.use(limiter);
      a.get('/export', (_req, res) => res.json({ exported: true }));
      a.get('/health', (_req, res) => res.json({ healthy: true }));
    });
    expect(await statuses(app, 2, '/export')).toEqual([200, 200]);
    // Free: any number, and not even a header (the request was not counted).
    for (let i = 0; i < 20; i++) {
      const res = await request(app).get('/health');
      expect(res.status).toBe(200);
      expect(res.headers.ratelimit).toBeUndefined();
    }
    expect(await statuses(app, 3, '/')).toEqual([200, 200, 429]);
    expect(await statuses(app, 1, '/export')).toEqual([429]);
    expect(await statuses(app, 1, '/health')).toEqual([200]);
    // 5 + 5 + 1 + 1 + 1 (refused) + 5 (refused)
    expect(await scope.admin().get(scope.redisKey(name, IP_KEY))).toBe('18');
  });

  it('cost: 0 makes every request free', async () => {
    const name = uniqueName('free');
    const app = limitedApp(variant, scope.limiter({ name, limit: 1, cost: 0 }));
    expect(await statuses(app, 5)).toEqual([200, 200, 200, 200, 200]);
    expect(await scope.keys(name)).toEqual([]);
  });

  it.each([
    ['NaN', Number.NaN, '1'],
    ['Infinity', Number.POSITIVE_INFINITY, '1'],
    ['a string', '7' as unknown as number, '1'],
    ['undefined', undefined as unknown as number, '1'],
    ['a fraction (rounded down)', 2.7, '2'],
    ['more than 100 (capped)', 1000, '100'],
  ])('a cost function returning %s charges its request as stated', async (_what, units, expected) => {
    expect(await charged(variant, () => units)).toEqual({ status: 200, count: expected });
  });

  it('a cost function returning a negative number charges one unit (only an explicit 0 is free)', async () => {
    expect(await charged(variant, () => -5)).toEqual({ status: 200, count: '1' });
  });

  it('a cost function that throws charges one unit and does not fail the request', async () => {
    // The cost function is application code called on every request: its bug must not turn
    // every limited route into a 500 nor let requests through uncounted (lib/rate-limit/index.ts readCost).
    expect(
      await charged(variant, () => {
        throw new Error('cost function bug');
      }),
    ).toEqual({ status: 200, count: '1' });
  });

  it('counts refused expensive requests too: a client over its budget stays over it', async () => {
    const name = uniqueName('over');
    const app = limitedApp(variant, scope.limiter({ name, limit: 10, cost: 6 }));
    expect(await statuses(app, 3)).toEqual([200, 429, 429]);
    expect(await scope.admin().get(scope.redisKey(name, IP_KEY))).toBe('18');
  });
});

it('a limiter without cost charges 1 per request (no cost suffix in the key)', async () => {
  const name = uniqueName('plain');
  const limiter: core.RateLimiter = scope.limiter({ name, limit: 3 });
  const res = await request(limitedApp(EXPRESS[1]!, limiter)).get('/');
  expect((res.body as { key: string }).key).toBe(IP_KEY);
  expect(await scope.admin().get(scope.redisKey(name, IP_KEY))).toBe('1');
});
