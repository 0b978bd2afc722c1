/**
 * One `core.Database` per SQL dialect, isolated per jest worker: PostgreSQL in a schema of its own,
 * MariaDB in a database of its own, SQLite in memory. Dropped in `close()`. A service that is down
 * fails the suite with how to start it (never a skip).
 */
import * as core from '../../lib/index';
import { mariaDatabase, pgSchema } from './isolated';

export type DialectName = 'postgres' | 'sqlite' | 'mysql';

/** For `describe.each(DIALECTS)`. */
export const DIALECTS: readonly DialectName[] = ['postgres', 'sqlite', 'mysql'];

export const TEST_SETTINGS = core.loadSettings({ NODE_ENV: 'test' });

export interface DialectFixture {
  dialect: DialectName;
  db: core.Database;
  /** Closes the Database, then drops the schema/database. Idempotent. */
  close(): Promise<void>;
}

/** A logger with no destination: slow-query and leak warnings are not the subject of these suites. */
function silentLogger(): core.Logger {
  return core.createLogger('database', { console: false, settings: TEST_SETTINGS });
}

function open(url: string): core.Database {
  return core.createDatabase({ url, settings: TEST_SETTINGS, logger: silentLogger() });
}

/** A Database on a schema (PostgreSQL) or database (MariaDB) of its own, dropped by `close()`. */
async function isolated(dialect: 'postgres' | 'mysql', prefix: string): Promise<DialectFixture> {
  const target = dialect === 'postgres' ? await pgSchema(prefix) : await mariaDatabase(prefix);
  const db = open(target.url);
  let closing: Promise<void> | undefined;
  return {
    dialect,
    db,
    close: () =>
      (closing ??= (async () => {
        await db.close();
        await target.drop();
      })()),
  };
}

/** A fresh, isolated Database of this dialect. `prefix` keeps the suites of one worker apart. */
export async function dialectDatabase(dialect: DialectName, prefix: string): Promise<DialectFixture> {
  switch (dialect) {
    case 'postgres':
    case 'mysql':
      return isolated(dialect, prefix);
    case 'sqlite': {
      const db = open('sqlite::memory:');
      return { dialect, db, close: () => db.close() };
    }
  }
}

/**
 * Registers `beforeAll`/`afterAll` in the current describe block and returns a getter for the
 * fixture (available once `beforeAll` has run).
 */
export function useDialect(dialect: DialectName, prefix: string): () => DialectFixture {
  let fixture: DialectFixture | undefined;
  beforeAll(async () => {
    fixture = await dialectDatabase(dialect, prefix);
  });
  afterAll(async () => {
    await fixture?.close();
  });
  return () => {
    if (fixture === undefined) throw new Error(`the ${dialect} fixture is not ready (used outside a test?)`);
    return fixture;
  };
}
