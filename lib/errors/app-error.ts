import { isNativeError } from 'node:util/types';
import type { ErrorCode } from './codes.js';
import { codeForStatus } from './codes.js';

/** Brand shared by every copy of caduceus loaded in the process (ESM and CJS builds, two installs). */
const APP_ERROR = Symbol.for('caduceus.AppError');

export interface AppErrorOptions {
  /** HTTP status. Default 500. */
  status?: number;
  /** Stable SCREAMING_SNAKE code. Default: derived from `status`. */
  code?: ErrorCode;
  /** Extra, client-safe fields rendered under `details`. Never put PHI or secrets here. */
  details?: Readonly<Record<string, unknown>>;
  /** Whether `message` is safe to send to the client. Default: `status < 500`. */
  expose?: boolean;
  /** Response headers the error implies (`Retry-After`, `WWW-Authenticate`). */
  headers?: Readonly<Record<string, string>>;
  /** The underlying error, kept for logs, never rendered. */
  cause?: unknown;
}

/**
 * Base class of every error caduceus raises or maps. `errors()` turns it into a response.
 *
 * @example
 * throw new AppError('Consent required', { status: 403, code: 'CONSENT_REQUIRED' });
 */
export class AppError extends Error {
  declare readonly [APP_ERROR]: true;
  readonly status: number;
  readonly code: ErrorCode;
  readonly details: Readonly<Record<string, unknown>>;
  readonly expose: boolean;
  readonly headers: Readonly<Record<string, string>> | undefined;

  constructor(message: string, options: AppErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    const status = options.status ?? 500;
    if (!Number.isInteger(status) || status < 400 || status > 599) {
      throw new RangeError(`AppError: status must be an integer from 400 to 599, got ${String(status)}`);
    }
    Object.defineProperty(this, APP_ERROR, { value: true });
    // Not enumerable, like Error's own `name`: spreading or logging an error's fields skips it.
    Object.defineProperty(this, 'name', {
      value: new.target.name,
      enumerable: false,
      configurable: true,
      writable: true,
    });
    this.status = status;
    this.code = options.code ?? codeForStatus(status);
    this.details = options.details ?? {};
    this.expose = options.expose ?? status < 500;
    this.headers = options.headers;
  }
}

/** True for an AppError from any copy of caduceus (brand check, not `instanceof`). */
export function isAppError(value: unknown): value is AppError {
  return (
    typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[APP_ERROR] === true
  );
}

/** `NotFoundError('Patient', id)` → 404 NOT_FOUND, as in the seed. */
export class NotFoundError extends AppError {
  constructor(resource: string, id?: string | number, options: Omit<AppErrorOptions, 'status'> = {}) {
    super(`${resource} not found`, {
      code: 'NOT_FOUND',
      ...options,
      status: 404,
      details: {
        resource_type: resource,
        ...(id === undefined ? {} : { resource_id: String(id) }),
        ...options.details,
      },
    });
  }
}

/** Field-level problems with input: 422 VALIDATION_ERROR with `details.field_errors`. */
export class ValidationError extends AppError {
  readonly fieldErrors: Readonly<Record<string, string>>;
  constructor(
    message = 'Validation failed',
    fieldErrors: Readonly<Record<string, string>> = {},
    options: Omit<AppErrorOptions, 'status'> = {},
  ) {
    super(message, {
      code: 'VALIDATION_ERROR',
      ...options,
      status: 422,
      details: { field_errors: fieldErrors, ...options.details },
    });
    this.fieldErrors = fieldErrors;
  }
}

/**
 * A unique value already exists: 409 DUPLICATE. The conflicting value is accepted for seed
 * compatibility but never stored or rendered: it is often PHI (an email, an MRN).
 */
export class DuplicateError extends AppError {
  readonly field: string;
  constructor(
    resource: string,
    field: string,
    _value?: unknown,
    options: Omit<AppErrorOptions, 'status'> = {},
  ) {
    super(`${resource} with this ${field} already exists`, {
      code: 'DUPLICATE',
      ...options,
      status: 409,
      details: { resource_type: resource, field, ...options.details },
    });
    this.field = field;
  }
}

/** A failure inside a service: 500 SERVICE_ERROR by default, as in the seed; the message is not exposed. */
export class ServiceError extends AppError {
  constructor(message = 'Service error', code: ErrorCode = 'SERVICE_ERROR', options: AppErrorOptions = {}) {
    super(message, { status: 500, ...options, code });
  }
}

export interface UnauthorizedOptions extends Omit<AppErrorOptions, 'status'> {
  /** `error` parameter of the Bearer challenge (RFC 6750), e.g. `invalid_token`. */
  bearerError?: 'invalid_request' | 'invalid_token' | 'insufficient_scope';
  realm?: string;
}

/** 401 with a `WWW-Authenticate: Bearer` challenge. */
export class UnauthorizedError extends AppError {
  constructor(message = 'Authentication required', options: UnauthorizedOptions = {}) {
    const { bearerError, realm = 'api', ...rest } = options;
    const challenge =
      bearerError === undefined
        ? `Bearer realm="${realm}"`
        : `Bearer realm="${realm}", error="${bearerError}"`;
    super(message, {
      code: 'UNAUTHORIZED',
      ...rest,
      status: 401,
      headers: { 'WWW-Authenticate': challenge, ...rest.headers },
    });
  }
}

/** 403 FORBIDDEN: authenticated but not allowed. */
export class ForbiddenError extends AppError {
  constructor(message = 'Insufficient permissions', options: Omit<AppErrorOptions, 'status'> = {}) {
    super(message, { code: 'FORBIDDEN', ...options, status: 403 });
  }
}

/** Longest Retry-After we send: a day. Anything longer, or not a finite number, is not a useful hint. */
const MAX_RETRY_AFTER = 86_400;

function retryAfterHeaders(retryAfterSeconds: number | undefined): Record<string, string> | undefined {
  if (retryAfterSeconds === undefined || !Number.isFinite(retryAfterSeconds)) return undefined;
  return { 'Retry-After': String(Math.min(MAX_RETRY_AFTER, Math.max(0, Math.ceil(retryAfterSeconds)))) };
}

/** 429 RATE_LIMITED with `Retry-After` when the wait is known. */
export class RateLimitError extends AppError {
  readonly retryAfter: number | undefined;
  constructor(
    retryAfterSeconds?: number,
    message = 'Too many requests',
    options: Omit<AppErrorOptions, 'status'> = {},
  ) {
    super(message, {
      code: 'RATE_LIMITED',
      ...options,
      status: 429,
      headers: { ...retryAfterHeaders(retryAfterSeconds), ...options.headers },
    });
    this.retryAfter = retryAfterSeconds;
  }
}

/** 503 SERVICE_UNAVAILABLE with `Retry-After` when known. The message is exposed (it is ours). */
export class ServiceUnavailableError extends AppError {
  readonly retryAfter: number | undefined;
  constructor(
    message = 'Service temporarily unavailable',
    retryAfterSeconds?: number,
    options: Omit<AppErrorOptions, 'status'> = {},
  ) {
    super(message, {
      code: 'SERVICE_UNAVAILABLE',
      expose: true,
      ...options,
      status: 503,
      headers: { ...retryAfterHeaders(retryAfterSeconds), ...options.headers },
    });
    this.retryAfter = retryAfterSeconds;
  }
}

/** A circuit breaker refused the call: 503 CIRCUIT_OPEN. */
export class CircuitOpenError extends ServiceUnavailableError {
  readonly circuit: string;
  constructor(circuit: string, retryAfterSeconds?: number) {
    super('Service temporarily unavailable', retryAfterSeconds, {
      code: 'CIRCUIT_OPEN',
      details: { service: circuit },
    });
    this.circuit = circuit;
  }
}

/** An operation ran out of time: 504 TIMEOUT. */
export class TimeoutError extends AppError {
  readonly timeoutMs: number | undefined;
  constructor(
    message = 'Operation timed out',
    timeoutMs?: number,
    options: Omit<AppErrorOptions, 'status'> = {},
  ) {
    super(message, { code: 'TIMEOUT', expose: true, ...options, status: 504 });
    this.timeoutMs = timeoutMs;
  }
}

/** One invalid setting or option. `received` describes the value's class, never the value of a secret. */
export interface ConfigIssue {
  readonly name: string;
  readonly expected: string;
  readonly received: string;
}

/**
 * Misconfiguration, thrown when a factory is called or settings are loaded — never at request time.
 * Every problem found is listed in `issues`.
 */
export class ConfigError extends AppError {
  readonly issues: readonly ConfigIssue[];
  constructor(message: string, issues: readonly ConfigIssue[] = []) {
    super(`${message}. See docs/error-codes.md#CONFIG_INVALID`, {
      code: 'CONFIG_INVALID',
      status: 500,
      expose: false,
    });
    this.issues = issues;
  }

  /** One bad option of a factory: `rateLimit: windowMs must be a positive integer, got -5`. */
  static option(factory: string, option: string, expected: string, received: unknown): ConfigError {
    const got = describeValue(received);
    return new ConfigError(`${factory}: ${option} must be ${expected}, got ${got}`, [
      { name: option, expected, received: got },
    ]);
  }
}

/** A short, non-leaking description of a value for error messages: its type and size, numbers literally. */
export function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return `an array of ${value.length}`;
  switch (typeof value) {
    case 'string':
      return value.length === 0 ? 'an empty string' : `a string of ${value.length} characters`;
    case 'number':
    case 'boolean':
    case 'bigint':
      return String(value);
    case 'function':
      return 'a function';
    case 'undefined':
      return 'undefined';
    default:
      return typeof value === 'object' ? 'an object' : typeof value;
  }
}

/**
 * Whether a value is an Error, from any realm: `instanceof Error` fails for errors made in another
 * V8 context (a native addon's, a vm's, jest's), which would then be logged as plain objects.
 */
export function isError(value: unknown): value is Error {
  if (value instanceof Error || isNativeError(value)) return true;
  // better-sqlite3's SqliteError (built without the Error constructor) seen from another jest
  // registry: a message, and a stack that captureStackTrace made non-enumerable.
  if (typeof value !== 'object' || value === null) return false;
  const stack = Object.getOwnPropertyDescriptor(value, 'stack');
  return (
    stack !== undefined &&
    !stack.enumerable &&
    typeof stack.value === 'string' &&
    typeof (value as { message?: unknown }).message === 'string'
  );
}
