/**
 * What a PostgreSQL restart does to a pool: the server terminates every backend (57P01
 * admin_shutdown). The request whose query was running gets a 503, nothing crashes, and the pool
 * replaces its dead connections on its own.
 */
import express from 'express';
import { setTimeout as sleep } from 'node:timers/promises';
import request from 'supertest';
import * as core from '../../lib/index';
import { captureLogger } from '../support/logs';
import { pgFixture, type PgFixture } from '../support/pg';

const SETTINGS = core.loadSettings({ NODE_ENV: 'test' });

let pg: PgFixture;
let db: core.Database;
let appName: string;

beforeAll(async () => {
  pg = await pgFixture('term');
  await pg.pool.query('CREATE TABLE items (id serial PRIMARY KEY)');
  // A name of this worker's own (the URL's application_name wins), so only our backends are terminated.
  appName = `caduceus_${pg.schema}`;
  db = core.createDatabase({
    url: `postgres://postgres@127.0.0.1:5432/test?options=-c%20search_path%3D${pg.schema}&application_name=${appName}`,
    connectTimeoutMs: 1000,
    acquireTimeoutMs: 1000,
    pool: { max: 4 },
    logger: captureLogger('database').logger,
    settings: SETTINGS,
  });
});
afterAll(async () => {
  await db.close();
  await pg.close();
});

async function terminateOurBackends(): Promise<number> {
  const { rows } = await pg.pool.query<{ n: string }>(
    'SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity WHERE application_name = $1',
    [appName],
  );
  return Number(rows[0]?.n ?? 0);
}

function app(): ReturnType<typeof express> {
  const a = express();
  a.use(core.requestContext());
  a.get(
    '/items',
    core.asyncHandler(async (_req, res) => {
      const rows: unknown[] = await db.knex('items').select('id');
      res.json({ n: rows.length });
    }),
  );
  a.get(
    '/slow',
    core.asyncHandler(async (_req, res) => {
      await db.knex.raw('select pg_sleep(1)');
      res.json({ ok: true });
    }),
  );
  a.use(core.errors({ logger: captureLogger('errors').logger, settings: SETTINGS }));
  return a;
}

it('terminated backends: the running request gets 503, idle ones are replaced, the next requests succeed', async () => {
  const server = app();
  const warm = await Promise.all(Array.from({ length: 4 }, () => request(server).get('/items')));
  expect(warm.map((r) => r.status)).toEqual([200, 200, 200, 200]);
  expect(db.poolStats().free).toBeGreaterThanOrEqual(1);

  const running = request(server)
    .get('/slow')
    .then((r) => r);
  // Terminate only once the slow query is really running on the server.
  const active = async (): Promise<boolean> => {
    const { rows } = await pg.pool.query(
      "SELECT 1 FROM pg_stat_activity WHERE application_name = $1 AND state = 'active' AND query LIKE '%pg_sleep(1)%'",
      [appName],
    );
    return rows.length === 1;
  };
  for (let i = 0; i < 100 && !(await active()); i++) await sleep(10);
  expect(await terminateOurBackends()).toBeGreaterThanOrEqual(2);
  const res = await running;
  expect(res.status).toBe(503);
  expect(res.body).toMatchObject({ error_code: 'SERVICE_UNAVAILABLE', details: { dependency: 'database' } });

  // The idle connections were killed too; the pool must notice and open new ones.
  await sleep(100);
  const after = await Promise.all(Array.from({ length: 6 }, () => request(server).get('/items')));
  expect(after.map((r) => r.status)).toEqual([200, 200, 200, 200, 200, 200]);
  expect((await db.healthCheck()).status).toBe('healthy');
});
