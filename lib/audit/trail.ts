import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { AsyncResource } from 'node:async_hooks';
import { randomUUID } from 'node:crypto';
import { loadSettings } from '../config/index.js';
import type { RequestContext } from '../context/index.js';
import { getContext } from '../context/index.js';
import type { Database } from '../database/index.js';
import { ConfigError, ServiceUnavailableError, ValidationError, readOptions } from '../errors/index.js';
import type { Logger } from '../logging/index.js';
import { createLogger } from '../logging/index.js';
import type { Counter } from 'prom-client';
import { metricsFor } from '../metrics/index.js';
import type { RepositoryAccess, RepositoryAuditSink } from '../repository/index.js';
import type { PendingRow } from './store.js';
import type { ChainHash } from './store.js';
import {
  appendBatch,
  chainHash,
  checkKey,
  checkTable,
  findEvent,
  migrateAudit,
  queryEvents,
  verifyAuditChain,
} from './store.js';
import type {
  AuditAction,
  AuditEvent,
  AuditEventInput,
  AuditOptions,
  AuditOutcome,
  AuditPage,
  AuditQuery,
  AuditStats,
  AuthEventLike,
  VerifyResult,
} from './types.js';
import { AUDIT_ACTIONS, AUDIT_OUTCOMES } from './types.js';

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Express {
    interface Request {
      /** Record an audit event for this request (added by `trail.middleware()`). */
      audit(event: AuditEventInput): void;
    }
  }
}

const KNOWN = [
  'db',
  'table',
  'onOverflow',
  'maxBuffer',
  'batchSize',
  'flushIntervalMs',
  'retry',
  'auth',
  'purposeOfUseHeader',
  'recordDenials',
  'auditLog',
  'source',
  'closeTimeoutMs',
  'hmacKey',
  'logger',
  'metrics',
  'settings',
] as const satisfies readonly (keyof AuditOptions)[];

const RESOURCE_TYPE = /^[A-Za-z][A-Za-z0-9_.-]{0,63}$/;
const PURPOSE = /^[A-Za-z0-9_.-]{1,32}$/;
const HEADER = /^[A-Za-z0-9-]{1,64}$/;
const ACTIONS: ReadonlySet<string> = new Set(AUDIT_ACTIONS);
const OUTCOMES: ReadonlySet<string> = new Set(AUDIT_OUTCOMES);
const ACTION_INDEX: ReadonlyMap<string, number> = new Map(AUDIT_ACTIONS.map((a, i) => [a, i]));
const OUTCOME_INDEX: ReadonlyMap<string, number> = new Map(AUDIT_OUTCOMES.map((o, i) => [o, i]));
const REPOSITORY_ACTIONS: Readonly<Record<RepositoryAccess['action'], AuditAction>> = {
  read: 'read',
  search: 'search',
  create: 'create',
  update: 'update',
  delete: 'delete',
  restore: 'update',
};
const MAX_DETAILS = 20;
const MAX_DETAILS_JSON = 2048;
/** At most one "dropped" error line per this many milliseconds (each says how many). */
const DROP_LOG_INTERVAL_MS = 1000;

function positiveInt(name: string, value: unknown, fallback: number, max = 1_000_000_000): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > max)
    throw ConfigError.option('audit', name, `an integer from 1 to ${max}`, value);
  return value;
}

/** Text as the database will store it: no NUL (PostgreSQL refuses it), no lone surrogate (UTF-8 cannot hold it). */
interface WellFormed {
  isWellFormed(): boolean;
  toWellFormed(): string;
}
function clean(text: string): string {
  // ES2024 string methods (Node 20 has them; the TypeScript lib we target does not declare them).
  const t = text as unknown as WellFormed;
  const wellFormed = t.isWellFormed() ? text : t.toWellFormed();
  return wellFormed.includes('\u0000') ? wellFormed.replaceAll('\u0000', '') : wellFormed;
}

function optionalId(field: string, value: unknown): string | null {
  if (value === undefined || value === null) return null;
  if ((typeof value !== 'string' && typeof value !== 'number') || String(value) === '')
    throw new ValidationError('Invalid audit event', { [field]: 'must be a non-empty string or a number' });
  const text = clean(String(value));
  if (text.length > 255) throw new ValidationError('Invalid audit event', { [field]: 'is too long (255)' });
  return text;
}

function detailsText(details: unknown, extra: Record<string, unknown> | undefined): string | null {
  if (details === undefined && extra === undefined) return null;
  const out: Record<string, unknown> = { ...extra };
  if (details !== undefined) {
    if (typeof details !== 'object' || details === null || Array.isArray(details))
      throw new ValidationError('Invalid audit event', { details: 'must be an object' });
    const entries = Object.entries(details);
    if (entries.length > MAX_DETAILS)
      throw new ValidationError('Invalid audit event', { details: `at most ${MAX_DETAILS} keys` });
    for (const [key, value] of entries) {
      const t = typeof value;
      if (value !== null && t !== 'string' && t !== 'number' && t !== 'boolean')
        throw new ValidationError('Invalid audit event', {
          [`details.${key.slice(0, 64)}`]: 'must be a string, number, boolean or null',
        });
      out[clean(key)] = t === 'string' ? clean(value as string) : value;
    }
  }
  const text = JSON.stringify(out);
  if (text.length > MAX_DETAILS_JSON)
    throw new ValidationError('Invalid audit event', {
      details: `at most ${MAX_DETAILS_JSON} characters as JSON`,
    });
  return text;
}

/** Cut, then clean: cutting after cleaning could leave half of a surrogate pair behind. */
function short(text: string | undefined, max: number): string | null {
  if (text === undefined || text === '') return null;
  return clean(text.length > max ? text.slice(0, max) : text);
}

const TRACE_ID = /^[0-9a-f]{32}$/;

/**
 * A write error the data caused (a value a column cannot hold): retrying cannot help, the event
 * must be set apart. PostgreSQL SQLSTATE class 22; MySQL/MariaDB data errors; SQLite too big or
 * mismatched. Constraint violations are not in this list: ours can only come from a damaged head.
 */
function isDataError(err: unknown): boolean {
  const e = err as { code?: unknown; errno?: unknown } | null;
  if (typeof e?.code === 'string' && /^22[0-9A-Z]{3}$/.test(e.code)) return true;
  if (typeof e?.errno === 'number' && [1264, 1292, 1366, 1406, 3140].includes(e.errno)) return true;
  return e?.code === 'SQLITE_TOOBIG' || e?.code === 'SQLITE_MISMATCH';
}

/** `Error` → a short, safe description for the operational log (driver messages can echo values). */
function errorKind(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : err instanceof Error ? err.name : 'unknown';
}

interface Waiter {
  target: number;
  resolve: () => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

/**
 * A tamper-evident audit trail of access to health records. Events are queued in memory on the
 * request path and written in batches, hash-chained, off it.
 */
export class AuditTrail implements RepositoryAuditSink {
  readonly db: Database;
  readonly table: string;
  readonly source: string;
  readonly #policy: 'reject' | 'drop';
  readonly #maxBuffer: number;
  readonly #batchSize: number;
  readonly #flushIntervalMs: number;
  readonly #retryInitial: number;
  readonly #retryMax: number;
  readonly #closeTimeoutMs: number;
  readonly #hash: ChainHash;
  readonly #hmacKey: string | Buffer | undefined;
  readonly #purposeHeader: string | undefined;
  readonly #recordDenials: boolean;
  readonly #auditLog: Logger | undefined;
  readonly #logger: Logger;
  readonly #scope = new AsyncResource('caduceus.audit');
  readonly #unsubscribe: (() => void) | undefined;
  readonly #unreport: () => void;
  /** Events queued per action × outcome (AUDIT_ACTIONS × AUDIT_OUTCOMES order), read at scrape. */
  readonly #counts = new Float64Array(AUDIT_ACTIONS.length * AUDIT_OUTCOMES.length);
  readonly #failuresTotal: Counter | undefined;

  #buffer: PendingRow[] = [];
  /** Events ever queued / written (FIFO: `flush()` waits for written to reach queued). */
  #queued = 0;
  #written = 0;
  /** Events that left the buffer: written, or set apart as unstorable. `flush()` waits on this. */
  #settled = 0;
  #batches = 0;
  #dropped = 0;
  #droppedUnlogged = 0;
  #lastDropLog = 0;
  #rejected = 0;
  #failing = false;
  #lastError: unknown = undefined;
  #timer: NodeJS.Timeout | undefined;
  #draining: Promise<void> | undefined;
  #waiters: Waiter[] = [];
  #closed = false;
  #closing: Promise<void> | undefined;
  #abandon = false;

  constructor(input: Readonly<AuditOptions>) {
    const o = readOptions<AuditOptions>('audit', input, KNOWN);
    const db = o.db as Partial<Database> | undefined;
    if (typeof db !== 'object' || typeof db.knex !== 'function' || typeof db.transaction !== 'function')
      throw ConfigError.option('audit', 'db', 'a Database from createDatabase()', o.db);
    this.db = db as Database;
    this.table = checkTable('audit', o.table ?? 'audit_events');
    const policy: unknown = o.onOverflow ?? 'reject';
    if (policy !== 'reject' && policy !== 'drop')
      throw ConfigError.option('audit', 'onOverflow', "'reject' or 'drop'", policy);
    this.#policy = policy;
    this.#maxBuffer = positiveInt('maxBuffer', o.maxBuffer, 10_000);
    this.#batchSize = positiveInt('batchSize', o.batchSize, 500, 5000);
    this.#flushIntervalMs = positiveInt('flushIntervalMs', o.flushIntervalMs, 100, 60_000);
    this.#closeTimeoutMs = positiveInt('closeTimeoutMs', o.closeTimeoutMs, 5000, 600_000);
    this.#hmacKey = checkKey('audit', o.hmacKey);
    this.#hash = chainHash(this.#hmacKey);
    const retry: unknown = o.retry ?? {};
    if (typeof retry !== 'object' || retry === null)
      throw ConfigError.option('audit', 'retry', '{ initialMs, maxMs }', retry);
    const r = readOptions<{ initialMs?: number; maxMs?: number }>('audit retry', retry, [
      'initialMs',
      'maxMs',
    ]);
    this.#retryInitial = positiveInt('retry.initialMs', r.initialMs, 100, 60_000);
    this.#retryMax = positiveInt('retry.maxMs', r.maxMs, Math.max(5000, this.#retryInitial), 600_000);
    const header = o.purposeOfUseHeader ?? 'x-purpose-of-use';
    if (header !== false && (typeof header !== 'string' || !HEADER.test(header)))
      throw ConfigError.option('audit', 'purposeOfUseHeader', 'a header name or false', header);
    this.#purposeHeader = header === false ? undefined : header.toLowerCase();
    if (o.recordDenials !== undefined && typeof o.recordDenials !== 'boolean')
      throw ConfigError.option('audit', 'recordDenials', 'true or false', o.recordDenials);
    this.#recordDenials = o.recordDenials ?? true;
    const settings = o.settings ?? loadSettings(process.env);
    const source = o.source ?? settings.appName;
    if (typeof source !== 'string' || source === '' || source.length > 128)
      throw ConfigError.option('audit', 'source', 'a name (1–128 characters)', source);
    this.source = source;
    for (const key of ['auditLog', 'logger'] as const) {
      const l = o[key] as Partial<Logger> | undefined;
      if (
        l !== undefined &&
        (typeof l !== 'object' || typeof l.info !== 'function' || typeof l.error !== 'function')
      )
        throw ConfigError.option('audit', key, 'a Logger from createLogger()', l);
    }
    this.#auditLog = o.auditLog;
    this.#logger = o.logger ?? createLogger('audit', { settings });

    const metrics = metricsFor('audit', o.metrics, settings);
    this.#failuresTotal = metrics?.counter(
      'audit_write_failures_total',
      'Audit batch writes that failed (each is retried).',
    );
    const stops = metrics
      ? [
          metrics.pull(
            {
              name: 'audit_events_total',
              help: 'Audit events queued, by action and outcome.',
              type: 'counter',
              labelNames: ['action', 'outcome'],
            },
            (emit) => {
              AUDIT_ACTIONS.forEach((action, a) => {
                AUDIT_OUTCOMES.forEach((outcome, o) => {
                  emit([action, outcome], this.#counts[a * AUDIT_OUTCOMES.length + o] ?? 0);
                });
              });
            },
          ),
          metrics.pull(
            {
              name: 'audit_buffer_events',
              help: 'Audit events waiting to be written.',
              type: 'gauge',
              labelNames: [],
            },
            (emit) => {
              emit([], this.#buffer.length);
            },
          ),
          metrics.pull(
            {
              name: 'audit_events_written_total',
              help: 'Audit events written to the store.',
              type: 'counter',
              labelNames: [],
            },
            (emit) => {
              emit([], this.#written);
            },
          ),
          metrics.pull(
            {
              name: 'audit_events_dropped_total',
              help: 'Audit events lost: a full buffer, a closed trail, or a value the store cannot hold (each also logged).',
              type: 'counter',
              labelNames: [],
            },
            (emit) => {
              emit([], this.#dropped);
            },
          ),
          metrics.pull(
            {
              name: 'audit_events_rejected_total',
              help: 'Requests refused with 503 because the audit buffer was full.',
              type: 'counter',
              labelNames: [],
            },
            (emit) => {
              emit([], this.#rejected);
            },
          ),
        ]
      : [];
    this.#unreport = () => {
      for (const stop of stops) stop();
    };

    if (o.auth !== undefined) {
      const auth = o.auth as Partial<NonNullable<AuditOptions['auth']>>;
      if (typeof auth !== 'object' || typeof auth.subscribe !== 'function')
        throw ConfigError.option('audit', 'auth', 'an Auth from createAuth()', o.auth);
      this.#unsubscribe = auth.subscribe((event) => {
        this.#onAuthEvent(event);
      });
    }
  }

  /** Create the table, its chain head and the append-only guard when missing. Idempotent. */
  migrate(): Promise<void> {
    return migrateAudit(this.db, this.table);
  }

  /**
   * Middleware: adds `req.audit(event)` and records 401/403 answers. Mount it after
   * `requestContext()`, on the routes that serve protected data.
   */
  middleware(): RequestHandler {
    // Built once: requests get these functions, never a closure of their own.
    const record = (event: AuditEventInput, req: Request): void => {
      this.record(event, req);
    };
    const denial = (req: Request, status: number): void => {
      this.#recordDenial(req, status);
    };
    const audit = function audit(this: Request, event: AuditEventInput): void {
      record(event, this);
    };
    const onFinish = function onAuditedResponseFinish(this: Response): void {
      const status = this.statusCode;
      if (status === 401 || status === 403) denial(this.req, status);
    };
    const recordDenials = this.#recordDenials;
    return function auditTrail(req: Request, res: Response, next: NextFunction): void {
      req.audit = audit;
      // `on`, not `once`: a response finishes once, and `once` would wrap the listener per request.
      if (recordDenials) res.on('finish', onFinish);
      next();
    };
  }

  /**
   * Queue an event. Actor, request id, trace id, client IP and user agent come from the request
   * context. Throws `ServiceUnavailableError` (503) when the buffer is full and `onOverflow` is
   * `'reject'`; a `ValidationError` for an event that cannot be stored.
   */
  record(event: AuditEventInput, req?: object): void {
    if (typeof event !== 'object' || (event as unknown) === null)
      throw new ValidationError('Invalid audit event', { _: 'must be an object' });
    const action: unknown = event.action;
    if (typeof action !== 'string' || !ACTIONS.has(action))
      throw new ValidationError('Invalid audit event', {
        action: `must be one of ${AUDIT_ACTIONS.join(', ')}`,
      });
    const outcome: unknown = event.outcome ?? 'success';
    if (typeof outcome !== 'string' || !OUTCOMES.has(outcome))
      throw new ValidationError('Invalid audit event', {
        outcome: `must be one of ${AUDIT_OUTCOMES.join(', ')}`,
      });
    const resourceType = event.resourceType;
    if (resourceType !== undefined && (typeof resourceType !== 'string' || !RESOURCE_TYPE.test(resourceType)))
      throw new ValidationError('Invalid audit event', { resourceType: 'must be a resource type name' });
    const purpose = event.purposeOfUse;
    if (purpose !== undefined && (typeof purpose !== 'string' || !PURPOSE.test(purpose)))
      throw new ValidationError('Invalid audit event', { purposeOfUse: 'must be 1–32 of A–Z a–z 0–9 _ . -' });
    const patientId = optionalId('patientId', event.patientId);
    const row = this.#row(
      getContext(req),
      action as AuditAction,
      outcome as AuditOutcome,
      resourceType ?? null,
      optionalId('resourceId', event.resourceId),
      patientId,
      null,
      detailsText(event.details, undefined),
      purpose,
    );
    this.#push(row, true);
  }

  /** @internal For repositories: throws 503 when there is no room (policy `reject`). */
  admit(): void {
    if (this.#policy === 'drop') return;
    if (this.#buffer.length < this.#maxBuffer && !this.#closed) return;
    this.#rejected++;
    throw this.#unavailable();
  }

  /** @internal For repositories: one event per row touched, one per search. */
  recordRepositoryAccess(access: RepositoryAccess): void {
    const ctx = getContext();
    const action = REPOSITORY_ACTIONS[access.action];
    const outcome: AuditOutcome = access.outcome === 'success' ? 'success' : 'error';
    const reason = access.outcome === 'not_found' ? { reason: 'not_found' } : undefined;
    if (access.action === 'search') {
      // Ids over 255 characters are cut like every id column: a value the column cannot hold would
      // stop every later batch behind it.
      const patients = [
        ...new Set(
          access.patientIds.filter((p): p is string => p !== undefined).map((p) => short(p, 255) ?? ''),
        ),
      ].filter((p) => p !== '');
      const details: Record<string, unknown> = { count: access.ids.length };
      if (access.filterFields !== undefined && access.filterFields.length > 0)
        details.filter_fields = access.filterFields;
      this.#push(
        this.#row(
          ctx,
          'search',
          outcome,
          access.resourceType,
          null,
          patients.length === 1 ? (patients[0] ?? null) : null,
          patients.length === 0 ? null : JSON.stringify(patients),
          JSON.stringify({ ...details, ...reason }),
          undefined,
        ),
        false,
      );
      return;
    }
    const details = reason === undefined ? null : JSON.stringify(reason);
    for (let i = 0; i < access.ids.length; i++) {
      this.#push(
        this.#row(
          ctx,
          action,
          outcome,
          access.resourceType,
          short(access.ids[i], 255),
          short(access.patientIds[i], 255),
          null,
          details,
          undefined,
        ),
        false,
      );
    }
  }

  /** Resolves when every event queued so far is written; rejects (503) after `timeoutMs` (default 10 s). */
  flush(options: { timeoutMs?: number } = {}): Promise<void> {
    const timeoutMs = positiveInt('flush timeoutMs', options.timeoutMs, 10_000, 600_000);
    const target = this.#queued;
    if (this.#settled >= target) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        target,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.#waiters = this.#waiters.filter((w) => w !== waiter);
          reject(
            new ServiceUnavailableError(
              `The audit trail could not write ${target - this.#settled} event(s) within ${timeoutMs} ms`,
            ),
          );
        }, timeoutMs),
      };
      this.#waiters.push(waiter);
      this.#drainSoon(0);
    });
  }

  /** A page of events, newest first. */
  query(filters: AuditQuery = {}): Promise<AuditPage> {
    return queryEvents(this.db, this.table, filters);
  }

  /** One event by id. */
  find(id: string): Promise<AuditEvent | undefined> {
    return findEvent(this.db, this.table, id);
  }

  /** `verifyAuditChain()` on this trail's table. */
  verify(): Promise<VerifyResult> {
    return verifyAuditChain(this.db, {
      table: this.table,
      ...(this.#hmacKey === undefined ? {} : { hmacKey: this.#hmacKey }),
    });
  }

  stats(): AuditStats {
    return {
      buffered: this.#buffer.length,
      written: this.#written,
      batches: this.#batches,
      dropped: this.#dropped,
      rejected: this.#rejected,
      failing: this.#failing,
    };
  }

  /**
   * Write what is buffered (for at most `closeTimeoutMs`) and stop. Events still unwritten then are
   * reported in an error log line and the rejection. Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#unsubscribe?.();
      const deadline = Date.now() + this.#closeTimeoutMs;
      try {
        // Requests still in flight may record while the last batches are written: until none is left.
        while (this.#settled < this.#queued) {
          await this.flush({ timeoutMs: Math.max(1, Math.ceil(deadline - Date.now())) });
        }
      } catch (err) {
        const lost = this.#buffer.length;
        this.#logger.error('audit trail closed with events it could not write', {
          lost,
          table: this.table,
          error_kind: errorKind(this.#lastError),
        });
        throw err;
      } finally {
        this.#closed = true;
        this.#abandon = true;
        if (this.#timer !== undefined) clearTimeout(this.#timer);
        this.#timer = undefined;
        this.#unreport();
      }
    })();
    return this.#closing;
  }

  #unavailable(): ServiceUnavailableError {
    return new ServiceUnavailableError(
      'The audit trail cannot record this access right now; try again shortly',
      5,
    );
  }

  #row(
    ctx: RequestContext | undefined,
    action: AuditAction,
    outcome: AuditOutcome,
    resourceType: string | null,
    resourceId: string | null,
    patientId: string | null,
    patientIds: string | null,
    details: string | null,
    purpose: string | undefined,
  ): PendingRow {
    const userId = ctx?.userId;
    const actorType =
      ctx === undefined ? 'system' : userId === undefined ? 'anonymous' : (ctx.actorType ?? 'user');
    const declared =
      purpose ?? (this.#purposeHeader === undefined ? undefined : ctx?.header?.(this.#purposeHeader));
    return {
      event_id: randomUUID(),
      at: Date.now(),
      action,
      outcome,
      actor_id: short(userId, 255),
      actor_type: actorType,
      actor_roles: this.#rolesText(ctx?.roles),
      resource_type: resourceType,
      resource_id: resourceId,
      patient_id: patientId,
      patient_ids: patientIds,
      request_id: short(ctx?.requestId, 128),
      trace_id: ctx === undefined ? null : TRACE_ID.test(ctx.traceId) ? ctx.traceId : short(ctx.traceId, 32),
      client_ip: short(ctx?.ip, 64),
      user_agent: short(ctx?.userAgent, 512),
      purpose_of_use: declared !== undefined && PURPOSE.test(declared) ? declared : null,
      details,
    };
  }

  /** Requests whose refusal an auth event already recorded (their 401 is not recorded twice). */
  readonly #deniedContexts = new WeakSet<object>();
  #lastRoles: readonly string[] | undefined = undefined;
  #lastRolesText = '[]';

  /** Roles as JSON; the same list as the previous event's (one user's burst) is not serialised again. */
  #rolesText(roles: readonly string[] | undefined): string {
    if (roles === undefined || roles.length === 0) return '[]';
    const last = this.#lastRoles;
    if (last !== roles && (last?.length !== roles.length || last.some((r, i) => r !== roles[i]))) {
      this.#lastRoles = roles;
      this.#lastRolesText = JSON.stringify(roles);
    }
    return this.#lastRolesText;
  }

  #recordDenial(req: Request, status: number): void {
    const ctx = getContext(req);
    // Already recorded, with its reason, from the Auth's failure event.
    if (status === 401 && ctx !== undefined && this.#deniedContexts.has(ctx)) return;
    const route = ctx?.route;
    const details: Record<string, unknown> = {
      reason: status === 401 ? 'unauthenticated' : 'forbidden',
      status,
      method: short(req.method, 16),
    };
    if (route !== undefined) details.route = short(route, 256);
    this.#push(
      this.#row(ctx, 'access-denied', 'denied', null, null, null, null, JSON.stringify(details), undefined),
      false,
    );
  }

  #onAuthEvent(event: AuthEventLike): void {
    let action: AuditAction;
    let outcome: AuditOutcome;
    switch (event.type) {
      case 'issued':
        action = 'login';
        outcome = 'success';
        break;
      case 'failure':
        // A wrong password is a refused login; a refused token, a refused access (with its reason,
        // wherever authenticate() is mounted). Either way the request's 401 is not recorded again.
        action = event.reason === 'invalid_credentials' ? 'login' : 'access-denied';
        outcome = 'denied';
        break;
      case 'refresh_reuse':
        action = 'access-denied';
        outcome = 'denied';
        break;
      case 'revoked':
        action = 'logout';
        outcome = 'success';
        break;
      default:
        return;
    }
    const ctx = getContext();
    if (outcome === 'denied' && ctx !== undefined) this.#deniedContexts.add(ctx);
    const details: Record<string, unknown> = {};
    if (event.reason !== undefined) details.reason = short(event.reason, 64);
    if (event.type === 'failure') {
      details.status = 401;
      if (ctx?.method !== undefined) details.method = short(ctx.method, 16);
      if (ctx?.route !== undefined) details.route = short(ctx.route, 256);
    }
    const row = this.#row(
      ctx,
      action,
      outcome,
      null,
      null,
      null,
      null,
      Object.keys(details).length === 0 ? null : JSON.stringify(details),
      undefined,
    );
    // A login happens before the request context knows who it is: the event names the user. For
    // anything else a known caller stays the actor (an admin revoking someone's token), and the
    // user the event is about goes into the details.
    if (event.userId !== undefined) {
      if (event.type === 'issued' || ctx?.userId === undefined) {
        row.actor_id = short(event.userId, 255);
        row.actor_type = ctx?.actorType ?? 'user';
      } else if (ctx.userId !== event.userId) {
        details.target_user = short(event.userId, 255);
        row.details = JSON.stringify(details);
      }
    }
    this.#push(row, false);
  }

  /** Queue `row`; a full buffer rejects (when `mayReject` and the policy says so) or drops, never silently. */
  #push(row: PendingRow, mayReject: boolean): void {
    if (this.#closed) {
      this.#drop(row, 'closed');
      return;
    }
    if (this.#buffer.length >= this.#maxBuffer) {
      if (this.#policy === 'reject' && mayReject) {
        this.#rejected++;
        throw this.#unavailable();
      }
      // Under 'reject', events of requests already admitted are kept: the overshoot is bounded
      // by the requests in flight. Under 'drop', or when nothing can be refused any more, drop.
      if (this.#policy === 'drop' || this.#buffer.length >= this.#maxBuffer * 2) {
        this.#drop(row, 'buffer_full');
        return;
      }
    }
    this.#buffer.push(row);
    this.#queued++;
    const a = ACTION_INDEX.get(row.action) ?? 0;
    const o = OUTCOME_INDEX.get(row.outcome) ?? 0;
    this.#counts[a * AUDIT_OUTCOMES.length + o] = (this.#counts[a * AUDIT_OUTCOMES.length + o] ?? 0) + 1;
    if (this.#buffer.length >= this.#batchSize) this.#drainSoon(0);
    else this.#drainSoon(this.#flushIntervalMs);
  }

  #drop(row: PendingRow, why: string): void {
    this.#dropped++;
    this.#droppedUnlogged++;
    const now = Date.now();
    if (now - this.#lastDropLog < DROP_LOG_INTERVAL_MS) return;
    this.#lastDropLog = now;
    this.#logger.error('audit events dropped', {
      dropped: this.#droppedUnlogged,
      reason: why,
      action: row.action,
      request_id: row.request_id,
      table: this.table,
    });
    this.#droppedUnlogged = 0;
  }

  #drainSoon(delayMs: number): void {
    if (this.#draining !== undefined) return;
    if (this.#timer !== undefined) {
      if (delayMs > 0) return;
      clearTimeout(this.#timer);
    }
    // Outside any request's context: write failures are not logged as some request's lines.
    this.#timer = this.#scope.runInAsyncScope(() =>
      setTimeout(() => {
        this.#timer = undefined;
        this.#draining = this.#drain().finally(() => {
          this.#draining = undefined;
          if (this.#buffer.length > 0 && !this.#abandon) this.#drainSoon(this.#flushIntervalMs);
        });
      }, delayMs),
    );
    this.#timer.unref();
  }

  async #drain(): Promise<void> {
    let backoff = this.#retryInitial;
    while (this.#buffer.length > 0 && !this.#abandon) {
      const batch = this.#buffer.slice(0, this.#batchSize);
      try {
        let written;
        try {
          written = await appendBatch(
            this.db,
            this.table,
            batch,
            this.#auditLog !== undefined,
            this.#hash,
            this.#failing,
          );
        } catch (err) {
          if (!isDataError(err)) throw err;
          await this.#setApart(batch);
          continue;
        }
        this.#buffer.splice(0, batch.length);
        this.#written += batch.length;
        this.#settled += batch.length;
        this.#batches++;
        backoff = this.#retryInitial;
        if (this.#failing) {
          this.#failing = false;
          this.#logger.info('audit trail writing again', {
            table: this.table,
            buffered: this.#buffer.length,
          });
        }
        if (this.#auditLog !== undefined)
          for (const row of written.rows ?? []) this.#auditLog.info('audit_event', { ...row });
        this.#settle();
      } catch (err) {
        this.#failuresTotal?.inc();
        this.#lastError = err;
        if (!this.#failing) {
          this.#failing = true;
          // The driver's message can echo values; the code says what happened.
          this.#logger.error('audit trail cannot write; events are buffered and retried', {
            table: this.table,
            buffered: this.#buffer.length,
            error_kind: errorKind(err),
          });
        }
        await new Promise<void>((resolve) => {
          setTimeout(resolve, backoff).unref();
        });
        backoff = Math.min(backoff * 2, this.#retryMax);
      }
    }
  }

  /**
   * A batch the database refused for its data: written one event at a time, so only the events it
   * cannot hold are dropped (counted and logged) and the trail keeps going. An outage meanwhile
   * rethrows, and the retry starts again from the first event not yet written.
   */
  async #setApart(batch: readonly PendingRow[]): Promise<void> {
    for (const event of batch) {
      try {
        await appendBatch(this.db, this.table, [event], false, this.#hash, true);
        this.#written++;
      } catch (err) {
        if (!isDataError(err)) throw err;
        this.#drop(event, 'unstorable');
      }
      this.#buffer.shift();
      this.#settled++;
      this.#batches++;
    }
    this.#settle();
  }

  #settle(): void {
    if (this.#waiters.length === 0) return;
    const keep: Waiter[] = [];
    for (const w of this.#waiters) {
      if (this.#settled >= w.target) {
        clearTimeout(w.timer);
        w.resolve();
      } else keep.push(w);
    }
    this.#waiters = keep;
  }
}
