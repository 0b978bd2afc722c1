/**
 * createDatabase() reports its pool and its queries: real PostgreSQL, MariaDB and SQLite, read the
 * way Prometheus reads them (at scrape time), removed on close().
 */
import * as core from '../../lib/index';
import { TEST_SETTINGS } from '../support/dialects';
import { mariaDatabase, pgSchema } from '../support/isolated';
import { samples, testMetrics, valueOf } from '../support/metrics';

const logger = core.createLogger('database', { console: false, settings: TEST_SETTINGS });

interface Target {
  url: string;
  drop(): Promise<void>;
}

const DIALECTS: readonly [string, () => Promise<Target>][] = [
  ['postgres', () => pgSchema('dbm')],
  ['mysql', () => mariaDatabase('dbm')],
  ['sqlite', () => Promise.resolve({ url: 'sqlite::memory:', drop: () => Promise.resolve() })],
];

describe.each(DIALECTS)('createDatabase() metrics on %s', (dialect, make) => {
  let target: Target;
  let metrics: core.Metrics;
  let db: core.Database;

  beforeEach(async () => {
    target = await make();
    metrics = testMetrics();
    db = core.createDatabase({
      url: target.url,
      settings: TEST_SETTINGS,
      logger,
      metrics,
      pool: dialect === 'sqlite' ? undefined : { min: 0, max: 2 },
    });
    await db.knex.schema.createTable('items', (t) => {
      t.increments('id');
      t.string('name').notNullable().unique();
    });
  });
  afterEach(async () => {
    await db.close();
    await target.drop();
  });

  test('query durations by operation and outcome, never the SQL or its values', async () => {
    await db.knex('items').insert({ name: 'alpha-078-05-1120' });
    await db.knex('items').insert({ name: 'beta' });
    await db.knex('items').where({ name: 'beta' }).first();
    await db.knex('items').select('*');
    await db.knex('items').where({ name: 'beta' }).update({ name: 'gamma' });
    await db.knex('items').where({ name: 'gamma' }).del();
    await db.knex.raw('select 1 as one');
    await db.knex.raw('create index items_by_name_again on items (name)');
    // The driver's error may come from another realm (a native module is loaded once per process):
    // check its shape, not `instanceof Error`.
    await expect(db.knex('items').insert({ name: 'alpha-078-05-1120' })).rejects.toHaveProperty('message');

    const count = (operation: string, status: string) =>
      valueOf(
        metrics,
        'db_query_duration_seconds',
        { pool: 'primary', operation, status },
        'db_query_duration_seconds_count',
      );
    // Statements that are none of the four (DDL here) are `other`.
    expect(await count('insert', 'ok')).toBe(2);
    expect(await count('insert', 'error')).toBe(1);
    expect(await count('select', 'ok')).toBe(3);
    expect(await count('update', 'ok')).toBe(1);
    expect(await count('delete', 'ok')).toBe(1);
    expect(await count('other', 'ok')).toBe(1);
    const sum = await valueOf(
      metrics,
      'db_query_duration_seconds',
      { operation: 'insert', status: 'ok' },
      'db_query_duration_seconds_sum',
    );
    expect(sum).toBeGreaterThan(0);
    const text = await metrics.render();
    expect(text).not.toContain('078-05-1120');
    expect(text).not.toContain('items');
  });

  test('pool gauges are read at scrape time: a held connection shows as used, a waiting caller as pending', async () => {
    const max = dialect === 'sqlite' ? 1 : 2;
    expect(await valueOf(metrics, 'db_pool_max_connections', { pool: 'primary' })).toBe(max);
    let release!: () => void;
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    const transactions = Array.from({ length: max }, () =>
      db.transaction(async (trx) => {
        await trx.raw('select 1 as one');
        await held;
      }),
    );
    // One more caller than the pool holds: it waits.
    const waiting = db.transaction(async (trx) => {
      await trx.raw('select 1 as one');
    });
    await waitUntil(async () => (await valueOf(metrics, 'db_pool_connections', { state: 'used' })) === max);
    await waitUntil(
      async () => ((await valueOf(metrics, 'db_pool_connections', { state: 'pending' })) ?? 0) >= 1,
    );
    release();
    await Promise.all([...transactions, waiting]);
    await waitUntil(async () => (await valueOf(metrics, 'db_pool_connections', { state: 'used' })) === 0);
    expect(await valueOf(metrics, 'db_pool_connections', { state: 'pending' })).toBe(0);
  });

  test('close() removes its series; metrics: false reports nothing', async () => {
    expect((await samples(metrics, 'db_pool_connections')).length).toBeGreaterThan(0);
    await db.close();
    expect(await samples(metrics, 'db_pool_connections')).toEqual([]);
    expect(await samples(metrics, 'db_pool_max_connections')).toEqual([]);

    const other = testMetrics();
    const quiet = core.createDatabase({
      url: 'sqlite::memory:',
      settings: TEST_SETTINGS,
      logger,
      metrics: false,
    });
    await quiet.knex.raw('select 1');
    await quiet.close();
    expect(await other.render()).not.toContain('db_');
  });
});

describe('createDatabase() metrics options', () => {
  test('name labels the pool; replicas are <name>_replica_<n>; bad names are ConfigErrors', async () => {
    const metrics = testMetrics();
    const db = core.createDatabase({
      url: 'sqlite::memory:',
      replicas: ['sqlite::memory:'],
      name: 'records',
      settings: TEST_SETTINGS,
      logger,
      metrics,
    });
    try {
      await db.reader.raw('select 1');
      const pools = new Set((await samples(metrics, 'db_pool_max_connections')).map((s) => s.labels.pool));
      expect([...pools].sort()).toEqual(['records', 'records_replica_1']);
    } finally {
      await db.close();
    }
    for (const name of ['', 'has space', 'x'.repeat(65), 42])
      expect(() =>
        core.createDatabase({
          url: 'sqlite::memory:',
          settings: TEST_SETTINGS,
          logger,
          name: name as string,
        }),
      ).toThrow(core.ConfigError);
  });
});

async function waitUntil(check: () => Promise<boolean>, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}
