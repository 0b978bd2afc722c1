import type { ErrorCode } from './codes.js';
import { statusText } from './codes.js';

/** The three wire formats an error can take. */
export type ErrorFormat = 'envelope' | 'problem' | 'fhir';

/** What every format is rendered from: already client-safe. */
export interface ErrorPayload {
  readonly status: number;
  readonly code: ErrorCode;
  readonly message: string;
  readonly details: Readonly<Record<string, unknown>>;
  readonly requestId: string | undefined;
}

export interface RenderedError {
  readonly contentType: string;
  readonly body: Record<string, unknown>;
}

/** The seed's envelope: `{success:false, error, error_code, details:{request_id, …}}`. */
export function toEnvelope(p: ErrorPayload): RenderedError {
  return {
    contentType: 'application/json; charset=utf-8',
    body: {
      success: false,
      error: p.message,
      error_code: p.code,
      details: { ...p.details, request_id: p.requestId },
    },
  };
}

/** RFC 9457 problem details; our code and request id are extension members. */
export function toProblem(p: ErrorPayload, typeBase: string | undefined): RenderedError {
  return {
    contentType: 'application/problem+json; charset=utf-8',
    // Extension members first, so details can never overwrite the standard members.
    body: {
      ...p.details,
      type: typeBase === undefined ? 'about:blank' : `${typeBase}#${p.code}`,
      title: statusText(p.status),
      status: p.status,
      detail: p.message,
      code: p.code,
      request_id: p.requestId,
    },
  };
}

/** FHIR R4 IssueType for our status/code. */
function fhirIssueType(status: number, code: ErrorCode): string {
  if (code === 'DUPLICATE') return 'duplicate';
  if (code === 'TIMEOUT') return 'timeout';
  if (code === 'RATE_LIMITED') return 'throttled';
  if (status === 401) return 'login';
  if (status === 403) return 'forbidden';
  if (status === 404) return 'not-found';
  if (status === 409) return 'conflict';
  if (status === 413) return 'too-costly';
  if (status === 422 || code === 'INVALID_JSON') return 'invalid';
  if (status === 503) return 'transient';
  if (status >= 500) return 'exception';
  return 'processing';
}

/** A FHIR `OperationOutcome`; validation field errors become one issue each with an `expression`. */
export function toOperationOutcome(p: ErrorPayload): RenderedError {
  const type = fhirIssueType(p.status, p.code);
  const coding = [{ system: 'urn:caduceus:error-code', code: p.code }];
  const issue: Record<string, unknown>[] = [
    {
      severity: p.status >= 500 ? 'fatal' : 'error',
      code: type,
      details: { coding, text: p.message },
      diagnostics: p.requestId === undefined ? undefined : `request_id=${p.requestId}`,
    },
  ];
  const fieldErrors = p.details.field_errors;
  if (typeof fieldErrors === 'object' && fieldErrors !== null) {
    for (const [field, problem] of Object.entries(fieldErrors as Record<string, unknown>)) {
      issue.push({
        severity: 'error',
        code: 'invalid',
        details: { text: String(problem) },
        expression: [field],
      });
    }
  }
  return {
    contentType: 'application/fhir+json; charset=utf-8',
    body: { resourceType: 'OperationOutcome', issue },
  };
}

export function renderError(
  format: ErrorFormat,
  payload: ErrorPayload,
  problemTypeBase?: string,
): RenderedError {
  if (format === 'problem') return toProblem(payload, problemTypeBase);
  if (format === 'fhir') return toOperationOutcome(payload);
  return toEnvelope(payload);
}
