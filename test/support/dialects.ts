/**
 * One `core.Database` per SQL dialect, isolated per jest worker: PostgreSQL in a schema of its own,
 * MariaDB in a database of its own, SQLite in memory. Dropped in `close()`. A service that is down
 * fails the suite with how to start it (never a skip).
 */
import mysql from 'mysql2/promise';
import { Pool } from 'pg';
import * as core from '../../lib/index';
import { PG_URL, requireService, workerSchema } from './services';

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

async function postgres(prefix: string): Promise<DialectFixture> {
  await requireService('PostgreSQL', '127.0.0.1', 5432);
  const schema = workerSchema(prefix);
  const admin = new Pool({ connectionString: PG_URL, max: 1 });
  try {
    await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE; CREATE SCHEMA ${schema}`);
  } finally {
    await admin.end();
  }
  const db = open(`${PG_URL}?options=-c%20search_path%3D${schema}`);
  let closing: Promise<void> | undefined;
  return {
    dialect: 'postgres',
    db,
    close: () =>
      (closing ??= (async () => {
        await db.close();
        const drop = new Pool({ connectionString: PG_URL, max: 1 });
        try {
          await drop.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
        } finally {
          await drop.end();
        }
      })()),
  };
}

async function mariadb(prefix: string): Promise<DialectFixture> {
  await requireService('MariaDB', '127.0.0.1', 3306);
  const database = workerSchema(prefix);
  const admin = await mysql.createConnection({ host: '127.0.0.1', port: 3306, user: 'root' });
  try {
    await admin.query(`DROP DATABASE IF EXISTS ${database}`);
    await admin.query(`CREATE DATABASE ${database} CHARACTER SET utf8mb4`);
  } finally {
    await admin.end();
  }
  const db = open(`mysql://root@127.0.0.1:3306/${database}`);
  let closing: Promise<void> | undefined;
  return {
    dialect: 'mysql',
    db,
    close: () =>
      (closing ??= (async () => {
        await db.close();
        const drop = await mysql.createConnection({ host: '127.0.0.1', port: 3306, user: 'root' });
        try {
          await drop.query(`DROP DATABASE IF EXISTS ${database}`);
        } finally {
          await drop.end();
        }
      })()),
  };
}

/** A fresh, isolated Database of this dialect. `prefix` keeps the suites of one worker apart. */
export async function dialectDatabase(dialect: DialectName, prefix: string): Promise<DialectFixture> {
  switch (dialect) {
    case 'postgres':
      return postgres(prefix);
    case 'mysql':
      return mariadb(prefix);
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
