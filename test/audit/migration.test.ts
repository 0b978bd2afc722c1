/**
 * The Knex migration the package ships (`migrations/*_caduceus_audit_events.cjs`, built on
 * `core.auditMigration()`), run through `knex.migrate` on every dialect: it creates what
 * `trail.migrate()` would, a trail writes and verifies on it, and `rollback` removes it.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Knex } from 'knex';
import * as core from '../../lib/index';
import { DIALECTS, TEST_SETTINGS, useDialect } from '../support/dialects';

const DIR = join(__dirname, '..', '..', 'migrations');
const FILE = readdirSync(DIR).find((f) => f.endsWith('_caduceus_audit_events.cjs'));

/** Knex's migration source over the shipped file, loaded as a user's `knex migrate` would load it. */
const source: Knex.MigrationSource<string> = {
  getMigrations: () => Promise.resolve(FILE === undefined ? [] : [FILE]),
  getMigrationName: (name) => name,
  getMigration: (name) => Promise.resolve(require(join(DIR, name)) as Knex.Migration),
};

describe.each(DIALECTS)('the shipped audit migration on %s', (dialect) => {
  const fixture = useDialect(dialect, 'auditmig');

  it('creates the append-only table a trail writes and verifies, and rolls back', async () => {
    expect(FILE).toBeDefined();
    const { db } = fixture();
    await db.knex.migrate.latest({ migrationSource: source, tableName: 'knex_migrations_audit' });
    expect(await db.knex.schema.hasTable('audit_events')).toBe(true);

    const trail = core.audit({ db, settings: TEST_SETTINGS, metrics: false });
    try {
      trail.record({ action: 'export', resourceType: 'Patient', resourceId: '7', patientId: '7' });
      trail.record({ action: 'read', resourceType: 'Patient', resourceId: '8', patientId: '8' });
      await trail.flush();
      await trail.migrate(); // the same schema: nothing to do, nothing lost
      expect((await trail.query({ patientId: '7' })).events.map((e) => e.action)).toEqual(['export']);
      expect(await core.verifyAuditChain(db)).toEqual({ ok: true, checked: 2, brokenAt: null });
      // toMatchObject, not toThrow: better-sqlite3's errors come from the realm of the first test
      // file that loaded the native module, so they are not `instanceof Error` here.
      const refused = { message: expect.stringMatching(/append-only/) as unknown };
      await expect(db.knex('audit_events').update({ action: 'delete' })).rejects.toMatchObject(refused);
      await expect(db.knex('audit_events').delete()).rejects.toMatchObject(refused);
    } finally {
      await trail.close();
    }

    await db.knex.migrate.rollback({ migrationSource: source, tableName: 'knex_migrations_audit' }, true);
    expect(await db.knex.schema.hasTable('audit_events')).toBe(false);
    expect(await db.knex.schema.hasTable('audit_events_head')).toBe(false);
  });
});

describe('auditMigration options', () => {
  it('refuses a table name that is not an identifier', () => {
    expect(() => core.auditMigration({ table: 'audit; DROP TABLE x' })).toThrow(core.ConfigError);
    expect(() => core.auditMigration({ table: 'audit; DROP TABLE x' })).toThrow(/table/);
  });
});
