/**
 * Shared by the audit-trail suites: a clinical schema (patients, observations) with repositories
 * audited or not, and the stored audit rows read back through plain SQL, normalised across the
 * three dialects (PostgreSQL returns bigints as strings, SQLite and MariaDB return JSON as text).
 */
import * as core from '../../lib/index';
import { TEST_SETTINGS } from '../support/dialects';

/** A logger that writes nowhere: the operational log is not the subject of these suites. */
export function silentLogger(name: string): core.Logger {
  return core.createLogger(name, { console: false, settings: TEST_SETTINGS });
}

export interface Patient {
  id: number;
  mrn: string;
  family_name: string;
  birth_date: string;
}
export type PatientCreate = Omit<Patient, 'id'>;

export interface Observation {
  id: number;
  patient_id: number;
  code: string;
  value: string;
}
export type ObservationCreate = Omit<Observation, 'id'>;

/** Values that are PHI: none of them may ever appear in an audit row. */
export const SECRET_FAMILY = 'Zebrowski-Quill';
export const SECRET_DOB = '1971-03-14';
export const SECRET_MRN_PREFIX = 'MRN-PHI-';
export const SECRET_VALUE = 'glucose-417-mmol';

export async function createClinicalTables(db: core.Database): Promise<void> {
  await db.knex.schema.dropTableIfExists('observations');
  await db.knex.schema.dropTableIfExists('patients');
  await db.knex.schema.dropTableIfExists('notes');
  await db.knex.schema.createTable('patients', (t) => {
    t.increments('id');
    t.string('mrn', 32).notNullable().unique();
    t.string('family_name', 64).notNullable();
    t.string('birth_date', 10).notNullable();
    t.datetime('created_at', { precision: 3 }).notNullable();
    t.datetime('updated_at', { precision: 3 }).notNullable();
  });
  await db.knex.schema.createTable('observations', (t) => {
    t.increments('id');
    t.integer('patient_id').notNullable();
    t.string('code', 32).notNullable();
    t.string('value', 64).notNullable();
    t.datetime('created_at', { precision: 3 }).notNullable();
    t.datetime('updated_at', { precision: 3 }).notNullable();
  });
  await db.knex.schema.createTable('notes', (t) => {
    t.increments('id');
    t.string('text', 64).notNullable();
    t.datetime('created_at', { precision: 3 }).notNullable();
    t.datetime('updated_at', { precision: 3 }).notNullable();
  });
}

type Audit = { trail: core.AuditTrail } | undefined;

export function patientRepository(
  db: core.Database,
  audit?: Audit,
): core.BaseRepository<Patient, PatientCreate> {
  return new core.BaseRepository<Patient, PatientCreate>(db, {
    table: 'patients',
    resource: 'Patient',
    filterable: ['mrn', 'family_name', 'birth_date'],
    types: { id: 'integer' },
    ...(audit === undefined
      ? {}
      : { audit: { trail: audit.trail, resourceType: 'Patient', patientIdColumn: 'id' } }),
  });
}

export function observationRepository(
  db: core.Database,
  audit?: Audit,
): core.BaseRepository<Observation, ObservationCreate> {
  return new core.BaseRepository<Observation, ObservationCreate>(db, {
    table: 'observations',
    resource: 'Observation',
    filterable: ['patient_id', 'code'],
    types: { id: 'integer', patient_id: 'integer' },
    ...(audit === undefined
      ? {}
      : { audit: { trail: audit.trail, resourceType: 'Observation', patientIdColumn: 'patient_id' } }),
  });
}

/** Patients whose family name is SECRET_FAMILY on even positions, so a search by it returns several. */
export function seedPatients(count: number, tag: string): PatientCreate[] {
  return Array.from({ length: count }, (_, i) => ({
    mrn: `${SECRET_MRN_PREFIX}${tag}-${i}`,
    family_name: i % 2 === 0 ? SECRET_FAMILY : `Other${i}`,
    birth_date: SECRET_DOB,
  }));
}

/** One audit row as stored, with types made the same on every dialect. */
export interface StoredEvent {
  seq: number;
  event_id: string;
  recorded_at: string;
  action: string;
  outcome: string;
  actor_id: string | null;
  actor_type: string;
  actor_roles: unknown;
  resource_type: string | null;
  resource_id: string | null;
  patient_id: string | null;
  patient_ids: unknown;
  request_id: string | null;
  trace_id: string | null;
  client_ip: string | null;
  user_agent: string | null;
  purpose_of_use: string | null;
  details: Record<string, unknown> | null;
  prev_hash: string;
  hash: string;
  /** The row exactly as the driver returned it. */
  raw: Record<string, unknown>;
}

function json(value: unknown): unknown {
  if (typeof value !== 'string') return value ?? null;
  try {
    return JSON.parse(value);
  } catch {
    return value;
  }
}

function text(value: unknown): string | null {
  if (value === null || value === undefined) return null;
  if (value instanceof Date) return value.toISOString();
  return typeof value === 'string' ? value : JSON.stringify(value);
}

function normalise(raw: Record<string, unknown>): StoredEvent {
  return {
    seq: Number(raw.seq),
    event_id: String(raw.event_id),
    recorded_at: text(raw.recorded_at) ?? '',
    action: String(raw.action),
    outcome: String(raw.outcome),
    actor_id: text(raw.actor_id),
    actor_type: String(raw.actor_type),
    actor_roles: json(raw.actor_roles),
    resource_type: text(raw.resource_type),
    resource_id: text(raw.resource_id),
    patient_id: text(raw.patient_id),
    patient_ids: json(raw.patient_ids),
    request_id: text(raw.request_id),
    trace_id: text(raw.trace_id),
    client_ip: text(raw.client_ip),
    user_agent: text(raw.user_agent),
    purpose_of_use: text(raw.purpose_of_use),
    details: json(raw.details) as Record<string, unknown> | null,
    prev_hash: String(raw.prev_hash),
    hash: String(raw.hash),
    raw,
  };
}

/** Every stored row of `table` (optionally where `column = value`), oldest first. */
export async function storedEvents(
  db: core.Database,
  table = 'audit_events',
  where: Record<string, string> = {},
): Promise<StoredEvent[]> {
  const rows = (await db.knex(table).where(where).orderBy('seq', 'asc')) as Record<string, unknown>[];
  return rows.map(normalise);
}

/** The error a call throws or its promise rejects with; a test failure when it succeeds. */
export async function failure(fn: () => unknown): Promise<unknown> {
  let result: unknown;
  try {
    result = await fn();
  } catch (err) {
    return err;
  }
  const shown = result === undefined ? 'undefined' : JSON.stringify(result);
  throw new Error(`expected an error, got ${shown}`);
}

/**
 * Turn the append-only guard off, as someone with DDL rights could: on PostgreSQL by disabling the
 * triggers by name, elsewhere by dropping them (their names are part of the documented contract).
 */
export async function dropGuard(db: core.Database, table: string): Promise<void> {
  if (db.dialect === 'postgres') {
    for (const name of ['no_update', 'no_delete', 'no_truncate']) {
      await db.knex.raw(`ALTER TABLE ?? DISABLE TRIGGER ??`, [table, `${table}_${name}`]);
    }
  } else {
    await db.knex.raw(`DROP TRIGGER ??`, [`${table}_no_update`]);
    await db.knex.raw(`DROP TRIGGER ??`, [`${table}_no_delete`]);
  }
}

/** An AuditTrail with no operational logging and no metrics unless asked. */
export function makeTrail(db: core.Database, options: Partial<core.AuditOptions> = {}): core.AuditTrail {
  return core.audit({
    db,
    logger: silentLogger('audit'),
    metrics: false,
    settings: TEST_SETTINGS,
    flushIntervalMs: 10,
    ...options,
  });
}
