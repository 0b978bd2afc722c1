/**
 * Acceptance test of examples/health-service: the public behaviour of the demo, driven through its
 * exported app on Express 4 and 5, plus `npm run demo` as a real child process.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import request from 'supertest';
import type { Express } from 'express';
import { loadSettings } from '../../lib/index';
import { createApp } from '../../examples/health-service/app';
import type { LabClient } from '../../examples/health-service/labs';
import { EXPRESS } from '../support/express';
import type { CapturedLogs, LogLine } from './support';
import { captureLogs, waitFor } from './support';

const ROOT = resolve(__dirname, '../..');
const settings = loadSettings({ NODE_ENV: 'test', LOG_LEVEL: 'debug' });
const API = settings.apiPrefix;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const NEW_PATIENT = {
  mrn: 'MRN-5001',
  given_name: 'Rosalind',
  family_name: 'Quintero',
  birth_date: '1988-09-21',
  sex: 'female',
};

describe.each(EXPRESS)('examples/health-service on $name', ({ express }) => {
  let logs: CapturedLogs;
  let app: Express;

  beforeEach(() => {
    logs = captureLogs(settings);
    app = createApp({ express, settings, createLogger: logs.createLogger });
  });

  const accessLine = (requestId: string): Promise<LogLine> =>
    waitFor(() => logs.lines.find((l) => l.logger === 'http' && l.request_id === requestId));

  test('GET /health answers 200 and is left out of the access log', async () => {
    const res = await request(app).get('/health').expect(200);
    expect(res.body).toEqual({ status: 'ok', service: settings.appName, version: settings.appVersion });
    await request(app).get(`${API}/patients`).expect(200);
    await waitFor(() => logs.lines.find((l) => l.logger === 'http'));
    expect(logs.lines.filter((l) => l.logger === 'http').map((l) => l.route)).toEqual([`${API}/patients`]);
  });

  describe('request id', () => {
    test('a safe incoming X-Request-Id is echoed, in the error body and in the log lines', async () => {
      const res = await request(app)
        .get(`${API}/patients/pat-0`)
        .set('X-Request-Id', 'client-req.42:a_b')
        .expect(404);
      expect(res.headers['x-request-id']).toBe('client-req.42:a_b');
      expect(res.body.details.request_id).toBe('client-req.42:a_b');
      const line = await accessLine('client-req.42:a_b');
      expect(line).toMatchObject({ method: 'GET', status: 404 });
      expect(logs.lines.find((l) => l.logger === 'errors')?.request_id).toBe('client-req.42:a_b');
    });

    test.each([
      ['too long', 'a'.repeat(129)],
      ['with markup', '<script>alert(1)</script>'],
      ['with spaces and quotes', 'id "x" y'],
      ['a path', '../../etc/passwd'],
    ])('a hostile id (%s) is replaced by a generated one', async (_label, hostile) => {
      const res = await request(app).get(`${API}/patients`).set('X-Request-Id', hostile).expect(200);
      expect(res.headers['x-request-id']).toMatch(UUID);
      expect(logs.text()).not.toContain(hostile);
    });

    test('without one, each request gets its own UUID', async () => {
      const [a, b] = await Promise.all([request(app).get('/health'), request(app).get('/health')]);
      expect(a.headers['x-request-id']).toMatch(UUID);
      expect(b.headers['x-request-id']).toMatch(UUID);
      expect(a.headers['x-request-id']).not.toBe(b.headers['x-request-id']);
    });
  });

  describe('patients', () => {
    test('lists the sample patients, filters by family name and limits', async () => {
      const all = await request(app).get(`${API}/patients`).expect(200);
      expect(all.body).toMatchObject({ success: true, meta: { count: 3, limit: 20 } });
      const okafor = await request(app).get(`${API}/patients?family_name=okafor`).expect(200);
      expect(okafor.body.data.map((p: { id: string }) => p.id)).toEqual(['pat-1001', 'pat-1003']);
      const one = await request(app).get(`${API}/patients?limit=1`).expect(200);
      expect(one.body.meta).toEqual({ count: 1, limit: 1 });
    });

    test('a bad list query is a 422 naming each parameter', async () => {
      const res = await request(app).get(`${API}/patients?limit=0&family_name=a&family_name=b`).expect(422);
      expect(res.body.error_code).toBe('VALIDATION_ERROR');
      expect(Object.keys(res.body.details.field_errors).sort()).toEqual(['family_name', 'limit']);
    });

    test('gets one patient by id', async () => {
      const res = await request(app).get(`${API}/patients/pat-1002`).expect(200);
      expect(res.body).toMatchObject({ success: true, data: { id: 'pat-1002', mrn: 'MRN-1002' } });
    });

    test('an unknown id is a 404 envelope from NotFoundError', async () => {
      const res = await request(app).get(`${API}/patients/pat-9999`).expect(404);
      expect(res.headers['content-type']).toMatch(/^application\/json/);
      expect(res.body).toEqual({
        success: false,
        error: 'Patient not found',
        error_code: 'NOT_FOUND',
        details: {
          request_id: res.headers['x-request-id'],
          resource_type: 'Patient',
          resource_id: 'pat-9999',
        },
      });
    });

    test('creates a patient: 201, Location, then readable', async () => {
      const res = await request(app).post(`${API}/patients`).send(NEW_PATIENT).expect(201);
      expect(res.body.data).toMatchObject({ ...NEW_PATIENT, id: 'pat-1004' });
      expect(res.headers.location).toBe(`${API}/patients/pat-1004`);
      await request(app).get(res.headers.location!).expect(200);
      const created = await waitFor(() => logs.lines.find((l) => l.message === 'patient created'));
      expect(created).toMatchObject({
        logger: 'patients',
        patient_id: 'pat-1004',
        request_id: res.headers['x-request-id'],
      });
    });

    test('invalid input is a 422 with an error for every bad field', async () => {
      const res = await request(app)
        .post(`${API}/patients`)
        .send({ mrn: 'bad mrn', family_name: '  ', birth_date: '1990-02-31', sex: 'x', ssn: '123-45-6789' })
        .expect(422);
      expect(res.body).toMatchObject({
        success: false,
        error: 'Invalid patient',
        error_code: 'VALIDATION_ERROR',
      });
      expect(res.body.details.field_errors).toEqual({
        mrn: 'must be 4-20 upper-case letters, digits or dashes',
        given_name: 'is required',
        family_name: 'must be a non-empty string',
        birth_date: 'must be a date as YYYY-MM-DD',
        sex: 'must be one of female, male, other, unknown',
        ssn: 'is not a known field',
      });
      expect(JSON.stringify(res.body)).not.toContain('123-45-6789');
    });

    test('a birth date in the future and a body that is not an object are 422s too', async () => {
      const future = await request(app)
        .post(`${API}/patients`)
        .send({ ...NEW_PATIENT, birth_date: '2999-01-01' })
        .expect(422);
      expect(future.body.details.field_errors).toEqual({ birth_date: 'must not be in the future' });
      const array = await request(app).post(`${API}/patients`).send([NEW_PATIENT]).expect(422);
      expect(array.body.details.field_errors).toEqual({ body: 'must be a JSON object' });
      // No body at all: Express 5 leaves req.body undefined, Express 4 sets {}; a 422 either way.
      const none = await request(app).post(`${API}/patients`).expect(422);
      expect(none.body.error_code).toBe('VALIDATION_ERROR');
    });

    test('a duplicate MRN is a 409 DUPLICATE that does not echo the MRN', async () => {
      const res = await request(app)
        .post(`${API}/patients`)
        .send({ ...NEW_PATIENT, mrn: 'MRN-1001' })
        .expect(409);
      expect(res.body).toEqual({
        success: false,
        error: 'Patient with this mrn already exists',
        error_code: 'DUPLICATE',
        details: { request_id: res.headers['x-request-id'], resource_type: 'Patient', field: 'mrn' },
      });
      expect(res.text).not.toContain('MRN-1001');
    });
  });

  describe('failures', () => {
    test('an error thrown after an await is a generic 500: no stack, no internal message', async () => {
      const res = await request(app).get(`${API}/patients/pat-1001/lab-results`).expect(500);
      expect(res.body).toEqual({
        success: false,
        error: 'Internal server error',
        error_code: 'INTERNAL_ERROR',
        details: { request_id: res.headers['x-request-id'] },
      });
      expect(res.text).not.toMatch(/LIS|lis\.internal|refused|stack|labs\.ts|at /);
    });

    test('the 500 is logged once, at error, with its cause and stack', async () => {
      const res = await request(app).get(`${API}/patients/pat-1001/lab-results`).expect(500);
      await accessLine(res.headers['x-request-id']!);
      const errorLines = logs.lines.filter((l) => l.logger === 'errors');
      expect(errorLines).toHaveLength(1);
      const [line] = errorLines as [LogLine];
      expect(line).toMatchObject({ level: 'error', status: 500, error_code: 'INTERNAL_ERROR' });
      const error = line.error as { message: string; stack: string };
      expect(error.message).toContain('lis.internal.example:7443 refused');
      expect(error.stack).toContain('labs.ts');
    });

    test('with a working lab client the same route answers 200', async () => {
      const labs: LabClient = {
        resultsFor: async (id) => {
          await new Promise((r) => setTimeout(r, 1));
          return [
            {
              code: '2345-7',
              display: `Glucose ${id}`,
              value: 5.4,
              unit: 'mmol/L',
              observed_at: '2026-01-01',
            },
          ];
        },
      };
      const withLabs = createApp({ express, settings, createLogger: logs.createLogger, labs });
      const res = await request(withLabs).get(`${API}/patients/pat-1001/lab-results`).expect(200);
      expect(res.body.data[0]).toMatchObject({ code: '2345-7', display: 'Glucose pat-1001' });
    });

    test('malformed JSON is a 400 INVALID_JSON', async () => {
      const res = await request(app)
        .post(`${API}/patients`)
        .set('Content-Type', 'application/json')
        .send('{"mrn": "MRN-7000",')
        .expect(400);
      expect(res.body).toMatchObject({ success: false, error_code: 'INVALID_JSON' });
      expect(res.body.details.request_id).toBe(res.headers['x-request-id']);
      expect(res.text).not.toMatch(/Unexpected|position|SyntaxError/);
    });

    test('a body over the limit is a 413 PAYLOAD_TOO_LARGE', async () => {
      const res = await request(app)
        .post(`${API}/patients`)
        .send({ ...NEW_PATIENT, notes: 'x'.repeat(150 * 1024) })
        .expect(413);
      expect(res.body).toMatchObject({ success: false, error_code: 'PAYLOAD_TOO_LARGE' });
    });

    test('the body limit is an option', async () => {
      const small = createApp({ express, settings, createLogger: logs.createLogger, bodyLimit: 64 });
      await request(small).post(`${API}/patients`).send(NEW_PATIENT).expect(413);
    });

    test('an unmatched route is a 404 envelope', async () => {
      const res = await request(app).delete(`${API}/patients`).expect(404);
      expect(res.body).toEqual({
        success: false,
        error: 'Route not found',
        error_code: 'NOT_FOUND',
        details: { request_id: res.headers['x-request-id'], method: 'DELETE' },
      });
    });
  });

  describe('error formats', () => {
    test('Accept: application/problem+json gives RFC 9457 problem details', async () => {
      const res = await request(app)
        .get(`${API}/patients/pat-9999`)
        .set('Accept', 'application/problem+json')
        .expect(404);
      expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(JSON.parse(res.text)).toMatchObject({
        type: 'about:blank',
        title: 'Not Found',
        status: 404,
        detail: 'Patient not found',
        code: 'NOT_FOUND',
        request_id: res.headers['x-request-id'],
      });
    });

    test('Accept: application/fhir+json gives an OperationOutcome with one issue per bad field', async () => {
      const res = await request(app)
        .post(`${API}/patients`)
        .set('Accept', 'application/fhir+json')
        .send({ ...NEW_PATIENT, birth_date: 'yesterday' })
        .expect(422);
      expect(res.headers['content-type']).toMatch(/^application\/fhir\+json/);
      const outcome = JSON.parse(res.text);
      expect(outcome.resourceType).toBe('OperationOutcome');
      expect(outcome.issue).toHaveLength(2);
      expect(outcome.issue[1]).toMatchObject({
        severity: 'error',
        code: 'invalid',
        expression: ['birth_date'],
      });
    });
  });

  describe('logs', () => {
    test('one access line per request with the route template, status, duration and request id', async () => {
      const res = await request(app)
        .get(`${API}/patients/pat-1003?secret=abc`)
        .set('User-Agent', 'acceptance')
        .expect(200);
      const line = await accessLine(res.headers['x-request-id']!);
      expect(line).toMatchObject({
        level: 'info',
        message: 'request completed',
        method: 'GET',
        route: `${API}/patients/:id`,
        status: 200,
        user_agent: 'acceptance',
      });
      expect(typeof line.duration_ms).toBe('number');
      expect(typeof line.bytes).toBe('number');
      expect(logs.lines.filter((l) => l.logger === 'http')).toHaveLength(1);
      expect(logs.text()).not.toContain('pat-1003');
    });

    // Express resets req.baseUrl once the error leaves the router; the template is recorded at match time.
    test('an error answered by errors() keeps the full route template in the access log', async () => {
      const res = await request(app).get(`${API}/patients/pat-9999`).expect(404);
      const line = await accessLine(res.headers['x-request-id']!);
      expect(line.route).toBe(`${API}/patients/:id`);
    });

    test('posted PHI appears in no log line, whatever the outcome', async () => {
      await request(app).post(`${API}/patients`).send(NEW_PATIENT).expect(201);
      await request(app).post(`${API}/patients`).send(NEW_PATIENT).expect(409);
      await request(app)
        .post(`${API}/patients`)
        .send({ ...NEW_PATIENT, mrn: 'MRN-5002', birth_date: 'x' })
        .expect(422);
      await waitFor(() => (logs.lines.filter((l) => l.logger === 'http').length === 3 ? true : undefined));
      const text = logs.text();
      for (const value of [
        NEW_PATIENT.mrn,
        'MRN-5002',
        NEW_PATIENT.given_name,
        NEW_PATIENT.family_name,
        NEW_PATIENT.birth_date,
      ]) {
        expect(text).not.toContain(value);
      }
    });
  });
});

/** A port that was free a moment ago (the OS picked it). */
async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  server.close();
  await once(server, 'close');
  return port;
}

interface Running {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
}

/** Start a command in its own process group, so the whole tree (npm → sh → tsx → node) can be stopped. */
function run(command: string, args: readonly string[], env: Record<string, string>): Running {
  let out = '';
  let err = '';
  const child = spawn(command, args, {
    cwd: ROOT,
    env: { ...process.env, ...env },
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
  return { child, stdout: () => out, stderr: () => err };
}

function stopGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // already gone
  }
}

describe('npm run demo', () => {
  const started: ChildProcess[] = [];

  afterEach(() => {
    for (const child of started.splice(0)) stopGroup(child, 'SIGKILL');
  });

  test('listens on PORT, prints its URL and a curl walkthrough, serves /health and stops on SIGTERM', async () => {
    const port = await freePort();
    const demo = run('npm', ['run', 'demo'], { PORT: String(port), NODE_ENV: 'development' });
    started.push(demo.child);
    const url = await waitFor(() => /http:\/\/localhost:\d+/.exec(demo.stdout())?.[0], 30_000);
    expect(url).toBe(`http://localhost:${port}`);
    expect(demo.stdout()).toContain(`curl -i ${url}/health`);

    const health = await request(`http://127.0.0.1:${port}`).get('/health').expect(200);
    expect(health.body).toMatchObject({ status: 'ok' });
    const missing = await request(`http://127.0.0.1:${port}`).get(`${API}/patients/pat-0`).expect(404);
    expect(missing.body.error_code).toBe('NOT_FOUND');

    const exited = once(demo.child, 'exit');
    stopGroup(demo.child, 'SIGTERM');
    await exited;
  }, 45_000);

  test('refuses invalid settings with every problem named and exit code 1', async () => {
    const tsx = resolve(ROOT, 'node_modules/.bin/tsx');
    const demo = run(tsx, ['examples/health-service/server.ts'], {
      PORT: '0',
      LOG_LEVEL: 'loud',
      RATE_LIMIT_WINDOW: '-1',
    });
    started.push(demo.child);
    const [code] = (await once(demo.child, 'exit')) as [number | null];
    expect(code).toBe(1);
    expect(demo.stderr()).toContain('LOG_LEVEL');
    expect(demo.stderr()).toContain('RATE_LIMIT_WINDOW');
    expect(demo.stderr()).toContain('docs/error-codes.md#CONFIG_INVALID');
    expect(demo.stdout()).not.toContain('listening');
  }, 45_000);
});
