/**
 * Run by pg-proxy.test.ts in its own process (tsx): the cut/restore scenario with real
 * 'uncaughtException' and 'unhandledRejection' listeners. Prints one `REPORT {json}` line and exits 0.
 * FAULT_SCHEMA names an existing PostgreSQL schema that has an `items` table.
 */
import express from 'express';
import { setTimeout as sleep } from 'node:timers/promises';
import request from 'supertest';
import * as core from '../../lib/index';
import { TcpProxy } from './proxy';

const uncaught: string[] = [];
process.on('uncaughtException', (err) => {
  uncaught.push(`uncaughtException: ${err.stack ?? String(err)}`);
});
process.on('unhandledRejection', (reason) => {
  uncaught.push(
    `unhandledRejection: ${reason instanceof Error ? (reason.stack ?? reason.message) : String(reason)}`,
  );
});

async function main(): Promise<void> {
  const schema = process.env.FAULT_SCHEMA;
  if (schema === undefined) throw new Error('FAULT_SCHEMA is required');
  const settings = core.loadSettings({ NODE_ENV: 'test', LOG_LEVEL: 'CRITICAL' });
  const silent = core.createLogger('quiet', { console: false, settings, transports: [] });
  const proxy = new TcpProxy(5432);
  const port = await proxy.start();
  const db = core.createDatabase({
    url: `postgres://postgres@127.0.0.1:${port}/test?options=-c%20search_path%3D${schema}`,
    connectTimeoutMs: 1000,
    acquireTimeoutMs: 1000,
    pool: { max: 4 },
    logger: silent,
    settings,
  });
  const app = express();
  app.use(core.requestContext());
  app.get(
    '/items',
    core.asyncHandler(async (_req, res) => {
      const rows: unknown[] = await db.knex('items').select('id');
      res.json({ n: rows.length });
    }),
  );
  app.get(
    '/slow',
    core.asyncHandler(async (_req, res) => {
      await db.knex.raw('select pg_sleep(0.4)');
      res.json({ ok: true });
    }),
  );
  app.use(core.errors({ logger: silent, settings }));

  const before = (await Promise.all(Array.from({ length: 6 }, () => request(app).get('/items')))).map(
    (r) => r.status,
  );
  // Cut while queries are in flight and while idle connections sit in the pool.
  const inFlight = Array.from({ length: 2 }, () => request(app).get('/slow'));
  await sleep(150);
  await proxy.cut();
  const down: { status: number; code: unknown; ms: number; dependency: unknown }[] = [];
  const record = async (p: PromiseLike<request.Response>, start: number): Promise<void> => {
    const res = await p;
    const body = res.body as { error_code?: unknown; details?: { dependency?: unknown } };
    down.push({
      status: res.status,
      code: body.error_code,
      ms: Date.now() - start,
      dependency: body.details?.dependency,
    });
  };
  const cutAt = Date.now();
  await Promise.all(inFlight.map((p) => record(p, cutAt)));
  for (let i = 0; i < 3; i++) await record(request(app).get('/items'), Date.now());
  await sleep(300); // let pool timers and socket errors fire while the database is away
  await proxy.restore();
  const after: number[] = [];
  for (let i = 0; i < 3; i++) after.push((await request(app).get('/items')).status);
  await db.close();
  await proxy.close();
  await sleep(100);
  process.stdout.write(`REPORT ${JSON.stringify({ uncaught, before, down, after })}\n`);
}

main().then(
  () => {
    process.exit(0);
  },
  (err: unknown) => {
    process.stderr.write(
      `scenario failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
    process.exit(1);
  },
);
