/**
 * metricsEndpoint(): Prometheus text by default, OpenMetrics when the scraper prefers it, a bearer
 * token and an address allow-list (from options or METRICS_TOKEN / METRICS_ALLOW_IPS), scrapes not
 * counted as traffic, and the token never echoed or logged.
 */
import type { Express } from 'express';
import { createServer } from 'node:net';
import request from 'supertest';
import * as core from '../../lib/index';
import { eachExpress, type ExpressVariant } from '../support/express';
import { captureLogger, type CapturedLogger } from '../support/logs';
import {
  newMetrics,
  parseExposition,
  PROMETHEUS_ACCEPT,
  samplesOf,
  Servers,
  settings,
  type Exposition,
} from './support';

const servers = new Servers();
afterEach(() => servers.closeAll());

const TEXT = { type: 'text/plain', version: '0.0.4', charset: 'utf-8' };
const OPENMETRICS = { type: 'application/openmetrics-text', version: '1.0.0', charset: 'utf-8' };

/** A Content-Type as its media type and parameters (Express 4 reorders the parameters). */
function mediaType(header: unknown): Record<string, string> {
  const [type = '', ...params] = String(header).split(';');
  const out: Record<string, string> = { type: type.trim() };
  for (const param of params) {
    const [key = '', value = ''] = param.split('=');
    out[key.trim().toLowerCase()] = value.trim();
  }
  return out;
}
const TOKEN = 'mtk-7f3a9c1e5b-canary-token';

interface Built {
  app: Express;
  metrics: core.Metrics;
  errorsLog: CapturedLogger;
  accessLog: CapturedLogger;
}

/** requestContext, logging, metrics(), a route, `/metrics` with `endpoint` options, notFound, errors. */
function build(variant: ExpressVariant, endpoint: core.MetricsEndpointOptions = {}): Built {
  const metrics = newMetrics();
  const errorsLog = captureLogger('errors');
  const accessLog = captureLogger('http');
  const app = variant.express();
  app.use(
    core.requestContext(),
    core.logging({ logger: accessLog.logger }),
    core.metrics({ metrics, exemplars: true }),
  );
  app.get('/metrics', core.metricsEndpoint({ metrics, settings, ...endpoint }));
  app.get('/patients/:id', (_req, res) => {
    res.json({ ok: true });
  });
  app.use(core.notFound(), core.errors({ settings, metrics, logger: errorsLog.logger }));
  return { app, metrics, errorsLog, accessLog };
}

/** Every sample belongs to a family declared by `# TYPE`, with the suffixes its type allows. */
function expectWellFormed(exp: Exposition, openMetrics: boolean): void {
  const suffixes: Record<string, readonly string[]> = {
    counter: openMetrics ? ['_total', '_created'] : [''],
    gauge: [''],
    histogram: ['_bucket', '_sum', '_count', '_created'],
    summary: ['', '_sum', '_count', '_created'],
    unknown: [''],
  };
  for (const sample of exp.samples) {
    const family = [...exp.types].find(([name, type]) =>
      (suffixes[type] ?? ['']).some((suffix) => sample.name === name + suffix),
    );
    expect([sample.line, family === undefined]).toEqual([sample.line, false]);
  }
  if (openMetrics) {
    expect(exp.eof).toBe(true);
    expect(exp.lines[exp.lines.length - 1]).toBe('# EOF');
    for (const line of exp.lines) expect(line).not.toBe('');
  } else {
    expect(exp.eof).toBe(false);
  }
}

describe.each(eachExpress)('metricsEndpoint() on %s', (_name, variant) => {
  it('answers the Prometheus text format by default', async () => {
    const { app } = build(variant);
    await request(app).get('/patients/1').expect(200);
    const res = await request(app).get('/metrics').expect(200);
    expect(mediaType(res.headers['content-type'])).toEqual(TEXT);
    expect(res.headers['cache-control']).toBe('no-store');
    const exp = parseExposition(res.text);
    expectWellFormed(exp, false);
    expect(exp.types.get('http_requests_total')).toBe('counter');
    expect(samplesOf(exp, 'http_requests_total', { route: '/patients/:id' })).toHaveLength(1);
    // Exemplars are an OpenMetrics feature: never in the text format.
    expect(exp.samples.filter((s) => s.exemplar !== undefined)).toEqual([]);
  });

  it.each([
    ['Prometheus 3', PROMETHEUS_ACCEPT],
    [
      'Prometheus 2',
      'application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1',
    ],
    ['a bare media type', 'application/openmetrics-text'],
  ])('answers OpenMetrics to %s', async (_who, accept) => {
    const { app } = build(variant);
    await request(app).get('/patients/1').expect(200);
    const res = await request(app).get('/metrics').set('Accept', accept).expect(200);
    expect(mediaType(res.headers['content-type'])).toEqual(OPENMETRICS);
    const exp = parseExposition(res.text);
    expectWellFormed(exp, true);
    expect(exp.types.get('http_requests')).toBe('counter');
    expect(exp.types.has('http_requests_total')).toBe(false);
    expect(
      samplesOf(exp, 'http_requests_total', { route: '/patients/:id', status_code: '200' }),
    ).toHaveLength(1);
    expect(samplesOf(exp, 'http_requests')).toEqual([]);
    expect(exp.types.get('http_request_duration_seconds')).toBe('histogram');

    // The registry is not renamed by an OpenMetrics scrape: the text format is unchanged after it.
    const text = parseExposition((await request(app).get('/metrics').expect(200)).text);
    expect(text.types.get('http_requests_total')).toBe('counter');
    expect(samplesOf(text, 'http_requests_total', { route: '/patients/:id' })).toHaveLength(1);
  });

  it.each([
    ['text/plain', TEXT],
    ['*/*', TEXT],
    ['application/openmetrics-text;q=0.1,text/plain', TEXT],
    ['text/plain;q=0.2,application/openmetrics-text;q=0.9', OPENMETRICS],
  ])('negotiates Accept: %s', async (accept, expected) => {
    const { app } = build(variant);
    const res = await request(app).get('/metrics').set('Accept', accept).expect(200);
    expect(mediaType(res.headers['content-type'])).toEqual(expected);
  });

  it('always answers text with openMetrics: false', async () => {
    const { app } = build(variant, { openMetrics: false });
    const res = await request(app).get('/metrics').set('Accept', PROMETHEUS_ACCEPT).expect(200);
    expect(mediaType(res.headers['content-type'])).toEqual(TEXT);
    expectWellFormed(parseExposition(res.text), false);
  });

  it('does not count scrapes as requests', async () => {
    const { app } = build(variant);
    for (let i = 0; i < 3; i++) await request(app).get('/metrics').expect(200);
    await request(app).get('/patients/1').expect(200);
    const exp = parseExposition((await request(app).get('/metrics').expect(200)).text);
    expect(samplesOf(exp, 'http_requests_total').map((s) => s.labels.route)).toEqual(['/patients/:id']);
    expect(samplesOf(exp, 'http_request_duration_seconds_count').map((s) => s.labels.route)).toEqual([
      '/patients/:id',
    ]);
  });

  it('answers HEAD without a body and lets other methods fall through to the 404', async () => {
    const { app, metrics } = build(variant);
    const head = await request(app).head('/metrics').expect(200);
    expect(head.text).toBeUndefined();
    const post = await request(app).post('/metrics').send({}).expect(404);
    expect(post.body).toMatchObject({ success: false, error_code: 'NOT_FOUND' });
    await request(app).delete('/metrics').expect(404);
    const exp = parseExposition(await metrics.render());
    expect(samplesOf(exp, 'http_requests_total', { route: 'unmatched', status_code: '404' })).toHaveLength(2);
  });

  describe('with a token', () => {
    it.each([
      ['no Authorization header', undefined],
      ['a wrong bearer token', `Bearer ${TOKEN}-wrong`],
      ['the token with another scheme', `Basic ${TOKEN}`],
      ['a prefix of the token', `Bearer ${TOKEN.slice(0, -1)}`],
      ['an empty bearer token', 'Bearer '],
    ])('refuses %s with a 401 envelope and a Bearer challenge', async (_case, authorization) => {
      const { app } = build(variant, { token: TOKEN });
      let req = request(app).get('/metrics');
      if (authorization !== undefined) req = req.set('Authorization', authorization);
      const res = await req.expect(401);
      expect(res.headers['www-authenticate']).toMatch(/^Bearer /);
      expect(res.body).toMatchObject({ success: false, error_code: 'UNAUTHORIZED' });
      expect(res.text).not.toContain('# TYPE');
    });

    it('serves the metrics with the token (any case of "Bearer")', async () => {
      const { app } = build(variant, { token: TOKEN });
      await request(app).get('/metrics').set('Authorization', `Bearer ${TOKEN}`).expect(200);
      const res = await request(app).get('/metrics').set('Authorization', `bearer ${TOKEN}`).expect(200);
      expect(mediaType(res.headers['content-type'])).toEqual(TEXT);
    });

    it('challenges with the endpoint’s realm', async () => {
      const { app } = build(variant, { token: TOKEN });
      const res = await request(app).get('/metrics').expect(401);
      expect(res.headers['www-authenticate']).toBe('Bearer realm="metrics"');
    });

    it('never writes the token, right or wrong, in a response or a log line', async () => {
      const { app, errorsLog, accessLog } = build(variant, { token: TOKEN });
      const wrong = `${TOKEN}-WRONG`;
      const responses = [
        await request(app).get('/metrics').set('Authorization', `Bearer ${wrong}`),
        await request(app).get('/metrics').set('Authorization', `Basic ${wrong}`),
        await request(app).get('/metrics').set('Authorization', `Bearer ${TOKEN}`),
        await request(app).get('/metrics?token=' + TOKEN),
      ];
      expect(responses.map((r) => r.status)).toEqual([401, 401, 200, 401]);
      expect(errorsLog.lines().length).toBeGreaterThanOrEqual(3);
      for (const text of [
        ...responses.map((r) => `${r.text}${JSON.stringify(r.headers)}`),
        errorsLog.raw(),
        accessLog.raw(),
      ]) {
        expect(text).not.toContain(TOKEN);
        expect(text).not.toContain(TOKEN.slice(4, 20));
      }
    });

    it('takes the token from METRICS_TOKEN', async () => {
      const { app } = build(variant, {
        settings: core.loadSettings({ NODE_ENV: 'test', METRICS_TOKEN: TOKEN }),
      });
      await request(app).get('/metrics').expect(401);
      await request(app).get('/metrics').set('Authorization', `Bearer ${TOKEN}`).expect(200);
    });
  });

  describe('with an allow-list', () => {
    it('refuses an address outside it with a 403 envelope', async () => {
      const { app } = build(variant, { allow: ['10.0.0.0/8'] });
      const res = await request(app).get('/metrics').expect(403);
      expect(res.body).toMatchObject({ success: false, error_code: 'FORBIDDEN' });
      expect(res.text).not.toContain('# TYPE');
    });

    it.each([
      ['dual-stack (::)', '::', '127.0.0.1'],
      ['IPv4 (127.0.0.1)', '127.0.0.1', '127.0.0.1'],
    ])('allows 127.0.0.1, however written, on a %s server', async (_kind, host, connect) => {
      for (const allow of [
        ['127.0.0.1'],
        ['::ffff:127.0.0.1'],
        ['127.0.0.0/8'],
        ['10.0.0.0/8', '127.0.0.1'],
      ]) {
        const { app } = build(variant, { allow });
        const { server } = await servers.listen(app, host);
        const port = (server.address() as { port: number }).port;
        await request(`http://${connect}:${port}`).get('/metrics').expect(200);
      }
      const { app } = build(variant, { allow: ['::1'] });
      const { server } = await servers.listen(app, host);
      const port = (server.address() as { port: number }).port;
      await request(`http://${connect}:${port}`).get('/metrics').expect(403);
    });

    it('allows ::1 over IPv6 loopback, and refuses it with an IPv4-only list', async () => {
      if (!(await ipv6Loopback())) return;
      const allowed = build(variant, { allow: ['::1'] });
      await request((await servers.listen(allowed.app, '::1')).url)
        .get('/metrics')
        .expect(200);
      const refused = build(variant, { allow: ['127.0.0.1'] });
      await request((await servers.listen(refused.app, '::1')).url)
        .get('/metrics')
        .expect(403);
    });

    it('checks req.ip: X-Forwarded-For counts only behind a trusted proxy', async () => {
      const plain = build(variant, { allow: ['10.0.0.0/8'] });
      await request(plain.app).get('/metrics').set('X-Forwarded-For', '10.1.2.3').expect(403);
      const proxied = build(variant, { allow: ['10.0.0.0/8'] });
      proxied.app.set('trust proxy', 'loopback');
      await request(proxied.app).get('/metrics').set('X-Forwarded-For', '10.1.2.3').expect(200);
      await request(proxied.app).get('/metrics').set('X-Forwarded-For', '192.0.2.1').expect(403);
    });

    it('takes the list from METRICS_ALLOW_IPS', async () => {
      const refused = build(variant, {
        settings: core.loadSettings({ NODE_ENV: 'test', METRICS_ALLOW_IPS: '10.0.0.0/8,192.168.0.0/16' }),
      });
      await request(refused.app).get('/metrics').expect(403);
      const allowed = build(variant, {
        settings: core.loadSettings({ NODE_ENV: 'test', METRICS_ALLOW_IPS: '10.0.0.0/8, 127.0.0.1' }),
      });
      await request(allowed.app).get('/metrics').expect(200);
    });

    it('checks the address before the token', async () => {
      const { app } = build(variant, { allow: ['10.0.0.0/8'], token: TOKEN });
      await request(app).get('/metrics').set('Authorization', `Bearer ${TOKEN}`).expect(403);
    });
  });
});

describe('metricsEndpoint() options', () => {
  it.each([
    ['token', { token: '' }],
    ['token', { token: 42 }],
    ['allow[1]', { allow: ['10.0.0.0/8', 'not-an-address'] }],
    ['allow[0]', { allow: ['10.0.0.0/33'] }],
    ['allow', { allow: '10.0.0.0/8' }],
    ['openMetrics', { openMetrics: 'yes' }],
    ['cluster', { cluster: 1 }],
    ['metrics', { metrics: {} }],
    ['tokne', { tokne: 'x' }],
  ])('throws a ConfigError naming %s', (option, input) => {
    let thrown: unknown;
    try {
      core.metricsEndpoint({ metrics: newMetrics(), settings, ...(input as object) });
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(core.ConfigError);
    expect((thrown as Error).message).toMatch(/^metricsEndpoint: /);
    expect((thrown as Error).message).toContain(option);
  });

  it('never prints a bad token in its ConfigError', () => {
    let thrown: unknown;
    try {
      core.metricsEndpoint({ metrics: newMetrics(), settings, token: { secret: TOKEN } as never });
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(core.ConfigError);
    expect(
      JSON.stringify({ m: (thrown as Error).message, i: (thrown as core.ConfigError).issues }),
    ).not.toContain(TOKEN);
  });
});

async function ipv6Loopback(): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createServer();
    probe.once('error', () => {
      resolve(false);
    });
    probe.listen(0, '::1', () => {
      probe.close(() => {
        resolve(true);
      });
    });
  });
}
