/**
 * core.database(db) and db.withRequestTransaction() on Express 4 and 5 against real PostgreSQL: the
 * request's work commits before a success response is sent, rolls back on an error response or a
 * vanished client, and a failed COMMIT becomes an error response instead of a false success.
 */
import type { Express } from 'express';
import { request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import request from 'supertest';
import * as core from '../../lib/index';
import { eachExpress } from '../support/express';
import { captureLogger } from '../support/logs';
import { pgFixture, type PgFixture } from '../support/pg';
import { TEST_SETTINGS, pgUrl, waitFor } from './helpers';

let pg: PgFixture;
let db: core.Database;

beforeAll(async () => {
  pg = await pgFixture('dbmw');
  // The unique constraint is checked at COMMIT, so a handler's insert succeeds and the commit fails.
  await pg.pool.query(
    'CREATE TABLE items (id integer PRIMARY KEY, email text NOT NULL, CONSTRAINT items_email_key UNIQUE (email) DEFERRABLE INITIALLY DEFERRED)',
  );
  db = core.createDatabase({ url: pgUrl(pg.schema), pool: { max: 4 }, settings: TEST_SETTINGS });
});
afterAll(async () => {
  await db.close();
  await pg.close();
});
beforeEach(async () => {
  await pg.pool.query("TRUNCATE items; INSERT INTO items (id, email) VALUES (0, 'taken@example.org')");
});
afterEach(async () => {
  // Every request gave its connection back.
  expect(await waitFor(() => db.poolStats().used === 0, 2000)).toBe(true);
});

const ids = async (): Promise<number[]> =>
  (await pg.pool.query<{ id: number }>('SELECT id FROM items WHERE id <> 0 ORDER BY id')).rows.map(
    (r) => r.id,
  );

describe.each(eachExpress)('core.database(db) and withRequestTransaction() on %s', (_name, { express }) => {
  let app: Express;
  let inserted: (id: number) => void = () => undefined;

  beforeAll(() => {
    app = express();
    app.use(core.requestContext());
    app.use(core.database(db));
    app.get('/plain', (req, res) => {
      res.json({ sameDb: req.db === db, current: req.db?.current() === db.knex });
    });
    const tx = db.withRequestTransaction();
    const insert = async (
      req: import('express').Request,
      id: number,
      email = `p${id}@example.org`,
    ): Promise<void> => {
      await req.db!.current()('items').insert({ id, email });
    };
    app.post(
      '/items/:id',
      tx,
      core.asyncHandler(async (req, res) => {
        const id = Number(req.params.id);
        const trxBefore = req.db!.current();
        await insert(req, id);
        res.status(201).json({ id, inTransaction: trxBefore !== db.knex && req.db!.reader === trxBefore });
      }),
    );
    app.post(
      '/items/:id/throw-500',
      tx,
      core.asyncHandler(async (req) => {
        await insert(req, Number(req.params.id));
        throw new Error('handler failed after the insert');
      }),
    );
    app.post(
      '/items/:id/throw-422',
      tx,
      core.asyncHandler(async (req) => {
        await insert(req, Number(req.params.id));
        throw new core.ValidationError('bad input', { name: 'is required' });
      }),
    );
    app.post(
      '/items/:id/connection-lost',
      tx,
      core.asyncHandler(async (req) => {
        await insert(req, Number(req.params.id));
        // The transaction's connection dies (a database restart, a cut network): its ROLLBACK will fail.
        const r = await req.db!.current().raw<{ rows: { pid: number }[] }>('SELECT pg_backend_pid() AS pid');
        await pg.pool.query('SELECT pg_terminate_backend($1)', [r.rows[0]!.pid]);
        throw new core.ValidationError('bad input', { name: 'is required' });
      }),
    );
    app.post(
      '/items/:id/respond-400',
      tx,
      core.asyncHandler(async (req, res) => {
        await insert(req, Number(req.params.id));
        res.status(400).json({ handled: true });
      }),
    );
    app.post(
      '/items/:id/duplicate',
      tx,
      core.asyncHandler(async (req, res) => {
        await insert(req, Number(req.params.id), 'taken@example.org');
        res.status(200).json({ ok: true });
      }),
    );
    app.post(
      '/items/:id/slow',
      tx,
      core.asyncHandler(async (req, res) => {
        const id = Number(req.params.id);
        await insert(req, id);
        inserted(id);
        await sleep(300);
        res.status(201).json({ id });
      }),
    );
    app.post(
      '/items/:id/nested',
      tx,
      core.asyncHandler(async (req, res) => {
        const id = Number(req.params.id);
        await insert(req, id);
        await req
          .db!.transaction(async () => {
            await insert(req, id + 1);
            throw new Error('inner work fails');
          })
          .catch(() => undefined);
        await req.db!.transaction(() => insert(req, id + 2));
        res.status(201).json({ id });
      }),
    );
    app.use(core.errors({ logger: captureLogger('errors').logger, settings: TEST_SETTINGS }));
  });

  it('db.transaction() inside a request transaction nests as a savepoint', async () => {
    const res = await request(app).post('/items/20/nested');
    expect(res.status).toBe(201);
    expect(await ids()).toEqual([20, 22]);
  });

  it('core.database(db) puts the Database on req.db', async () => {
    const res = await request(app).get('/plain');
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ sameDb: true, current: true });
  });

  it('a handler that inserts and responds 201 → committed before the client sees the response', async () => {
    const res = await request(app).post('/items/1');
    expect(res.status).toBe(201);
    expect(res.body).toEqual({ id: 1, inTransaction: true });
    // Read through another connection the moment the response arrives.
    expect(await ids()).toEqual([1]);
  });

  it('a handler that inserts and then throws (500) → rolled back', async () => {
    const res = await request(app).post('/items/2/throw-500');
    expect(res.status).toBe(500);
    expect(res.body).toMatchObject({ success: false, error_code: 'INTERNAL_ERROR' });
    expect(await ids()).toEqual([]);
  });

  it('a handler that inserts and then throws a 4xx error → rolled back', async () => {
    const res = await request(app).post('/items/3/throw-422');
    expect(res.status).toBeGreaterThanOrEqual(400);
    expect(res.status).toBeLessThan(500);
    expect(res.body).toMatchObject({ success: false, error_code: 'VALIDATION_ERROR' });
    expect(await ids()).toEqual([]);
  });

  it('an error response whose ROLLBACK fails (connection gone) is still the one response sent, in the envelope', async () => {
    const res = await request(app).post('/items/5/connection-lost');
    expect(res.status).toBe(422);
    expect(res.type).toBe('application/json');
    expect(res.body).toMatchObject({ success: false, error_code: 'VALIDATION_ERROR' });
    expect(JSON.stringify(res.body)).not.toMatch(/node_modules|at .*\.js/);
    expect(await ids()).toEqual([]);
  });

  it('a handler that inserts and answers 400 itself → rolled back, its own response delivered', async () => {
    const res = await request(app).post('/items/4/respond-400');
    expect(res.status).toBe(400);
    expect(res.body).toEqual({ handled: true });
    expect(await ids()).toEqual([]);
  });

  it('a commit that fails (deferred unique violation) → 409 DUPLICATE, never the 200 the handler chose', async () => {
    const res = await request(app).post('/items/5/duplicate');
    expect(res.status).toBe(409);
    expect(res.body).toMatchObject({ success: false, error_code: 'DUPLICATE' });
    expect(res.body).not.toHaveProperty('ok');
    expect(JSON.stringify(res.body)).not.toContain('taken@example.org');
    expect(await ids()).toEqual([]);
  });

  it('the error response after a failed commit still carries the request id header', async () => {
    const res = await request(app).post('/items/6/duplicate').set('X-Request-Id', 'commit-fail-1');
    expect(res.status).toBe(409);
    expect(res.body.details).toMatchObject({ request_id: 'commit-fail-1' });
    expect(res.headers['x-request-id']).toBe('commit-fail-1');
  });

  it('concurrent requests each get their own transaction', async () => {
    const results = await Promise.all(
      [11, 12, 13, 14, 15, 16].map((id) =>
        id % 2 === 0 ? request(app).post(`/items/${id}`) : request(app).post(`/items/${id}/throw-500`),
      ),
    );
    expect(results.map((r) => r.status)).toEqual([500, 201, 500, 201, 500, 201]);
    expect(await ids()).toEqual([12, 14, 16]);
  });

  it('a client that disconnects mid-request → rolled back and the connection released', async () => {
    const server = app.listen(0, '127.0.0.1');
    await new Promise<void>((resolve) => server.once('listening', resolve));
    const { port } = server.address() as AddressInfo;
    try {
      const insertedNow = new Promise<number>((resolve) => {
        inserted = resolve;
      });
      const req = httpRequest({ host: '127.0.0.1', port, method: 'POST', path: '/items/7/slow' });
      const failed = new Promise<void>((resolve) => {
        req.on('error', () => {
          resolve();
        });
        req.on('close', () => {
          resolve();
        });
      });
      req.end();
      expect(await insertedNow).toBe(7);
      expect(db.poolStats().used).toBe(1);
      req.destroy();
      await failed;
      expect(await waitFor(() => db.poolStats().used === 0, 2000)).toBe(true);
      // Let the handler finish its sleep and try to answer the vanished client.
      await sleep(400);
      expect(await ids()).toEqual([]);
      expect(db.poolStats().used).toBe(0);
    } finally {
      inserted = () => undefined;
      await new Promise<void>((resolve) =>
        server.close(() => {
          resolve();
        }),
      );
    }
  });

  it('a client that disconnects while its request waits for a connection → nothing committed', async () => {
    const server = app.listen(0, '127.0.0.1');
    await new Promise<void>((resolve) => server.once('listening', resolve));
    const { port } = server.address() as AddressInfo;
    let release: () => void = () => undefined;
    const blockers: Promise<void>[] = [];
    try {
      // Take every connection of the pool so the request's BEGIN has to wait.
      const allHeld = new Promise<void>((resolveAll) => {
        let n = 0;
        const gateOpen = new Promise<void>((r) => {
          release = r;
        });
        for (let i = 0; i < db.poolStats().max; i++) {
          blockers.push(
            db.transaction(async (trx) => {
              await trx.raw('select 1');
              if (++n === db.poolStats().max) resolveAll();
              await gateOpen;
            }),
          );
        }
      });
      await allHeld;
      const insertedNow = new Promise<number>((resolve) => {
        inserted = resolve;
      });
      const req = httpRequest({ host: '127.0.0.1', port, method: 'POST', path: '/items/9/slow' });
      req.on('error', () => undefined);
      req.end();
      expect(await waitFor(() => db.poolStats().pending === 1, 2000)).toBe(true);
      req.destroy();
      await sleep(50);
      release();
      await Promise.all(blockers);
      // The handler may not even run (the client was gone before BEGIN); if it does, its work must
      // not be committed.
      await Promise.race([insertedNow, sleep(300)]);
      await sleep(400);
      expect(await waitFor(() => db.poolStats().used === 0, 2000)).toBe(true);
      expect(await ids()).toEqual([]);
    } finally {
      release();
      inserted = () => undefined;
      await new Promise<void>((resolve) =>
        server.close(() => {
          resolve();
        }),
      );
    }
  });

  it('a request that completes normally after the slow path commits', async () => {
    const res = await request(app).post('/items/8/slow');
    expect(res.status).toBe(201);
    expect(await ids()).toEqual([8]);
  });
});

describe('core.database() refuses what is not a Database', () => {
  it.each([[undefined], [{}], ['postgres://x'], [{ transaction: 1 }]])('%p', (value) => {
    expect(() => core.database(value as unknown as core.Database)).toThrow(core.ConfigError);
  });
});
