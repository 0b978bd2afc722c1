/**
 * Failed requests are counted once, under the route that failed and the status errors() answered;
 * requests refused before any route are counted too; metrics() changes nothing in the responses.
 */
import type { Express, NextFunction, Request, Response } from 'express';
import request from 'supertest';
import * as core from '../../lib/index';
import { eachExpress, type ExpressVariant } from '../support/express';
import { captureLogger } from '../support/logs';
import { mergingRouter, newMetrics, samplesOf, scrape, settings } from './support';

type Series = [method: string, route: string, status: string, value: number];

/** Every http_requests_total series: [method, route, status_code, value], sorted. */
async function counted(metrics: core.Metrics): Promise<Series[]> {
  const exp = await scrape(metrics);
  return samplesOf(exp, 'http_requests_total')
    .map((s): Series => [s.labels.method ?? '', s.labels.route ?? '', s.labels.status_code ?? '', s.value])
    .sort((a, b) => (a[1] === b[1] ? (a[2] < b[2] ? -1 : 1) : a[1] < b[1] ? -1 : 1));
}

/** The app: requestContext, metrics() when given, the routes, notFound() and errors(). */
function failingApp(variant: ExpressVariant, metrics: core.Metrics | undefined): Express {
  const { express } = variant;
  const app = express();
  app.use(core.requestContext());
  if (metrics !== undefined) app.use(core.metrics({ metrics }));
  app.get('/sync/:id', () => {
    throw new Error('sync failure with patient 078-05-1120');
  });
  app.get('/next/:id', (_req, _res, next) => {
    next(new Error('passed to next'));
  });
  app.get(
    '/wrapped/:id',
    core.asyncHandler(async () => {
      await Promise.resolve();
      throw new Error('async failure');
    }),
  );
  if (variant.major === 5)
    app.get('/async/:id', async () => {
      await Promise.resolve();
      throw new Error('native async failure');
    });
  app.get('/patients/:id', (req) => {
    throw new core.NotFoundError('Patient', req.params.id);
  });
  app.post('/patients', () => {
    throw new core.ValidationError('Validation failed', { name: 'required' });
  });
  const api = express.Router();
  const notes = mergingRouter(variant);
  notes.get('/:noteId', (_req: Request, _res: Response, next: NextFunction) => {
    next(new core.ForbiddenError('Not your note'));
  });
  api.use('/patients/:pid/notes', notes);
  app.use('/api', api);
  app.use(
    core.notFound(),
    core.errors({ settings, metrics: metrics ?? false, logger: captureLogger('errors').logger }),
  );
  return app;
}

describe.each(eachExpress)('failed requests on %s', (_name, variant) => {
  it('counts a synchronous throw once, with the route template and 500', async () => {
    const metrics = newMetrics();
    const app = failingApp(variant, metrics);
    await request(app).get('/sync/1').expect(500);
    await request(app).get('/sync/2').expect(500);
    expect(await counted(metrics)).toEqual([['GET', '/sync/:id', '500', 2]]);
  });

  it('counts next(err) and a rejected asyncHandler() once, with the route template and 500', async () => {
    const metrics = newMetrics();
    const app = failingApp(variant, metrics);
    await request(app).get('/next/1').expect(500);
    await request(app).get('/wrapped/1').expect(500);
    expect(await counted(metrics)).toEqual([
      ['GET', '/next/:id', '500', 1],
      ['GET', '/wrapped/:id', '500', 1],
    ]);
  });

  if (variant.major === 5)
    it('counts a rejected async handler (Express 5 forwards it) once, with the route template', async () => {
      const metrics = newMetrics();
      const app = failingApp(variant, metrics);
      await request(app).get('/async/9').expect(500);
      expect(await counted(metrics)).toEqual([['GET', '/async/:id', '500', 1]]);
    });

  it('counts AppErrors with their 4xx status under the route that threw, not as unmatched', async () => {
    const metrics = newMetrics();
    const app = failingApp(variant, metrics);
    await request(app).get('/patients/p-77').expect(404);
    await request(app).post('/patients').send({}).expect(422);
    await request(app).get('/api/patients/p-1/notes/n-1').expect(403);
    expect(await counted(metrics)).toEqual([
      ['GET', '/api/patients/:pid/notes/:noteId', '403', 1],
      ['POST', '/patients', '422', 1],
      ['GET', '/patients/:id', '404', 1],
    ]);
  });

  it('leaves the errors() responses exactly as they are without metrics()', async () => {
    const withMetrics = failingApp(variant, newMetrics());
    const without = failingApp(variant, undefined);
    const cases: [string, string, number][] = [
      ['get', '/sync/1', 500],
      ['get', '/patients/p-77', 404],
      ['post', '/patients', 422],
      ['get', '/nowhere', 404],
      ['get', '/api/patients/p-1/notes/n-1', 403],
    ];
    for (const [method, path, status] of cases) {
      const send = (app: Express) =>
        (method === 'get' ? request(app).get(path) : request(app).post(path).send({}))
          .set('X-Request-Id', 'req-fixed-1')
          .expect(status);
      const [a, b] = [await send(withMetrics), await send(without)];
      expect(a.body).toEqual(b.body);
      expect(a.headers['content-type']).toBe(b.headers['content-type']);
      expect(a.body).toMatchObject({ success: false, details: { request_id: 'req-fixed-1' } });
    }
  });

  it('counts requests refused before routing under "unmatched" with their status', async () => {
    const metrics = newMetrics();
    const { express } = variant;
    const app = express();
    app.use(core.requestContext(), core.metrics({ metrics }));
    app.use((req, res, next) => {
      if (req.headers['x-flood'] !== undefined) {
        res.status(429).json({ error: 'slow down' });
        return;
      }
      if (req.headers.authorization === undefined) {
        next(new core.UnauthorizedError());
        return;
      }
      next();
    });
    app.use('/patients/:id', (req, _res, next) => {
      next(req.headers.authorization === 'Bearer admin' ? undefined : new core.ForbiddenError());
    });
    app.get('/patients/:id', (_req, res) => {
      res.json({ ok: true });
    });
    app.use(core.notFound(), core.errors({ settings, metrics, logger: captureLogger('errors').logger }));

    await request(app).get('/patients/1').expect(401);
    await request(app).get('/patients/2').expect(401);
    await request(app).get('/patients/3').set('X-Flood', '1').expect(429);
    await request(app).get('/patients/4').set('Authorization', 'Bearer user').expect(403);
    await request(app).get('/patients/5').set('Authorization', 'Bearer admin').expect(200);
    expect(await counted(metrics)).toEqual([
      ['GET', '/patients/:id', '200', 1],
      ['GET', 'unmatched', '401', 2],
      ['GET', 'unmatched', '403', 1],
      ['GET', 'unmatched', '429', 1],
    ]);
  });

  it('counts an error after the response started once, with the route and the status sent', async () => {
    const metrics = newMetrics();
    const { express } = variant;
    const app = express();
    app.use(core.requestContext(), core.metrics({ metrics }));
    app.get('/stream/:id', (_req, res, next) => {
      res.status(200).write('partial');
      next(new Error('broke mid-stream'));
    });
    app.use(core.notFound(), core.errors({ settings, metrics, logger: captureLogger('errors').logger }));
    await request(app)
      .get('/stream/1')
      .catch(() => undefined);
    // The connection is destroyed mid-response: the request is aborted, not answered.
    const exp = await scrape(metrics);
    const total =
      samplesOf(exp, 'http_requests_total').reduce((sum, s) => sum + s.value, 0) +
      samplesOf(exp, 'http_requests_aborted_total').reduce((sum, s) => sum + s.value, 0);
    expect(total).toBe(1);
    expect(samplesOf(exp, 'http_requests_aborted_total').map((s) => s.labels.route)).toEqual(['/stream/:id']);
  });
});
