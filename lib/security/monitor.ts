import type { Request } from 'express';
import { getRequestId } from '../context/index.js';
import type { Logger } from '../logging/index.js';
import { logSecurityEvent } from '../logging/index.js';
import type { ThreatCategory, ThreatLocation } from './signatures.js';

/** What `security()` decided about a request. */
export type SecurityAction = 'blocked' | 'logged' | 'banned' | 'rejected';

/** Why. */
export type SecurityReason =
  | ThreatCategory
  | 'deny_list'
  | 'banned'
  | 'invalid_input'
  | 'uri_too_long'
  | 'headers_too_large'
  | 'payload_too_large';

/** One decision, as the `onEvent` hook receives it. Never carries the request's content. */
export interface SecurityEvent {
  readonly reason: SecurityReason;
  readonly action: SecurityAction;
  readonly signature?: string;
  readonly location?: ThreatLocation;
  readonly requestId: string | undefined;
  readonly ip: string | undefined;
}

/** Counts since start, by `reason:action` (e.g. `sql_injection:blocked`), for the metrics endpoint. */
export type SecurityCounters = Readonly<Record<string, number>>;

/** Repeated refusals of a known-bad client (deny list, ban) are logged at most this often per client. */
const REPEAT_LOG_MS = 60_000;
const MAX_QUIET = 10_000;

/**
 * Where security decisions go: a security log line (with request id, never the matched text — it
 * may hold PHI), a counter, and the application's `onEvent` hook. Refusals of a client that is
 * already denied or banned are counted every time but logged once a minute per client (with how
 * many were not logged), so a flood cannot turn into a flood of log lines.
 */
export class SecurityMonitor {
  readonly #logger: Logger;
  readonly #onEvent: ((event: SecurityEvent) => void) | undefined;
  readonly #counts = new Map<string, number>();
  readonly #quiet = new Map<string, { until: number; suppressed: number }>();

  constructor(logger: Logger, onEvent: ((event: SecurityEvent) => void) | undefined) {
    this.#logger = logger;
    this.#onEvent = onEvent;
  }

  record(
    req: Request,
    reason: SecurityReason,
    action: SecurityAction,
    ip: string | undefined,
    match?: { signature: string; location: ThreatLocation },
  ): void {
    const counter = `${reason}:${action}`;
    this.#counts.set(counter, (this.#counts.get(counter) ?? 0) + 1);
    const requestId = getRequestId(req);
    let suppressed: number | undefined;
    if ((reason === 'deny_list' || reason === 'banned') && action === 'blocked' && ip !== undefined) {
      const now = Date.now();
      const quiet = this.#quiet.get(ip);
      if (quiet !== undefined && quiet.until > now) {
        quiet.suppressed++;
        this.#emit({ reason, action, requestId, ip });
        return;
      }
      suppressed = quiet?.suppressed;
      if (this.#quiet.size >= MAX_QUIET) this.#quiet.clear();
      this.#quiet.set(ip, { until: now + REPEAT_LOG_MS, suppressed: 0 });
    }
    logSecurityEvent(
      this.#logger,
      eventName(reason, action),
      {
        reason,
        action,
        // `signature` is a redacted key (JWT signatures); the rule's id is not a secret.
        rule: match?.signature,
        location: match?.location,
        ip,
        method: req.method,
        request_id: requestId,
        ...(suppressed === undefined || suppressed === 0 ? {} : { not_logged_since_last: suppressed }),
      },
      action === 'banned' ? 'high' : 'medium',
    );
    this.#emit({ reason, action, signature: match?.signature, location: match?.location, requestId, ip });
  }

  /** A configuration warning (logged once by the caller). */
  warn(message: string): void {
    this.#logger.warn(message, { category: 'security' });
  }

  counters(): SecurityCounters {
    return Object.fromEntries(this.#counts);
  }

  #emit(event: SecurityEvent): void {
    if (this.#onEvent === undefined) return;
    try {
      this.#onEvent(event);
    } catch (err) {
      this.#logger.error('security onEvent hook threw', {
        error: err instanceof Error ? err.name : 'unknown',
      });
    }
  }
}

function eventName(reason: SecurityReason, action: SecurityAction): string {
  if (action === 'banned') return 'client_banned';
  if (reason === 'deny_list' || reason === 'banned') return 'client_blocked';
  if (action === 'rejected') return 'request_rejected';
  return 'threat_detected';
}
