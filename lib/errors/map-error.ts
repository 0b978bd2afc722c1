import type { AppError } from './app-error.js';
import {
  AppError as BaseError,
  DuplicateError,
  ServiceUnavailableError,
  TimeoutError,
  UnauthorizedError,
  ValidationError,
  isAppError,
} from './app-error.js';
import { codeForStatus, statusText } from './codes.js';

type Loose = Record<string, unknown>;

/** body-parser / raw-body error types → our errors. */
function fromBodyParser(type: string, status: number, cause: unknown): AppError | undefined {
  switch (type) {
    case 'entity.parse.failed':
      return new BaseError('Request body is not valid JSON', { status: 400, code: 'INVALID_JSON', cause });
    case 'entity.too.large':
      return new BaseError('Request body is too large', { status: 413, code: 'PAYLOAD_TOO_LARGE', cause });
    case 'parameters.too.many':
      return new BaseError('Too many parameters', { status: 413, code: 'PAYLOAD_TOO_LARGE', cause });
    case 'encoding.unsupported':
    case 'charset.unsupported':
      return new BaseError('Unsupported content encoding or charset', {
        status: 415,
        code: 'UNSUPPORTED_MEDIA_TYPE',
        cause,
      });
    case 'request.aborted':
    case 'request.size.invalid':
      return new BaseError('Request body was incomplete', { status: 400, code: 'BAD_REQUEST', cause });
    default:
      return status >= 400 && status < 500 ? new BaseError(statusText(status), { status, cause }) : undefined;
  }
}

/** jsonwebtoken / passport-jwt error names → 401 with a precise, non-leaking code. */
function fromJwt(name: string, cause: unknown): AppError | undefined {
  switch (name) {
    case 'TokenExpiredError':
      return new UnauthorizedError('Token has expired', {
        code: 'TOKEN_EXPIRED',
        bearerError: 'invalid_token',
        cause,
      });
    case 'JsonWebTokenError':
    case 'NotBeforeError':
    case 'JWSInvalid':
    case 'JWTInvalid':
    case 'JWTClaimValidationFailed':
    case 'JWSSignatureVerificationFailed':
      return new UnauthorizedError('Token is invalid', {
        code: 'TOKEN_INVALID',
        bearerError: 'invalid_token',
        cause,
      });
    case 'JWTExpired':
      return new UnauthorizedError('Token has expired', {
        code: 'TOKEN_EXPIRED',
        bearerError: 'invalid_token',
        cause,
      });
    case 'AuthenticationError':
      return new UnauthorizedError('Authentication required', { cause });
    default:
      return undefined;
  }
}

/** The column a driver error names (never the value): `Key (email)=(x)` → `email`. */
export function columnOf(err: Loose): string | undefined {
  if (typeof err.column === 'string') return err.column;
  const detail = typeof err.detail === 'string' ? err.detail : '';
  const pg = /^Key \(([^)]+)\)=/.exec(detail);
  if (pg?.[1] !== undefined) return pg[1];
  // Only the driver's own words, anchored: Knex puts the SQL (with SQLite/MySQL values written in)
  // before ' - ', and a value must never pass for a column name.
  const message = driverMessage(typeof err.message === 'string' ? err.message : '');
  const sqlite = /^(?:UNIQUE|NOT NULL) constraint failed: [\w"]+\.([\w"]+)(?:,|$)/.exec(message);
  if (sqlite?.[1] !== undefined) return sqlite[1].replace(/"/g, '');
  const mysqlKey = /for key '(?:\w+\.)?(\w+)'$/.exec(message);
  if (mysqlKey?.[1] !== undefined) return mysqlKey[1];
  const column =
    /^Column '(\w+)' cannot be null$/.exec(message) ??
    /^Field '(\w+)' doesn't have a default value$/.exec(message) ??
    /for column '(\w+)' at row \d+$/.exec(message) ??
    /^column "(\w+)" (?:of relation "\w+" )?does not exist$/.exec(message) ??
    /^table \w+ has no column named (\w+)$/.exec(message) ??
    /^no such column: (\w+)$/.exec(message) ??
    /^Unknown column '(\w+)' in '[\w ]+'$/.exec(message);
  return column?.[1];
}

/** A driver message without the SQL Knex puts in front of it (`insert into … - message`). */
export function driverMessage(message: string): string {
  const cut = message.lastIndexOf(' - ');
  return cut === -1 ? message : message.slice(cut + 3);
}

const unknownColumn = (err: Loose): AppError => {
  const field = columnOf(err) ?? 'value';
  return new ValidationError('Unknown field', { [field]: 'is not a known field' }, { cause: err });
};

const unavailable = (cause: unknown): AppError =>
  new ServiceUnavailableError('Database is unavailable', 5, { details: { dependency: 'database' }, cause });
const duplicate = (err: Loose): AppError =>
  new DuplicateError('Resource', columnOf(err) ?? 'value', undefined, { cause: err });
const notNull = (err: Loose): AppError => {
  const field = columnOf(err) ?? 'value';
  return new ValidationError('A required value is missing', { [field]: 'is required' }, { cause: err });
};
const invalidInput = (err: Loose): AppError =>
  new BaseError('A value has the wrong type or format', { status: 400, code: 'INVALID_INPUT', cause: err });
const tooLong = (err: Loose): AppError => {
  const field = columnOf(err) ?? 'value';
  return new ValidationError('A value is too long', { [field]: 'is too long' }, { cause: err });
};
const referenceMissing = (err: Loose): AppError =>
  new BaseError('A referenced resource does not exist', {
    status: 422,
    code: 'REFERENCE_NOT_FOUND',
    cause: err,
  });
const stillReferenced = (err: Loose): AppError =>
  new BaseError('The resource is still referenced by others', {
    status: 409,
    code: 'FOREIGN_KEY_VIOLATION',
    cause: err,
  });
const conflict = (err: Loose): AppError =>
  new BaseError('The request conflicted with a concurrent change; retry it', {
    status: 409,
    code: 'CONFLICT',
    cause: err,
  });

const PG_UNAVAILABLE = new Set([
  // Knex, once the Database is closed (shutdown in progress).
  'Unable to acquire a connection',
  'Query read timeout',
  'Connection terminated unexpectedly',
  'Connection terminated',
  'timeout exceeded when trying to connect',
  'Connection terminated due to connection timeout',
]);

/** Knex prefixes a driver's message with the SQL: `select … - Query read timeout`. */
function pgUnavailable(message: string): boolean {
  return PG_UNAVAILABLE.has(message) || PG_UNAVAILABLE.has(driverMessage(message));
}

/** PostgreSQL SQLSTATE codes (five characters) → our errors. */
function fromPostgres(code: string, err: Loose): AppError | undefined {
  switch (code) {
    case '23505':
      return duplicate(err);
    case '23503': {
      const message = typeof err.message === 'string' ? err.message : '';
      return message.startsWith('update or delete') ? stillReferenced(err) : referenceMissing(err);
    }
    case '23502':
      return notNull(err);
    case '23514':
      return new ValidationError('A value violates a check constraint', {}, { cause: err });
    case '22P02':
    case '22021':
    case '42883': // an operator that does not apply to the column's type (e.g. ILIKE on a date)
    case '22007':
    case '22008':
    case '22003':
      return invalidInput(err);
    case '22001':
      return tooLong(err);
    case '42703':
      return unknownColumn(err);
    case '40001':
    case '40P01':
      return conflict(err);
    case '57014':
      return new TimeoutError('Database query timed out', undefined, { code: 'TIMEOUT', cause: err });
    case '53300':
    case '57P01':
    case '57P02':
    case '57P03':
      return unavailable(err);
    default:
      return code.startsWith('08') ? unavailable(err) : undefined;
  }
}

/** SQLite (better-sqlite3) and MySQL/MariaDB (mysql2) codes → our errors. */
function fromDriverCode(code: string, err: Loose): AppError | undefined {
  switch (code) {
    case 'SQLITE_CONSTRAINT_UNIQUE':
    case 'SQLITE_CONSTRAINT_PRIMARYKEY':
    case 'ER_DUP_ENTRY':
      return duplicate(err);
    case 'SQLITE_CONSTRAINT_NOTNULL':
    case 'ER_BAD_NULL_ERROR':
    case 'ER_NO_DEFAULT_FOR_FIELD':
      return notNull(err);
    case 'SQLITE_CONSTRAINT_FOREIGNKEY': {
      // SQLite says the same for both directions; a DELETE can only fail by being referenced. The
      // statement is on `sql` or, through Knex, at the start of the message.
      const sql = typeof err.sql === 'string' ? err.sql : typeof err.message === 'string' ? err.message : '';
      return /^\s*delete/i.test(sql) ? stillReferenced(err) : referenceMissing(err);
    }
    case 'ER_NO_REFERENCED_ROW':
    case 'ER_NO_REFERENCED_ROW_2':
      return referenceMissing(err);
    case 'ER_ROW_IS_REFERENCED':
    case 'ER_ROW_IS_REFERENCED_2':
      return stillReferenced(err);
    case 'SQLITE_CONSTRAINT_CHECK':
    case 'ER_CHECK_CONSTRAINT_VIOLATED':
      return new ValidationError('A value violates a check constraint', {}, { cause: err });
    case 'ER_DATA_TOO_LONG':
      return tooLong(err);
    case 'ER_BAD_FIELD_ERROR':
      return unknownColumn(err);
    case 'SQLITE_ERROR':
      return /^(?:table \w+ has no column named|no such column:) \w+$/.test(
        driverMessage(typeof err.message === 'string' ? err.message : ''),
      )
        ? unknownColumn(err)
        : undefined;
    case 'ER_TRUNCATED_WRONG_VALUE':
    case 'ER_TRUNCATED_WRONG_VALUE_FOR_FIELD':
    case 'ER_WARN_DATA_OUT_OF_RANGE':
    case 'SQLITE_MISMATCH':
      return invalidInput(err);
    case 'ER_LOCK_DEADLOCK':
      return conflict(err);
    case 'SQLITE_BUSY':
    case 'SQLITE_LOCKED':
    case 'ER_LOCK_WAIT_TIMEOUT':
    case 'ER_CON_COUNT_ERROR':
    case 'PROTOCOL_CONNECTION_LOST':
    case 'ECONNREFUSED':
    case 'ECONNRESET':
    case 'ETIMEDOUT':
    case 'EHOSTUNREACH':
    case 'ENOTFOUND':
    case 'EPIPE':
    case 'EAI_AGAIN':
      return unavailable(err);
    default:
      return undefined;
  }
}

/**
 * Turn anything thrown into an AppError: ours as they are; http-errors style objects by status;
 * body-parser, JWT and database driver errors by their codes; anything else a generic 500.
 * Messages of foreign errors are never exposed (they can carry SQL, values or paths).
 */
export function toAppError(err: unknown): AppError {
  if (isAppError(err)) return err;
  if (typeof err !== 'object' || err === null) {
    return new BaseError('Internal server error', { status: 500, code: 'INTERNAL_ERROR', cause: err });
  }
  const e = err as Loose;
  const status =
    typeof e.status === 'number' ? e.status : typeof e.statusCode === 'number' ? e.statusCode : undefined;
  if (typeof e.type === 'string' && status !== undefined) {
    const mapped = fromBodyParser(e.type, status, err);
    if (mapped !== undefined) return mapped;
  }
  if (typeof e.name === 'string') {
    const mapped = fromJwt(e.name, err);
    if (mapped !== undefined) return mapped;
    if (e.name === 'KnexTimeoutError') return unavailable(err);
  }
  // pg reports a lost or silent server with no code, only these messages.
  if (typeof e.message === 'string' && pgUnavailable(e.message)) return unavailable(err);
  // mysql2 reports a statement timeout with no code, only errno 1969 (MariaDB) or 3024 (MySQL).
  if (e.errno === 1969 || e.errno === 3024)
    return new TimeoutError('Database query timed out', undefined, { cause: err });
  if (typeof e.code === 'string') {
    const mapped =
      /^[0-9A-Z]{5}$/.test(e.code) && /\d/.test(e.code) ? fromPostgres(e.code, e) : fromDriverCode(e.code, e);
    if (mapped !== undefined) return mapped;
  }
  if (status !== undefined && Number.isInteger(status) && status >= 400 && status <= 599) {
    // Either the error says its message is for clients, or the message is our own reason phrase.
    const message = e.expose === true && typeof e.message === 'string' ? e.message : statusText(status);
    return new BaseError(message, { status, code: codeForStatus(status), cause: err, expose: true });
  }
  return new BaseError('Internal server error', { status: 500, code: 'INTERNAL_ERROR', cause: err });
}
