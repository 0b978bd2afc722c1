/**
 * createDatabase through the public API against real PostgreSQL, SQLite and MariaDB: the URL picks
 * the driver, options are checked at creation, transactions commit / roll back / nest, health checks
 * are bounded, pool statistics are real, and the slow-query, leak and statement-timeout defaults work.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import request from 'supertest';
import * as core from '../../lib/index';
import { captureLogger } from '../support/logs';
import { mariaFixture, type MariaFixture } from '../support/mariadb';
import { pgFixture, type PgFixture } from '../support/pg';
import { PG_URL } from '../support/services';
import {
  TEST_SETTINGS,
  closedPort,
  databases,
  gate,
  mariaUrl,
  pgUrl,
  silentServer,
  waitFor,
} from './helpers';

const CANARY = 'canary-078-05-1120';
const PASSWORD = 'hunter2-CANARY-pw';

let pg: PgFixture;
let maria: MariaFixture;
let dir: string;
const dbs = databases();

beforeAll(async () => {
  pg = await pgFixture('db');
  maria = await mariaFixture('db');
  dir = mkdtempSync(join(tmpdir(), 'caduceus-db-'));
});
afterEach(async () => {
  await dbs.closeAll();
});
afterAll(async () => {
  await pg.close();
  await maria.close();
  rmSync(dir, { recursive: true, force: true });
});

let fileCounter = 0;
const sqliteFile = (): string => join(dir, `db-${++fileCounter}.sqlite`);

function expectConfigError(fn: () => unknown, ...fragments: (string | RegExp)[]): core.ConfigError {
  let thrown: unknown;
  try {
    fn();
  } catch (err) {
    thrown = err;
  }
  expect(thrown).toBeInstanceOf(core.ConfigError);
  const err = thrown as core.ConfigError;
  expect(err.code).toBe('CONFIG_INVALID');
  for (const f of fragments) expect(err.message).toMatch(f);
  return err;
}

describe('createDatabase: the URL scheme picks the driver', () => {
  it.each([
    ['postgres://', (schema: string) => pgUrl(schema)],
    ['postgresql://', (schema: string) => pgUrl(schema, PG_URL.replace(/^postgres:/, 'postgresql:'))],
  ])('%s opens PostgreSQL (in the schema named by the URL)', async (_scheme, url) => {
    const db = dbs.create({ url: url(pg.schema) });
    expect(db.dialect).toBe('postgres');
    const health = await db.healthCheck();
    expect(health).toMatchObject({ status: 'healthy', dialect: 'postgres' });
    expect(health.version).toMatch(/PostgreSQL/);
    const { rows } = await db.knex.raw<{ rows: { s: string }[] }>('select current_schema() as s');
    expect(rows[0]?.s).toBe(pg.schema);
  });

  it.each(['mysql', 'mariadb'])('%s:// opens MariaDB through mysql2', async (scheme) => {
    const db = dbs.create({ url: mariaUrl(maria.database).replace(/^mysql:/, `${scheme}:`) });
    expect(db.dialect).toBe('mysql');
    const health = await db.healthCheck();
    expect(health).toMatchObject({ status: 'healthy', dialect: 'mysql' });
    expect(health.version).toMatch(/MariaDB/i);
    const [rows] = await db.knex.raw<[{ d: string }[]]>('select database() as d');
    expect(rows?.[0]?.d).toBe(maria.database);
  });

  it('sqlite:./relative/path opens (and creates) that file relative to the working directory', async () => {
    const file = sqliteFile();
    const rel = relative(process.cwd(), file);
    const db = dbs.create({ url: `sqlite:${rel.startsWith('.') ? rel : `./${rel}`}` });
    expect(db.dialect).toBe('sqlite');
    await db.knex.schema.createTable('t', (t) => {
      t.integer('id');
    });
    expect(existsSync(file)).toBe(true);
    const health = await db.healthCheck();
    expect(health).toMatchObject({ status: 'healthy', dialect: 'sqlite' });
    expect(health.version).toMatch(/^3\.\d+/);
  });

  it('sqlite:///absolute/path opens that file', async () => {
    const file = sqliteFile();
    const db = dbs.create({ url: `sqlite://${file}` });
    await db.knex.schema.createTable('t', (t) => {
      t.integer('id');
    });
    expect(existsSync(file)).toBe(true);
  });

  it('sqlite::memory: opens an in-memory database that keeps its data across queries (one connection)', async () => {
    const db = dbs.create({ url: 'sqlite::memory:' });
    expect(db.dialect).toBe('sqlite');
    await db.knex.schema.createTable('t', (t) => {
      t.integer('id');
    });
    await db.knex('t').insert({ id: 1 });
    await db.knex('t').insert({ id: 2 });
    expect(await db.knex('t').count({ n: '*' })).toEqual([{ n: 2 }]);
    expect(db.poolStats()).toMatchObject({ size: 1, maxOverflow: 0, max: 1 });
  });

  it('foreign keys are enforced on SQLite', async () => {
    const db = dbs.create({ url: 'sqlite::memory:' });
    await db.knex.schema.createTable('a', (t) => {
      t.integer('id').primary();
    });
    await db.knex.schema.createTable('b', (t) => {
      t.integer('a_id').references('a.id');
    });
    await expect(db.knex('b').insert({ a_id: 9 })).rejects.toMatchObject({
      code: 'SQLITE_CONSTRAINT_FOREIGNKEY',
    });
  });
});

describe('createDatabase: bad URLs and options fail at creation with ConfigError', () => {
  it.each([
    ['an unknown scheme', 'http://127.0.0.1/db'],
    ['no scheme at all', '127.0.0.1:5432/db'],
    ['an unparseable PostgreSQL URL', 'postgres://[not-a-host/db'],
    ['an empty SQLite path', 'sqlite:'],
  ])('%s', (_label, url) => {
    expectConfigError(() => core.createDatabase({ url, settings: TEST_SETTINGS }), /url/);
  });

  it('never echoes the URL (or its password) in the error', () => {
    const err = expectConfigError(() =>
      core.createDatabase({ url: `ftp://admin:${PASSWORD}@db.internal/x`, settings: TEST_SETTINGS }),
    );
    expect(JSON.stringify({ message: err.message, issues: err.issues })).not.toContain(PASSWORD);
    expect(err.message).not.toContain('db.internal');
  });

  it('an unknown option is refused with a hint at the nearest known one', () => {
    expectConfigError(
      () => core.createDatabase({ url: 'sqlite::memory:', slowQueryMS: 5 } as core.DatabaseOptions),
      /unknown option "slowQueryMS"/,
      /Did you mean "slowQueryMs"\?/,
    );
  });

  it('pool.max 0 is refused', () => {
    expectConfigError(
      () => core.createDatabase({ url: pgUrl(pg.schema), pool: { max: 0 }, settings: TEST_SETTINGS }),
      /pool\.max/,
    );
  });

  it('pool.min above pool.max is refused', () => {
    expectConfigError(
      () => core.createDatabase({ url: pgUrl(pg.schema), pool: { min: 5, max: 2 }, settings: TEST_SETTINGS }),
      /pool\.min/,
    );
  });

  it.each([
    ['connectTimeoutMs', -1],
    ['acquireTimeoutMs', -5],
    ['statementTimeoutMs', -1],
    ['idleTimeoutMs', -1],
    ['slowQueryMs', -1],
    ['leakWarningMs', -100],
    ['healthCheckTimeoutMs', 1.5],
    ['connectTimeoutMs', Number.NaN],
  ])('%s = %p is refused', (option, value) => {
    expectConfigError(
      () => core.createDatabase({ url: 'sqlite::memory:', settings: TEST_SETTINGS, [option]: value }),
      new RegExp(option),
    );
  });

  it('replicas must be an array of database URLs', () => {
    expectConfigError(
      () =>
        core.createDatabase({
          url: 'sqlite::memory:',
          replicas: 'sqlite::memory:' as unknown as string[],
          settings: TEST_SETTINGS,
        }),
      /replicas/,
    );
    expectConfigError(
      () =>
        core.createDatabase({ url: 'sqlite::memory:', replicas: ['http://x/y'], settings: TEST_SETTINGS }),
      /url/,
    );
  });

  it('no url and no DATABASE_URL is refused', () => {
    expectConfigError(
      () => core.createDatabase({ settings: core.loadSettings({ NODE_ENV: 'test' }) }),
      /url/,
    );
  });
});

describe('createDatabase: defaults from settings', () => {
  it('pool max is DATABASE_POOL_SIZE + DATABASE_MAX_OVERFLOW, and poolStats reports them', () => {
    const settings = core.loadSettings({
      NODE_ENV: 'test',
      DATABASE_POOL_SIZE: '3',
      DATABASE_MAX_OVERFLOW: '4',
    });
    const db = dbs.create({ url: pgUrl(pg.schema), settings });
    expect(db.poolStats()).toEqual({
      size: 3,
      maxOverflow: 4,
      max: 7,
      used: 0,
      free: 0,
      pending: 0,
      pendingCreates: 0,
    });
  });

  it('the seed defaults are 10 + 20', () => {
    const db = dbs.create({ url: pgUrl(pg.schema) });
    expect(db.poolStats()).toMatchObject({ size: 10, maxOverflow: 20, max: 30 });
  });

  it('an explicit pool.max wins over the settings', () => {
    const db = dbs.create({ url: pgUrl(pg.schema), pool: { max: 2 } });
    expect(db.poolStats().max).toBe(2);
  });

  it('the URL comes from settings (DATABASE_URL) when none is given', async () => {
    const file = sqliteFile();
    const settings = core.loadSettings({ NODE_ENV: 'test', DATABASE_URL: `sqlite://${file}` });
    const db = dbs.create({ settings });
    expect(db.dialect).toBe('sqlite');
    await db.knex.raw('create table t (id integer)');
    expect(existsSync(file)).toBe(true);
  });

  it('with no argument at all it reads DATABASE_URL from the environment', async () => {
    const file = sqliteFile();
    const saved = process.env.DATABASE_URL;
    process.env.DATABASE_URL = `sqlite://${file}`;
    let db: core.Database;
    try {
      db = core.createDatabase();
    } finally {
      if (saved === undefined) delete process.env.DATABASE_URL;
      else process.env.DATABASE_URL = saved;
    }
    try {
      expect(db.dialect).toBe('sqlite');
      await db.knex.raw('create table t (id integer)');
      expect(existsSync(file)).toBe(true);
    } finally {
      await db.close();
    }
  });

  it('the pool really stops at max: a third caller waits (pending) until a connection is released', async () => {
    const db = dbs.create({ url: pgUrl(pg.schema), pool: { max: 2 } });
    const hold = gate();
    const held = [1, 2].map(() => db.transaction(() => hold.promise));
    try {
      expect(await waitFor(() => db.poolStats().used === 2)).toBe(true);
      // Knex builders are lazy: then() starts the query.
      const third = db.knex.raw('select 1 as n').then(() => 'third done');
      expect(await waitFor(() => db.poolStats().pending === 1)).toBe(true);
      expect(db.poolStats().used).toBe(2);
      hold.open();
      expect(await third).toBe('third done');
    } finally {
      hold.open();
      await Promise.all(held);
    }
    expect(db.poolStats()).toMatchObject({ used: 0, pending: 0 });
  });
});

interface Dialect {
  name: string;
  url: () => string;
}
const DIALECTS: Dialect[] = [
  { name: 'PostgreSQL', url: () => pgUrl(pg.schema) },
  { name: 'SQLite', url: () => `sqlite://${sqliteFile()}` },
  { name: 'MariaDB', url: () => mariaUrl(maria.database) },
];

describe.each(DIALECTS.map((d) => [d.name, d] as const))('transactions on %s', (_name, dialect) => {
  let db: core.Database;
  let table: string;
  let n = 0;
  beforeEach(async () => {
    db = dbs.create({ url: dialect.url() });
    table = `tx_${++n}`;
    await db.knex.schema.dropTableIfExists(table);
    await db.knex.schema.createTable(table, (t) => {
      t.string('name', 20).primary();
    });
  });
  afterEach(async () => {
    await db.knex.schema.dropTableIfExists(table);
  });
  const names = async (): Promise<string[]> =>
    (await db.knex(table).select('name').orderBy('name')).map((r: { name: string }) => r.name);

  it('commits when fn resolves and returns its value', async () => {
    const value = await db.transaction(async (trx) => {
      await trx(table).insert({ name: 'a' });
      return 42;
    });
    expect(value).toBe(42);
    expect(await names()).toEqual(['a']);
  });

  it('rolls back when fn throws, and rethrows the same error', async () => {
    const boom = new Error('boom');
    await expect(
      db.transaction(async (trx) => {
        await trx(table).insert({ name: 'a' });
        throw boom;
      }),
    ).rejects.toBe(boom);
    expect(await names()).toEqual([]);
  });

  it('nested: an inner failure undoes only the inner work (savepoint)', async () => {
    await db.transaction(async (trx) => {
      await trx(table).insert({ name: 'outer-1' });
      await expect(
        db.transaction(async (inner) => {
          expect(inner).not.toBe(trx);
          await inner(table).insert({ name: 'inner' });
          throw new Error('inner fails');
        }),
      ).rejects.toThrow('inner fails');
      await trx(table).insert({ name: 'outer-2' });
    });
    expect(await names()).toEqual(['outer-1', 'outer-2']);
  });

  it('nested: an inner success is undone when the outer transaction fails', async () => {
    await expect(
      db.transaction(async (trx) => {
        await trx(table).insert({ name: 'outer' });
        await db.transaction(async (inner) => {
          await inner(table).insert({ name: 'inner' });
        });
        throw new Error('outer fails');
      }),
    ).rejects.toThrow('outer fails');
    expect(await names()).toEqual([]);
  });

  it('current() is the active transaction inside, the primary outside', async () => {
    expect(db.current()).toBe(db.knex);
    await db.transaction(async (trx) => {
      expect(db.current()).toBe(trx);
      await sleep(5);
      expect(db.current()).toBe(trx);
      await db.current()(table).insert({ name: 'via-current' });
      await db.transaction(async (inner) => {
        await inner.raw('select 1');
        expect(db.current()).toBe(inner);
      });
      expect(db.current()).toBe(trx);
    });
    expect(db.current()).toBe(db.knex);
    expect(await names()).toEqual(['via-current']);
  });

  it('transaction(notAFunction) is a ConfigError', () => {
    expect(() => db.transaction(undefined as unknown as () => Promise<void>)).toThrow(core.ConfigError);
  });
});

describe('healthCheck()', () => {
  it('reports status, latency and server version on PostgreSQL', async () => {
    const db = dbs.create({ url: pgUrl(pg.schema) });
    const health = await db.healthCheck();
    expect(health.status).toBe('healthy');
    expect(health.dialect).toBe('postgres');
    expect(typeof health.latencyMs).toBe('number');
    expect(health.latencyMs).toBeGreaterThanOrEqual(0);
    expect(health.latencyMs).toBeLessThan(2000);
    expect(health.version).toMatch(/^PostgreSQL \d+/);
    expect(health.error).toBeUndefined();
  });

  it.each([
    ['postgres', (port: number) => `postgres://admin:${PASSWORD}@127.0.0.1:${port}/test`],
    ['mysql', (port: number) => `mysql://admin:${PASSWORD}@127.0.0.1:${port}/test`],
  ])(
    '%s: a server that accepts TCP but never answers → unhealthy within healthCheckTimeoutMs, no password in the result',
    async (dialect, url) => {
      const silent = await silentServer();
      try {
        const db = dbs.create({ url: url(silent.port), healthCheckTimeoutMs: 300, connectTimeoutMs: 1500 });
        const start = Date.now();
        const health = await db.healthCheck();
        const elapsed = Date.now() - start;
        expect(health).toMatchObject({ status: 'unhealthy', dialect });
        expect(typeof health.error).toBe('string');
        expect(elapsed).toBeGreaterThanOrEqual(250);
        expect(elapsed).toBeLessThan(1000);
        expect(health.latencyMs).toBeLessThan(1000);
        expect(silent.accepted()).toBeGreaterThanOrEqual(1);
        expect(JSON.stringify(health)).not.toContain(PASSWORD);
        // A second check while the first connect attempt still hangs is bounded too.
        const again = Date.now();
        expect((await db.healthCheck()).status).toBe('unhealthy');
        expect(Date.now() - again).toBeLessThan(1000);
      } finally {
        await silent.close();
      }
    },
  );

  it.each([
    ['postgres', (port: number) => `postgres://admin:${PASSWORD}@127.0.0.1:${port}/test`],
    ['mysql', (port: number) => `mysql://admin:${PASSWORD}@127.0.0.1:${port}/test`],
  ])('%s: a closed port → unhealthy quickly, with a code and no password', async (dialect, url) => {
    const port = await closedPort();
    const db = dbs.create({ url: url(port), healthCheckTimeoutMs: 2000 });
    const start = Date.now();
    const health = await db.healthCheck();
    expect(Date.now() - start).toBeLessThan(1500);
    expect(health).toMatchObject({ status: 'unhealthy', dialect });
    expect(health.error).toMatch(/ECONNREFUSED/);
    expect(JSON.stringify(health)).not.toContain(PASSWORD);
  });

  it('a wrong MariaDB password → unhealthy with an error code, never the password', async () => {
    const db = dbs.create({ url: `mysql://root:${PASSWORD}@127.0.0.1:3306/${maria.database}` });
    const health = await db.healthCheck();
    expect(health.status).toBe('unhealthy');
    expect(health.error).toMatch(/^[A-Z_0-9]+$/);
    expect(JSON.stringify(health)).not.toContain(PASSWORD);
  });

  it('reports each replica', async () => {
    const db = dbs.create({ url: pgUrl(pg.schema), replicas: [pgUrl(pg.schema)] });
    const health = await db.healthCheck();
    expect(health.status).toBe('healthy');
    expect(health.replicas).toHaveLength(1);
    expect(health.replicas?.[0]).toMatchObject({ status: 'healthy', dialect: 'postgres' });
  });
});

describe('poolStats()', () => {
  it('counts connections held in open transactions as used, and back to free after', async () => {
    const db = dbs.create({ url: pgUrl(pg.schema), pool: { max: 5 } });
    const hold = gate();
    const started: Promise<void>[] = [];
    const held = [1, 2].map(
      () =>
        new Promise<void>((resolve, reject) => {
          started.push(
            db
              .transaction(async (trx) => {
                await trx.raw('select 1');
                resolve();
                await hold.promise;
              })
              .catch(reject),
          );
        }),
    );
    await Promise.all(held);
    expect(db.poolStats()).toMatchObject({ used: 2, free: 0, pending: 0, max: 5 });
    hold.open();
    await Promise.all(started);
    expect(db.poolStats()).toMatchObject({ used: 0, free: 2, pending: 0 });
  });
});

describe('close()', () => {
  it('is idempotent and later queries fail', async () => {
    const db = dbs.create({ url: pgUrl(pg.schema) });
    await db.knex.raw('select 1');
    const first = db.close();
    const second = db.close();
    await Promise.all([first, second]);
    await db.close();
    expect(db.poolStats().used).toBe(0);
    await expect(db.knex.raw('select 1')).rejects.toThrow();
  });

  it('closes replicas too', async () => {
    const db = dbs.create({ url: `sqlite://${sqliteFile()}`, replicas: [`sqlite://${sqliteFile()}`] });
    await db.reader.raw('select 1');
    await db.close();
    await expect(db.reader.raw('select 1')).rejects.toThrow();
  });
});

describe('slow-query log', () => {
  it('logs a slow query at warn with the request id and the SQL text, never the bound values', async () => {
    const log = captureLogger('database');
    const db = dbs.create({ url: pgUrl(pg.schema), slowQueryMs: 1, logger: log.logger });
    await core.runWithContext(core.createContext({ requestId: 'r-1' }), async () => {
      await db.knex.raw('select pg_sleep(0.05), ?::text as canary', [CANARY]);
    });
    const slow = log.lines().filter((l) => l.message === 'slow query');
    expect(slow.length).toBeGreaterThanOrEqual(1);
    const line = slow.find((l) => typeof l.sql === 'string' && l.sql.includes('pg_sleep'));
    expect(line).toBeDefined();
    expect(line).toMatchObject({ level: 'warn', request_id: 'r-1' });
    expect(line?.duration_ms).toBeGreaterThanOrEqual(40);
    expect(log.raw()).not.toContain(CANARY);
  });

  it('query-builder values never reach the log either', async () => {
    const log = captureLogger('database');
    const db = dbs.create({ url: pgUrl(pg.schema), slowQueryMs: 1, logger: log.logger });
    await db.knex.schema.createTable('slow_values', (t) => {
      t.string('ssn');
    });
    try {
      await core.runWithContext(core.createContext({ requestId: 'r-2' }), async () => {
        await db.knex('slow_values').insert({ ssn: CANARY });
        // pg_sleep makes the query slow for sure: a plain select can finish under the 1 ms threshold.
        await db
          .knex('slow_values')
          .where({ ssn: CANARY })
          .select('ssn', db.knex.raw('pg_sleep(0.01) as pause'));
      });
      expect(log.lines().some((l) => l.message === 'slow query')).toBe(true);
      expect(log.raw()).not.toContain(CANARY);
    } finally {
      await db.knex.schema.dropTable('slow_values');
    }
  });

  it('a slow query inside a transaction is logged too, with the request id', async () => {
    const log = captureLogger('database');
    const db = dbs.create({ url: pgUrl(pg.schema), slowQueryMs: 20, logger: log.logger });
    await core.runWithContext(core.createContext({ requestId: 'r-tx' }), () =>
      db.transaction(async (trx) => {
        await trx.raw('select pg_sleep(0.05), ?::text as canary', [CANARY]);
      }),
    );
    const line = log.lines().find((l) => l.message === 'slow query' && String(l.sql).includes('pg_sleep'));
    expect(line).toMatchObject({ level: 'warn', request_id: 'r-tx' });
    expect(log.raw()).not.toContain(CANARY);
  });

  it('fast queries are not logged at the default threshold', async () => {
    const log = captureLogger('database');
    const db = dbs.create({ url: pgUrl(pg.schema), logger: log.logger });
    await db.knex.raw('select 1');
    expect(log.lines().filter((l) => l.message === 'slow query')).toEqual([]);
  });
});

describe('leak warning', () => {
  it('a connection held past leakWarningMs is reported once', async () => {
    const log = captureLogger('database');
    const db = dbs.create({ url: pgUrl(pg.schema), leakWarningMs: 100, logger: log.logger });
    await db.transaction(async (trx) => {
      await trx.raw('select 1');
      await sleep(300);
    });
    await sleep(150);
    const leaks = log
      .lines()
      .filter((l) => typeof l.message === 'string' && l.message.includes('possible leak'));
    expect(leaks).toHaveLength(1);
    expect(leaks[0]).toMatchObject({ level: 'warn', threshold_ms: 100 });
    expect(leaks[0]?.held_ms).toBeGreaterThanOrEqual(100);
  });

  it('a connection that is leaked again after being returned is reported again', async () => {
    const log = captureLogger('database');
    // max 1: the second hold reuses the very same pooled connection.
    const db = dbs.create({
      url: pgUrl(pg.schema),
      leakWarningMs: 100,
      pool: { max: 1 },
      logger: log.logger,
    });
    const hold = async (): Promise<void> => {
      await db.transaction(async (trx) => {
        await trx.raw('select 1');
        await sleep(300);
      });
    };
    await hold();
    expect(log.lines().filter((l) => String(l.message).includes('possible leak'))).toHaveLength(1);
    await hold();
    await sleep(150);
    expect(log.lines().filter((l) => String(l.message).includes('possible leak'))).toHaveLength(2);
  });

  it('short use is not reported', async () => {
    const log = captureLogger('database');
    const db = dbs.create({ url: pgUrl(pg.schema), leakWarningMs: 200, logger: log.logger });
    for (let i = 0; i < 5; i++) await db.transaction((trx) => trx.raw('select 1'));
    await sleep(300);
    expect(log.lines().filter((l) => String(l.message).includes('leak'))).toEqual([]);
  });
});

describe("knex's own messages", () => {
  it('a refused connection is not printed on the console by Knex (that would bypass the structured, redacted logger)', async () => {
    const spies = (['log', 'warn', 'error', 'info', 'debug'] as const).map((m) =>
      jest.spyOn(console, m).mockImplementation(() => undefined),
    );
    try {
      const log = captureLogger('database');
      const port = await closedPort();
      const db = dbs.create({ url: `postgres://postgres@127.0.0.1:${port}/test`, logger: log.logger });
      await expect(db.knex.raw('select 1')).rejects.toMatchObject({ code: 'ECONNREFUSED' });
      const printed = spies.flatMap((s) => s.mock.calls.map((args) => args.map(String).join(' ')));
      expect(printed).toEqual([]);
    } finally {
      for (const s of spies) s.mockRestore();
    }
  });
});

describe('read replicas', () => {
  async function seeded(): Promise<{ primary: string; replica: string }> {
    const primary = `sqlite://${sqliteFile()}`;
    const replica = `sqlite://${sqliteFile()}`;
    for (const [url, where] of [
      [primary, 'primary'],
      [replica, 'replica'],
    ] as const) {
      const seed = core.createDatabase({ url, settings: TEST_SETTINGS });
      await seed.knex.schema.createTable('place', (t) => {
        t.string('name');
      });
      await seed.knex('place').insert({ name: where });
      await seed.close();
    }
    return { primary, replica };
  }

  it('SQLite: reader reads the replica outside transactions, the primary inside; writes go to the primary', async () => {
    const { primary, replica } = await seeded();
    const db = dbs.create({ url: primary, replicas: [replica] });
    expect(await db.reader('place').select('name')).toEqual([{ name: 'replica' }]);
    expect(await db.knex('place').select('name')).toEqual([{ name: 'primary' }]);
    await db.transaction(async (trx) => {
      expect(db.reader).toBe(trx);
      expect(await db.reader('place').select('name')).toEqual([{ name: 'primary' }]);
      await db.current()('place').insert({ name: 'written' });
    });
    await db.knex('place').insert({ name: 'written-too' });
    expect(await db.knex('place').select('name').orderBy('name')).toEqual([
      { name: 'primary' },
      { name: 'written' },
      { name: 'written-too' },
    ]);
    expect(await db.reader('place').select('name')).toEqual([{ name: 'replica' }]);
  });

  it('PostgreSQL: two schemas as primary and replica', async () => {
    const replicaSchema = `${pg.schema}_r`;
    await pg.pool.query(`DROP SCHEMA IF EXISTS ${replicaSchema} CASCADE; CREATE SCHEMA ${replicaSchema}`);
    await pg.pool.query(
      `CREATE TABLE ${pg.schema}.place (name text); INSERT INTO ${pg.schema}.place VALUES ('primary')`,
    );
    await pg.pool.query(
      `CREATE TABLE ${replicaSchema}.place (name text); INSERT INTO ${replicaSchema}.place VALUES ('replica')`,
    );
    try {
      const db = dbs.create({ url: pgUrl(pg.schema), replicas: [pgUrl(replicaSchema)] });
      expect(await db.reader('place').select('name')).toEqual([{ name: 'replica' }]);
      const inside = await db.transaction(() => db.reader('place').select('name'));
      expect(inside).toEqual([{ name: 'primary' }]);
      await db.close();
    } finally {
      await pg.pool.query(`DROP SCHEMA ${replicaSchema} CASCADE; DROP TABLE ${pg.schema}.place`);
    }
  });

  it('reads rotate over several replicas', async () => {
    const { primary, replica } = await seeded();
    const other = `sqlite://${sqliteFile()}`;
    const seed = core.createDatabase({ url: other, settings: TEST_SETTINGS });
    await seed.knex.schema.createTable('place', (t) => {
      t.string('name');
    });
    await seed.knex('place').insert({ name: 'replica-2' });
    await seed.close();
    const db = dbs.create({ url: primary, replicas: [replica, other] });
    const seen = new Set<string>();
    for (let i = 0; i < 4; i++) {
      const rows: { name: string }[] = await db.reader('place').select('name');
      seen.add(rows[0]!.name);
    }
    expect([...seen].sort()).toEqual(['replica', 'replica-2']);
  });
});

describe('statement timeout', () => {
  function timeoutApp(db: core.Database, sql: string): ReturnType<typeof import('express')> {
    const express = require('express') as typeof import('express');
    const app = express();
    app.use(core.requestContext());
    app.get(
      '/slow',
      core.asyncHandler(async (_req, res) => {
        await db.knex.raw(sql);
        res.json({ ok: true });
      }),
    );
    app.use(core.errors({ logger: captureLogger('errors').logger, settings: TEST_SETTINGS }));
    return app;
  }

  it('PostgreSQL: statementTimeoutMs 200 stops pg_sleep(2) quickly and errors() answers 504 TIMEOUT', async () => {
    const db = dbs.create({ url: pgUrl(pg.schema), statementTimeoutMs: 200 });
    const start = Date.now();
    await expect(db.knex.raw('select pg_sleep(2)')).rejects.toMatchObject({ code: '57014' });
    expect(Date.now() - start).toBeLessThan(1500);

    const res = await request(timeoutApp(db, 'select pg_sleep(2)')).get('/slow');
    expect(res.status).toBe(504);
    expect(res.body).toMatchObject({ success: false, error_code: 'TIMEOUT' });
    expect(JSON.stringify(res.body)).not.toMatch(/pg_sleep|statement timeout/);
    // The connection is still usable afterwards.
    expect((await db.healthCheck()).status).toBe('healthy');
  });

  it('MariaDB: statementTimeoutMs 200 stops a slow statement quickly and errors() answers 504 TIMEOUT', async () => {
    const db = dbs.create({ url: mariaUrl(maria.database), statementTimeoutMs: 200 });
    const start = Date.now();
    // MariaDB answers errno 1969 / SQLSTATE 70100 "max_statement_time exceeded" (mysql2 has no code name for it).
    await expect(db.knex.raw('select sleep(2)')).rejects.toMatchObject({ errno: 1969, sqlState: '70100' });
    expect(Date.now() - start).toBeLessThan(1500);
    const res = await request(timeoutApp(db, 'select sleep(2)')).get('/slow');
    expect(Date.now() - start).toBeLessThan(1500);
    expect(res.status).toBe(504);
    expect(res.body).toMatchObject({ success: false, error_code: 'TIMEOUT' });
  });
});

describe('createDatabase(settings) and settings-driven behaviour', () => {
  it('accepts a Settings object directly, as the seed does', async () => {
    const settings = core.loadSettings({ NODE_ENV: 'test', DATABASE_URL: 'sqlite::memory:' });
    const db = core.createDatabase(settings);
    try {
      expect(db.dialect).toBe('sqlite');
      expect((await db.healthCheck()).status).toBe('healthy');
    } finally {
      await db.close();
    }
  });

  it('reports an explicit pool.max as the whole pool, not the seed split', async () => {
    const db = core.createDatabase({
      url: PG_URL,
      pool: { max: 3 },
      settings: core.loadSettings({ NODE_ENV: 'test' }),
    });
    try {
      expect(db.poolStats()).toMatchObject({ size: 3, maxOverflow: 0, max: 3 });
    } finally {
      await db.close();
    }
  });

  it('DATABASE_ECHO logs every statement at debug with its SQL text and never the bound values', async () => {
    const captured = captureLogger('database');
    const settings = core.loadSettings({ NODE_ENV: 'test', DATABASE_ECHO: 'true' });
    const db = core.createDatabase({ url: 'sqlite::memory:', settings, logger: captured.logger });
    try {
      await db.knex.raw('select ? as v', ['canary-078-05-1120-value']);
      const lines = captured.lines().filter((l) => l.message === 'query');
      expect(lines.length).toBeGreaterThan(0);
      expect(lines[0]).toMatchObject({ level: 'debug', sql: 'select ? as v' });
      expect(captured.raw()).not.toContain('canary');
    } finally {
      await db.close();
    }
  });

  it('BaseRepository refuses a defaultSort on a column that is not sortable, at construction', async () => {
    const db = core.createDatabase({
      url: 'sqlite::memory:',
      settings: core.loadSettings({ NODE_ENV: 'test' }),
    });
    try {
      expect(
        () => new core.BaseRepository(db, { table: 'x', defaultSort: [{ field: 'name', direction: 'asc' }] }),
      ).toThrow(/BaseRepository: defaultSort must be sortable columns/);
    } finally {
      await db.close();
    }
  });
});

describe('errors of a closed Database', () => {
  it('answer 503 SERVICE_UNAVAILABLE through errors(), not 500', async () => {
    const db = core.createDatabase({
      url: 'sqlite::memory:',
      settings: core.loadSettings({ NODE_ENV: 'test' }),
    });
    await db.close();
    const err: unknown = await db.knex.raw('select 1').then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(core.toAppError(err)).toMatchObject({ status: 503, code: 'SERVICE_UNAVAILABLE' });
  });

  it('an operator that does not fit the column type on PostgreSQL is a 400, not a 500', async () => {
    const db = core.createDatabase({ url: PG_URL, settings: core.loadSettings({ NODE_ENV: 'test' }) });
    try {
      const err: unknown = await db.knex.raw("select now() ilike '%19%'").then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(core.toAppError(err)).toMatchObject({ status: 400, code: 'INVALID_INPUT' });
    } finally {
      await db.close();
    }
  });
});
