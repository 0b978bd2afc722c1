export type { ErrorCode } from './codes.js';
export { codeForStatus, statusText } from './codes.js';
export type { AppErrorOptions, ConfigIssue, UnauthorizedOptions } from './app-error.js';
export {
  AppError,
  isAppError,
  NotFoundError,
  ValidationError,
  DuplicateError,
  ServiceError,
  UnauthorizedError,
  ForbiddenError,
  RateLimitError,
  ServiceUnavailableError,
  CircuitOpenError,
  TimeoutError,
  ConfigError,
  describeValue,
  isError,
} from './app-error.js';
export type { ErrorFormat, ErrorPayload, RenderedError } from './formats.js';
export { renderError, toEnvelope, toProblem, toOperationOutcome } from './formats.js';
export { readOptions, positiveInteger } from './options.js';
export { toAppError, columnOf, driverMessage } from './map-error.js';
