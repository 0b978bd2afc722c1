/**
 * The per-request step of rateLimit(): limits and skips given as functions (sync, async, throwing,
 * rejecting, nonsense), counting only failures or only successes, `req.rateLimit`, and the
 * headers of stacked limiters — each against the memory store and Redis, on Express 4 and 5.
 * A mistake in an option function is a 500 in the envelope without its message; never a
 * request let through uncounted, never a crash.
 */
import request from 'supertest';
import type { Request } from 'express';
import { eachExpress } from '../support/express';
import { appWith, draft8, expectLimited, limiterScope, uniqueName } from './support';

const scope = limiterScope('counting');

const STORES = [
  ['memory', false],
  ['redis', undefined],
] as const;

function expectInternal(res: request.Response): void {
  expect(res.status).toBe(500);
  expect(res.body).toMatchObject({ success: false, error_code: 'INTERNAL_ERROR' });
  expect(JSON.stringify(res.body)).not.toMatch(/secret-detail|at .*\.ts/);
}

describe.each(eachExpress)('%s', (_label, variant) => {
  describe.each(STORES)('%s store', (_store, redis) => {
    const limiter = (options: Parameters<typeof scope.limiter>[0]) =>
      scope.limiter({ ...(redis === false ? { redis: false } : {}), ...options });

    it('takes the limit from a function of the request, sync or async', async () => {
      const name = uniqueName('fnlimit');
      const app = appWith(variant, (a) => {
        a.use(
          '/sync',
          limiter({
            name,
            limit: (req: Request) => (req.headers['x-plan'] === 'gold' ? 3 : 1),
            keyBy: 'ip',
          }),
        );
        a.use('/async', limiter({ name: `${name}-a`, limit: async () => Promise.resolve(2) }));
        a.get(['/sync', '/async'], (req, res) => {
          res.json({ info: (req as Request & { rateLimit?: unknown }).rateLimit });
        });
      });
      const first = await request(app).get('/sync').set('x-plan', 'gold');
      expect(first.status).toBe(200);
      expect(first.body.info).toMatchObject({ limit: 3, used: 1, remaining: 2, key: 'ip:127.0.0.1' });
      expect(draft8(first, name)).toMatchObject({ r: 2 });
      // The same client without the plan: the count is shared, the limit is 1.
      expectLimited(await request(app).get('/sync'), 60);

      expect((await request(app).get('/async')).status).toBe(200);
      const second = await request(app).get('/async');
      expect(second.status).toBe(200);
      expect(second.body.info).toMatchObject({ limit: 2, used: 2, remaining: 0 });
      expectLimited(await request(app).get('/async'), 60);
    });

    it('answers 500 in the envelope when a limit function throws, rejects or returns nonsense', async () => {
      const name = uniqueName('badlimit');
      const app = appWith(variant, (a) => {
        a.use(
          '/throws',
          limiter({
            name: `${name}-t`,
            limit: () => {
              throw new Error('secret-detail');
            },
          }),
        );
        a.use(
          '/rejects',
          limiter({ name: `${name}-r`, limit: () => Promise.reject(new Error('secret-detail')) }),
        );
        a.use('/nan', limiter({ name: `${name}-n`, limit: () => Number.NaN }));
        a.use('/text', limiter({ name: `${name}-s`, limit: (() => '5') as unknown as () => number }));
        a.get(['/throws', '/rejects', '/nan', '/text'], (_req, res) => {
          res.json({ reached: true });
        });
      });
      for (const path of ['/throws', '/rejects', '/nan', '/text'])
        expectInternal(await request(app).get(path));
    });

    it('skips requests a skip function picks, sync or async, and fails closed when it throws', async () => {
      const name = uniqueName('skip');
      const app = appWith(variant, (a) => {
        a.use(
          '/sync',
          limiter({ name: `${name}-s`, limit: 1, skip: (req) => req.headers['x-internal'] === '1' }),
        );
        a.use(
          '/async',
          limiter({
            name: `${name}-a`,
            limit: 1,
            skip: async (req) => Promise.resolve(req.headers['x-internal'] === '1'),
          }),
        );
        a.use(
          '/throws',
          limiter({
            name: `${name}-t`,
            limit: 100,
            skip: () => {
              throw new Error('secret-detail');
            },
          }),
        );
        a.use(
          '/rejects',
          limiter({ name: `${name}-r`, limit: 100, skip: () => Promise.reject(new Error('secret-detail')) }),
        );
        a.get(['/sync', '/async', '/throws', '/rejects'], (_req, res) => {
          res.json({ reached: true });
        });
      });
      for (const path of ['/sync', '/async']) {
        for (let i = 0; i < 3; i++) {
          const skipped = await request(app).get(path).set('x-internal', '1');
          expect(skipped.status).toBe(200);
          // Not counted: no RateLimit headers either.
          expect(skipped.headers.ratelimit).toBeUndefined();
        }
        expect((await request(app).get(path)).status).toBe(200);
        expectLimited(await request(app).get(path), 60);
      }
      expectInternal(await request(app).get('/throws'));
      expectInternal(await request(app).get('/rejects'));
    });

    it('counts only failed requests with skipSuccessfulRequests', async () => {
      const name = uniqueName('onlyfail');
      const app = appWith(variant, (a) => {
        a.use(limiter({ name, limit: 2, skipSuccessfulRequests: true }));
        a.get('/ok', (_req, res) => res.json({ ok: true }));
        a.get('/bad', (_req, res) => res.status(401).json({ error: 'no' }));
      });
      // Successes give their unit back once they finish: any number of them.
      for (let i = 0; i < 5; i++) expect((await request(app).get('/ok')).status).toBe(200);
      expect((await request(app).get('/bad')).status).toBe(401);
      expect((await request(app).get('/bad')).status).toBe(401);
      // Two failures used the budget: the next request, success or not, is refused.
      expectLimited(await request(app).get('/ok'), 60);
    });

    it('counts only successful requests with skipFailedRequests', async () => {
      const name = uniqueName('onlyok');
      const app = appWith(variant, (a) => {
        a.use(limiter({ name, limit: 2, skipFailedRequests: true }));
        a.get('/ok', (_req, res) => res.json({ ok: true }));
        a.get('/bad', (_req, res) => res.status(500).json({ error: 'no' }));
      });
      for (let i = 0; i < 5; i++) expect((await request(app).get('/bad')).status).toBe(500);
      expect((await request(app).get('/ok')).status).toBe(200);
      expect((await request(app).get('/ok')).status).toBe(200);
      expectLimited(await request(app).get('/bad'), 60);
    });

    it("puts Retry-After on a refused response even with the application's own error handler", async () => {
      const app = variant.express();
      app.use(limiter({ name: uniqueName('own-handler'), limit: 1, windowMs: 30_000 }));
      app.get('/', (_req, res) => res.json({ ok: true }));
      app.use((err: { status?: number }, _req: Request, res: import('express').Response, _next: unknown) => {
        res.status(err.status ?? 500).json({ mine: true });
      });
      expect((await request(app).get('/')).status).toBe(200);
      const refused = await request(app).get('/');
      expect(refused.status).toBe(429);
      expect(refused.body).toEqual({ mine: true });
      expect(Number(refused.headers['retry-after'])).toBeGreaterThanOrEqual(29);
      expect(Number(refused.headers['retry-after'])).toBeLessThanOrEqual(30);
    });

    it('gives each of two stacked limiters its own draft-8 header values', async () => {
      const outer = uniqueName('outer');
      const inner = uniqueName('inner');
      const app = appWith(variant, (a) => {
        a.use(limiter({ name: outer, limit: 10 }), limiter({ name: inner, limit: 3 }));
      });
      const res = await request(app).get('/');
      expect(res.status).toBe(200);
      // One header, a value per limiter, in the order they ran.
      expect(String(res.headers.ratelimit)).toMatch(
        new RegExp(`^"${outer}"; r=9; t=\\d+, "${inner}"; r=2; t=\\d+$`),
      );
      const policies = String(res.headers['ratelimit-policy']);
      expect(policies).toContain(`"${outer}"; q=10;`);
      expect(policies).toContain(`"${inner}"; q=3;`);
      // The partition key names the client without showing its address.
      expect(policies).not.toContain('127.0.0.1');
    });
  });
});
