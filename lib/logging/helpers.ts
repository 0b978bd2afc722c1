import winston from 'winston';
import { isError } from '../errors/index.js';
import type { Logger } from './create-logger.js';
import { loggableMessage } from './redact.js';

export interface RequestLogFields {
  method: string;
  /** Route template or URL; a URL's query string is redacted by the logger. */
  url: string;
  statusCode: number;
  /** Seconds, as in the seed (`duration=0.15`). */
  duration: number;
  requestId?: string;
  userId?: string;
  [extra: string]: unknown;
}

/** The seed's `log_request`: one structured line for a handled request. */
export function logRequest(logger: Logger, fields: RequestLogFields): void {
  const { method, url, statusCode, duration, requestId, userId, ...extra } = fields;
  const level = statusCode >= 500 ? 'error' : statusCode >= 400 ? 'warn' : 'info';
  logger.log(level, 'request completed', {
    ...extra,
    method,
    url,
    status: statusCode,
    duration_ms: Math.round(duration * 1e6) / 1e3,
    request_id: requestId,
    user_id: userId,
  });
}

/** The seed's `log_error`: an error with its stack and context, at error level. */
export function logError(
  logger: Logger,
  error: unknown,
  context: Record<string, unknown> = {},
  userId?: string,
): void {
  // A driver error's message can carry the SQL with its values (Knex): the same cleaning as the
  // `error` field gets, not just the string patterns.
  const message = isError(error) ? loggableMessage(error) : String(error);
  logger.error(message, { ...context, user_id: userId, error });
}

export type SecuritySeverity = 'low' | 'medium' | 'high' | 'critical';

/** A security event (auth failure, blocked request, threat): warn, or error for high/critical. */
export function logSecurityEvent(
  logger: Logger,
  event: string,
  details: Record<string, unknown> = {},
  severity: SecuritySeverity = 'medium',
): void {
  const level = severity === 'high' || severity === 'critical' ? 'error' : 'warn';
  logger.log(level, `security event: ${event}`, {
    ...details,
    category: 'security',
    security_event: event,
    severity,
  });
}

const NPM_LEVELS: Readonly<Record<string, number>> = winston.config.npm.levels;

/**
 * winston's `isLevelEnabled` for a logger with npm levels (every caduceus logger), without the
 * closure it allocates per call: for checks on the request path.
 */
export function levelEnabled(logger: Logger, level: string): boolean {
  const levels = (logger.levels as Readonly<Record<string, number>> | undefined) ?? NPM_LEVELS;
  const wanted = levels[level];
  const configured = levels[logger.level];
  if (wanted === undefined || configured === undefined) return false;
  const transports = logger.transports;
  if (transports.length === 0) return configured >= wanted;
  for (const t of transports) if ((levels[t.level ?? ''] ?? configured) >= wanted) return true;
  return false;
}
