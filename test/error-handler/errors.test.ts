import request from 'supertest';
import type { NextFunction, Request, Response } from 'express';
import * as core from '../../lib/index';
import { eachExpress } from '../support/express';
import { captureLogger } from '../support/logs';

const testSettings = core.loadSettings({ NODE_ENV: 'test' });

describe.each(eachExpress)('errors() on %s', (_name, { express, major }) => {
  function build(setup: (app: ReturnType<typeof express>) => void, options: core.ErrorsOptions = {}) {
    const captured = captureLogger('errors');
    const app = express();
    app.use(core.requestContext());
    setup(app);
    app.use(core.notFound());
    app.use(core.errors({ logger: captured.logger, settings: testSettings, ...options }));
    return { app, captured };
  }

  it('renders our errors in the seed envelope with the request id', async () => {
    const { app } = build((a) => {
      a.get('/patients/:id', (req) => {
        throw new core.NotFoundError('Patient', req.params.id);
      });
    });
    const res = await request(app).get('/patients/p-9').set('X-Request-Id', 'req-123').expect(404);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.body).toEqual({
      success: false,
      error: 'Patient not found',
      error_code: 'NOT_FOUND',
      details: { request_id: 'req-123', resource_type: 'Patient', resource_id: 'p-9' },
    });
  });

  it('renders validation errors with field errors (422)', async () => {
    const { app } = build((a) => {
      a.post('/p', () => {
        throw new core.ValidationError('Invalid patient', { email: 'Invalid email format' });
      });
    });
    const res = await request(app).post('/p').expect(422);
    expect(res.body.error_code).toBe('VALIDATION_ERROR');
    expect(res.body.details.field_errors).toEqual({ email: 'Invalid email format' });
  });

  it('answers unmatched routes with 404 NOT_FOUND', async () => {
    const { app } = build(() => undefined);
    const res = await request(app).get('/nothing/here?ssn=123-45-6789').expect(404);
    expect(res.body).toMatchObject({ success: false, error_code: 'NOT_FOUND', details: { method: 'GET' } });
    expect(JSON.stringify(res.body)).not.toContain('123-45-6789');
  });

  it('forwards a rejection after await to errors() — natively on Express 5, through asyncHandler on both', async () => {
    const { app } = build((a) => {
      a.get(
        '/wrapped',
        core.asyncHandler(async () => {
          await new Promise((r) => setTimeout(r, 2));
          throw new core.ForbiddenError('Not your patient');
        }),
      );
      if (major === 5) {
        a.get('/native', async () => {
          await new Promise((r) => setTimeout(r, 2));
          throw new core.ForbiddenError('Not your patient');
        });
      }
      a.get(
        '/sync-in-async-handler',
        core.asyncHandler(() => {
          throw new core.ForbiddenError('Not your patient');
        }),
      );
    });
    const wrapped = await request(app).get('/wrapped').expect(403);
    expect(wrapped.body).toMatchObject({ error_code: 'FORBIDDEN', error: 'Not your patient' });
    await request(app).get('/sync-in-async-handler').expect(403);
    if (major === 5) await request(app).get('/native').expect(403);
  });

  it('hides internal messages and stacks of unknown errors (500 INTERNAL_ERROR)', async () => {
    const { app, captured } = build((a) => {
      a.get(
        '/boom',
        core.asyncHandler(async () => {
          await Promise.resolve();
          throw new Error('connection string postgres://admin:hunter2@db/prod failed at /srv/app/secret.ts');
        }),
      );
      a.get('/string', () => {
        // eslint-disable-next-line @typescript-eslint/only-throw-error -- some code throws non-Errors
        throw 'plain string';
      });
    });
    const res = await request(app).get('/boom').expect(500);
    expect(res.body).toEqual({
      success: false,
      error: 'Internal server error',
      error_code: 'INTERNAL_ERROR',
      details: { request_id: res.headers['x-request-id'] },
    });
    const text = JSON.stringify(res.body);
    expect(text).not.toMatch(/hunter2|secret\.ts|at |stack/);
    const str = await request(app).get('/string').expect(500);
    expect(str.body.error_code).toBe('INTERNAL_ERROR');

    // Logged once, at error, with the stack — and the password redacted from the log too.
    const errorsLogged = captured.lines().filter((l) => l.level === 'error');
    expect(errorsLogged).toHaveLength(2);
    const first = errorsLogged[0]!;
    expect(first.error_code).toBe('INTERNAL_ERROR');
    expect((first.error as { stack: string }).stack).toContain('Error: connection string');
    expect(captured.raw()).not.toContain('hunter2');
  });

  it('logs 4xx once at warn without a stack', async () => {
    const { app, captured } = build((a) => {
      a.get('/x', () => {
        throw new core.ValidationError('Bad input', { name: 'required' });
      });
    });
    await request(app).get('/x').expect(422);
    const lines = captured.lines();
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      level: 'warn',
      status: 422,
      error_code: 'VALIDATION_ERROR',
      route: '/x',
    });
    expect(captured.raw()).not.toContain('stack');
  });

  it('exposes the stack only in development and only when asked', async () => {
    const thrower = (a: ReturnType<typeof express>) => {
      a.get('/boom', () => {
        throw new Error('internal detail');
      });
    };
    const dev = core.loadSettings({ NODE_ENV: 'development' });
    const prod = core.loadSettings({ NODE_ENV: 'production', JWT_SECRET_KEY: 'x'.repeat(40) });
    const devRes = await request(build(thrower, { exposeStack: true, settings: dev }).app)
      .get('/boom')
      .expect(500);
    expect(devRes.body.details.internal_message).toBe('internal detail');
    expect(devRes.body.details.stack).toContain('Error: internal detail');
    const prodRes = await request(build(thrower, { exposeStack: true, settings: prod }).app)
      .get('/boom')
      .expect(500);
    expect(JSON.stringify(prodRes.body)).not.toContain('internal detail');
    expect(prodRes.body.details.stack).toBeUndefined();
  });

  describe('body-parser errors', () => {
    const withJson = (a: ReturnType<typeof express>) => {
      a.post('/json', express.json({ limit: '1kb' }), (req, res) => {
        res.json({ ok: true, body: req.body });
      });
    };

    it('malformed JSON → 400 INVALID_JSON without echoing the input', async () => {
      const { app } = build(withJson);
      const res = await request(app)
        .post('/json')
        .set('Content-Type', 'application/json')
        .send('{"ssn": "123-45-6789",')
        .expect(400);
      expect(res.body).toMatchObject({
        success: false,
        error_code: 'INVALID_JSON',
        error: 'Request body is not valid JSON',
      });
      expect(JSON.stringify(res.body)).not.toContain('123-45-6789');
    });

    it('a body over the limit → 413 PAYLOAD_TOO_LARGE', async () => {
      const { app } = build(withJson);
      const res = await request(app)
        .post('/json')
        .set('Content-Type', 'application/json')
        .send(JSON.stringify({ a: 'x'.repeat(5000) }))
        .expect(413);
      expect(res.body.error_code).toBe('PAYLOAD_TOO_LARGE');
    });

    it('an unsupported charset → 415', async () => {
      const { app } = build(withJson);
      const res = await request(app)
        .post('/json')
        .set('Content-Type', 'application/json; charset=klingon')
        .send('{}')
        .expect(415);
      expect(res.body.error_code).toBe('UNSUPPORTED_MEDIA_TYPE');
    });

    it('valid JSON still works', async () => {
      const { app } = build(withJson);
      await request(app)
        .post('/json')
        .send({ a: 1 })
        .expect(200, { ok: true, body: { a: 1 } });
    });
  });

  it('maps http-errors style objects by status, exposing only exposable messages', async () => {
    const { app } = build((a) => {
      a.get('/teapot', (_req: Request, _res: Response, next: NextFunction) => {
        next(Object.assign(new Error('Gone away'), { status: 410, expose: true }));
      });
      a.get('/hidden', (_req: Request, _res: Response, next: NextFunction) => {
        next(Object.assign(new Error('upstream said 10.0.0.3 refused'), { statusCode: 502 }));
      });
    });
    const gone = await request(app).get('/teapot').expect(410);
    expect(gone.body).toMatchObject({ error: 'Gone away', error_code: 'BAD_REQUEST' });
    const hidden = await request(app).get('/hidden').expect(502);
    expect(hidden.body.error).toBe('Bad Gateway');
    expect(JSON.stringify(hidden.body)).not.toContain('10.0.0.3');
  });

  it('maps JWT library errors to 401 with precise codes and a Bearer challenge', async () => {
    const { app } = build((a) => {
      a.get('/expired', () => {
        throw Object.assign(new Error('jwt expired'), { name: 'TokenExpiredError', expiredAt: new Date() });
      });
      a.get('/invalid', () => {
        throw Object.assign(new Error('invalid signature'), { name: 'JsonWebTokenError' });
      });
    });
    const expired = await request(app).get('/expired').expect(401);
    expect(expired.body.error_code).toBe('TOKEN_EXPIRED');
    expect(expired.headers['www-authenticate']).toBe('Bearer realm="api", error="invalid_token"');
    const invalid = await request(app).get('/invalid').expect(401);
    expect(invalid.body.error_code).toBe('TOKEN_INVALID');
    expect(invalid.body.error).not.toContain('signature');
  });

  it('sets Retry-After on 429 and 503, WWW-Authenticate on 401', async () => {
    const { app } = build((a) => {
      a.get('/429', () => {
        throw new core.RateLimitError(2.2);
      });
      a.get('/503', () => {
        throw new core.CircuitOpenError('billing', 30);
      });
      a.get('/401', () => {
        throw new core.UnauthorizedError();
      });
    });
    const limited = await request(app).get('/429').expect(429);
    expect(limited.headers['retry-after']).toBe('3');
    expect(limited.body.error_code).toBe('RATE_LIMITED');
    const open = await request(app).get('/503').expect(503);
    expect(open.headers['retry-after']).toBe('30');
    expect(open.body).toMatchObject({ error_code: 'CIRCUIT_OPEN', details: { service: 'billing' } });
    const unauth = await request(app).get('/401').expect(401);
    expect(unauth.headers['www-authenticate']).toBe('Bearer realm="api"');
  });

  describe('formats', () => {
    const thrower = (a: ReturnType<typeof express>) => {
      a.get('/v', () => {
        throw new core.ValidationError('Invalid patient', { birthDate: 'must be in the past' });
      });
    };

    it('negotiates RFC 9457 problem+json from Accept', async () => {
      const res = await request(build(thrower).app)
        .get('/v')
        .set('Accept', 'application/problem+json')
        .set('X-Request-Id', 'r-1')
        .expect(422);
      expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(res.body).toEqual({
        type: 'about:blank',
        title: 'Unprocessable Content',
        status: 422,
        detail: 'Invalid patient',
        code: 'VALIDATION_ERROR',
        request_id: 'r-1',
        field_errors: { birthDate: 'must be in the past' },
      });
    });

    it('negotiates a FHIR OperationOutcome from Accept', async () => {
      const res = await request(build(thrower).app)
        .get('/v')
        .set('Accept', 'application/fhir+json')
        .expect(422);
      expect(res.headers['content-type']).toMatch(/^application\/fhir\+json/);
      expect(res.body.resourceType).toBe('OperationOutcome');
      expect(res.body.issue[0]).toMatchObject({
        severity: 'error',
        code: 'invalid',
        details: { text: 'Invalid patient' },
      });
      expect(res.body.issue[1]).toMatchObject({
        code: 'invalid',
        expression: ['birthDate'],
        details: { text: 'must be in the past' },
      });
    });

    it('prefers plain JSON when the client ranks it higher', async () => {
      const res = await request(build(thrower).app)
        .get('/v')
        .set('Accept', 'application/json, application/problem+json;q=0.5')
        .expect(422);
      expect(res.body.success).toBe(false);
    });

    it('uses a fixed format when configured, with a problem type base', async () => {
      const res = await request(
        build(thrower, { format: 'problem', problemTypeBase: 'https://errors.example.org/' }).app,
      )
        .get('/v')
        .expect(422);
      expect(res.body.type).toBe('https://errors.example.org/#VALIDATION_ERROR');
    });
  });

  it('runs a custom mapError before the built-ins, and survives one that throws', async () => {
    class LegacyError extends Error {}
    const { app } = build(
      (a) => {
        a.get('/legacy', () => {
          throw new LegacyError('x');
        });
        a.get('/other', () => {
          throw new Error('y');
        });
      },
      {
        mapError: (err) => {
          if (err instanceof LegacyError)
            return new core.AppError('Consent required', { status: 403, code: 'CONSENT_REQUIRED' });
          if (err instanceof Error && err.message === 'y') throw new Error('mapper bug');
          return undefined;
        },
      },
    );
    const legacy = await request(app).get('/legacy').expect(403);
    expect(legacy.body.error_code).toBe('CONSENT_REQUIRED');
    const other = await request(app).get('/other').expect(500);
    expect(other.body.error_code).toBe('INTERNAL_ERROR');
  });

  it('closes the connection when an error happens after the response started', async () => {
    const { app, captured } = build((a) => {
      a.get('/stream', (_req: Request, res: Response, next: NextFunction) => {
        res.status(200).write('partial');
        next(new Error('mid-stream failure'));
      });
    });
    await expect(request(app).get('/stream')).rejects.toThrow();
    expect(captured.lines().some((l) => l.level === 'error')).toBe(true);
  });
});

describe('errors() configuration', () => {
  it('throws ConfigError for bad options and for app.use(core.errors)', () => {
    expect(() => core.errors({ format: 'xml' as never, settings: testSettings })).toThrow(
      /errors: format must be one of/,
    );
    expect(() => core.errors({ fromat: 'problem' } as never)).toThrow(/Did you mean "format"\?/);
    expect(() => core.errors({ problemTypeBase: 'not a uri', settings: testSettings })).toThrow(
      core.ConfigError,
    );
    // Express calls a 3-argument function as plain middleware: errors(req, res, next).
    expect(() => (core.errors as unknown as (r: unknown) => unknown)({ method: 'GET', headers: {} })).toThrow(
      /app\.use\(core\.errors\(\)\)/,
    );
    expect(() => core.asyncHandler('nope' as never)).toThrow(core.ConfigError);
    // app.use(core.notFound) would otherwise hang every request.
    expect(() =>
      (core.notFound as unknown as (r: unknown) => unknown)({ method: 'GET', headers: {} }),
    ).toThrow(/app\.use\(core\.notFound\(\)\)/);
  });
});
