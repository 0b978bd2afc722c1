import type { Knex } from 'knex';
import { AsyncLocalStorage } from 'node:async_hooks';
import { EventEmitter } from 'node:events';
import type { ZodType } from 'zod';
import { getContext } from '../context/store.js';
import type { Database } from '../database/index.js';
import {
  AppError,
  ConfigError,
  DuplicateError,
  NotFoundError,
  ValidationError,
  columnOf,
  toAppError,
} from '../errors/index.js';
import { applyCursor, decodeCursor, encodeCursor } from './cursor.js';
import { applyFilters, badQuery, filterFields, normaliseFilters } from './filters.js';
import type {
  ColumnType,
  Filter,
  Filters,
  KeysetPage,
  ListOptions,
  OffsetPage,
  RepositoryAction,
  RepositoryEvent,
  SortSpec,
} from './types.js';

export * from './types.js';
export type {
  RepositoryAccess,
  RepositoryAuditOptions,
  RepositoryAuditSink,
  RepositoryOptions,
  UpdateOptions,
} from './options.js';
import type { Config, Id, RepositoryOptions, Row, UpdateOptions } from './options.js';
import { IDENT, TIMESTAMP_COLUMNS, buildConfig } from './options.js';

interface Scope {
  repo: object;
  trx: Knex.Transaction | undefined;
  withDeleted: boolean;
}

/**
 * Scopes of `withTransaction()`/`withDeleted()` views, keyed to the repository they belong to. One
 * storage for every repository (each AsyncLocalStorage adds work to every async hop); it holds no
 * data outside the calls of a view.
 */
const SCOPES = Symbol.for('caduceus.repository.scopes');
function scopeStorage(): AsyncLocalStorage<Scope> {
  const holder = globalThis as unknown as Record<symbol, AsyncLocalStorage<Scope> | undefined>;
  return (holder[SCOPES] ??= new AsyncLocalStorage<Scope>());
}

function zodFieldErrors(error: {
  issues: readonly { path: readonly PropertyKey[]; message: string }[];
}): Record<string, string> {
  const out: Record<string, string> = {};
  for (const issue of error.issues) {
    const key = issue.path.map(String).join('.') || '_';
    out[key] ??= issue.message;
  }
  return out;
}

/**
 * CRUD on one table through Knex, the same on PostgreSQL, SQLite and MariaDB/MySQL.
 *
 * @example
 * class PatientRepository extends core.BaseRepository<Patient, PatientCreate, PatientUpdate> {
 *   constructor(db: core.Database) {
 *     super(db, { table: 'patients', filterable: ['status', 'family_name'], sortable: ['created_at'], hidden: ['ssn'], softDelete: true });
 *   }
 * }
 */
export class BaseRepository<T extends object = Row, C = Partial<T>, U = Partial<C>> {
  /** `access` events for every read and write (see RepositoryEvent). */
  readonly events: EventEmitter;
  readonly db: Database;
  /** @internal */
  protected readonly config: Config;

  constructor(db: Database, options: RepositoryOptions<T, C, U>) {
    if (typeof db !== 'object' || typeof (db as Partial<Database>).transaction !== 'function') {
      throw ConfigError.option('BaseRepository', 'db', 'a Database from createDatabase()', db);
    }
    this.db = db;
    this.config = buildConfig(options);
    this.events = new EventEmitter();
  }

  /** The resource name used in errors and events. */
  get resource(): string {
    return this.config.resource;
  }

  /** What `parseListQuery` needs to know. */
  get listSchema(): {
    filterable: ReadonlySet<string>;
    sortable: ReadonlySet<string>;
    types: ReadonlyMap<string, ColumnType>;
    defaultPageSize: number;
    maxPageSize: number;
  } {
    const c = this.config;
    return {
      filterable: c.filterable,
      sortable: c.sortable,
      types: c.types,
      defaultPageSize: c.defaultPageSize,
      maxPageSize: c.maxPageSize,
    };
  }

  /** The same repository bound to a transaction: every call on it runs in `trx`. */
  withTransaction(trx: Knex.Transaction): this {
    return this.#view({ trx });
  }

  /** The same repository, including soft-deleted rows in reads. */
  withDeleted(): this {
    return this.#view({ withDeleted: true });
  }

  /**
   * A view of this very instance whose method calls run inside a scope (transaction, deleted rows).
   * Methods still run on the original object, so a subclass's fields — `#private` ones included —
   * and its methods work unchanged.
   */
  #view(change: Partial<Omit<Scope, 'repo'>>): this {
    const scopes = scopeStorage();
    const outer = scopes.getStore();
    const inherited = outer?.repo === this ? outer : undefined;
    const scope: Scope = {
      repo: this,
      trx: change.trx ?? inherited?.trx,
      withDeleted: change.withDeleted ?? inherited?.withDeleted ?? false,
    };

    return new Proxy(this, {
      get(obj, prop) {
        const value: unknown = Reflect.get(obj, prop, obj);
        if (typeof value !== 'function' || prop === 'constructor') return value;
        return (...args: unknown[]): unknown =>
          scopes.run(scope, () => (value as (...a: unknown[]) => unknown).apply(obj, args));
      },
    });
  }

  /** baseQuery() including soft-deleted rows, with the subclass's own narrowing kept (restore). */
  #withDeletedQuery(k: Knex): Knex.QueryBuilder {
    const scope: Scope = { repo: this, trx: this.#scope()?.trx, withDeleted: true };
    return scopeStorage().run(scope, () => this.baseQuery(k));
  }

  #scope(): Scope | undefined {
    const s = scopeStorage().getStore();
    return s?.repo === this ? s : undefined;
  }

  /** Knex for writes: the bound transaction, the Database's active one, or the primary. */
  protected writer(): Knex {
    return this.#scope()?.trx ?? this.db.current();
  }

  /** Knex for reads: like `writer()` outside a transaction, a replica when configured. */
  protected readerKnex(): Knex {
    return this.#scope()?.trx ?? this.db.reader;
  }

  protected table(k: Knex): Knex.QueryBuilder {
    return k(this.config.table);
  }

  /** Base query for reads: the table, minus soft-deleted rows unless asked. */
  protected baseQuery(k: Knex): Knex.QueryBuilder {
    const qb = this.table(k);
    if (this.config.softDelete && this.#scope()?.withDeleted !== true) qb.whereNull('deleted_at');
    return qb;
  }

  /** A row as returned to callers: hidden columns removed, timestamps as Dates on every dialect. */
  protected toEntity(input: Row): T {
    const c = this.config;
    let row = input;
    if (c.hidden.length > 0) {
      // Copy rather than delete: deleting a property drops the row object into V8's slow dictionary mode.
      row = {};
      for (const key in input) if (!c.hidden.includes(key)) row[key] = input[key];
    }
    for (const col of c.dateColumns) {
      const v = row[col];
      if (typeof v === 'number' || (typeof v === 'string' && v.length > 0)) row[col] = new Date(v);
    }
    for (const col of c.booleanColumns) {
      const v = row[col];
      if (v === 0 || v === 1) row[col] = v === 1;
    }
    return row as T;
  }

  /**
   * Tell `access` listeners and the audit trail. `rows` (raw, hidden columns included) give the
   * audit trail each row's patient.
   */
  protected emit(
    action: RepositoryAction,
    ids: readonly Id[],
    outcome: RepositoryEvent['outcome'],
    fields?: readonly string[],
    rows?: readonly Row[],
  ): void {
    const audit = this.config.audit;
    if (audit !== undefined) {
      audit.trail.recordRepositoryAccess({
        action,
        resourceType: audit.resourceType,
        ids: ids.map(String),
        patientIds: this.#patientsOf(audit.patientIdColumn, ids, rows),
        outcome,
        filterFields: fields,
      });
    }
    if (this.events.listenerCount('access') === 0) return;
    const ctx = getContext();
    const event: RepositoryEvent = {
      resource: this.config.resource,
      action,
      ids: ids.map(String),
      filterFields: fields,
      actor: ctx?.userId,
      requestId: ctx?.requestId,
      outcome,
    };
    this.events.emit('access', event);
  }

  #patientsOf(
    column: string | undefined,
    ids: readonly Id[],
    rows: readonly Row[] | undefined,
  ): (string | undefined)[] {
    if (column === undefined) return [];
    if (column === this.config.idColumn) return ids.map(String);
    return ids.map((_, i) => {
      const v = rows?.[i]?.[column];
      return typeof v === 'string' || typeof v === 'number' || typeof v === 'bigint' ? String(v) : undefined;
    });
  }

  /** An audited repository asks its trail for room before touching data (503 when it has none). */
  #admit(): void {
    this.config.audit?.trail.admit();
  }

  /** The row as written, for the audit trail: what the database returned, over what was sent. */
  #auditRow(sent: Row, returned: T): Row[] | undefined {
    return this.config.audit === undefined ? undefined : [{ ...sent, ...(returned as Row) }];
  }

  /** Driver errors become the seed's errors, named after this resource. */
  protected mapError(err: unknown): unknown {
    const mapped = toAppError(err);
    if (mapped.code === 'DUPLICATE') {
      // MySQL names the index, not the column: Knex's `patients_mrn_unique` → `mrn`.
      const raw = columnOf(err as Record<string, unknown>) ?? 'value';
      const prefix = `${this.config.table}_`;
      const field = (raw.startsWith(prefix) ? raw.slice(prefix.length) : raw).replace(/_unique$/, '');
      return new DuplicateError(this.config.resource, field, undefined, { cause: err });
    }
    return mapped.status === 500 ? err : mapped;
  }

  protected async run<R>(fn: () => Promise<R>): Promise<R> {
    try {
      return await fn();
    } catch (err) {
      throw this.mapError(err);
    }
  }

  protected validate(schema: ZodType | undefined, input: unknown, partial: boolean): Row {
    if (schema === undefined) {
      if (typeof input !== 'object' || input === null || Array.isArray(input))
        throw new ValidationError('Expected an object', { _: 'must be an object' });
      return input as Row;
    }
    const result = schema.safeParse(input);
    if (!result.success)
      throw new ValidationError(
        partial ? 'Invalid update' : `Invalid ${this.config.resource}`,
        zodFieldErrors(result.error),
      );
    return result.data as Row;
  }

  /** Column values safe to write: no id rewrite on update, no timestamps or version from the caller. */
  protected prepareWrite(data: Row, creating: boolean): Row {
    const c = this.config;
    const row: Row = {};
    for (const [k, v] of Object.entries(data)) {
      if (
        v === undefined ||
        k === c.versionColumn ||
        (c.timestamps && TIMESTAMP_COLUMNS.includes(k)) ||
        k === 'deleted_at'
      )
        continue;
      if (!creating && k === c.idColumn) continue;
      if (!IDENT.test(k))
        throw new ValidationError('Invalid field name', { [k.slice(0, 64)]: 'is not a column' });
      row[k] = v;
    }
    const now = new Date();
    if (c.timestamps) {
      if (creating) row.created_at = now;
      row.updated_at = now;
    }
    if (creating && c.versionColumn !== undefined) row[c.versionColumn] = 1;
    if (creating && c.generateId !== undefined && row[c.idColumn] === undefined)
      row[c.idColumn] = c.generateId();
    return row;
  }

  async #insertOne(k: Knex, row: Row): Promise<T> {
    const c = this.config;
    if (this.db.dialect === 'mysql') {
      const inserted: number[] = await this.table(k).insert(row);
      const insertId = inserted[0];
      const id = (row[c.idColumn] as Id | undefined) ?? insertId;
      const created = (await this.table(k)
        .where(c.idColumn, id as Knex.Value)
        .first()) as Row | undefined;
      return this.toEntity(created ?? row);
    }
    const [created] = (await this.table(k).insert(row).returning('*')) as Row[];
    return this.toEntity(created ?? row);
  }

  async create(data: C): Promise<T> {
    this.#admit();
    const input = this.validate(this.config.createSchema, data, false);
    const row = this.prepareWrite(input, true);
    const entity = await this.run(() => this.#insertOne(this.writer(), row));
    this.emit(
      'create',
      [(entity as Row)[this.config.idColumn] as Id],
      'success',
      undefined,
      this.#auditRow(row, entity),
    );
    return entity;
  }

  /** Inserts all rows in one transaction: all or none. */
  async createMany(items: readonly C[]): Promise<T[]> {
    if (!Array.isArray(items)) throw new ValidationError('Expected a list', { _: 'must be an array' });
    this.#admit();
    const rows = items.map((item, i) => {
      try {
        return this.prepareWrite(this.validate(this.config.createSchema, item, false), true);
      } catch (err) {
        if (err instanceof ValidationError) {
          throw new ValidationError(
            err.message,
            Object.fromEntries(Object.entries(err.fieldErrors).map(([f, m]) => [`${i}.${f}`, m])),
          );
        }
        throw err;
      }
    });
    const created = await this.run(() =>
      this.#inTransaction(async (trx) => {
        const out: T[] = [];
        for (const row of rows) out.push(await this.#insertOne(trx, row));
        return out;
      }),
    );
    this.emit(
      'create',
      created.map((e) => (e as Row)[this.config.idColumn] as Id),
      'success',
      undefined,
      this.config.audit === undefined ? undefined : created.map((e, i) => ({ ...rows[i], ...(e as Row) })),
    );
    return created;
  }

  #inTransaction<R>(fn: (trx: Knex.Transaction) => Promise<R>): Promise<R> {
    const trx = this.#scope()?.trx;
    if (trx !== undefined) return trx.transaction(fn);
    return this.db.transaction(fn);
  }

  async findById(id: Id): Promise<T | undefined> {
    this.#checkId(id);
    this.#admit();
    const row = (await this.run(() =>
      this.baseQuery(this.readerKnex()).where(this.config.idColumn, id).first(),
    )) as Row | undefined;
    this.emit('read', [id], row === undefined ? 'not_found' : 'success', undefined, row && [row]);
    return row === undefined ? undefined : this.toEntity(row);
  }

  /** Like `findById`, but a missing row is a `NotFoundError` (404). */
  async getById(id: Id): Promise<T> {
    const found = await this.findById(id);
    if (found === undefined) throw new NotFoundError(this.config.resource, id);
    return found;
  }

  async findOne(filters: Filters): Promise<T | undefined> {
    const list = normaliseFilters(filters);
    this.#admit();
    const qb = this.baseQuery(this.readerKnex());
    this.#applyFilters(qb, list);
    const row = (await this.run(() => qb.first())) as Row | undefined;
    this.emit(
      'search',
      row === undefined ? [] : [row[this.config.idColumn] as Id],
      row === undefined ? 'not_found' : 'success',
      filterFields(list),
      row && [row],
    );
    return row === undefined ? undefined : this.toEntity(row);
  }

  async count(filters?: Filters): Promise<number> {
    const list = normaliseFilters(filters);
    this.#admit();
    const qb = this.baseQuery(this.readerKnex());
    this.#applyFilters(qb, list);
    const row = (await this.run(() => qb.count({ n: '*' }).first())) as
      { n: number | string | bigint } | undefined;
    this.emit('search', [], 'success', filterFields(list));
    return Number(row?.n ?? 0);
  }

  /** Whether a row with this id (or matching these filters) exists. A read like any other: it emits an event. */
  async exists(idOrFilters: Id | Filters): Promise<boolean> {
    this.#admit();
    const qb = this.baseQuery(this.readerKnex());
    const byId = typeof idOrFilters === 'string' || typeof idOrFilters === 'number';
    let fields: string[] | undefined;
    if (byId) {
      this.#checkId(idOrFilters);
      qb.where(this.config.idColumn, idOrFilters);
    } else {
      const list = normaliseFilters(idOrFilters);
      fields = filterFields(list);
      this.#applyFilters(qb, list);
    }
    const patientColumn = this.config.audit?.patientIdColumn;
    const columns =
      patientColumn === undefined || patientColumn === this.config.idColumn
        ? [this.config.idColumn]
        : [this.config.idColumn, patientColumn];
    const row: Row | undefined = await this.run(() => qb.first(columns));
    const found = row === undefined ? [] : [row[this.config.idColumn] as Id];
    this.emit(
      byId ? 'read' : 'search',
      byId ? [idOrFilters] : found,
      row === undefined ? 'not_found' : 'success',
      fields,
      row && [row],
    );
    return row !== undefined;
  }

  #applyFilters(qb: Knex.QueryBuilder, filters: readonly Filter[]): void {
    applyFilters(qb, filters, { dialect: this.db.dialect, filterable: this.config.filterable });
  }

  #checkId(id: unknown): void {
    if (
      (typeof id !== 'string' && typeof id !== 'number') ||
      (typeof id === 'string' && (id.length === 0 || id.length > 255))
    ) {
      throw new AppError(`Invalid ${this.config.resource} id`, {
        status: 400,
        code: 'VALIDATION_ERROR',
        details: { field_errors: { [this.config.idColumn]: 'is not a valid id' } },
      });
    }
  }

  #sortOf(input: readonly SortSpec[] | undefined): SortSpec[] {
    const raw: unknown = input;
    if (
      raw !== undefined &&
      (!Array.isArray(raw) || raw.some((x: unknown) => typeof x !== 'object' || x === null))
    ) {
      throw badQuery('sort', 'must be a list of {field, direction}');
    }
    const sort = raw as readonly SortSpec[] | undefined;
    const c = this.config;
    const out: SortSpec[] = [];
    for (const s of sort === undefined || sort.length === 0 ? c.defaultSort : sort) {
      const field: unknown = s.field;
      if (typeof field !== 'string' || !c.sortable.has(field))
        throw badQuery('sort', `cannot sort by ${typeof field === 'string' ? field.slice(0, 64) : 'that'}`);
      if ((s.direction as string) !== 'asc' && s.direction !== 'desc')
        throw badQuery('sort', 'direction must be asc or desc');
      if (!out.some((o) => o.field === s.field)) out.push({ field: s.field, direction: s.direction });
    }
    // A unique tiebreaker makes every order total, so pages never skip or repeat rows.
    if (!out.some((o) => o.field === c.idColumn))
      out.push({ field: c.idColumn, direction: out[out.length - 1]?.direction ?? 'asc' });
    return out;
  }

  #pageSize(value: number | undefined, name: string): number {
    const size = value ?? this.config.defaultPageSize;
    if (!Number.isInteger(size) || size < 1 || size > this.config.maxPageSize)
      throw badQuery(name, `must be an integer from 1 to ${this.config.maxPageSize}`);
    return size;
  }

  /** A page of rows: offset pages (`page`/`size`) or keyset pages (`cursor`/`limit`). */
  list(options: ListOptions & ({ cursor: string | null } | { limit: number })): Promise<KeysetPage<T>>;
  list(options?: ListOptions & { cursor?: undefined; limit?: undefined }): Promise<OffsetPage<T>>;
  /** Options whose mode is only known at run time (from `parseListQuery`): either page shape. */
  list(options: ListOptions): Promise<OffsetPage<T> | KeysetPage<T>>;
  async list(options: ListOptions = {}): Promise<OffsetPage<T> | KeysetPage<T>> {
    const filters = normaliseFilters(options.filters);
    this.#admit();
    const sort = this.#sortOf(options.sort);
    const k = this.readerKnex();
    const fields = filterFields(filters);
    if (options.cursor !== undefined || options.limit !== undefined) {
      const limit = this.#pageSize(options.limit, 'limit');
      const qb = this.baseQuery(k);
      this.#applyFilters(qb, filters);
      if (typeof options.cursor === 'string' && options.cursor.length > 0) {
        applyCursor(
          qb,
          sort,
          decodeCursor(options.cursor, sort),
          this.db.dialect === 'postgres',
          (field) => !this.#notNull(field),
          (field, v) => this.#toDb(field, v),
        );
      }
      for (const s of sort) qb.orderBy(s.field, s.direction);
      const rows = (await this.run(() => qb.limit(limit + 1))) as Row[];
      const more = rows.length > limit;
      if (more) rows.pop();
      const last = rows[rows.length - 1];
      const next = more && last !== undefined ? encodeCursor(sort, last) : null;
      this.#emitPage(rows, fields);
      const items = rows.map((r) => this.toEntity(r));
      return { items, next_cursor: next };
    }
    const page = options.page ?? 1;
    if (!Number.isInteger(page) || page < 1 || page > 1_000_000)
      throw badQuery('page', 'must be an integer from 1 to 1000000');
    const size = this.#pageSize(options.size, 'size');
    const qb = this.baseQuery(k);
    this.#applyFilters(qb, filters);
    const withTotal = options.withTotal ?? true;
    const countQb = withTotal ? qb.clone().clearOrder() : undefined;
    for (const s of sort) qb.orderBy(s.field, s.direction);
    const [rows, total] = await this.run(() =>
      Promise.all([
        qb.limit(size).offset((page - 1) * size) as Promise<Row[]>,
        countQb !== undefined
          ? (countQb.count({ n: '*' }).first() as Promise<{ n: number | string } | undefined>).then((r) =>
              Number(r?.n ?? 0),
            )
          : Promise.resolve(undefined),
      ]),
    );
    this.#emitPage(rows, fields);
    const items = rows.map((r) => this.toEntity(r));
    return { items, total, page, size, pages: total === undefined ? undefined : Math.ceil(total / size) };
  }

  /** Columns known never to be NULL: the key, and the timestamps the repository always sets. */
  #notNull(field: string): boolean {
    const c = this.config;
    return (
      field === c.idColumn ||
      (c.timestamps && (field === 'created_at' || field === 'updated_at')) ||
      field === c.versionColumn
    );
  }

  /** A search event for a page of rows; the id list is built only when someone listens. */
  #emitPage(rows: readonly Row[], fields: readonly string[]): void {
    if (this.events.listenerCount('access') === 0 && this.config.audit === undefined) return;
    this.emit(
      'search',
      rows.map((r) => r[this.config.idColumn] as Id),
      'success',
      fields,
      rows,
    );
  }

  #toDb(field: string, v: string | number | null): Knex.Value {
    if (v !== null && this.config.types.get(field) === 'date') return new Date(v);
    return v;
  }

  /**
   * Apply a patch. With a version column, `expectedVersion` must match the row's (else 409
   * CONFLICT) and the version is incremented.
   */
  async update(id: Id, patch: U, options: UpdateOptions = {}): Promise<T> {
    this.#checkId(id);
    this.#admit();
    const c = this.config;
    const input = this.validate(c.updateSchema, patch, true);
    const row = this.prepareWrite(input, false);
    const expected = options.expectedVersion;
    if (expected !== undefined && (c.versionColumn === undefined || !Number.isInteger(expected))) {
      throw new ValidationError('Invalid version', {
        [c.versionColumn ?? 'version']: 'expectedVersion needs an integer and a versionColumn',
      });
    }
    const k = this.writer();
    const updated = await this.run(async () => {
      const qb = this.baseQuery(k).where(c.idColumn, id);
      if (expected !== undefined && c.versionColumn !== undefined) qb.where(c.versionColumn, expected);
      const changes: Record<string, unknown> = { ...row };
      if (c.versionColumn !== undefined) changes[c.versionColumn] = k.raw('?? + 1', [c.versionColumn]);
      if (Object.keys(changes).length === 0) return 1;
      return await qb.update(changes);
    });
    if (updated === 0) {
      const exists: unknown = await this.run(() => this.baseQuery(k).where(c.idColumn, id).first(c.idColumn));
      this.emit('update', [id], exists === undefined ? 'not_found' : 'error');
      if (exists === undefined) throw new NotFoundError(c.resource, id);
      throw new AppError(`${c.resource} was changed by someone else; reload it and retry`, {
        status: 409,
        code: 'CONFLICT',
        details: { resource_type: c.resource, resource_id: String(id) },
      });
    }
    const after = (await this.run(() => this.baseQuery(k).where(c.idColumn, id).first())) as Row | undefined;
    if (after === undefined) throw new NotFoundError(c.resource, id);
    this.emit('update', [id], 'success', undefined, [after]);
    return this.toEntity(after);
  }

  /** Delete by id: soft (sets `deleted_at`) when configured. A missing row is a NotFoundError. */
  async delete(id: Id): Promise<void> {
    this.#checkId(id);
    this.#admit();
    const c = this.config;
    const k = this.writer();
    const patientColumn = c.audit?.patientIdColumn;
    let before: Row | undefined;
    if (patientColumn !== undefined && patientColumn !== c.idColumn) {
      // The audit trail records whose record this was: read it before it is gone.
      before = await this.run(() =>
        this.baseQuery(k).where(c.idColumn, id).first<Row | undefined>(patientColumn),
      );
    }
    const n = await this.run(async () => {
      // Through baseQuery(): a subclass that narrows the rows a caller may see narrows deletes too.
      const qb = this.baseQuery(k).where(c.idColumn, id);
      if (c.softDelete) return await qb.whereNull('deleted_at').update({ deleted_at: new Date() });
      return qb.delete();
    });
    this.emit('delete', [id], n === 0 ? 'not_found' : 'success', undefined, before && [before]);
    if (n === 0) throw new NotFoundError(c.resource, id);
  }

  /** Undo a soft delete. */
  async restore(id: Id): Promise<T> {
    this.#checkId(id);
    const c = this.config;
    if (!c.softDelete)
      throw new ConfigError(`BaseRepository: restore needs softDelete: true on ${c.resource}`);
    this.#admit();
    const k = this.writer();
    const n = await this.run(() =>
      this.#withDeletedQuery(k).where(c.idColumn, id).whereNotNull('deleted_at').update({ deleted_at: null }),
    );
    // Read back without a second event: a restore is one access.
    const row =
      n === 0
        ? undefined
        : ((await this.run(() => this.baseQuery(k).where(c.idColumn, id).first())) as Row | undefined);
    this.emit('restore', [id], row === undefined ? 'not_found' : 'success', undefined, row && [row]);
    if (row === undefined) throw new NotFoundError(c.resource, id);
    return this.toEntity(row);
  }

  /** Insert, or update the row with the same `conflictColumns` (default: the id). */
  async upsert(data: C, conflictColumns?: readonly string[]): Promise<T> {
    this.#admit();
    const c = this.config;
    const input = this.validate(c.createSchema, data, false);
    const row = this.prepareWrite(input, true);
    const target = conflictColumns ?? [c.idColumn];
    if (target.some((col) => !IDENT.test(col)))
      throw ConfigError.option('upsert', 'conflictColumns', 'column names', target);
    // An update through upsert moves the version forward like update() does, never back to 1.
    const mergeColumns = Object.keys(row).filter(
      (col) => !target.includes(col) && col !== 'created_at' && col !== c.idColumn && col !== c.versionColumn,
    );
    const k0 = this.writer();
    const merge: Record<string, unknown> = {};
    for (const col of mergeColumns) merge[col] = row[col];
    if (c.versionColumn !== undefined)
      merge[c.versionColumn] = k0.raw('??.?? + 1', [c.table, c.versionColumn]);
    const k = this.writer();
    const entity = await this.run(async () => {
      const q = this.table(k)
        .insert(row)
        .onConflict(target as string[])
        .merge(merge as Knex.ResolveTableType<Row, 'update'>);
      if (this.db.dialect !== 'mysql') {
        const [out] = (await q.returning('*')) as Row[];
        return out;
      }
      await q;
      const where: Record<string, unknown> = {};
      for (const col of target) where[col] = row[col];
      return (await this.table(k).where(where).first()) as Row | undefined;
    });
    if (entity === undefined) throw new NotFoundError(c.resource);
    const out = this.toEntity(entity);
    this.emit('update', [(out as Row)[c.idColumn] as Id], 'success', undefined, [entity]);
    return out;
  }
}

export { parseListQuery } from './list-query.js';
export type { ListQuerySchema } from './list-query.js';
