import type { Knex } from 'knex';
import * as crypto from 'node:crypto';
import type { Database } from '../database/index.js';
import type { AppError } from '../errors/index.js';
import { ConfigError } from '../errors/index.js';
import { badQuery } from '../repository/filters.js';
import type { AuditEvent, AuditPage, AuditQuery, VerifyResult } from './types.js';
import { AUDIT_ACTIONS, AUDIT_OUTCOMES } from './types.js';

/** An event waiting to be written: column values (strings or null), and when it happened. */
export interface PendingRow {
  event_id: string;
  /** `Date.now()` of the access; written as `recorded_at` (ISO 8601) off the request path. */
  at: number;
  action: string;
  outcome: string;
  actor_id: string | null;
  actor_type: string;
  actor_roles: string;
  resource_type: string | null;
  resource_id: string | null;
  patient_id: string | null;
  patient_ids: string | null;
  request_id: string | null;
  trace_id: string | null;
  client_ip: string | null;
  user_agent: string | null;
  purpose_of_use: string | null;
  details: string | null;
}

interface StoredRow extends Omit<PendingRow, 'at'> {
  seq: number | string;
  recorded_at: string;
  prev_hash: string;
  hash: string;
}

export const GENESIS = '0'.repeat(64);
/** At most 40: the longest derived name (`<table>_patient_id_index`) must fit MySQL's 64 and PostgreSQL's 63. */
const TABLE = /^[A-Za-z_][A-Za-z0-9_]{0,39}$/;

export function checkTable(factory: string, table: unknown): string {
  if (typeof table !== 'string' || !TABLE.test(table))
    throw ConfigError.option(factory, 'table', 'a table name (letters, digits, _; at most 40)', table);
  return table;
}

/**
 * The text that is hashed: every column in a fixed order, as stored. Changing any of them, the
 * order or the previous hash changes the hash.
 */
function canonical(seq: number, row: StoredRow, prevHash: string): string {
  return JSON.stringify([
    String(seq),
    row.event_id,
    row.recorded_at,
    row.action,
    row.outcome,
    row.actor_id,
    row.actor_type,
    row.actor_roles,
    row.resource_type,
    row.resource_id,
    row.patient_id,
    row.patient_ids,
    row.request_id,
    row.trace_id,
    row.client_ip,
    row.user_agent,
    row.purpose_of_use,
    row.details,
    prevHash,
  ]);
}

/** SHA-256 as hex: Node's one-shot `crypto.hash` (20.12+) when there is one, else a Hash object. */
const sha256: (text: string) => string =
  typeof (crypto as { hash?: unknown }).hash === 'function'
    ? (text) =>
        (crypto as unknown as { hash(a: string, d: string, e: 'hex'): string }).hash('sha256', text, 'hex')
    : (text) => crypto.createHash('sha256').update(text).digest('hex');

/** The chain's hash: SHA-256, or HMAC-SHA256 under a key kept outside the database (then nobody without it can forge a link). */
export type ChainHash = (text: string) => string;

export function chainHash(key: string | Buffer | undefined): ChainHash {
  if (key === undefined) return sha256;
  return (text) => crypto.createHmac('sha256', key).update(text).digest('hex');
}

/** An HMAC key option, checked: at least 32 bytes. */
export function checkKey(factory: string, key: unknown): string | Buffer | undefined {
  if (key === undefined) return undefined;
  if ((typeof key !== 'string' && !Buffer.isBuffer(key)) || Buffer.byteLength(key) < 32)
    throw new ConfigError(`${factory}: hmacKey must be a string or Buffer of at least 32 bytes`);
  return key;
}

function hashOf(seq: number, row: StoredRow, prevHash: string, hash: ChainHash): string {
  return hash(canonical(seq, row, prevHash));
}

/** The canonical text of a pending event: the same array `canonical()` builds from a stored row. */
function pendingCanonical(seq: number, e: PendingRow, prevHash: string): string {
  return JSON.stringify([
    String(seq),
    e.event_id,
    new Date(e.at).toISOString(),
    e.action,
    e.outcome,
    e.actor_id,
    e.actor_type,
    e.actor_roles,
    e.resource_type,
    e.resource_id,
    e.patient_id,
    e.patient_ids,
    e.request_id,
    e.trace_id,
    e.client_ip,
    e.user_agent,
    e.purpose_of_use,
    e.details,
    prevHash,
  ]);
}

const COLUMNS: readonly (keyof StoredRow)[] = [
  'seq',
  'event_id',
  'recorded_at',
  'action',
  'outcome',
  'actor_id',
  'actor_type',
  'actor_roles',
  'resource_type',
  'resource_id',
  'patient_id',
  'patient_ids',
  'request_id',
  'trace_id',
  'client_ip',
  'user_agent',
  'purpose_of_use',
  'details',
  'prev_hash',
  'hash',
];

/** The dialect of a Knex instance, from its client name. */
function knexDialect(knex: Knex): Database['dialect'] {
  const client = (knex.client as { config?: { client?: unknown } }).config?.client;
  const name = typeof client === 'string' ? client : '';
  if (name === 'pg' || name === 'postgres' || name === 'postgresql' || name === 'pg-native')
    return 'postgres';
  if (name === 'mysql' || name === 'mysql2') return 'mysql';
  if (name === 'sqlite3' || name === 'better-sqlite3') return 'sqlite';
  throw new ConfigError(
    `audit: unsupported Knex client ${JSON.stringify(name)} (PostgreSQL, SQLite or MySQL/MariaDB)`,
  );
}

/** Create the table, its head row and the append-only guard when missing. Idempotent. */
export function migrateAudit(db: Database, table: string): Promise<void> {
  return createAuditSchema(db.knex, db.dialect, table);
}

/**
 * The audit table as a Knex migration, for applications that manage their schema with
 * `knex migrate` (the package ships one in `migrations/`). `down` drops the trail: history is lost.
 *
 * @example
 * // migrations/20261126000000_audit_events.js
 * module.exports = require('caduceus').auditMigration({ table: 'audit_events' });
 */
export function auditMigration(options: { table?: string } = {}): {
  up(knex: Knex): Promise<void>;
  down(knex: Knex): Promise<void>;
} {
  const table = checkTable('auditMigration', options.table ?? 'audit_events');
  return {
    up: (knex) => createAuditSchema(knex, knexDialect(knex), table),
    async down(knex) {
      const dialect = knexDialect(knex);
      if (dialect === 'mysql')
        for (const name of [`${table}_no_update`, `${table}_no_delete`, `${table}_head_no_delete`])
          await knex.raw('DROP TRIGGER IF EXISTS ??', [name]);
      await knex.schema.dropTableIfExists(table);
      await knex.schema.dropTableIfExists(`${table}_head`);
      if (dialect === 'postgres') await knex.raw('DROP FUNCTION IF EXISTS ??()', [`${table}_append_only`]);
    },
  };
}

async function createAuditSchema(knex: Knex, dialect: Database['dialect'], table: string): Promise<void> {
  const head = `${table}_head`;
  await knex.transaction(async (trx) => {
    // Two instances starting at once must not both create the table.
    if (dialect === 'postgres')
      await trx.raw('SELECT pg_advisory_xact_lock(hashtext(?))', [`caduceus.audit.${table}`]);
    if (dialect === 'mysql') {
      const [rows] = await trx.raw<[Record<string, unknown>[]]>('SELECT GET_LOCK(?, 30) AS got', [
        `caduceus.audit.${table}`,
      ]);
      if (Number(rows?.[0]?.got) !== 1)
        throw new Error(`audit: another instance is migrating ${table}; try again`);
    }
    try {
      await createTables(trx, dialect, table, head);
    } finally {
      if (dialect === 'mysql') await trx.raw('SELECT RELEASE_LOCK(?)', [`caduceus.audit.${table}`]);
    }
  });
}

async function createTables(
  trx: Knex.Transaction,
  dialect: Database['dialect'],
  table: string,
  head: string,
): Promise<void> {
  if (!(await trx.schema.hasTable(table))) {
    await trx.schema.createTable(table, (t) => {
      if (dialect === 'mysql') {
        t.charset('utf8mb4');
        // Ids compare exactly (case and accents), as they do on PostgreSQL and SQLite.
        t.collate('utf8mb4_bin');
      }
      t.bigInteger('seq').primary();
      t.string('event_id', 36).notNullable().unique();
      // No index on the time: seq order is time order, and every query reads newest first by seq.
      t.string('recorded_at', 24).notNullable();
      t.string('action', 16).notNullable();
      t.string('outcome', 8).notNullable();
      t.string('actor_id', 255).index();
      t.string('actor_type', 16).notNullable();
      // MySQL's TEXT holds 64 KB and MariaDB's JSON_TABLE cuts longer values silently: MEDIUMTEXT.
      t.text('actor_roles', 'mediumtext').notNullable();
      t.string('resource_type', 64);
      t.string('resource_id', 255);
      t.string('patient_id', 255).index();
      t.text('patient_ids', 'mediumtext');
      t.string('request_id', 128);
      t.string('trace_id', 32);
      t.string('client_ip', 64);
      t.string('user_agent', 512);
      t.string('purpose_of_use', 32);
      t.text('details', 'mediumtext');
      t.string('prev_hash', 64).notNullable();
      t.string('hash', 64).notNullable();
    });
  }
  if (!(await trx.schema.hasTable(head))) {
    await trx.schema.createTable(head, (t) => {
      if (dialect === 'mysql') t.charset('utf8mb4');
      t.integer('id').primary();
      t.bigInteger('seq').notNullable();
      t.string('hash', 64).notNullable();
      t.string('event_id', 36);
    });
  }
  const existing: unknown = await trx(head).where('id', 1).first('id');
  if (existing === undefined) await trx(head).insert({ id: 1, seq: 0, hash: GENESIS, event_id: null });
  await guard(trx, dialect, table, head);
}

/** A PostgreSQL trigger, created unless it exists (PostgreSQL has no CREATE TRIGGER IF NOT EXISTS). */
async function pgTrigger(
  trx: Knex.Transaction,
  name: string,
  when: string,
  target: string,
  fn: string,
): Promise<void> {
  const found = await trx.raw<{ rows: unknown[] }>(
    'SELECT 1 FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid WHERE t.tgname = ? AND c.oid = to_regclass(quote_ident(?))',
    [name, target],
  );
  if (found.rows.length === 0)
    await trx.raw(`CREATE TRIGGER ?? ${when} EXECUTE FUNCTION ??()`, [name, target, fn]);
}

/** Triggers that refuse UPDATE and DELETE on the events (and deleting the head). */
async function guard(trx: Knex.Transaction, dialect: Database['dialect'], table: string, head: string) {
  const message = `${table} is append-only`;
  // Row triggers every dialect has: no UPDATE or DELETE of events, no DELETE of the head.
  const refusals = [
    [`${table}_no_update`, table, 'UPDATE'],
    [`${table}_no_delete`, table, 'DELETE'],
    [`${head}_no_delete`, head, 'DELETE'],
  ] as const;
  switch (dialect) {
    case 'postgres':
      await trx.raw(
        `CREATE OR REPLACE FUNCTION ??() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION '${message}' USING ERRCODE = 'insufficient_privilege'; END $$`,
        [`${table}_append_only`],
      );
      for (const [name, target, event] of refusals)
        await pgTrigger(trx, name, `BEFORE ${event} ON ?? FOR EACH ROW`, target, `${table}_append_only`);
      for (const target of [table, head])
        await pgTrigger(
          trx,
          `${target}_no_truncate`,
          'BEFORE TRUNCATE ON ?? FOR EACH STATEMENT',
          target,
          `${table}_append_only`,
        );
      // The head only moves forward: emptying the table and resetting the head is refused.
      await trx.raw(
        `CREATE OR REPLACE FUNCTION ??() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF NEW.seq < OLD.seq THEN RAISE EXCEPTION '${message}' USING ERRCODE = 'insufficient_privilege'; END IF; RETURN NEW; END $$`,
        [`${head}_forward_only`],
      );
      await pgTrigger(
        trx,
        `${head}_no_rewind`,
        'BEFORE UPDATE ON ?? FOR EACH ROW',
        head,
        `${head}_forward_only`,
      );
      return;
    case 'sqlite':
      for (const [name, target, event] of refusals) {
        await trx.raw(
          `CREATE TRIGGER IF NOT EXISTS ?? BEFORE ${event} ON ?? BEGIN SELECT RAISE(ABORT, '${message}'); END`,
          [name, target],
        );
      }
      await trx.raw(
        `CREATE TRIGGER IF NOT EXISTS ?? BEFORE UPDATE ON ?? WHEN NEW.seq < OLD.seq BEGIN SELECT RAISE(ABORT, '${message}'); END`,
        [`${head}_no_rewind`, head],
      );
      return;
    case 'mysql':
      for (const [name, target, event] of refusals) {
        await trx.raw(
          `CREATE TRIGGER IF NOT EXISTS ?? BEFORE ${event} ON ?? FOR EACH ROW SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = '${message}'`,
          [name, target],
        );
      }
      // MySQL fires no trigger on TRUNCATE; the head only moving forward makes an emptied table show.
      await trx.raw(
        `CREATE TRIGGER IF NOT EXISTS ?? BEFORE UPDATE ON ?? FOR EACH ROW IF NEW.seq < OLD.seq THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = '${message}'; END IF`,
        [`${head}_no_rewind`, head],
      );
      return;
  }
}

/**
 * One INSERT per batch whatever its size, with one bound value: the batch as a JSON array of rows,
 * each row the canonical array that was hashed plus its hash, which the database takes apart. The
 * statement's text never changes, so it costs the same to parse for 1 row as for 5 000.
 */
function insertSql(dialect: Database['dialect']): string {
  switch (dialect) {
    case 'postgres':
      return `INSERT INTO ?? (${COLUMNS.map((c) => `"${c}"`).join(', ')}) SELECT (r->>0)::bigint, ${COLUMNS.slice(
        1,
      )
        .map((_, i) => `r->>${i + 1}`)
        .join(', ')} FROM json_array_elements(?::json) AS r`;
    case 'sqlite':
      return `INSERT INTO ?? (${COLUMNS.map((c) => `"${c}"`).join(', ')}) SELECT ${COLUMNS.map(
        (_, i) => `json_extract(value, '$[${i}]')`,
      ).join(', ')} FROM json_each(?)`;
    case 'mysql':
      return `INSERT INTO ?? (${COLUMNS.map((c) => `\`${c}\``).join(', ')}) SELECT jt.* FROM JSON_TABLE(?, '$[*]' COLUMNS (${COLUMNS.map(
        (c, i) => `\`${c}\` ${c === 'seq' ? 'BIGINT' : 'LONGTEXT'} PATH '$[${i}]'`,
      ).join(', ')})) AS jt`;
  }
}

/** What `appendBatch` wrote: how many, and the rows when asked (for the audit log sink). */
export interface Appended {
  count: number;
  rows: StoredRow[] | undefined;
}

/**
 * Append `batch` to the chain in one transaction. The head row is locked first, so writers in
 * other processes append one batch after another. Events the head says are already written (a
 * commit whose answer was lost) are skipped: a retry never writes one twice.
 */
export async function appendBatch(
  db: Database,
  table: string,
  input: readonly PendingRow[],
  wantRows: boolean,
  hash: ChainHash,
  /** After a failed attempt: skip events already in the table (a lost commit, then another writer's batch). */
  retrying: boolean,
): Promise<Appended> {
  const sql = insertSql(db.dialect);
  return db.knex.transaction(async (trx) => {
    let batch = input;
    if (retrying) {
      const found = await trx(table)
        .whereIn(
          'event_id',
          input.map((e) => e.event_id),
        )
        .pluck<string[]>('event_id');
      if (found.length > 0) {
        const done = new Set(found);
        batch = input.filter((e) => !done.has(e.event_id));
      }
    }
    const q = trx(`${table}_head`).where('id', 1);
    if (db.dialect !== 'sqlite') q.forUpdate();
    const head = await q.first<{ seq: number | string; hash: string; event_id: string | null } | undefined>(
      'seq',
      'hash',
      'event_id',
    );
    if (head === undefined) throw new Error(`audit: ${table}_head has no row; run trail.migrate()`);
    let start = 0;
    if (head.event_id !== null) {
      const done = batch.findIndex((e) => e.event_id === head.event_id);
      if (done >= 0) start = done + 1;
    }
    let seq = Number(head.seq);
    let prev = head.hash;
    const parts: string[] = [];
    for (let i = start; i < batch.length; i++) {
      seq++;
      const text = pendingCanonical(seq, batch[i] as PendingRow, prev);
      const digest = hash(text);
      parts.push(`${text.slice(0, -1)},"${digest}"]`);
      prev = digest;
    }
    const last = batch[batch.length - 1];
    if (parts.length === 0 || last === undefined)
      return { count: input.length, rows: wantRows ? [] : undefined };
    const json = `[${parts.join(',')}]`;
    await trx.raw(sql, [table, json]);
    await trx(`${table}_head`).where('id', 1).update({ seq, hash: prev, event_id: last.event_id });
    let rows: StoredRow[] | undefined;
    if (wantRows) {
      rows = (JSON.parse(json) as (string | null)[][]).map(
        (values) => Object.fromEntries(COLUMNS.map((c, i) => [c, values[i] ?? null])) as unknown as StoredRow,
      );
    }
    return { count: input.length, rows };
  });
}

function parseJson(text: string | null): unknown {
  if (text === null) return null;
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

export function toEvent(row: StoredRow): AuditEvent {
  const roles = parseJson(row.actor_roles);
  const patients = parseJson(row.patient_ids);
  return {
    seq: Number(row.seq),
    id: row.event_id,
    recordedAt: row.recorded_at,
    action: row.action as AuditEvent['action'],
    outcome: row.outcome as AuditEvent['outcome'],
    actorId: row.actor_id,
    actorType: row.actor_type as AuditEvent['actorType'],
    actorRoles: Array.isArray(roles) ? roles.map(String) : [],
    resourceType: row.resource_type,
    resourceId: row.resource_id,
    patientId: row.patient_id,
    patientIds: Array.isArray(patients) ? patients.map(String) : [],
    requestId: row.request_id,
    traceId: row.trace_id,
    clientIp: row.client_ip,
    userAgent: row.user_agent,
    purposeOfUse: row.purpose_of_use,
    details: parseJson(row.details) as Record<string, unknown> | null,
    prevHash: row.prev_hash,
    hash: row.hash,
  };
}

function bad(field: string, message: string): AppError {
  return badQuery(field, message);
}

/** Whether the calendar date at the start of an ISO 8601 string exists (2026-02-30 does not). */
function realCalendarDate(text: string): boolean {
  const m = /^(\d{4})-(\d{2})(?:-(\d{2}))?/.exec(text);
  if (m === null) return true;
  const month = Number(m[2]);
  if (month < 1 || month > 12) return false;
  if (m[3] === undefined) return true;
  const day = Number(m[3]);
  return day >= 1 && day <= new Date(Date.UTC(Number(m[1]), month, 0)).getUTCDate();
}

function instant(field: string, value: unknown): string {
  if (typeof value === 'string' && !realCalendarDate(value)) throw bad(field, 'must be a date');
  const date = value instanceof Date ? value : typeof value === 'string' ? new Date(value) : undefined;
  if (
    date === undefined ||
    Number.isNaN(date.getTime()) ||
    date.getUTCFullYear() > 9999 ||
    date.getTime() < 0
  )
    throw bad(field, 'must be a date');
  return date.toISOString();
}

function idText(field: string, value: unknown): string {
  if ((typeof value !== 'string' && typeof value !== 'number') || String(value).length === 0)
    throw bad(field, 'must be an id');
  const text = String(value);
  if (text.length > 255) throw bad(field, 'is too long');
  return text;
}

const CURSOR = /^[1-9][0-9]{0,15}$/;

/** A page of events, newest first. */
export async function queryEvents(db: Database, table: string, filters: AuditQuery = {}): Promise<AuditPage> {
  if (typeof filters !== 'object' || (filters as unknown) === null) throw bad('_', 'must be an object');
  const limit = filters.limit ?? 100;
  if (!Number.isInteger(limit) || limit < 1 || limit > 1000)
    throw bad('limit', 'must be an integer from 1 to 1000');
  const qb = db.reader(table);
  if (filters.patientId !== undefined) {
    const patient = idText('patientId', filters.patientId);
    // `patient_ids` is a JSON array of strings: the quoted id is an exact element match.
    const needle = JSON.stringify(patient);
    const position =
      db.dialect === 'postgres'
        ? 'strpos(??, ?) > 0'
        : db.dialect === 'mysql'
          ? 'INSTR(??, ?) > 0'
          : 'instr(??, ?) > 0';
    qb.where((w) => {
      void w.where('patient_id', patient).orWhereRaw(position, ['patient_ids', needle]);
    });
  }
  if (filters.actorId !== undefined) qb.where('actor_id', idText('actorId', filters.actorId));
  if (filters.resourceId !== undefined) qb.where('resource_id', idText('resourceId', filters.resourceId));
  if (filters.resourceType !== undefined) {
    if (
      typeof filters.resourceType !== 'string' ||
      !/^[A-Za-z][A-Za-z0-9_.-]{0,63}$/.test(filters.resourceType)
    )
      throw bad('resourceType', 'must be a resource type');
    qb.where('resource_type', filters.resourceType);
  }
  if (filters.action !== undefined) {
    if (!(AUDIT_ACTIONS as readonly unknown[]).includes(filters.action))
      throw bad('action', `must be one of ${AUDIT_ACTIONS.join(', ')}`);
    qb.where('action', filters.action);
  }
  if (filters.outcome !== undefined) {
    if (!(AUDIT_OUTCOMES as readonly unknown[]).includes(filters.outcome))
      throw bad('outcome', `must be one of ${AUDIT_OUTCOMES.join(', ')}`);
    qb.where('outcome', filters.outcome);
  }
  if (filters.from !== undefined) qb.where('recorded_at', '>=', instant('from', filters.from));
  if (filters.to !== undefined) qb.where('recorded_at', '<', instant('to', filters.to));
  if (filters.cursor !== undefined && filters.cursor !== null && filters.cursor !== '') {
    if (typeof filters.cursor !== 'string' || !CURSOR.test(filters.cursor))
      throw bad('cursor', 'is not a cursor');
    qb.where('seq', '<', Number(filters.cursor));
  }
  const rows = (await qb
    .select(COLUMNS as string[])
    .orderBy('seq', 'desc')
    .limit(limit + 1)) as StoredRow[];
  const more = rows.length > limit;
  if (more) rows.pop();
  const events = rows.map(toEvent);
  const last = events[events.length - 1];
  return { events, nextCursor: more && last !== undefined ? String(last.seq) : null };
}

/** One event by its id (the FHIR `AuditEvent.id`). */
export async function findEvent(db: Database, table: string, id: string): Promise<AuditEvent | undefined> {
  const row = await db
    .reader(table)
    .where('event_id', id)
    .first<StoredRow | undefined>(COLUMNS as string[]);
  return row === undefined ? undefined : toEvent(row);
}

export interface VerifyOptions {
  /** Default `audit_events`. */
  table?: string;
  /** Rows read per query. Default 1000. */
  batchSize?: number;
  /** The trail's `hmacKey`, when it has one. */
  hmacKey?: string | Buffer;
}

/**
 * Walk the chain from the first row: each row's hash must be the hash of its content and the
 * previous row's hash, and the last row must be the head. Names the first row where that fails.
 *
 * @example
 * const { ok, brokenAt } = await core.verifyAuditChain(db, { table: 'audit_events' });
 */
export async function verifyAuditChain(db: Database, options: VerifyOptions = {}): Promise<VerifyResult> {
  if (typeof db !== 'object' || typeof (db as Partial<Database>).knex !== 'function')
    throw ConfigError.option('verifyAuditChain', 'db', 'a Database from createDatabase()', db);
  const table = checkTable('verifyAuditChain', options.table ?? 'audit_events');
  const batchSize = options.batchSize ?? 1000;
  if (!Number.isInteger(batchSize) || batchSize < 1)
    throw ConfigError.option('verifyAuditChain', 'batchSize', 'a positive integer', batchSize);
  const hash = chainHash(checkKey('verifyAuditChain', options.hmacKey));
  const knex = db.knex;
  // The head first, then the rows up to it: rows appended meanwhile are the next check's.
  const head = await knex(`${table}_head`)
    .where('id', 1)
    .first<{ seq: number | string; hash: string } | undefined>('seq', 'hash');
  const last = head === undefined ? Number.MAX_SAFE_INTEGER : Number(head.seq);
  let prevHash = GENESIS;
  let prevSeq = 0;
  let checked = 0;
  for (;;) {
    const rows = (await knex(table)
      .select(COLUMNS as string[])
      .where('seq', '>', prevSeq)
      .andWhere('seq', '<=', last)
      .orderBy('seq', 'asc')
      .limit(batchSize)) as StoredRow[];
    for (const row of rows) {
      const seq = Number(row.seq);
      if (row.prev_hash !== prevHash || seq !== prevSeq + 1)
        return { ok: false, checked, brokenAt: seq, reason: 'link' };
      if (hashOf(seq, row, row.prev_hash, hash) !== row.hash)
        return { ok: false, checked, brokenAt: seq, reason: 'hash' };
      prevHash = row.hash;
      prevSeq = seq;
      checked++;
    }
    if (rows.length < batchSize) break;
  }
  if (head === undefined || Number(head.seq) !== prevSeq || head.hash !== prevHash) {
    return { ok: false, checked, brokenAt: prevSeq + 1, reason: 'head' };
  }
  return { ok: true, checked, brokenAt: null };
}
