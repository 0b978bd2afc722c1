/**
 * Helpers for the example acceptance tests: quiet loggers whose lines the test can read, and the
 * example service's database on SQLite, PostgreSQL or MariaDB, isolated per jest worker.
 */
import type { Knex } from 'knex';
import TransportStream from 'winston-transport';
import type { Auth, Database, Logger, PasswordHashOptions, Settings } from '../../lib/index';
import { createDatabase, createLogger, hashPassword } from '../../lib/index';
import { migrate } from '../../examples/health-service/database';
import type { DemoUser } from '../../examples/health-service/seed';
import { seedDemo } from '../../examples/health-service/seed';
import { claimsOf } from '../../examples/health-service/users';
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

/**
 * scrypt cost of every password the tests hash (seeded and created): the lowest `hashPassword()`
 * accepts, ~4 ms instead of ~100. Pass it to `createApp({ passwordHash })` too, so an unknown
 * email costs what a wrong password does.
 */
export const TEST_PASSWORD_HASH: PasswordHashOptions = { cost: 1024 };

/**
 * The seed's hasher for tests: `TEST_PASSWORD_HASH`, each password hashed once per process (the
 * demo logins share three passwords, and every test reseeds them).
 */
function seedHasher(): (password: string) => Promise<string> {
  const hashes = new Map<string, Promise<string>>();
  return (password) => {
    let hash = hashes.get(password);
    if (hash === undefined) {
      hash = hashPassword(password, TEST_PASSWORD_HASH);
      hashes.set(password, hash);
    }
    return hash;
  };
}

/** `Bearer <access token>` for a demo user, with the claims its login would get. */
export function bearer(auth: Auth, user: DemoUser): string {
  return `Bearer ${auth.createTokens(claimsOf(user)).access_token}`;
}

/** Empty the example's tables despite their foreign keys both ways (logins ↔ patients). */
export async function clearDemo(knex: Knex): Promise<void> {
  await knex('users').update({ patient_id: null });
  await knex('patients').del();
  await knex('users').del();
}

export interface ServiceDatabase {
  /** The database of the current test: migrated, holding exactly the 50 seed patients and the demo logins. */
  db: () => Database;
  /** Every line the database's logger wrote (slow queries are logged from 1 ms, so most queries are). */
  logs: CapturedLogs;
}

/**
 * The example service's database for the tests of the current describe block: SQLite in memory, a
 * PostgreSQL schema or a MariaDB database of this worker's own, migrated once; before each test
 * the tables are emptied and reseeded (the 50 patients and the demo logins).
 */
export function useServiceDatabase(
  dialect: ExampleDialect,
  prefix: string,
  settings: Settings,
): ServiceDatabase {
  const logs = captureLogs(settings);
  const hash = seedHasher();
  const open = (url: string): Database =>
    createDatabase({ url, settings, logger: logs.createLogger('database'), slowQueryMs: 1 });
  let current: Database | undefined;
  let drop: (() => Promise<void>) | undefined;

  beforeAll(async () => {
    if (dialect === 'sqlite') {
      current = open('sqlite::memory:');
    } else {
      const target = dialect === 'postgres' ? await pgSchema(prefix) : await mariaDatabase(prefix);
      drop = () => target.drop();
      current = open(target.url);
    }
    await migrate(current);
  });
  beforeEach(async () => {
    const db = current!;
    await clearDemo(db.knex);
    await seedDemo(db.knex, { hash });
  });
  afterAll(async () => {
    await current?.close();
    await drop?.();
  });
  return {
    logs,
    db: () => {
      if (current === undefined)
        throw new Error(`the ${dialect} database is not ready (used outside a test?)`);
      return current;
    },
  };
}
