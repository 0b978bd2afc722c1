import type { Knex } from 'knex';

/**
 * The `patients` table. Written for every dialect caduceus supports: `datetime(3)` is `timestamptz(3)`
 * on PostgreSQL and `datetime(3)` on MariaDB/MySQL (no implicit `ON UPDATE` as `timestamp` can have
 * there); SQLite stores what Knex binds. Every index that keyset pages sort by ends with `id`.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('patients', (t) => {
    // UUIDs from the application (crypto.randomUUID): not guessable, the same on every dialect.
    t.string('id', 36).primary();
    t.string('mrn', 20).notNullable().unique();
    t.string('family_name', 100).notNullable();
    t.string('given_name', 100).notNullable();
    t.date('birth_date').notNullable();
    t.string('sex', 10).notNullable().defaultTo('unknown');
    t.string('status', 10).notNullable().defaultTo('active');
    // Hidden by the repository: never in a response, a log line or an event.
    t.string('ssn', 11).nullable();
    t.integer('version').notNullable().defaultTo(1);
    t.datetime('created_at', { precision: 3 }).notNullable();
    t.datetime('updated_at', { precision: 3 }).notNullable();
    t.datetime('deleted_at', { precision: 3 }).nullable();

    t.index(['family_name', 'given_name', 'id'], 'patients_name_idx');
    t.index(['status', 'id'], 'patients_status_idx');
    t.index(['birth_date', 'id'], 'patients_birth_date_idx');
    t.index(['created_at', 'id'], 'patients_created_at_idx');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('patients');
}
