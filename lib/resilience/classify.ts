import { isAppError, isError } from '../errors/index.js';

/** Node and undici error codes of a connection that failed or broke: worth another attempt. */
const TRANSIENT_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'EAI_AGAIN',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
]);

/** How deep `cause` chains are followed (fetch wraps the socket error in `TypeError: fetch failed`). */
const MAX_CAUSES = 4;

type Loose = Record<string, unknown>;

function asObject(value: unknown): Loose | undefined {
  return typeof value === 'object' && value !== null ? (value as Loose) : undefined;
}

/** An HTTP status carried by an error or a Response-like value (`status`, `statusCode`, `response.status`). */
function statusOf(value: Loose): number | undefined {
  for (const candidate of [value.status, value.statusCode, asObject(value.response)?.status]) {
    if (typeof candidate === 'number' && Number.isInteger(candidate) && candidate >= 100 && candidate < 600)
      return candidate;
  }
  return undefined;
}

/**
 * The default failure test of `circuitBreaker()`: every error counts against the dependency except
 * one carrying an HTTP status below 500 — an AppError, an HTTP client's error (`status`,
 * `statusCode`, `response.status`) or a Response: a 404 or a 422 is an answer, not an outage.
 */
export function isDependencyFailure(err: unknown): boolean {
  if (isAppError(err)) return err.status >= 500;
  const value = asObject(err);
  const status = value === undefined ? undefined : statusOf(value);
  return status === undefined || status >= 500;
}

/**
 * The default `retryOn` of `retry()`: errors known to be transient — broken or refused connections
 * (also as the `cause` of fetch's `TypeError`), timeouts, HTTP 5xx, 429 and 408 (from an AppError,
 * an HTTP client's error or a Response). Never a 4xx, a configuration error or an unknown error.
 */
export function isTransient(err: unknown): boolean {
  let current: unknown = err;
  for (let depth = 0; depth < MAX_CAUSES; depth++) {
    const value = asObject(current);
    if (value === undefined) return false;
    if (isAppError(value)) return value.code !== 'CONFIG_INVALID' && retryableStatus(value.status);
    if (value.name === 'TimeoutError') return true;
    if (typeof value.code === 'string' && TRANSIENT_CODES.has(value.code)) return true;
    const status = statusOf(value);
    if (status !== undefined) return retryableStatus(status);
    current = value.cause;
  }
  return false;
}

function retryableStatus(status: number): boolean {
  return status >= 500 || status === 429 || status === 408;
}

/** Most `Retry-After` we read: anything longer is capped by `maxDelay` anyway. */
const MAX_RETRY_AFTER_MS = 86_400_000;

/**
 * The wait an error asks for, in milliseconds: `retryAfter` seconds (RateLimitError,
 * ServiceUnavailableError), or a `Retry-After` header (delta-seconds or an HTTP date) on the error's
 * `headers`, its `response.headers`, or the error itself when it is a Response.
 */
export function retryAfterMs(err: unknown, now: number): number | undefined {
  const value = asObject(err);
  if (value === undefined) return undefined;
  if (typeof value.retryAfter === 'number' && Number.isFinite(value.retryAfter) && value.retryAfter >= 0)
    return Math.min(MAX_RETRY_AFTER_MS, value.retryAfter * 1000);
  for (const headers of [value.headers, asObject(value.response)?.headers]) {
    const header = headerOf(headers, 'retry-after');
    if (header !== undefined) return parseRetryAfter(header, now);
  }
  return undefined;
}

function headerOf(headers: unknown, name: string): string | undefined {
  const bag = asObject(headers);
  if (bag === undefined) return undefined;
  if (typeof bag.get === 'function') {
    const found: unknown = (bag.get as (n: string) => unknown).call(bag, name);
    return typeof found === 'string' ? found : undefined;
  }
  for (const [key, found] of Object.entries(bag))
    if (key.toLowerCase() === name) return typeof found === 'string' ? found : undefined;
  return undefined;
}

function parseRetryAfter(header: string, now: number): number | undefined {
  const text = header.trim();
  if (/^\d{1,9}$/.test(text)) return Math.min(MAX_RETRY_AFTER_MS, Number(text) * 1000);
  const at = Date.parse(text);
  if (Number.isNaN(at)) return undefined;
  return Math.min(MAX_RETRY_AFTER_MS, Math.max(0, at - now));
}

/**
 * What a log line may say about an error: its stable code (AppError code, Node's `ECONNREFUSED`)
 * or its class — never its message, which can quote values (PHI, URLs with tokens).
 */
export function errorKind(err: unknown): string {
  let current: unknown = err;
  for (let depth = 0; depth < MAX_CAUSES; depth++) {
    const value = asObject(current);
    if (value === undefined) break;
    if (isAppError(value)) return value.code;
    if (typeof value.code === 'string' && /^[A-Z][A-Z0-9_]{1,63}$/.test(value.code)) return value.code;
    // fetch's `TypeError: fetch failed` says nothing: the socket error is its cause.
    if (value.cause === undefined || !isError(value.cause))
      return isError(value) ? value.name : 'non-error value';
    current = value.cause;
  }
  return typeof err === 'object' && err !== null ? 'non-error value' : typeof err;
}
