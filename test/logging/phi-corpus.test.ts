/**
 * The PHI corpus (test/fixtures/phi-corpus.ts) through the real logger and through real Express apps
 * with errors(), on Express 4 and 5: no PHI value survives anywhere, and ordinary text is kept.
 */
import request from 'supertest';
import * as core from '../../lib/index';
import { eachExpress } from '../support/express';
import { captureLogger } from '../support/logs';
import { APP_PHI, ORDINARY, PHI_CORPUS } from '../fixtures/phi-corpus';
import type { PhiCase } from '../fixtures/phi-corpus';

const settings = core.loadSettings({ NODE_ENV: 'test' });
const builtIn = PHI_CORPUS.filter((c) => c.configured !== true);
const byShape = (shape: PhiCase['shape']) => PHI_CORPUS.filter((c) => c.shape === shape);
const inputOf = (c: PhiCase): unknown => (typeof c.input === 'function' ? c.input() : c.input);

function expectClean(text: string, c: PhiCase): void {
  for (const value of c.phi) {
    if (text.includes(value)) throw new Error(`${c.name}: "${value}" survived in ${text.slice(0, 400)}`);
  }
}

/** Logs one corpus entry every way it can reach a line. */
function logCase(logger: core.Logger, c: PhiCase): void {
  const value = inputOf(c);
  if (c.shape === 'message' || c.shape === 'query') {
    const text = value as string;
    logger.info(text);
    logger.warn('event', { detail: text, list: [text], nested: { deeper: { text } } });
    logger.info(`prefix ${text} suffix`);
  } else if (c.shape === 'meta') {
    logger.info('event', value as Record<string, unknown>);
    logger.info('wrapped', { record: value, records: [value] });
  } else {
    const err = value as Error;
    logger.error(err);
    logger.error('request failed', { error: err });
    logger.error(new Error('outer', { cause: err }));
    core.logError(logger, err, { step: 'import' });
  }
}

describe('PHI corpus: the corpus itself', () => {
  it('holds at least 60 entries in every shape, each with PHI to look for', () => {
    expect(PHI_CORPUS.length).toBeGreaterThanOrEqual(60);
    for (const shape of ['message', 'meta', 'error', 'query'] as const)
      expect(byShape(shape).length).toBeGreaterThan(0);
    for (const c of PHI_CORPUS) expect(c.phi.length).toBeGreaterThan(0);
  });
});

describe('PHI corpus: logger', () => {
  it.each(builtIn.map((c) => [c.name, c] as const))('%s: nothing survives the default logger', (_n, c) => {
    const captured = captureLogger('phi');
    logCase(captured.logger, c);
    expectClean(captured.raw(), c);
  });

  it.each(PHI_CORPUS.map((c) => [c.name, c] as const))(
    '%s: nothing survives a logger with the application PHI configuration',
    (_n, c) => {
      const captured = captureLogger('phi', { redact: APP_PHI });
      logCase(captured.logger, c);
      expectClean(captured.raw(), c);
    },
  );

  it('the configured entries need the configuration: some leak without it', () => {
    const captured = captureLogger('phi');
    const configured = PHI_CORPUS.filter((c) => c.configured === true);
    expect(configured.length).toBeGreaterThan(0);
    for (const c of configured) logCase(captured.logger, c);
    const raw = captured.raw();
    expect(configured.some((c) => c.phi.some((v) => raw.includes(v)))).toBe(true);
  });

  it('keeps ordinary text: messages, route templates, ids, timestamps', () => {
    const captured = captureLogger('phi', { redact: APP_PHI });
    for (const text of ORDINARY) captured.logger.info(text, { text });
    const lines = captured.lines();
    expect(lines.map((l) => l.message)).toEqual(ORDINARY);
    expect(lines.map((l) => l.text)).toEqual(ORDINARY);
    for (const line of lines) expect(line.timestamp).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  });

  it('keeps the ordinary fields around the PHI it removes', () => {
    const captured = captureLogger('phi');
    captured.logger.info('Patient name: Marisol Vantongeren, admitted', {
      patient_id: 'pat-1001',
      route: '/api/v1/patients/:id',
      status: 201,
      email: 'm.v@example.org',
    });
    expect(captured.lines()[0]).toMatchObject({
      message: 'Patient name: [REDACTED], admitted',
      patient_id: 'pat-1001',
      route: '/api/v1/patients/:id',
      status: 201,
      email: '[REDACTED]',
    });
  });

  it('redacts a query string logged through logRequest, keeping the path', () => {
    const captured = captureLogger('http');
    for (const c of byShape('query'))
      core.logRequest(captured.logger, {
        method: 'GET',
        url: inputOf(c) as string,
        statusCode: 200,
        duration: 0.01,
      });
    for (const c of byShape('query')) expectClean(captured.raw(), c);
    expect(captured.lines()[0]?.url).toBe('/api/v1/patients?family_name=[REDACTED]&_count=[REDACTED]');
  });
});

describe.each(eachExpress)('PHI corpus: errors() and the access log on %s', (_name, { express }) => {
  const messages = [...byShape('message'), ...byShape('query')];

  function app(phi = false) {
    const errorLog = captureLogger('errors', phi ? { redact: APP_PHI } : {});
    const accessLog = captureLogger('http', phi ? { redact: APP_PHI } : {});
    const a = express();
    a.use(core.requestContext(), core.logging({ logger: accessLog.logger, includePath: true }));
    a.get('/exposed/:i', (req) => {
      const text = inputOf(messages[Number(req.params.i)]!) as string;
      throw new core.AppError(`No patient matches ${text}`, { status: 404, code: 'NOT_FOUND' });
    });
    a.get('/field/:i', (req) => {
      const text = inputOf(messages[Number(req.params.i)]!) as string;
      throw new core.ValidationError(`Invalid patient: ${text}`, {
        [text]: text,
        email: `${text} is not valid`,
      });
    });
    a.get('/not-found/:i', (req) => {
      throw new core.NotFoundError('Patient', inputOf(messages[Number(req.params.i)]!) as string);
    });
    a.get('/http-error/:i', (req) => {
      const text = inputOf(messages[Number(req.params.i)]!) as string;
      throw Object.assign(new Error(`Bad search: ${text}`), { status: 400, expose: true });
    });
    a.get('/details/:i', (req) => {
      const meta = inputOf(byShape('meta')[Number(req.params.i)]!) as Record<string, unknown>;
      throw new core.AppError('Conflicting record', {
        status: 409,
        code: 'CONFLICT',
        details: { ...meta, record: meta },
      });
    });
    a.get('/thrown/:i', (req) => {
      throw inputOf(byShape('error')[Number(req.params.i)]!);
    });
    a.get('/thrown-exposed/:i', (req) => {
      const err = inputOf(byShape('error')[Number(req.params.i)]!) as Error;
      throw Object.assign(err, { status: 400, expose: true });
    });
    a.use(core.notFound(), core.errors({ logger: errorLog.logger, settings }));
    return { a, logs: () => errorLog.raw() + accessLog.raw() };
  }

  const ACCEPT = ['application/json', 'application/problem+json', 'application/fhir+json'];
  const routes = (shape: 'message' | 'meta' | 'error') =>
    shape === 'message'
      ? ['exposed', 'field', 'not-found', 'http-error']
      : shape === 'meta'
        ? ['details']
        : ['thrown', 'thrown-exposed'];

  async function run(phi: boolean): Promise<void> {
    const { a, logs } = app(phi);
    const want = (c: PhiCase) => phi || c.configured !== true;
    const groups: [PhiCase[], string[]][] = [
      [messages, routes('message')],
      [[...byShape('meta')], routes('meta')],
      [[...byShape('error')], routes('error')],
    ];
    for (const [cases, paths] of groups) {
      for (const [i, c] of cases.entries()) {
        if (!want(c)) continue;
        for (const path of paths) {
          for (const accept of ACCEPT) {
            const res = await request(a).get(`/${path}/${i}`).set('Accept', accept);
            expect(res.status).toBeGreaterThanOrEqual(400);
            expectClean(res.text, c);
          }
        }
      }
    }
    // Query strings and PHI in paths: the 404 body and both log lines.
    for (const c of byShape('query').filter(want)) {
      const res = await request(a)
        .get(inputOf(c) as string)
        .expect(404);
      expectClean(res.text, c);
    }
    for (const c of [...messages, ...byShape('meta'), ...byShape('error')].filter(want))
      expectClean(logs(), c);
  }

  it('no PHI value in any response body (envelope, problem+json, FHIR) or log line, built-in rules', async () => {
    await run(false);
  }, 60_000);

  it('no PHI value anywhere with the application configuration, taken from the logger', async () => {
    await run(true);
  }, 60_000);

  it('keeps what clients need: codes, field names, problems, request ids', async () => {
    const a = express();
    a.use(core.requestContext());
    a.post('/p', () => {
      throw new core.ValidationError('Invalid patient', {
        email: 'Invalid email format',
        birth_date: 'must be a date as YYYY-MM-DD',
      });
    });
    a.use(core.errors({ logger: captureLogger('errors').logger, settings }));
    const res = await request(a).post('/p').set('X-Request-Id', 'req-123').expect(422);
    expect(res.body).toEqual({
      success: false,
      error: 'Invalid patient',
      error_code: 'VALIDATION_ERROR',
      details: {
        field_errors: { email: 'Invalid email format', birth_date: 'must be a date as YYYY-MM-DD' },
        request_id: 'req-123',
      },
    });
    const fhir = await request(a).post('/p').set('Accept', 'application/fhir+json').expect(422);
    expect(fhir.body.issue[1]).toMatchObject({
      details: { text: 'Invalid email format' },
      expression: ['email'],
    });
  });

  it('an access line with a PHI path keeps method, route, status and request id', async () => {
    const accessLog = captureLogger('http');
    const a = express();
    a.use(core.requestContext(), core.logging({ logger: accessLog.logger, includePath: true }));
    a.get('/api/v1/patients/by-email/:email', (_req, res) => {
      res.json({ ok: true });
    });
    await request(a)
      .get('/api/v1/patients/by-email/quentin.ashdown%40example.com?dob=1980-02-03')
      .set('X-Request-Id', 'req-77')
      .expect(200);
    const raw = accessLog.raw();
    expect(raw).not.toContain('quentin');
    expect(raw).not.toContain('1980-02-03');
    expect(accessLog.lines()[0]).toMatchObject({
      method: 'GET',
      route: '/api/v1/patients/by-email/:email',
      status: 200,
      request_id: 'req-77',
      path: '/api/v1/patients/by-email/[REDACTED]',
    });
  });
});

describe('errors({ redact })', () => {
  it('applies its own redact options to responses beside a logger of yours', async () => {
    const express = eachExpress[1]![1].express;
    const a = express();
    a.get('/x', () => {
      throw new core.AppError('No patient H1234567', { status: 404 });
    });
    a.use(core.errors({ logger: captureLogger('errors').logger, settings, redact: APP_PHI }));
    const res = await request(a).get('/x').expect(404);
    expect(res.body.error).toBe('No patient [REDACTED]');
  });

  it('rejects a bad redact option when created', () => {
    expect(() => core.errors({ settings, redact: { phiPatterns: [/x/] } })).toThrow(core.ConfigError);
  });
});
