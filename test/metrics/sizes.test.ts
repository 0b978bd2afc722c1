/**
 * Request and response sizes, requests in flight, and requests the client abandoned.
 */
import { request as httpRequest } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import request from 'supertest';
import * as core from '../../lib/index';
import { eachExpress } from '../support/express';
import { deferred, instrumentedApp, newMetrics, samplesOf, scrape, Servers, valueOf } from './support';

const servers = new Servers();
afterEach(() => servers.closeAll());

/** Scrapes until `check` passes (the server sees a client's departure a moment after it happens). */
async function eventually<T>(metrics: core.Metrics, check: (exp: Awaited<ReturnType<typeof scrape>>) => T) {
  const deadline = Date.now() + 3000;
  for (;;) {
    const exp = await scrape(metrics);
    try {
      return check(exp);
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await sleep(10);
    }
  }
}

describe.each(eachExpress)('sizes, in-flight and aborted requests on %s', (_name, variant) => {
  it('observes the request size from Content-Length and the response size it declared', async () => {
    const metrics = newMetrics();
    const app = instrumentedApp(variant, metrics, (a) => {
      a.post('/upload/:id', (_req, res) => {
        res.type('text/plain').send('x'.repeat(2500));
      });
      a.get('/stream', (_req, res) => {
        res.write('chunk');
        res.end('ed');
      });
    });
    const body = JSON.stringify({ note: 'n'.repeat(1480) });
    await request(app).post('/upload/1').set('Content-Type', 'application/json').send(body).expect(200);
    await request(app).post('/upload/2').set('Content-Type', 'application/json').send('{}').expect(200);
    await request(app).get('/stream').expect(200);

    const exp = await scrape(metrics);
    const upload = { method: 'POST', route: '/upload/:id' };
    expect(valueOf(exp, 'http_request_size_bytes_count', upload)).toBe(2);
    expect(valueOf(exp, 'http_request_size_bytes_sum', upload)).toBe(Buffer.byteLength(body) + 2);
    expect(valueOf(exp, 'http_request_size_bytes_bucket', { ...upload, le: '100' })).toBe(1);
    expect(valueOf(exp, 'http_request_size_bytes_bucket', { ...upload, le: '1000' })).toBe(1);
    expect(valueOf(exp, 'http_request_size_bytes_bucket', { ...upload, le: '10000' })).toBe(2);
    // Request sizes are labelled by method and route only.
    expect(samplesOf(exp, 'http_request_size_bytes_count')[0]?.labels).toEqual({ ...upload, app: 'test' });

    const response = { ...upload, status_code: '200' };
    expect(valueOf(exp, 'http_response_size_bytes_count', response)).toBe(2);
    expect(valueOf(exp, 'http_response_size_bytes_sum', response)).toBe(5000);
    expect(valueOf(exp, 'http_response_size_bytes_bucket', { ...response, le: '1000' })).toBe(0);
    expect(valueOf(exp, 'http_response_size_bytes_bucket', { ...response, le: '10000' })).toBe(2);
    // A GET without a body has no request size; a chunked response declared no size.
    expect(samplesOf(exp, 'http_request_size_bytes_count', { route: '/stream' })).toEqual([]);
    expect(samplesOf(exp, 'http_response_size_bytes_count', { route: '/stream' })).toEqual([]);
    expect(valueOf(exp, 'http_requests_total', { route: '/stream' })).toBe(1);
  });

  it('shows a slow request in flight while it is served, and 0 once it is answered', async () => {
    const metrics = newMetrics();
    const entered = deferred();
    const gate = deferred();
    const app = instrumentedApp(variant, metrics, (a) => {
      a.get('/slow/:id', (_req, res, next) => {
        entered.resolve();
        gate.promise.then(() => res.json({ ok: true }), next);
      });
    });
    const { url } = await servers.listen(app);
    expect(valueOf(await scrape(metrics), 'http_requests_in_flight')).toBe(0);

    const pending = request(url)
      .get('/slow/1')
      .then((res) => res.status);
    await entered.promise;
    const during = await scrape(metrics);
    expect(valueOf(during, 'http_requests_in_flight', { app: 'test' })).toBe(1);
    expect(samplesOf(during, 'http_requests_total')).toEqual([]);

    gate.resolve();
    expect(await pending).toBe(200);
    await eventually(metrics, (exp) => {
      expect(valueOf(exp, 'http_requests_in_flight')).toBe(0);
      expect(valueOf(exp, 'http_requests_total', { route: '/slow/:id' })).toBe(1);
    });
  });

  it('does not count a scrape through the same app as a request in flight', async () => {
    const metrics = newMetrics();
    const entered = deferred();
    const gate = deferred();
    const app = instrumentedApp(variant, metrics, (a) => {
      a.get('/metrics', core.metricsEndpoint({ metrics }));
      a.get('/slow', (_req, res, next) => {
        entered.resolve();
        gate.promise.then(() => res.json({ ok: true }), next);
      });
    });
    const { url } = await servers.listen(app);
    const inFlight = async () => {
      const res = await request(url).get('/metrics').expect(200);
      const line = res.text.split('\n').find((l) => l.startsWith('http_requests_in_flight'));
      return Number(line?.split(' ').pop());
    };
    expect(await inFlight()).toBe(0);
    // supertest sends on then(): start the slow request now, await its answer later.
    const pending = request(url)
      .get('/slow')
      .expect(200)
      .then(() => undefined);
    await entered.promise;
    expect(await inFlight()).toBe(1);
    gate.resolve();
    await pending;
    expect(await inFlight()).toBe(0);
  });

  it('counts a request the client abandoned in http_requests_aborted_total, not in http_requests_total', async () => {
    const metrics = newMetrics();
    const entered = deferred();
    const gate = deferred();
    const app = instrumentedApp(variant, metrics, (a) => {
      a.get('/export/:id', (_req, res, next) => {
        entered.resolve();
        gate.promise.then(() => res.json({ ok: true }), next);
      });
      a.get('/ok', (_req, res) => {
        res.json({ ok: true });
      });
    });
    const { url } = await servers.listen(app);
    const client = httpRequest(`${url}/export/e-1`);
    client.on('error', () => undefined);
    client.end();
    await entered.promise;
    client.destroy();

    await eventually(metrics, (exp) => {
      expect(samplesOf(exp, 'http_requests_aborted_total').map((s) => [s.labels, s.value])).toEqual([
        [{ method: 'GET', route: '/export/:id', app: 'test' }, 1],
      ]);
    });
    // The handler answers after the client left: nothing more is counted.
    gate.resolve();
    await request(url).get('/ok').expect(200);
    const exp = await eventually(metrics, (e) => {
      expect(valueOf(e, 'http_requests_total', { route: '/ok' })).toBe(1);
      return e;
    });
    const answered = samplesOf(exp, 'http_requests_total', { route: '/export/:id' });
    expect(answered.reduce((sum, sample) => sum + sample.value, 0)).toBe(0);
    expect(samplesOf(exp, 'http_request_duration_seconds_count', { route: '/export/:id' })).toEqual([]);
    expect(valueOf(exp, 'http_requests_aborted_total')).toBe(1);
    expect(valueOf(exp, 'http_requests_in_flight')).toBe(0);
  });

  it('does not measure requests skip() returns true for', async () => {
    const metrics = newMetrics();
    const app = instrumentedApp(
      variant,
      metrics,
      (a) => {
        a.get('/health', (_req, res) => {
          res.json({ ok: true });
        });
        a.get('/work', (_req, res) => {
          res.json({ ok: true });
        });
      },
      { skip: (req) => req.path === '/health' },
    );
    await request(app).get('/health').expect(200);
    await request(app).get('/work').expect(200);
    const exp = await scrape(metrics);
    expect(samplesOf(exp, 'http_requests_total').map((s) => s.labels.route)).toEqual(['/work']);
    expect(valueOf(exp, 'http_requests_in_flight')).toBe(0);
  });
});
