import request from 'supertest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as core from '../../lib/index';
import { eachExpress } from '../support/express';
import { captureLogger } from '../support/logs';

const settings = core.loadSettings({ NODE_ENV: 'test' });
const SSN = '078-05-1120';
const BEARER = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1LTEifQ.c2lnbmF0dXJlLWNhbmFyeQ';
const PASSWORD = 'Tr0ub4dor&3-canary';

describe.each(eachExpress)('logging() on %s', (_name, { express }) => {
  function build(options: core.LoggingOptions = {}) {
    const captured = captureLogger('http');
    const app = express();
    app.use(core.requestContext(), core.logging({ logger: captured.logger, ...options }), express.json());
    app.use((req, _res, next) => {
      if (req.headers.authorization !== undefined) core.setUser('user-7', ['provider'], req);
      next();
    });
    const router = express.Router();
    router.get('/patients/:id', (_req, res) => {
      res.json({ id: 'p1' });
    });
    router.post('/patients', (req, res) => {
      res.status(201).json({ created: true, name: (req.body as { name?: string }).name });
    });
    router.get('/slow', (_req, res) => {
      setTimeout(() => res.json({ ok: true }), 30);
    });
    router.get('/fail', () => {
      throw new core.ServiceUnavailableError('down for maintenance', 10);
    });
    app.use('/api', router);
    app.get('/health', (_req, res) => {
      res.json({ status: 'ok' });
    });
    app.use(core.notFound(), core.errors({ logger: captureLogger('errors').logger, settings }));
    return { app, captured };
  }

  it('writes one line per request when logging() runs both before and after requestContext()', async () => {
    const outer = captureLogger('http');
    const inner = captureLogger('http');
    const app = express();
    app.use(
      core.logging({ logger: outer.logger }),
      core.requestContext(),
      core.logging({ logger: inner.logger }),
    );
    app.get('/twice', (_req, res) => {
      setTimeout(() => res.json({ ok: true }), 20);
    });
    for (let i = 0; i < 3; i++) await request(app).get('/twice').expect(200);
    await new Promise((r) => setTimeout(r, 30));
    const lines = [...outer.lines(), ...inner.lines()].filter((l) => l.message === 'request completed');
    expect(lines).toHaveLength(3);
    for (const line of lines) {
      expect(line).toMatchObject({ route: '/twice', status: 200 });
      expect(line.duration_ms).toBeGreaterThanOrEqual(15);
    }
  });

  it('writes one line per request with route template, status, duration, bytes, ids, ip and user agent', async () => {
    const { app, captured } = build();
    await request(app)
      .get('/api/patients/p1?mrn=12345')
      .set('X-Request-Id', 'acc-1')
      .set('User-Agent', 'test-agent/1.0')
      .set('Authorization', 'Bearer x')
      .expect(200);
    const lines = captured.lines();
    expect(lines).toHaveLength(1);
    const line = lines[0]!;
    expect(line).toMatchObject({
      level: 'info',
      logger: 'http',
      message: 'request completed',
      method: 'GET',
      route: '/api/patients/:id',
      status: 200,
      request_id: 'acc-1',
      user_id: 'user-7',
      user_agent: 'test-agent/1.0',
      bytes: 11,
    });
    expect(typeof line.duration_ms).toBe('number');
    expect(line.ip).toMatch(/127\.0\.0\.1|::1/);
    expect(line.trace_id).toMatch(/^[0-9a-f]{32}$/);
    // The raw path (with its id and query) is not logged unless asked for.
    expect(captured.raw()).not.toContain('p1?');
    expect(captured.raw()).not.toContain('12345');
  });

  it('logs the raw path without its query string when includePath is on', async () => {
    const { app, captured } = build({ includePath: true });
    await request(app).get('/api/patients/p1?ssn=078-05-1120').expect(200);
    expect(captured.lines()[0]!.path).toBe('/api/patients/p1');
    expect(captured.raw()).not.toContain(SSN);
  });

  it('chooses the level by status: 4xx warn, 5xx error; and skips health checks', async () => {
    const { app, captured } = build();
    await request(app).get('/nope').expect(404);
    await request(app).get('/api/fail').expect(503);
    await request(app).get('/health').expect(200);
    const lines = captured.lines();
    expect(lines.map((l) => [l.level, l.status])).toEqual([
      ['warn', 404],
      ['error', 503],
    ]);
    expect(lines[0]!.route).toBeUndefined();
  });

  it('takes a custom skip list or predicate', async () => {
    const byList = build({ skip: ['/api/patients/p1', /^\/nope/] });
    await request(byList.app).get('/api/patients/p1').expect(200);
    await request(byList.app).get('/nope/x').expect(404);
    await request(byList.app).get('/health').expect(200);
    expect(byList.captured.lines().map((l) => l.status)).toEqual([200]);
    const byFn = build({ skip: (req) => req.method === 'GET' });
    await request(byFn.app).get('/api/patients/p1').expect(200);
    expect(byFn.captured.lines()).toHaveLength(0);
  });

  it('warns about slow requests', async () => {
    const { app, captured } = build({ slowMs: 10 });
    await request(app).get('/api/slow').expect(200);
    expect(captured.lines()[0]).toMatchObject({ level: 'warn', slow: true, status: 200 });
  });

  it('logs a request the client abandoned', async () => {
    const { app, captured } = build();
    const server = http.createServer(app).listen(0);
    const { port } = server.address() as AddressInfo;
    await new Promise<void>((resolve) => {
      const req = http.get({ port, path: '/api/slow' });
      req.on('error', () => undefined);
      // Hang up only once the server has the request, so there is something to log.
      server.once('request', () => {
        setTimeout(() => {
          req.destroy();
          resolve();
        }, 5);
      });
    });
    await new Promise((r) => setTimeout(r, 60));
    server.close();
    const line = captured.lines()[0]!;
    expect(line).toMatchObject({ route: '/api/slow', aborted: true });
  });

  it('never writes a canary SSN, bearer token or password from headers, query or body', async () => {
    const { app, captured } = build({ includePath: true });
    await request(app)
      .post(`/api/patients?ssn=${SSN}&token=${BEARER}`)
      .set('Authorization', `Bearer ${BEARER}`)
      .set('Cookie', `session=${PASSWORD}`)
      .set('User-Agent', `evil ${SSN} ${BEARER}`)
      .send({ name: 'x', password: PASSWORD, ssn: SSN })
      .expect(201);
    const raw = captured.raw();
    expect(raw.length).toBeGreaterThan(0);
    for (const canary of [SSN, BEARER, PASSWORD]) expect(raw).not.toContain(canary);
  });

  it('keeps one line per entry when the user agent tries log injection', async () => {
    const { app, captured } = build();
    await request(app).get('/api/patients/1').set('User-Agent', 'ua\tFAKE').expect(200);
    const raw = captured.raw();
    expect(raw.trim().split('\n')).toHaveLength(1);
    expect(captured.lines()[0]!.user_agent).toBe('ua\\tFAKE');
  });

  it('writes the access log to a real rotating file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'caduceus-access-'));
    try {
      const file = join(dir, 'logs', 'access.log');
      const logger = core.createLogger('access', { console: false, file, settings });
      const app = express();
      app.use(core.requestContext(), core.logging({ logger }));
      app.get('/x', (_req, res) => {
        res.send('ok');
      });
      for (let i = 0; i < 5; i++) await request(app).get('/x').set('X-Request-Id', `f-${i}`).expect(200);
      await core.flushLogger(logger);
      const lines = readFileSync(file, 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(lines.map((l) => l.request_id)).toEqual(['f-0', 'f-1', 'f-2', 'f-3', 'f-4']);
      logger.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('logging() configuration', () => {
  it('throws ConfigError for bad options and app.use(core.logging)', () => {
    const logger = captureLogger().logger;
    expect(() => core.logging({ logger, slowMs: -1 })).toThrow(/logging: slowMs must be a positive number/);
    expect(() => core.logging({ logger, skip: 'health' as never })).toThrow(core.ConfigError);
    expect(() => core.logging({ logger, slowMS: 5 } as never)).toThrow(/Did you mean "slowMs"\?/);
    expect(() =>
      (core.logging as unknown as (r: unknown) => unknown)({ method: 'GET', headers: {} }),
    ).toThrow(/app\.use\(core\.logging\(\)\)/);
  });
});

describe('a logger with no destination', () => {
  it('stays silent instead of letting winston print the raw line to stderr', () => {
    const writes: string[] = [];
    const spy = jest.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
      writes.push(String(chunk));
      return true;
    });
    try {
      const logger = core.createLogger('quiet', { console: false, settings });
      logger.info('patient', { password: PASSWORD, ssn: SSN });
    } finally {
      spy.mockRestore();
    }
    expect(writes.join('')).not.toContain(PASSWORD);
    expect(writes.join('')).not.toContain(SSN);
  });
});

describe('context values in log lines', () => {
  it('redacts a request id shaped like an SSN, accepted from the caller', async () => {
    const captured = captureLogger('http');
    const app = require('express')() as import('express').Express;
    app.use(core.requestContext(), core.logging({ logger: captured.logger }));
    app.get('/x', (_req, res) => {
      captured.logger.info('inside');
      res.send('ok');
    });
    await request(app).get('/x').set('X-Request-Id', SSN).expect(200);
    expect(captured.lines().length).toBe(2);
    expect(captured.raw()).not.toContain(SSN);
  });
});

describe('FileTransport options', () => {
  it('refuses a bad flushIntervalMs at creation', () => {
    expect(() => new core.FileTransport({ filename: join(tmpdir(), 'x.log'), flushIntervalMs: -1 })).toThrow(
      /FileTransport: flushIntervalMs must be an integer from 0 to 10000/,
    );
  });
});
