import { inspect } from 'node:util';
import fc from 'fast-check';
import * as core from '../../lib/index';

// Property tests run the same cases on every run: a failure is reproducible, never flaky.
fc.configureGlobal({ seed: 2026 });

const BRAND = Symbol.for('caduceus.AppError');

/** Everything an error could leak through: message, JSON, inspection, rendered bodies. */
function everyRendering(err: core.AppError): string {
  const payload: core.ErrorPayload = {
    status: err.status,
    code: err.code,
    message: err.message,
    details: err.details,
    requestId: 'req-1',
  };
  return [
    err.message,
    String(err.stack),
    JSON.stringify(err),
    JSON.stringify(err.details),
    inspect(err, { depth: null, showHidden: true }),
    JSON.stringify(core.toEnvelope(payload)),
    JSON.stringify(core.toProblem(payload, undefined)),
    JSON.stringify(core.toOperationOutcome(payload)),
  ].join('\n');
}

describe('AppError', () => {
  it('defaults to a 500 INTERNAL_ERROR whose message is not exposed', () => {
    const err = new core.AppError('db exploded');
    expect(err).toBeInstanceOf(Error);
    expect(err.message).toBe('db exploded');
    expect(err.status).toBe(500);
    expect(err.code).toBe('INTERNAL_ERROR');
    expect(err.expose).toBe(false);
    expect(err.details).toEqual({});
    expect(err.headers).toBeUndefined();
    expect(err.name).toBe('AppError');
  });

  it('derives the code from the status and exposes 4xx messages', () => {
    const err = new core.AppError('Nope', { status: 404 });
    expect(err.code).toBe('NOT_FOUND');
    expect(err.expose).toBe(true);
    expect(new core.AppError('x', { status: 418 }).code).toBe('BAD_REQUEST');
    expect(new core.AppError('x', { status: 507 }).code).toBe('INTERNAL_ERROR');
  });

  it('keeps a custom code, details, headers, expose and cause', () => {
    const cause = new Error('root cause');
    const err = new core.AppError('Consent required', {
      status: 403,
      code: 'CONSENT_REQUIRED',
      details: { scope: 'records' },
      headers: { 'X-Reason': 'consent' },
      expose: false,
      cause,
    });
    expect(err.code).toBe('CONSENT_REQUIRED');
    expect(err.details).toEqual({ scope: 'records' });
    expect(err.headers).toEqual({ 'X-Reason': 'consent' });
    expect(err.expose).toBe(false);
    expect(err.cause).toBe(cause);
  });

  it('has no own `cause` when none is given', () => {
    expect(Object.hasOwn(new core.AppError('x'), 'cause')).toBe(false);
  });

  it.each([399, 600, 200, 0, -404, 404.5, Number.NaN, Number.POSITIVE_INFINITY])(
    'rejects status %p with a RangeError that prints it',
    (status) => {
      expect(() => new core.AppError('x', { status })).toThrow(RangeError);
      expect(() => new core.AppError('x', { status })).toThrow(String(status));
    },
  );

  it('rejects a status that is not a number', () => {
    expect(() => new core.AppError('x', { status: '404' as unknown as number })).toThrow(RangeError);
  });

  it('accepts the bounds 400 and 599', () => {
    expect(new core.AppError('x', { status: 400 }).status).toBe(400);
    expect(new core.AppError('x', { status: 599 }).status).toBe(599);
  });

  it("names an application's own subclass after the class", () => {
    class ConsentError extends core.AppError {}
    const err = new ConsentError('Consent required', { status: 403 });
    expect(err.name).toBe('ConsentError');
    expect(err).toBeInstanceOf(core.AppError);
    expect(core.isAppError(err)).toBe(true);
    expect(String(err)).toBe('ConsentError: Consent required');
  });

  it('does not serialise its brand', () => {
    const err = new core.NotFoundError('Patient', 'p-1');
    expect(Object.keys(err)).not.toContain(String(BRAND));
    expect(JSON.stringify(err)).not.toContain('caduceus');
  });
});

describe('isAppError', () => {
  const all: [string, () => core.AppError][] = [
    ['AppError', () => new core.AppError('x')],
    ['NotFoundError', () => new core.NotFoundError('Patient', 1)],
    ['ValidationError', () => new core.ValidationError()],
    ['DuplicateError', () => new core.DuplicateError('Patient', 'email', 'a@b.c')],
    ['ServiceError', () => new core.ServiceError()],
    ['UnauthorizedError', () => new core.UnauthorizedError()],
    ['ForbiddenError', () => new core.ForbiddenError()],
    ['RateLimitError', () => new core.RateLimitError(5)],
    ['ServiceUnavailableError', () => new core.ServiceUnavailableError()],
    ['CircuitOpenError', () => new core.CircuitOpenError('payments', 5)],
    ['TimeoutError', () => new core.TimeoutError()],
    ['ConfigError', () => new core.ConfigError('bad')],
  ];

  it.each(all)('recognises %s, whose name is its class name', (name, make) => {
    const err = make();
    expect(core.isAppError(err)).toBe(true);
    expect(err.name).toBe(name);
    expect(err).toBeInstanceOf(core.AppError);
    expect(err).toBeInstanceOf(Error);
  });

  it.each([
    ['a plain Error', new Error('x')],
    ['a TypeError', new TypeError('x')],
    ['a look-alike object', { status: 404, code: 'NOT_FOUND', message: 'x', expose: true, details: {} }],
    ['a string brand key', { 'caduceus.AppError': true }],
    ['a brand that is not `true`', { [BRAND]: 'yes' }],
    ['null', null],
    ['undefined', undefined],
    ['a string', 'AppError'],
    ['a number', 404],
  ])('rejects %s', (_label, value) => {
    expect(core.isAppError(value)).toBe(false);
  });

  it('recognises an error from a structurally separate copy of the library', () => {
    class ForeignError extends Error {
      readonly status = 404;
      readonly code = 'NOT_FOUND';
      constructor() {
        super('from the other copy');
        Object.defineProperty(this, Symbol.for('caduceus.AppError'), { value: true });
      }
    }
    const foreign = new ForeignError();
    expect(foreign).not.toBeInstanceOf(core.AppError);
    expect(core.isAppError(foreign)).toBe(true);
  });

  it('works across two loaded copies of the module, in both directions', () => {
    let copy: typeof core | undefined;
    jest.isolateModules(() => {
      copy = require('../../lib/index') as typeof core;
    });
    if (copy === undefined) throw new Error('second copy not loaded');
    expect(copy.AppError).not.toBe(core.AppError);
    const theirs = new copy.NotFoundError('Patient', 'p-1');
    expect(theirs).not.toBeInstanceOf(core.AppError);
    expect(core.isAppError(theirs)).toBe(true);
    expect(copy.isAppError(new core.RateLimitError(1))).toBe(true);
    expect(copy.isAppError(new Error('plain'))).toBe(false);
  });
});

describe('NotFoundError', () => {
  it('is the seed 404 with resource type and id', () => {
    const err = new core.NotFoundError('Patient', 'p-1');
    expect(err.status).toBe(404);
    expect(err.code).toBe('NOT_FOUND');
    expect(err.message).toBe('Patient not found');
    expect(err.expose).toBe(true);
    expect(err.details).toEqual({ resource_type: 'Patient', resource_id: 'p-1' });
    expect(err.headers).toBeUndefined();
  });

  it('renders a numeric id as a string and omits a missing one', () => {
    expect(new core.NotFoundError('Patient', 42).details).toEqual({
      resource_type: 'Patient',
      resource_id: '42',
    });
    expect(new core.NotFoundError('Patient').details).toEqual({ resource_type: 'Patient' });
  });

  it('keeps its status even if options try to change it, and keeps cause and extra details', () => {
    const cause = new Error('row missing');
    const err = new core.NotFoundError('Patient', 1, {
      cause,
      details: { hint: 'check the id' },
      ...({ status: 500 } as object),
    });
    expect(err.status).toBe(404);
    expect(err.cause).toBe(cause);
    expect(err.details).toEqual({ resource_type: 'Patient', resource_id: '1', hint: 'check the id' });
  });
});

describe('ValidationError', () => {
  it('is 422 VALIDATION_ERROR with field errors in details.field_errors', () => {
    const fields = { email: 'Invalid format', birth_date: 'Must be in the past' };
    const err = new core.ValidationError('Validation failed', fields);
    expect(err.status).toBe(422);
    expect(err.code).toBe('VALIDATION_ERROR');
    expect(err.expose).toBe(true);
    expect(err.details).toEqual({ field_errors: fields });
    expect(err.fieldErrors).toEqual(fields);
  });

  it('has seed defaults for message and field errors', () => {
    const err = new core.ValidationError();
    expect(err.message).toBe('Validation failed');
    expect(err.details).toEqual({ field_errors: {} });
  });
});

describe('DuplicateError', () => {
  const CANARY = 'canary.patient+7c1e@example.org';

  it('is 409 DUPLICATE naming the resource and field', () => {
    const err = new core.DuplicateError('Patient', 'email', CANARY);
    expect(err.status).toBe(409);
    expect(err.code).toBe('DUPLICATE');
    expect(err.message).toBe('Patient with this email already exists');
    expect(err.details).toEqual({ resource_type: 'Patient', field: 'email' });
    expect(err.field).toBe('email');
  });

  it('never carries the conflicting value anywhere', () => {
    const err = new core.DuplicateError('Patient', 'email', CANARY);
    expect(everyRendering(err)).not.toContain(CANARY);
    expect(Object.values(err)).not.toContain(CANARY);
  });

  it('never carries an object value either', () => {
    const err = new core.DuplicateError('Patient', 'mrn', { mrn: 'MRN-CANARY-991' });
    expect(everyRendering(err)).not.toContain('MRN-CANARY-991');
  });
});

describe('ServiceError and ForbiddenError', () => {
  it('ServiceError is a 500 SERVICE_ERROR whose message is not exposed', () => {
    const err = new core.ServiceError('pg pool exhausted');
    expect(err.status).toBe(500);
    expect(err.code).toBe('SERVICE_ERROR');
    expect(err.expose).toBe(false);
    expect(new core.ServiceError('x', 'DATABASE_UNAVAILABLE', { status: 503 }).status).toBe(503);
    expect(new core.ServiceError('x', 'DATABASE_UNAVAILABLE').code).toBe('DATABASE_UNAVAILABLE');
  });

  it('ForbiddenError is a 403 FORBIDDEN', () => {
    const err = new core.ForbiddenError();
    expect(err.status).toBe(403);
    expect(err.code).toBe('FORBIDDEN');
    expect(err.message).toBe('Insufficient permissions');
  });
});

describe('UnauthorizedError', () => {
  it('is 401 UNAUTHORIZED with a Bearer challenge', () => {
    const err = new core.UnauthorizedError();
    expect(err.status).toBe(401);
    expect(err.code).toBe('UNAUTHORIZED');
    expect(err.message).toBe('Authentication required');
    expect(err.headers).toEqual({ 'WWW-Authenticate': 'Bearer realm="api"' });
  });

  it('adds the RFC 6750 error and a custom realm', () => {
    const err = new core.UnauthorizedError('Token expired', {
      bearerError: 'invalid_token',
      realm: 'patients',
      code: 'TOKEN_EXPIRED',
    });
    expect(err.headers?.['WWW-Authenticate']).toBe('Bearer realm="patients", error="invalid_token"');
    expect(err.code).toBe('TOKEN_EXPIRED');
    expect(err.status).toBe(401);
  });
});

describe('Retry-After', () => {
  it.each([
    [1.2, '2'],
    [0.001, '1'],
    [30, '30'],
    [0, '0'],
    [-3, '0'],
  ])('RateLimitError(%p) is 429 with Retry-After %s', (seconds, header) => {
    const err = new core.RateLimitError(seconds);
    expect(err.status).toBe(429);
    expect(err.code).toBe('RATE_LIMITED');
    expect(err.retryAfter).toBe(seconds);
    expect(err.headers?.['Retry-After']).toBe(header);
  });

  it('RateLimitError without a known wait sets no Retry-After', () => {
    const err = new core.RateLimitError();
    expect(err.headers?.['Retry-After']).toBeUndefined();
    expect(err.message).toBe('Too many requests');
  });

  it('ServiceUnavailableError is a 503 with an exposed message and rounded-up Retry-After', () => {
    const err = new core.ServiceUnavailableError('Down for maintenance', 29.001);
    expect(err.status).toBe(503);
    expect(err.code).toBe('SERVICE_UNAVAILABLE');
    expect(err.expose).toBe(true);
    expect(err.headers?.['Retry-After']).toBe('30');
    expect(new core.ServiceUnavailableError().headers?.['Retry-After']).toBeUndefined();
  });

  it.each([Number.NaN, Number.POSITIVE_INFINITY, 1e21])(
    'is a valid delay-seconds value for %p',
    (seconds) => {
      expect(new core.RateLimitError(seconds).headers?.['Retry-After'] ?? '0').toMatch(/^\d+$/);
      expect(new core.ServiceUnavailableError('x', seconds).headers?.['Retry-After'] ?? '0').toMatch(/^\d+$/);
    },
  );

  it('is always absent or a non-negative integer, whatever number it is given', () => {
    fc.assert(
      fc.property(fc.option(fc.double(), { nil: undefined }), (seconds) => {
        for (const err of [
          new core.RateLimitError(seconds),
          new core.ServiceUnavailableError('x', seconds),
        ]) {
          const header = err.headers?.['Retry-After'];
          if (header !== undefined) expect(header).toMatch(/^\d+$/);
        }
      }),
      { numRuns: 500 },
    );
  });
});

describe('CircuitOpenError and TimeoutError', () => {
  it('CircuitOpenError is a 503 CIRCUIT_OPEN naming the circuit', () => {
    const err = new core.CircuitOpenError('payments', 10);
    expect(err).toBeInstanceOf(core.ServiceUnavailableError);
    expect(err.status).toBe(503);
    expect(err.code).toBe('CIRCUIT_OPEN');
    expect(err.circuit).toBe('payments');
    expect(err.details).toEqual({ service: 'payments' });
    expect(err.headers?.['Retry-After']).toBe('10');
    expect(err.name).toBe('CircuitOpenError');
  });

  it('TimeoutError is a 504 TIMEOUT that keeps the limit', () => {
    const err = new core.TimeoutError('Query timed out', 2000);
    expect(err.status).toBe(504);
    expect(err.code).toBe('TIMEOUT');
    expect(err.expose).toBe(true);
    expect(err.timeoutMs).toBe(2000);
    expect(new core.TimeoutError().message).toBe('Operation timed out');
  });
});

describe('ConfigError', () => {
  it('is a 500 CONFIG_INVALID pointing to the docs', () => {
    const err = new core.ConfigError('Invalid settings');
    expect(err.status).toBe(500);
    expect(err.code).toBe('CONFIG_INVALID');
    expect(err.expose).toBe(false);
    expect(err.issues).toEqual([]);
    expect(err.message).toBe('Invalid settings. See docs/error-codes.md#CONFIG_INVALID');
  });

  it('ConfigError.option formats one bad option the documented way', () => {
    const err = core.ConfigError.option('rateLimit', 'windowMs', 'a positive integer', -5);
    expect(err).toBeInstanceOf(core.ConfigError);
    expect(err.message).toBe(
      'rateLimit: windowMs must be a positive integer, got -5. See docs/error-codes.md#CONFIG_INVALID',
    );
    expect(err.issues).toEqual([{ name: 'windowMs', expected: 'a positive integer', received: '-5' }]);
  });

  it.each([
    ['a string', 'CANARY-s3cr3t-value', 'a string of 19 characters'],
    ['an empty string', '', 'an empty string'],
    ['null', null, 'null'],
    ['undefined', undefined, 'undefined'],
    ['an object', { password: 'CANARY-s3cr3t-value' }, 'an object'],
    ['an array', ['CANARY-s3cr3t-value'], 'an array of 1'],
    ['a function', () => 'CANARY-s3cr3t-value', 'a function'],
    ['a boolean', true, 'true'],
    ['a bigint', 10n, '10'],
  ])('ConfigError.option describes %s without repeating it', (_label, value, described) => {
    const err = core.ConfigError.option('createLogger', 'level', 'a level', value);
    expect(err.message).toBe(
      `createLogger: level must be a level, got ${described}. See docs/error-codes.md#CONFIG_INVALID`,
    );
    expect(err.message).not.toContain('CANARY');
  });
});

describe('codes and status texts', () => {
  it.each([
    [400, 'BAD_REQUEST', 'Bad Request'],
    [401, 'UNAUTHORIZED', 'Unauthorized'],
    [403, 'FORBIDDEN', 'Forbidden'],
    [404, 'NOT_FOUND', 'Not Found'],
    [409, 'CONFLICT', 'Conflict'],
    [413, 'PAYLOAD_TOO_LARGE', 'Content Too Large'],
    [422, 'VALIDATION_ERROR', 'Unprocessable Content'],
    [429, 'RATE_LIMITED', 'Too Many Requests'],
    [500, 'INTERNAL_ERROR', 'Internal Server Error'],
    [503, 'SERVICE_UNAVAILABLE', 'Service Unavailable'],
    [504, 'TIMEOUT', 'Gateway Timeout'],
  ])('%i → %s, "%s"', (status, code, text) => {
    expect(core.codeForStatus(status)).toBe(code);
    expect(core.statusText(status)).toBe(text);
  });
});

describe('response formats', () => {
  const notFound: core.ErrorPayload = {
    status: 404,
    code: 'NOT_FOUND',
    message: 'Resource not found',
    details: { resource_type: 'User', resource_id: 'user-456' },
    requestId: 'req-123',
  };
  const invalid: core.ErrorPayload = {
    status: 422,
    code: 'VALIDATION_ERROR',
    message: 'Validation failed',
    details: { field_errors: { email: 'Invalid format', 'name.given': 'Required' } },
    requestId: 'req-9',
  };

  it('the envelope is exactly the seed example', () => {
    const rendered = core.toEnvelope(notFound);
    expect(rendered.contentType).toBe('application/json; charset=utf-8');
    expect(JSON.parse(JSON.stringify(rendered.body))).toEqual({
      success: false,
      error: 'Resource not found',
      error_code: 'NOT_FOUND',
      details: { request_id: 'req-123', resource_type: 'User', resource_id: 'user-456' },
    });
  });

  it('the envelope carries field errors under details', () => {
    expect(core.toEnvelope(invalid).body).toEqual({
      success: false,
      error: 'Validation failed',
      error_code: 'VALIDATION_ERROR',
      details: { request_id: 'req-9', field_errors: { email: 'Invalid format', 'name.given': 'Required' } },
    });
  });

  it('problem+json has type, title, status, detail, code and request_id', () => {
    const rendered = core.toProblem(notFound, undefined);
    expect(rendered.contentType).toBe('application/problem+json; charset=utf-8');
    expect(rendered.body).toEqual({
      type: 'about:blank',
      title: 'Not Found',
      status: 404,
      detail: 'Resource not found',
      code: 'NOT_FOUND',
      request_id: 'req-123',
      resource_type: 'User',
      resource_id: 'user-456',
    });
  });

  it('problem+json type points into the documentation when a base is given', () => {
    expect(core.toProblem(invalid, 'https://docs.example/errors').body).toMatchObject({
      type: 'https://docs.example/errors#VALIDATION_ERROR',
      title: 'Unprocessable Content',
      status: 422,
      field_errors: { email: 'Invalid format', 'name.given': 'Required' },
    });
  });

  it('problem+json details cannot overwrite the standard members', () => {
    const body = core.toProblem(
      { ...notFound, details: { type: 'x', title: 'y', status: 'active', detail: 'z', code: 'OTHER' } },
      undefined,
    ).body;
    expect(body).toMatchObject({
      type: 'about:blank',
      title: 'Not Found',
      status: 404,
      detail: 'Resource not found',
      code: 'NOT_FOUND',
    });
  });

  it('the envelope details cannot overwrite the request id', () => {
    const body = core.toEnvelope({ ...notFound, details: { request_id: 'forged' } }).body as {
      details: { request_id: string };
    };
    expect(body.details.request_id).toBe('req-123');
  });

  it('a FHIR OperationOutcome has one issue for the error', () => {
    const rendered = core.toOperationOutcome(notFound);
    expect(rendered.contentType).toBe('application/fhir+json; charset=utf-8');
    expect(JSON.parse(JSON.stringify(rendered.body))).toEqual({
      resourceType: 'OperationOutcome',
      issue: [
        {
          severity: 'error',
          code: 'not-found',
          details: {
            coding: [{ system: 'urn:caduceus:error-code', code: 'NOT_FOUND' }],
            text: 'Resource not found',
          },
          diagnostics: 'request_id=req-123',
        },
      ],
    });
  });

  it('a FHIR OperationOutcome has one more issue per field error, with its expression', () => {
    const body = core.toOperationOutcome(invalid).body as { issue: Record<string, unknown>[] };
    expect(body.issue).toHaveLength(3);
    expect(body.issue[0]).toMatchObject({ severity: 'error', code: 'invalid' });
    expect(body.issue.slice(1)).toEqual([
      { severity: 'error', code: 'invalid', details: { text: 'Invalid format' }, expression: ['email'] },
      { severity: 'error', code: 'invalid', details: { text: 'Required' }, expression: ['name.given'] },
    ]);
  });

  it('a FHIR OperationOutcome marks server errors fatal and omits a missing request id', () => {
    const body = core.toOperationOutcome({
      status: 500,
      code: 'INTERNAL_ERROR',
      message: 'Internal Server Error',
      details: {},
      requestId: undefined,
    }).body as { issue: Record<string, unknown>[] };
    const json = JSON.parse(JSON.stringify(body)) as { issue: Record<string, unknown>[] };
    expect(json.issue).toHaveLength(1);
    expect(json.issue[0]).toMatchObject({ severity: 'fatal', code: 'exception' });
    expect(json.issue[0]).not.toHaveProperty('diagnostics');
  });

  it.each([
    [401, 'UNAUTHORIZED', 'login'],
    [403, 'FORBIDDEN', 'forbidden'],
    [409, 'CONFLICT', 'conflict'],
    [409, 'DUPLICATE', 'duplicate'],
    [413, 'PAYLOAD_TOO_LARGE', 'too-costly'],
    [429, 'RATE_LIMITED', 'throttled'],
    [400, 'INVALID_JSON', 'invalid'],
    [503, 'SERVICE_UNAVAILABLE', 'transient'],
    [504, 'TIMEOUT', 'timeout'],
  ])('FHIR issue type for %i %s is %s', (status, code, type) => {
    const body = core.toOperationOutcome({ status, code, message: 'm', details: {}, requestId: 'r' })
      .body as {
      issue: { code: string }[];
    };
    expect(body.issue[0]?.code).toBe(type);
  });

  it('renderError picks the format', () => {
    expect(core.renderError('envelope', notFound)).toEqual(core.toEnvelope(notFound));
    expect(core.renderError('problem', notFound, 'https://d.example')).toEqual(
      core.toProblem(notFound, 'https://d.example'),
    );
    expect(core.renderError('fhir', invalid)).toEqual(core.toOperationOutcome(invalid));
  });

  it('renders each error class consistently in all three formats', () => {
    const err = new core.ValidationError('Validation failed', { email: 'Invalid format' });
    const payload: core.ErrorPayload = {
      status: err.status,
      code: err.code,
      message: err.message,
      details: err.details,
      requestId: 'r-1',
    };
    expect(core.renderError('envelope', payload).body).toEqual({
      success: false,
      error: 'Validation failed',
      error_code: 'VALIDATION_ERROR',
      details: { request_id: 'r-1', field_errors: { email: 'Invalid format' } },
    });
    expect(core.renderError('problem', payload).body).toMatchObject({
      status: 422,
      code: 'VALIDATION_ERROR',
    });
    const fhir = core.renderError('fhir', payload).body as { issue: { expression?: string[] }[] };
    expect(fhir.issue.map((i) => i.expression)).toEqual([undefined, ['email']]);
  });
});
