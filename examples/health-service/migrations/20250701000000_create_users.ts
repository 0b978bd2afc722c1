import type { Knex } from 'knex';

/**
 * The `users` table (logins) and `patients.provider_id` (which provider a patient is assigned to).
 * A patient's login points at their record (`users.patient_id`, unique); a patient points at their
 * provider's login (`patients.provider_id`). The two foreign keys go in opposite directions, so the
 * second is added after both tables exist. On SQLite, Knex adds a foreign key by rebuilding the
 * table, indexes included.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('users', (t) => {
    t.string('id', 36).primary();
    // Stored trimmed and lower-cased, so the unique index is case-insensitive on every dialect.
    t.string('email', 254).notNullable().unique();
    t.string('name', 100).notNullable();
    // `$scrypt$n=…,r=…,p=…$salt$hash` from core.hashPassword(); hidden by the repository.
    t.string('password_hash', 255).notNullable();
    // Comma-separated: admin, provider, patient.
    t.string('roles', 100).notNullable();
    t.string('patient_id', 36).nullable().unique();
    t.datetime('created_at', { precision: 3 }).notNullable();
    t.datetime('updated_at', { precision: 3 }).notNullable();

    t.foreign('patient_id', 'users_patient_id_fk').references('id').inTable('patients');
  });
  await knex.schema.alterTable('patients', (t) => {
    t.string('provider_id', 36).nullable();
    t.foreign('provider_id', 'patients_provider_id_fk').references('id').inTable('users');
    // A provider's list: the scope, then the default sort, then the id.
    t.index(['provider_id', 'family_name', 'given_name', 'id'], 'patients_provider_idx');
  });
}

export async function down(knex: Knex): Promise<void> {
  // Unlink both ways first. SQLite drops the column by rebuilding `patients`, and inside the
  // migration's transaction it cannot turn foreign keys off: no row may point across meanwhile.
  await knex('users').update({ patient_id: null });
  await knex('patients').update({ provider_id: null });
  await knex.schema.alterTable('patients', (t) => {
    t.dropForeign(['provider_id'], 'patients_provider_id_fk');
    t.dropIndex(['provider_id', 'family_name', 'given_name', 'id'], 'patients_provider_idx');
    t.dropColumn('provider_id');
  });
  await knex.schema.dropTableIfExists('users');
}
