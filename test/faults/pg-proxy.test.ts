/**
 * Issue 3's fault test: a TCP proxy between the pool and the database is cut mid-traffic. Requests
 * fail fast with 503 SERVICE_UNAVAILABLE (dependency "database"), the process stays up, and once the
 * proxy listens again on the same port the same Database serves requests again — no restart.
 */
import type { Express } from 'express';
import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import request from 'supertest';
import * as core from '../../lib/index';
import { eachExpress } from '../support/express';
import { captureLogger } from '../support/logs';
import { mariaFixture, type MariaFixture } from '../support/mariadb';
import { pgFixture, type PgFixture } from '../support/pg';
import { TcpProxy } from './proxy';

const SETTINGS = core.loadSettings({ NODE_ENV: 'test' });
const FAST_MS = 2000;

interface Timed {
  status: number;
  body: Record<string, unknown>;
  ms: number;
}

async function timed(app: Express, method: 'get' | 'post', path: string): Promise<Timed> {
  const start = Date.now();
  const res = await request(app)[method](path);
  return { status: res.status, body: res.body as Record<string, unknown>, ms: Date.now() - start };
}

function expectUnavailable(r: Timed): void {
  expect({ status: r.status, code: r.body.error_code, fast: r.ms < FAST_MS }).toEqual({
    status: 503,
    code: 'SERVICE_UNAVAILABLE',
    fast: true,
  });
  expect(r.body.details).toMatchObject({ dependency: 'database' });
}

/** An app that reads (plain route) and writes (request transaction) through `db`. */
function buildApp(express: () => Express, db: core.Database): Express {
  const app = express();
  app.use(core.requestContext());
  app.use(core.database(db));
  app.get(
    '/items',
    core.asyncHandler(async (req, res) => {
      const rows: unknown[] = await req.db!.knex('items').select('id');
      res.json({ n: rows.length });
    }),
  );
  app.get(
    '/slow',
    core.asyncHandler(async (req, res) => {
      const sql = req.db!.dialect === 'postgres' ? 'select pg_sleep(0.4)' : 'select sleep(0.4)';
      await req.db!.knex.raw(sql);
      res.json({ ok: true });
    }),
  );
  app.post(
    '/items',
    db.withRequestTransaction(),
    core.asyncHandler(async (req, res) => {
      await req.db!.current()('items').insert({});
      res.status(201).json({ ok: true });
    }),
  );
  app.use(core.errors({ logger: captureLogger('errors').logger, settings: SETTINGS }));
  return app;
}

let pg: PgFixture;
beforeAll(async () => {
  pg = await pgFixture('fault');
  await pg.pool.query('CREATE TABLE items (id serial PRIMARY KEY)');
});
afterAll(async () => {
  await pg.close();
});

describe.each(eachExpress)('PostgreSQL behind a proxy that is cut, on %s', (_name, { express }) => {
  let proxy: TcpProxy;
  let db: core.Database;
  let app: Express;

  beforeEach(async () => {
    proxy = new TcpProxy(5432);
    const port = await proxy.start();
    db = core.createDatabase({
      url: `postgres://postgres@127.0.0.1:${port}/test?options=-c%20search_path%3D${pg.schema}`,
      connectTimeoutMs: 1000,
      acquireTimeoutMs: 1000,
      pool: { max: 4 },
      logger: captureLogger('database').logger,
      settings: SETTINGS,
    });
    app = buildApp(express, db);
  });
  afterEach(async () => {
    await proxy.close();
    await db.close();
  });

  it('traffic → cut → fast 503s → restore on the same port → 200 again, same Database', async () => {
    const before = await Promise.all(Array.from({ length: 8 }, () => timed(app, 'get', '/items')));
    expect(before.map((r) => r.status)).toEqual(Array(8).fill(200));
    expect((await timed(app, 'post', '/items')).status).toBe(201);
    const port = proxy.port;

    await proxy.cut();
    // Sequential and concurrent requests, reads and request transactions: all fast 503s.
    for (let i = 0; i < 3; i++) expectUnavailable(await timed(app, 'get', '/items'));
    const burst = await Promise.all([
      ...Array.from({ length: 6 }, () => timed(app, 'get', '/items')),
      timed(app, 'post', '/items'),
    ]);
    burst.forEach(expectUnavailable);
    const health = await db.healthCheck();
    expect(health.status).toBe('unhealthy');
    expect(health.latencyMs).toBeLessThan(FAST_MS);

    expect(await proxy.restore()).toBe(port);
    const after = await timed(app, 'get', '/items');
    expect(after.status).toBe(200);
    const more = await Promise.all([
      ...Array.from({ length: 6 }, () => timed(app, 'get', '/items')),
      timed(app, 'post', '/items'),
    ]);
    expect(more.map((r) => r.status)).toEqual([200, 200, 200, 200, 200, 200, 201]);
    expect((await db.healthCheck()).status).toBe('healthy');
    expect(db.poolStats().used).toBe(0);
  });

  it('requests whose queries are in flight when the line is cut get 503 too, not 500', async () => {
    expect((await timed(app, 'get', '/items')).status).toBe(200);
    const inFlight = Array.from({ length: 3 }, () => timed(app, 'get', '/slow'));
    await sleep(150);
    await proxy.cut();
    const results = await Promise.all(inFlight);
    results.forEach(expectUnavailable);
    await proxy.restore();
    expect((await timed(app, 'get', '/slow')).status).toBe(200);
  });

  it('a partition (the proxy accepts but never answers) → 503 within ~2 s, then recovery', async () => {
    expect((await timed(app, 'get', '/items')).status).toBe(200);
    await proxy.cut();
    await proxy.restore('blackhole');
    const results = await Promise.all([timed(app, 'get', '/items'), timed(app, 'post', '/items')]);
    results.forEach(expectUnavailable);
    expect(proxy.connections).toBeGreaterThan(1);
    await proxy.cut();
    await proxy.restore('forward');
    expect((await timed(app, 'get', '/items')).status).toBe(200);
  });
});

describe('PostgreSQL behind a proxy that goes silent (partition of open connections)', () => {
  it('a request on an already-open connection fails fast with 503 instead of hanging', async () => {
    const proxy = new TcpProxy(5432);
    const port = await proxy.start();
    const db = core.createDatabase({
      url: `postgres://postgres@127.0.0.1:${port}/test?options=-c%20search_path%3D${pg.schema}`,
      connectTimeoutMs: 1000,
      acquireTimeoutMs: 1000,
      statementTimeoutMs: 1000,
      pool: { max: 4 },
      logger: captureLogger('database').logger,
      settings: SETTINGS,
    });
    const app = buildApp(require('express') as () => Express, db);
    try {
      expect((await timed(app, 'get', '/items')).status).toBe(200);
      expect(db.poolStats().free).toBe(1);
      await proxy.freeze();
      const start = Date.now();
      const res = await request(app)
        .get('/items')
        .timeout(6000)
        .then(
          (r) => ({ status: r.status, code: (r.body as { error_code?: string }).error_code }),
          (err: unknown) => ({ status: 0, code: (err as Error).message }),
        );
      const ms = Date.now() - start;
      expect({ ...res, fast: ms < 3000 }).toEqual({ status: 503, code: 'SERVICE_UNAVAILABLE', fast: true });
    } finally {
      await proxy.close();
      await db.close();
    }
  }, 15_000);
});

describe('MariaDB behind a proxy that is cut', () => {
  let maria: MariaFixture;
  let proxy: TcpProxy;
  let db: core.Database;
  let app: Express;

  beforeAll(async () => {
    maria = await mariaFixture('fault');
    await maria.conn.query('CREATE TABLE items (id integer AUTO_INCREMENT PRIMARY KEY)');
    proxy = new TcpProxy(3306);
    const port = await proxy.start();
    db = core.createDatabase({
      url: `mysql://root@127.0.0.1:${port}/${maria.database}`,
      connectTimeoutMs: 1000,
      acquireTimeoutMs: 1000,
      pool: { max: 4 },
      logger: captureLogger('database').logger,
      settings: SETTINGS,
    });
    app = buildApp(require('express') as () => Express, db);
  });
  afterAll(async () => {
    await proxy.close();
    await db.close();
    await maria.close();
  });

  it('traffic → cut → fast 503s → restore → 200 again', async () => {
    const before = await Promise.all(Array.from({ length: 6 }, () => timed(app, 'get', '/items')));
    expect(before.map((r) => r.status)).toEqual(Array(6).fill(200));
    expect((await timed(app, 'post', '/items')).status).toBe(201);

    await proxy.cut();
    const down = await Promise.all([
      timed(app, 'get', '/items'),
      timed(app, 'get', '/items'),
      timed(app, 'post', '/items'),
    ]);
    down.forEach(expectUnavailable);
    expectUnavailable(await timed(app, 'get', '/items'));

    await proxy.restore();
    expect((await timed(app, 'get', '/items')).status).toBe(200);
    expect((await timed(app, 'post', '/items')).status).toBe(201);
  });

  it('a query in flight when the line is cut gets 503', async () => {
    expect((await timed(app, 'get', '/items')).status).toBe(200);
    const inFlight = timed(app, 'get', '/slow');
    await sleep(150);
    await proxy.cut();
    expectUnavailable(await inFlight);
    await proxy.restore();
    expect((await timed(app, 'get', '/items')).status).toBe(200);
  });
});

describe('the process stays up', () => {
  // Jest's own process object is a copy, so a real 'uncaughtException' listener needs a real
  // process: the scenario runs in a child that records every uncaught exception and rejection.
  it('a child process running the cut/restore scenario sees no uncaught exception or rejection', async () => {
    const root = resolve(__dirname, '../..');
    const child = spawn(resolve(root, 'node_modules/.bin/tsx'), ['test/faults/pg-proxy-child.ts'], {
      cwd: root,
      env: { ...process.env, NODE_ENV: 'test', FAULT_SCHEMA: pg.schema },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (err += c));
    const code = await new Promise<number | null>((done) =>
      child.on('exit', (c) => {
        done(c);
      }),
    );
    const reportLine = out.split('\n').find((l) => l.startsWith('REPORT '));
    expect({ code, stderr: err, hasReport: reportLine !== undefined }).toEqual({
      code: 0,
      stderr: '',
      hasReport: true,
    });
    const report = JSON.parse(reportLine!.slice('REPORT '.length)) as {
      uncaught: string[];
      before: number[];
      down: { status: number; code: string; ms: number; dependency: string }[];
      after: number[];
    };
    expect(report.uncaught).toEqual([]);
    expect(report.before.every((s) => s === 200)).toBe(true);
    for (const d of report.down) {
      expect(d).toMatchObject({ status: 503, code: 'SERVICE_UNAVAILABLE', dependency: 'database' });
      expect(d.ms).toBeLessThan(FAST_MS);
    }
    expect(report.after.every((s) => s === 200)).toBe(true);
  }, 25_000);
});
