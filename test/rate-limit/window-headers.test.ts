/**
 * Fixed windows in Redis reset on time, and every response says where the client stands: IETF
 * `RateLimit` headers (draft-8 by default, draft-7, draft-6 or none) and `Retry-After` on a 429.
 */
import request from 'supertest';
import { eachExpress } from '../support/express';
import { appWith, draft8, expectLimited, limitedApp, limiterScope, uniqueName, within } from './support';

const scope = limiterScope('window');

describe.each(eachExpress)('%s', (_label, variant) => {
  it('allows the client again once a 1 s window in Redis is over', async () => {
    const name = uniqueName('reset');
    const limiter = scope.limiter({ name, limit: 3, windowMs: 1000 });
    const app = limitedApp(variant, limiter);

    const first = await request(app).get('/');
    const started = Date.now();
    expect(first.status).toBe(200);
    expect((await request(app).get('/')).status).toBe(200);
    expect((await request(app).get('/')).status).toBe(200);
    const refused = await request(app).get('/');
    expectLimited(refused, 1);
    expect(refused.headers['retry-after']).toBe('1');
    const ttl = await scope.admin().pttl(scope.redisKey(name, 'ip:127.0.0.1'));
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(1000);

    // Allowed again within the window (plus slack), not before it ends.
    const again = await within(
      2000,
      () => request(app).get('/'),
      (res) => res.status === 200,
      50,
    );
    expect(again.value.status).toBe(200);
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
    expect(draft8(again.value, name)).toEqual({ r: 2, t: 1 });
    // A new window: a fresh counter in Redis.
    expect(await scope.admin().get(scope.redisKey(name, 'ip:127.0.0.1'))).toBe('1');
  });

  it('sends draft-8 RateLimit and RateLimit-Policy headers by default, named by the limiter', async () => {
    const name = uniqueName('d8');
    const app = limitedApp(variant, scope.limiter({ name, limit: 4, windowMs: 30_000 }));
    const remaining: number[] = [];
    for (let i = 0; i < 4; i++) {
      const res = await request(app).get('/');
      expect(res.status).toBe(200);
      const header = draft8(res, name);
      expect(header?.t).toBeGreaterThanOrEqual(29);
      expect(header?.t).toBeLessThanOrEqual(30);
      remaining.push(header?.r ?? -1);
      expect(res.headers['ratelimit-policy']).toMatch(
        new RegExp(`^"${name}"; q=4; w=30; pk=:[A-Za-z0-9+/=]+:$`),
      );
      expect(res.headers['retry-after']).toBeUndefined();
      expect(res.headers['x-ratelimit-limit']).toBeUndefined();
    }
    expect(remaining).toEqual([3, 2, 1, 0]);
    const refused = await request(app).get('/');
    expectLimited(refused, 30);
    expect(draft8(refused, name)).toMatchObject({ r: 0 });
    // Retry-After and the header's reset agree: both round the same reset time up, a moment apart.
    const t = draft8(refused, name)?.t ?? -1;
    expect(Number(refused.headers['retry-after'])).toBeGreaterThanOrEqual(t - 1);
    expect(Number(refused.headers['retry-after'])).toBeLessThanOrEqual(t);
  });

  it('reports each of two stacked limiters in its own draft-8 entry', async () => {
    const outer = uniqueName('outer');
    const inner = uniqueName('inner');
    const app = appWith(variant, (a) => {
      a.use(scope.limiter({ name: outer, limit: 10, windowMs: 60_000 }));
      a.use(scope.limiter({ name: inner, limit: 2, windowMs: 10_000 }));
    });
    const res = await request(app).get('/');
    expect(res.status).toBe(200);
    expect(res.headers.ratelimit).toMatch(
      new RegExp(`^"${outer}"; r=9; t=(59|60), "${inner}"; r=1; t=(9|10)$`),
    );
    expect(res.headers['ratelimit-policy']).toMatch(
      new RegExp(`^"${outer}"; q=10; w=60; pk=:[^:]+:, "${inner}"; q=2; w=10; pk=:[^:]+:$`),
    );
    await request(app).get('/');
    const refused = await request(app).get('/');
    // The inner limiter refused: its window, not the outer one's, is the wait.
    expectLimited(refused, 10);
    expect((refused.body as { details: { limiter?: string } }).details.limiter).toBe(inner);
  });

  it('sends draft-7 headers when asked', async () => {
    const app = limitedApp(
      variant,
      scope.limiter({ name: uniqueName('d7'), limit: 2, windowMs: 20_000, headers: 'draft-7' }),
    );
    const res = await request(app).get('/');
    expect(res.status).toBe(200);
    expect(res.headers.ratelimit).toMatch(/^limit=2, remaining=1, reset=(19|20)$/);
    expect(res.headers['ratelimit-policy']).toBe('2;w=20');
    await request(app).get('/');
    const refused = await request(app).get('/');
    expectLimited(refused, 20);
    expect(refused.headers.ratelimit).toMatch(/^limit=2, remaining=0, reset=\d+$/);
  });

  it('sends draft-6 headers when asked', async () => {
    const app = limitedApp(
      variant,
      scope.limiter({ name: uniqueName('d6'), limit: 2, windowMs: 20_000, headers: 'draft-6' }),
    );
    const res = await request(app).get('/');
    expect(res.status).toBe(200);
    expect(res.headers['ratelimit-limit']).toBe('2');
    expect(res.headers['ratelimit-remaining']).toBe('1');
    expect(res.headers['ratelimit-reset']).toMatch(/^(19|20)$/);
    expect(res.headers['ratelimit-policy']).toBe('2;w=20');
    expect(res.headers.ratelimit).toBeUndefined();
  });

  it('sends no RateLimit headers with headers: false, and still Retry-After on a 429', async () => {
    const app = limitedApp(
      variant,
      scope.limiter({ name: uniqueName('none'), limit: 1, windowMs: 5000, headers: false }),
    );
    const res = await request(app).get('/');
    expect(res.status).toBe(200);
    const rateLimitHeaders = (r: request.Response) =>
      Object.keys(r.headers).filter((h) => h.includes('ratelimit'));
    expect(rateLimitHeaders(res)).toEqual([]);
    const refused = await request(app).get('/');
    expectLimited(refused, 5);
    expect(rateLimitHeaders(refused)).toEqual([]);
  });
});
