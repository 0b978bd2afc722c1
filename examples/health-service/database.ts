import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { Knex } from 'knex';
import type { AuditTrail, Database } from '../../lib/index';
import { audit } from '../../lib/index';
import * as createPatients from './migrations/20250601000000_create_patients';
import * as createUsers from './migrations/20250701000000_create_users';
import type { SeedOptions } from './seed';
import { seedDemo } from './seed';

/**
 * The demo's database when `DATABASE_URL` is not set: SQLite in memory. `npm ci && npm run demo`
 * needs no server and no file, and every start begins from the same 50 seed patients and demo
 * logins. Set
 * `DATABASE_URL=sqlite:./.data/demo.db` to keep data between runs, or a `postgres://` URL.
 */
export const DEFAULT_DATABASE_URL = 'sqlite::memory:';

interface Migration {
  up(knex: Knex): Promise<void>;
  down(knex: Knex): Promise<void>;
}

/** Every migration, in order. Add new files here as well as in `migrations/`. */
const MIGRATIONS: ReadonlyArray<readonly [string, Migration]> = [
  ['20250601000000_create_patients', createPatients],
  ['20250701000000_create_users', createUsers],
];

/**
 * A Knex migration source over the imported modules rather than a directory scan: the same under
 * tsx, jest's transform and a bundle, and the names in `knex_migrations` carry no file extension.
 */
export const migrationSource: Knex.MigrationSource<string> = {
  getMigrations: () => Promise.resolve(MIGRATIONS.map(([name]) => name)),
  getMigrationName: (name) => name,
  getMigration: (name) => {
    const found = MIGRATIONS.find(([n]) => n === name);
    if (found === undefined) return Promise.reject(new Error(`unknown migration ${name}`));
    return Promise.resolve(found[1]);
  },
};

export interface MigrateOptions {
  /**
   * The audit trail whose tables to create (`trail.migrate()`: its table, chain head and
   * append-only triggers). Default: a trail on `db` with the default table, `audit_events`, made
   * for this and closed again.
   */
  audit?: AuditTrail;
}

/**
 * Run every pending Knex migration, then create the audit trail's tables when missing. Returns the
 * names of the Knex migrations it ran.
 *
 * The audit tables are not a Knex migration: their schema (columns, the chain head row, triggers
 * per dialect) belongs to caduceus, and `trail.migrate()` is idempotent and safe for instances
 * starting at once, so it runs at every start and follows the library across upgrades. It needs
 * a `core.Database` (the dialect, its own transaction), which a Knex migration — run inside the
 * migration's transaction, or by the knex CLI with a bare Knex — does not have.
 */
export async function migrate(db: Database, options: Readonly<MigrateOptions> = {}): Promise<string[]> {
  const [, ran] = (await db.knex.migrate.latest({ migrationSource })) as [number, string[]];
  if (options.audit !== undefined) {
    await options.audit.migrate();
  } else {
    const trail = audit({ db, metrics: false });
    try {
      await trail.migrate();
    } finally {
      await trail.close(); // nothing was recorded: resolves at once
    }
  }
  return ran;
}

/**
 * Migrate (the audit tables too), then seed what is empty: the demo logins and the 50 sample
 * patients (see `seedDemo()`). Returns the migrations run and how many patients and users were seeded.
 */
export async function prepareDatabase(
  db: Database,
  options: Readonly<SeedOptions & MigrateOptions> = {},
): Promise<{ migrations: string[]; seeded: number; users: number }> {
  const migrations = await migrate(db, options.audit === undefined ? {} : { audit: options.audit });
  const { patients, users } = await seedDemo(db.knex, options);
  return { migrations, seeded: patients, users };
}

/** For a file-backed SQLite URL (`sqlite:./.data/demo.db`), create the directory the file goes in. */
export function ensureSqliteDirectory(url: string): void {
  if (!/^sqlite:/i.test(url)) return;
  const rest = url.slice('sqlite:'.length).replace(/^\/\//, '');
  if (rest === ':memory:' || rest === '' || rest.startsWith(':memory:')) return;
  mkdirSync(dirname(resolve(rest)), { recursive: true });
}

/** The URL without its password (`postgres://user:***@host/db`), for the startup banner. */
export function redactUrl(url: string): string {
  if (/^sqlite:/i.test(url) || !URL.canParse(url)) return url;
  const u = new URL(url);
  if (u.password !== '') u.password = '***';
  return u.toString();
}
