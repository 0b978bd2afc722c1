import type { Settings } from '../config/index.js';
import type { Database } from '../database/index.js';
import type { Logger } from '../logging/index.js';
import type { Metrics } from '../metrics/index.js';

export const AUDIT_ACTIONS = [
  'read',
  'create',
  'update',
  'delete',
  'search',
  'export',
  'login',
  'logout',
  'access-denied',
] as const;
/** What was done. */
export type AuditAction = (typeof AUDIT_ACTIONS)[number];

export const AUDIT_OUTCOMES = ['success', 'denied', 'error'] as const;
export type AuditOutcome = (typeof AUDIT_OUTCOMES)[number];

/** How the actor was identified. */
export type AuditActorType = 'user' | 'service' | 'system' | 'anonymous';

/** Small, non-PHI facts: ids, counts, names of things. */
export type AuditDetails = Readonly<Record<string, string | number | boolean | null>>;

/** An event as the application records it (`req.audit(…)`, `trail.record(…)`). */
export interface AuditEventInput {
  action: AuditAction;
  /** `Patient`, `Observation`, … (letters, digits, `_ . -`; at most 64). */
  resourceType?: string | undefined;
  resourceId?: string | number | undefined;
  /** The patient the record belongs to. */
  patientId?: string | number | undefined;
  /** Default `success`. */
  outcome?: AuditOutcome | undefined;
  /** Overrides the request's `X-Purpose-Of-Use` (e.g. `TREAT`, `ETREAT`). */
  purposeOfUse?: string | undefined;
  /** Small non-PHI values (at most 20 keys, 2 KB as JSON). */
  details?: AuditDetails | undefined;
}

/** One stored event, as `query()` returns it. */
export interface AuditEvent {
  seq: number;
  id: string;
  /** ISO 8601 UTC with milliseconds. */
  recordedAt: string;
  action: AuditAction;
  outcome: AuditOutcome;
  actorId: string | null;
  actorType: AuditActorType;
  actorRoles: string[];
  resourceType: string | null;
  resourceId: string | null;
  patientId: string | null;
  /** Searches: the distinct patients of the page. */
  patientIds: string[];
  requestId: string | null;
  traceId: string | null;
  clientIp: string | null;
  userAgent: string | null;
  purposeOfUse: string | null;
  details: Record<string, unknown> | null;
  prevHash: string;
  hash: string;
}

export interface AuditQuery {
  patientId?: string | number | undefined;
  actorId?: string | undefined;
  action?: AuditAction | undefined;
  outcome?: AuditOutcome | undefined;
  resourceType?: string | undefined;
  resourceId?: string | number | undefined;
  /** Inclusive lower bound. */
  from?: Date | string | undefined;
  /** Exclusive upper bound. */
  to?: Date | string | undefined;
  /** Default 100, at most 1000. */
  limit?: number | undefined;
  /** `nextCursor` of the previous page. */
  cursor?: string | null | undefined;
}

export interface AuditPage {
  /** Newest first. */
  events: AuditEvent[];
  nextCursor: string | null;
}

export interface AuditOptions {
  db: Database;
  /** Default `audit_events`; the chain head lives in `<table>_head`. */
  table?: string;
  /** Full buffer: `reject` (503 before data is touched; default) or `drop` (error log + metric). */
  onOverflow?: 'reject' | 'drop';
  /** Default 10 000. */
  maxBuffer?: number;
  /** Default 200. */
  batchSize?: number;
  /** Default 100 ms. */
  flushIntervalMs?: number;
  /** Backoff between write attempts while the store fails. Default 100 ms doubling to 5000 ms. */
  retry?: { initialMs?: number; maxMs?: number };
  /** Record logins, failed logins and logouts of this Auth. */
  auth?: { subscribe(listener: (event: AuthEventLike) => void): () => void };
  /** Request header declaring the purpose of use; `false` to ignore. Default `x-purpose-of-use`. */
  purposeOfUseHeader?: string | false;
  /** Record 401/403 answers to requests below `middleware()`. Default true. */
  recordDenials?: boolean;
  /** A second sink: one JSON line per written event. */
  auditLog?: Logger;
  /** FHIR `AuditEvent.source.observer`. Default `APP_NAME`. */
  source?: string;
  /** `close()` waits this long for buffered events. Default 5000 ms. */
  closeTimeoutMs?: number;
  /**
   * Chain the rows with HMAC-SHA256 under this key (at least 32 bytes) instead of SHA-256: someone
   * who can write the table but does not hold the key cannot forge a row or rewrite the chain.
   * Keep it outside the database; pass it to `verifyAuditChain()` too.
   */
  hmacKey?: string | Buffer;
  logger?: Logger;
  metrics?: Metrics | false;
  settings?: Settings;
}

/** The part of an auth event the trail reads (`AuthEvent` of `createAuth()`). */
export interface AuthEventLike {
  readonly type: string;
  readonly reason?: string | undefined;
  readonly userId?: string | undefined;
}

export interface AuditStats {
  /** Waiting to be written. */
  buffered: number;
  written: number;
  /** Transactions that wrote them. */
  batches: number;
  dropped: number;
  rejected: number;
  /** The last write attempt failed (the store is down or refusing). */
  failing: boolean;
}

export interface VerifyResult {
  ok: boolean;
  /** Rows whose hash and link were checked and found right. */
  checked: number;
  /** `seq` of the first row that fails (or the first missing one); null when ok. */
  brokenAt: number | null;
  /** `hash`: the row's content changed; `link`: it does not follow the previous row (one deleted or inserted); `head`: rows missing at the end. */
  reason?: 'hash' | 'link' | 'head';
}
