/**
 * Labels never carry values from the URL: a thousand patient ids, a thousand unknown paths or a
 * thousand query strings each make one series, and none of the values appears in the exposition.
 */
import { randomBytes } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import request from 'supertest';
import * as core from '../../lib/index';
import { eachExpress } from '../support/express';
import {
  inBatches,
  instrumentedApp,
  newMetrics,
  PROMETHEUS_ACCEPT,
  samplesOf,
  scrape,
  Servers,
  valueOf,
  mergingRouter,
} from './support';

const servers = new Servers();
afterEach(() => servers.closeAll());

const N = 1000;

function randomIds(prefix: string): string[] {
  return Array.from({ length: N }, () => `${prefix}${randomBytes(6).toString('hex')}`);
}

/** Every value must be absent from both formats of the exposition. */
async function expectNoneExposed(metrics: core.Metrics, values: readonly string[]): Promise<void> {
  for (const accept of [undefined, PROMETHEUS_ACCEPT]) {
    const { text } = await scrape(metrics, accept === undefined ? {} : { accept });
    const leaked = values.filter((v) => text.includes(v));
    expect(leaked).toEqual([]);
  }
}

describe.each(eachExpress)('route labels under many distinct URLs on %s', (_name, variant) => {
  it(`counts ${N} distinct patient ids in one series of the route template`, async () => {
    const metrics = newMetrics();
    const app = instrumentedApp(variant, metrics, (a) => {
      const api = variant.express.Router();
      api.get('/patients/:id', (req, res) => {
        res.json({ id: req.params.id });
      });
      a.use('/api', api);
    });
    const { url } = await servers.listen(app);
    const ids = randomIds('p');
    await inBatches(N, 20, async (i) => {
      await request(url)
        .get(`/api/patients/${ids[i] ?? ''}`)
        .expect(200);
    });

    const exp = await scrape(metrics);
    const series = samplesOf(exp, 'http_requests_total');
    expect(series.map((s) => s.labels)).toEqual([
      { method: 'GET', route: '/api/patients/:id', status_code: '200', app: 'test' },
    ]);
    expect(series[0]?.value).toBe(N);
    expect(samplesOf(exp, 'http_request_duration_seconds_count')).toHaveLength(1);
    expect(valueOf(exp, 'http_request_duration_seconds_count', { route: '/api/patients/:id' })).toBe(N);
    await expectNoneExposed(metrics, ids);
  });

  it(`counts ${N} unknown paths in one "unmatched" 404 series`, async () => {
    const metrics = newMetrics();
    const app = instrumentedApp(variant, metrics, (a) => {
      a.get('/known', (_req, res) => {
        res.json({ ok: true });
      });
    });
    const { url } = await servers.listen(app);
    const segments = randomIds('u');
    await inBatches(N, 20, async (i) => {
      const segment = segments[i] ?? '';
      await request(url)
        .get(i % 2 === 0 ? `/${segment}` : `/deep/${segment}/more/${segment}`)
        .expect(404);
    });

    const exp = await scrape(metrics);
    const series = samplesOf(exp, 'http_requests_total');
    expect(series.map((s) => s.labels)).toEqual([
      { method: 'GET', route: 'unmatched', status_code: '404', app: 'test' },
    ]);
    expect(series[0]?.value).toBe(N);
    await expectNoneExposed(metrics, segments);
  });

  it(`counts ${N} distinct query strings in the one series of their route`, async () => {
    const metrics = newMetrics();
    const app = instrumentedApp(variant, metrics, (a) => {
      a.get('/search', (_req, res) => {
        res.json({ results: [] });
      });
    });
    const { url } = await servers.listen(app);
    const values = randomIds('q');
    await inBatches(N, 20, async (i) => {
      const value = values[i] ?? '';
      await request(url).get(`/search?mrn=${value}&${value}=1`).expect(200);
    });

    const exp = await scrape(metrics);
    expect(samplesOf(exp, 'http_requests_total').map((s) => [s.labels.route, s.value])).toEqual([
      ['/search', N],
    ]);
    await expectNoneExposed(metrics, values);
  });

  it('labels methods outside the usual ones OTHER', async () => {
    const metrics = newMetrics();
    const app = instrumentedApp(variant, metrics, (a) => {
      a.all('/any', (_req, res) => {
        res.json({ ok: true });
      });
    });
    const { url } = await servers.listen(app);
    for (const method of ['PURGE', 'LOCK', 'M-SEARCH', 'PROPFIND', 'GET'])
      await new Promise<void>((resolve, reject) => {
        const req = httpRequest(`${url}/any`, { method }, (res) => {
          res.resume().on('end', resolve);
        });
        req.on('error', reject).end();
      });
    const exp = await scrape(metrics);
    expect(samplesOf(exp, 'http_requests_total').map((s) => [s.labels.method, s.value])).toEqual([
      ['OTHER', 4],
      ['GET', 1],
    ]);
  });

  it('keeps ids out of the label of a route under a router mounted on a path with params', async () => {
    const metrics = newMetrics();
    const app = instrumentedApp(variant, metrics, (a) => {
      const visits = mergingRouter(variant);
      visits.get('/:visitId', (_req, res) => {
        res.json({ ok: true });
      });
      a.use('/patients/:pid/visits', visits);
    });
    const { url } = await servers.listen(app);
    const pids = randomIds('p').slice(0, 200);
    const visitIds = randomIds('v').slice(0, 200);
    await inBatches(pids.length, 20, async (i) => {
      await request(url)
        .get(`/patients/${pids[i] ?? ''}/visits/${visitIds[i] ?? ''}`)
        .expect(200);
    });

    const exp = await scrape(metrics);
    expect(samplesOf(exp, 'http_requests_total').map((s) => [s.labels.route, s.value])).toEqual([
      ['/patients/:pid/visits/:visitId', pids.length],
    ]);
    await expectNoneExposed(metrics, [...pids, ...visitIds]);
  });

  it('keeps mount params out of the label when metrics() runs without requestContext()', async () => {
    // metrics() documents "mount it right after requestContext()", but nothing requires it: an app
    // that mounts metrics() alone must not get one series per patient either.
    const metrics = newMetrics();
    const app = variant.express();
    app.use(core.metrics({ metrics }));
    const visits = mergingRouter(variant);
    visits.get('/:visitId', (_req, res) => {
      res.json({ ok: true });
    });
    app.use('/patients/:pid/visits', visits);
    const { url } = await servers.listen(app);
    const pids = ['p-1111', 'p-2222', 'p-3333'];
    for (const pid of pids) await request(url).get(`/patients/${pid}/visits/v-9`).expect(200);

    const exp = await scrape(metrics);
    expect(samplesOf(exp, 'http_requests_total').map((s) => [s.labels.route, s.value])).toEqual([
      ['/patients/:pid/visits/:visitId', pids.length],
    ]);
    await expectNoneExposed(metrics, pids);
  });
});
