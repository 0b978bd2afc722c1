/**
 * Helpers for the example acceptance tests: quiet loggers whose lines the test can read, and the
 * example service's database on SQLite, PostgreSQL or MariaDB, isolated per jest worker.
 */
import TransportStream from 'winston-transport';
import type { Database, Logger, Settings } from '../../lib/index';
import { createDatabase, createLogger } from '../../lib/index';
import { migrate, prepareDatabase } from '../../examples/health-service/database';
import { seedPatients } from '../../examples/health-service/seed';
import { mariaDatabase, pgSchema } from '../support/isolated';

export { pgSchema } from '../support/isolated';

const MESSAGE = Symbol.for('message');

export type LogLine = Record<string, unknown>;

/** A winston transport keeping each final (redacted, serialised) line, as a file would receive it. */
class CaptureTransport extends TransportStream {
  readonly #lines: LogLine[];

  constructor(lines: LogLine[]) {
    super();
    this.#lines = lines;
  }

  override log(info: Record<string | symbol, unknown>, callback: () => void): void {
    this.#lines.push(JSON.parse(String(info[MESSAGE])) as LogLine);
    callback();
  }
}

export interface CapturedLogs {
  lines: LogLine[];
  /** Pass as `createLogger` to the example's `createApp()`. */
  createLogger: (name: string) => Logger;
  /** Every captured line joined, for "appears nowhere" checks. */
  text: () => string;
}

/** No console output; every line of every logger lands in `lines`. */
export function captureLogs(settings: Settings): CapturedLogs {
  const lines: LogLine[] = [];
  return {
    lines,
    createLogger: (name) =>
      createLogger(name, {
        settings,
        console: false,
        format: 'json',
        transports: [new CaptureTransport(lines)],
      }),
    text: () => lines.map((l) => JSON.stringify(l)).join('\n'),
  };
}

/** Access lines are written on `finish`, which can land just after the client has the response. */
export async function waitFor<T>(probe: () => T | undefined, timeoutMs = 2000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`waitFor: nothing after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

export type ExampleDialect = 'sqlite' | 'postgres' | 'mysql';

export interface ServiceDatabase {
  /** The database of the current test: migrated, holding exactly the 50 seed patients. */
  db: () => Database;
  /** Every line the database's logger wrote (slow queries are logged from 1 ms, so most queries are). */
  logs: CapturedLogs;
}

/**
 * The example service's database for the tests of the current describe block. SQLite: a fresh
 * `sqlite::memory:` database per test (migrated and seeded). PostgreSQL and MariaDB: one schema
 * (database) per block, migrated once; before each test the table is emptied and reseeded.
 */
export function useServiceDatabase(
  dialect: ExampleDialect,
  prefix: string,
  settings: Settings,
): ServiceDatabase {
  const logs = captureLogs(settings);
  const open = (url: string): Database =>
    createDatabase({ url, settings, logger: logs.createLogger('database'), slowQueryMs: 1 });
  let current: Database | undefined;
  let drop: (() => Promise<void>) | undefined;

  if (dialect === 'sqlite') {
    beforeEach(async () => {
      current = open('sqlite::memory:');
      await prepareDatabase(current);
    });
    afterEach(async () => {
      await current?.close();
      current = undefined;
    });
  } else {
    beforeAll(async () => {
      const target = dialect === 'postgres' ? await pgSchema(prefix) : await mariaDatabase(prefix);
      drop = () => target.drop();
      current = open(target.url);
      await migrate(current);
    });
    beforeEach(async () => {
      const db = current!;
      await db.knex('patients').del();
      await seedPatients(db.knex);
    });
    afterAll(async () => {
      await current?.close();
      await drop?.();
    });
  }
  return {
    logs,
    db: () => {
      if (current === undefined)
        throw new Error(`the ${dialect} database is not ready (used outside a test?)`);
      return current;
    },
  };
}
