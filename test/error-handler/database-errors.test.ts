/**
 * Real driver errors from PostgreSQL (pg), SQLite (better-sqlite3) and MariaDB (mysql2) become the
 * documented responses, and never leak the offending values or SQL.
 */
import request from 'supertest';
import Database from 'better-sqlite3';
import knex, { type Knex } from 'knex';
import { Pool } from 'pg';
import * as core from '../../lib/index';
import { eachExpress } from '../support/express';
import { captureLogger } from '../support/logs';
import { mariaFixture, type MariaFixture } from '../support/mariadb';
import { pgFixture, type PgFixture } from '../support/pg';

const settings = core.loadSettings({ NODE_ENV: 'test' });
const CANARY = 'canary-123-45-6789@example.org';

type Run = () => Promise<unknown>;
interface Driver {
  name: string;
  duplicate: Run;
  missingReference: Run;
  stillReferenced: Run;
  notNull: Run;
  badValue?: Run;
  tooLong?: Run;
  unavailable?: Run;
}

let pg: PgFixture;
let maria: MariaFixture;
let sqlite: Database.Database;
let sqliteKnex: Knex;
const drivers: Driver[] = [];

const schemaSql = [
  'CREATE TABLE clinics (id INTEGER PRIMARY KEY)',
  'CREATE TABLE patients (id INTEGER PRIMARY KEY, email VARCHAR(40) NOT NULL UNIQUE, clinic_id INTEGER REFERENCES clinics(id))',
  'INSERT INTO clinics (id) VALUES (1)',
  `INSERT INTO patients (id, email, clinic_id) VALUES (1, '${CANARY}', 1)`,
];

beforeAll(async () => {
  pg = await pgFixture('dberr');
  for (const sql of schemaSql) await pg.pool.query(sql);
  const deadPool = new Pool({
    host: '127.0.0.1',
    port: 1,
    user: 'x',
    database: 'x',
    connectionTimeoutMillis: 1000,
  });
  drivers.push({
    name: 'PostgreSQL',
    duplicate: () => pg.pool.query('INSERT INTO patients (id, email) VALUES (2, $1)', [CANARY]),
    missingReference: () =>
      pg.pool.query("INSERT INTO patients (id, email, clinic_id) VALUES (3, 'b@x.org', 99)"),
    stillReferenced: () => pg.pool.query('DELETE FROM clinics WHERE id = 1'),
    notNull: () => pg.pool.query('INSERT INTO patients (id, email) VALUES (4, NULL)'),
    badValue: () => pg.pool.query('SELECT * FROM patients WHERE id = $1', ['not-a-number']),
    tooLong: () => pg.pool.query('INSERT INTO patients (id, email) VALUES (5, $1)', ['x'.repeat(60)]),
    unavailable: () => deadPool.query('SELECT 1'),
  });

  sqlite = new Database(':memory:');
  sqlite.pragma('foreign_keys = ON');
  for (const sql of schemaSql) sqlite.exec(sql);
  const run =
    (sql: string, ...args: unknown[]): Run =>
    () =>
      Promise.resolve().then(() => sqlite.prepare(sql).run(...args));
  // SQLite reports both foreign-key directions alike; only the statement tells them apart, which
  // Knex puts at the start of the message, so the delete case goes through Knex.
  sqliteKnex = knex({
    client: 'better-sqlite3',
    connection: { filename: ':memory:' },
    useNullAsDefault: true,
    pool: {
      afterCreate: (c: Database.Database, done: () => void) => {
        c.pragma('foreign_keys = ON');
        done();
      },
    },
  });
  for (const sql of schemaSql) await sqliteKnex.raw(sql);
  drivers.push({
    name: 'SQLite',
    duplicate: run('INSERT INTO patients (id, email) VALUES (2, ?)', CANARY),
    missingReference: run("INSERT INTO patients (id, email, clinic_id) VALUES (3, 'b@x.org', 99)"),
    stillReferenced: () => sqliteKnex('clinics').where({ id: 1 }).delete(),
    notNull: run('INSERT INTO patients (id, email) VALUES (4, NULL)'),
  });

  maria = await mariaFixture('dberr');
  for (const sql of schemaSql)
    await maria.conn.query(
      sql
        .replace('REFERENCES clinics(id)', ', FOREIGN KEY (clinic_id) REFERENCES clinics(id)')
        .replace('clinic_id INTEGER ,', 'clinic_id INTEGER,'),
    );
  await maria.conn.query("SET SESSION sql_mode = 'STRICT_ALL_TABLES'");
  drivers.push({
    name: 'MariaDB',
    duplicate: () => maria.conn.query('INSERT INTO patients (id, email) VALUES (2, ?)', [CANARY]),
    missingReference: () =>
      maria.conn.query("INSERT INTO patients (id, email, clinic_id) VALUES (3, 'b@x.org', 99)"),
    stillReferenced: () => maria.conn.query('DELETE FROM clinics WHERE id = 1'),
    notNull: () => maria.conn.query('INSERT INTO patients (id, email) VALUES (4, NULL)'),
    tooLong: () => maria.conn.query('INSERT INTO patients (id, email) VALUES (5, ?)', ['x'.repeat(60)]),
  });
  afterAllHooks.push(() => deadPool.end());
}, 30_000);

const afterAllHooks: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const hook of afterAllHooks) await hook();
  await pg.close();
  await maria.close();
  sqlite.close();
  await sqliteKnex.destroy();
});

describe.each(eachExpress)('database errors through errors() on %s', (_name, { express }) => {
  function appFor(run: Run) {
    const captured = captureLogger('errors');
    const app = express();
    app.use(core.requestContext());
    app.post(
      '/x',
      core.asyncHandler(async (_req, res) => {
        await run();
        res.status(201).end();
      }),
    );
    app.use(core.errors({ logger: captured.logger, settings }));
    return { app, captured };
  }

  async function expectError(run: Run | undefined, status: number, code: string, field?: string) {
    if (run === undefined) return;
    const { app, captured } = appFor(run);
    const res = await request(app).post('/x');
    expect({ status: res.status, code: res.body.error_code }).toEqual({ status, code });
    if (field !== undefined) expect(JSON.stringify(res.body.details)).toContain(field);
    const text = JSON.stringify(res.body);
    expect(text).not.toContain(CANARY);
    expect(text).not.toMatch(/INSERT|DELETE|SELECT|constraint|duplicate key/i);
    expect(captured.raw()).not.toContain(CANARY);
  }

  it.each(['PostgreSQL', 'SQLite', 'MariaDB'])(
    '%s: unique violation → 409 DUPLICATE naming the field, not the value',
    async (db) => {
      const d = drivers.find((x) => x.name === db)!;
      await expectError(d.duplicate, 409, 'DUPLICATE', 'email');
    },
  );

  it.each(['PostgreSQL', 'SQLite', 'MariaDB'])(
    '%s: foreign key on insert → 422 REFERENCE_NOT_FOUND, on delete → 409 FOREIGN_KEY_VIOLATION',
    async (db) => {
      const d = drivers.find((x) => x.name === db)!;
      await expectError(d.missingReference, 422, 'REFERENCE_NOT_FOUND');
      await expectError(d.stillReferenced, 409, 'FOREIGN_KEY_VIOLATION');
    },
  );

  it.each(['PostgreSQL', 'SQLite', 'MariaDB'])(
    '%s: NOT NULL → 422 VALIDATION_ERROR with the column',
    async (db) => {
      const d = drivers.find((x) => x.name === db)!;
      await expectError(d.notNull, 422, 'VALIDATION_ERROR', 'email');
    },
  );

  it('PostgreSQL: invalid text for a typed column → 400 INVALID_INPUT; too long → 422', async () => {
    const d = drivers.find((x) => x.name === 'PostgreSQL')!;
    await expectError(d.badValue, 400, 'INVALID_INPUT');
    await expectError(d.tooLong, 422, 'VALIDATION_ERROR');
  });

  it('MariaDB: too long in strict mode → 422 VALIDATION_ERROR naming the column', async () => {
    await expectError(drivers.find((x) => x.name === 'MariaDB')!.tooLong, 422, 'VALIDATION_ERROR', 'email');
  });

  it('connection refused → 503 SERVICE_UNAVAILABLE naming the database, with Retry-After', async () => {
    const { app } = appFor(drivers.find((x) => x.name === 'PostgreSQL')!.unavailable!);
    const res = await request(app).post('/x').expect(503);
    expect(res.body).toMatchObject({
      error_code: 'SERVICE_UNAVAILABLE',
      details: { dependency: 'database' },
    });
    expect(res.headers['retry-after']).toBe('5');
  });
});
