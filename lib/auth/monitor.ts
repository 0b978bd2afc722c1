import { ConfigError } from '../errors/index.js';
import type { Logger } from '../logging/index.js';
import { logSecurityEvent } from '../logging/index.js';
import { levelEnabled } from '../logging/helpers.js';
import type { Metrics } from '../metrics/index.js';
import type { AuthEvent, AuthFailureReason } from './types.js';

/** Every failure reason, reported at 0 before it first happens (alerts see a series from the start). */
const FAILURE_REASONS: readonly AuthFailureReason[] = [
  'missing',
  'malformed',
  'expired',
  'not_yet_valid',
  'bad_signature',
  'unknown_key',
  'bad_algorithm',
  'bad_header',
  'bad_claims',
  'wrong_type',
  'too_large',
  'query_token',
  'revoked',
  'refresh_reuse',
  'certificate_mismatch',
  'invalid_credentials',
];

/** Report an Auth's counters to `metrics` at scrape time; returns the function that stops it. */
export function reportAuth(metrics: Metrics | undefined, monitor: AuthMonitor): () => void {
  if (metrics === undefined) return () => undefined;
  const stops = [
    metrics.pull(
      { name: 'auth_success_total', help: 'Requests authenticated.', type: 'counter', labelNames: [] },
      (emit) => {
        emit([], monitor.counters().success);
      },
    ),
    metrics.pull(
      {
        name: 'auth_failures_total',
        help: 'Authentication failures by reason (missing, expired, bad_signature, revoked, …).',
        type: 'counter',
        labelNames: ['reason'],
      },
      (emit) => {
        const { failure } = monitor.counters();
        for (const reason of FAILURE_REASONS) emit([reason], failure[reason] ?? 0);
      },
    ),
    metrics.pull(
      {
        name: 'auth_tokens_total',
        help: 'Token lifecycle events: issued, refreshed, revoked, refresh_reuse.',
        type: 'counter',
        labelNames: ['event'],
      },
      (emit) => {
        const c = monitor.counters();
        emit(['issued'], c.issued);
        emit(['refreshed'], c.refreshed);
        emit(['revoked'], c.revoked);
        emit(['refresh_reuse'], c.refreshReuse);
      },
    ),
  ];
  return () => {
    for (const stop of stops) stop();
  };
}

/** Counts of authentication outcomes since start: what the metrics endpoint exposes. */
export interface AuthCounters {
  readonly success: number;
  readonly failure: Readonly<Partial<Record<AuthFailureReason, number>>>;
  readonly issued: number;
  readonly refreshed: number;
  readonly revoked: number;
  readonly refreshReuse: number;
}

/**
 * Where authentication events go: counters (always), the security log (failures, revocations,
 * refresh reuse; successes only at debug level — one line per request would cost more than the
 * verification), and the application's `onEvent` hook.
 */
export class AuthMonitor {
  readonly #logger: Logger;
  readonly #onEvent: ((event: AuthEvent) => void) | undefined;
  #success = 0;
  #issued = 0;
  #refreshed = 0;
  #revoked = 0;
  #reuse = 0;
  readonly #failure = new Map<AuthFailureReason, number>();
  readonly #listeners = new Set<(event: AuthEvent) => void>();

  constructor(logger: Logger, onEvent: ((event: AuthEvent) => void) | undefined) {
    this.#logger = logger;
    this.#onEvent = onEvent;
  }

  success(userId: string): void {
    this.#success++;
    if (levelEnabled(this.#logger, 'debug'))
      this.#logger.debug('authenticated', { user_id: userId, category: 'security' });
    this.#emit({ type: 'success', userId });
  }

  failure(reason: AuthFailureReason): void {
    this.#failure.set(reason, (this.#failure.get(reason) ?? 0) + 1);
    logSecurityEvent(
      this.#logger,
      'authentication_failed',
      { reason },
      reason === 'revoked' ? 'high' : 'medium',
    );
    this.#emit({ type: 'failure', reason });
  }

  /** A failed password login: counted and hooked, not logged (the login route logs its details). */
  loginFailure(): void {
    this.#failure.set('invalid_credentials', (this.#failure.get('invalid_credentials') ?? 0) + 1);
    this.#emit({ type: 'failure', reason: 'invalid_credentials' });
  }

  issued(userId: string): void {
    this.#issued++;
    this.#logger.info('tokens issued', {
      user_id: userId,
      category: 'security',
      security_event: 'tokens_issued',
    });
    this.#emit({ type: 'issued', userId });
  }

  refreshed(userId: string): void {
    this.#refreshed++;
    this.#logger.info('tokens refreshed', {
      user_id: userId,
      category: 'security',
      security_event: 'token_refresh',
    });
    this.#emit({ type: 'refresh', userId });
  }

  revoked(userId: string | undefined, family: boolean): void {
    this.#revoked++;
    logSecurityEvent(this.#logger, 'token_revoked', { user_id: userId, family }, 'low');
    this.#emit({ type: 'revoked', userId, reason: family ? 'family' : 'token' });
  }

  refreshReuse(userId: string): void {
    this.#reuse++;
    logSecurityEvent(
      this.#logger,
      'refresh_token_reuse',
      { user_id: userId, action: 'family_revoked' },
      'high',
    );
    this.#emit({ type: 'refresh_reuse', userId, reason: 'refresh_reuse' });
  }

  subscribe(listener: (event: AuthEvent) => void): () => void {
    if (typeof listener !== 'function')
      throw ConfigError.option('subscribe', 'listener', 'a function', listener);
    // A wrapper per subscription, so the same function subscribed twice is told twice and unsubscribed once each.
    const entry = (event: AuthEvent): void => {
      listener(event);
    };
    this.#listeners.add(entry);
    return () => {
      this.#listeners.delete(entry);
    };
  }

  counters(): AuthCounters {
    return {
      success: this.#success,
      failure: Object.fromEntries(this.#failure),
      issued: this.#issued,
      refreshed: this.#refreshed,
      revoked: this.#revoked,
      refreshReuse: this.#reuse,
    };
  }

  #emit(event: AuthEvent): void {
    if (this.#onEvent !== undefined) this.#call(this.#onEvent, event);
    for (const listener of this.#listeners) this.#call(listener, event);
  }

  #call(listener: (event: AuthEvent) => void, event: AuthEvent): void {
    try {
      listener(event);
    } catch (err) {
      this.#logger.error('auth onEvent hook threw', { error: err });
    }
  }
}
