import request from 'supertest';
import * as core from '../../lib/index';
import { eachExpress } from '../support/express';
import { pgFixture, type PgFixture } from '../support/pg';

let pg: PgFixture;
beforeAll(async () => {
  pg = await pgFixture('ctx');
});
afterAll(async () => {
  await pg.close();
});

describe.each(eachExpress)('request context across a real PostgreSQL query on %s', (_name, { express }) => {
  // pg's callback API calls back in the context of whoever opened the pooled connection, so a
  // callback must be bound with core.bindContext; awaiting the promise API needs nothing.
  it('is the same request id before and after awaiting pg, and in a bound pg callback, for concurrent requests', async () => {
    const app = express();
    app.use(core.requestContext());
    app.get(
      '/q',
      core.asyncHandler(async (_req, res) => {
        const before = core.getRequestId();
        const { rows } = await pg.pool.query<{ n: number }>('SELECT pg_sleep(0.01), 1 AS n');
        const after = core.getRequestId();
        const viaCallback = await new Promise<string | undefined>((resolve, reject) => {
          pg.pool.query(
            'SELECT 2 AS n',
            core.bindContext((err: Error | undefined) => {
              if (err) reject(err);
              else resolve(core.getRequestId());
            }),
          );
        });
        res.json({ before, after, viaCallback, n: rows[0]?.n });
      }),
    );
    const results = await Promise.all(
      Array.from({ length: 12 }, (_, i) => request(app).get('/q').set('X-Request-Id', `pg-${i}`)),
    );
    results.forEach((res, i) => {
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ before: `pg-${i}`, after: `pg-${i}`, viaCallback: `pg-${i}`, n: 1 });
    });
  });
});
