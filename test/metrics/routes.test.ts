/**
 * The `route` label is the matched template with every router's mount path, as templates too:
 * nested routers with params, routers without, mounted sub-apps, regular-expression and array
 * paths, routes that pass the request on, and param values that look like literal segments.
 */
import type { Express } from 'express';
import request from 'supertest';
import * as core from '../../lib/index';
import { EXPRESS, eachExpress, type ExpressVariant } from '../support/express';
import { instrumentedApp, mergingRouter, newMetrics, samplesOf, scrape } from './support';

/** [route, status_code, value] of every http_requests_total series, sorted. */
async function routes(metrics: core.Metrics): Promise<[string, string, number][]> {
  const exp = await scrape(metrics);
  return samplesOf(exp, 'http_requests_total')
    .map((s): [string, string, number] => [s.labels.route ?? '', s.labels.status_code ?? '', s.value])
    .sort((a, b) => (a[0] === b[0] ? (a[1] < b[1] ? -1 : 1) : a[0] < b[0] ? -1 : 1));
}

/** app.use('/api', api); api.use('/patients/:pid/notes', notes (mergeParams)); notes.get('/:noteId'). */
function notesApp(variant: ExpressVariant, metrics: core.Metrics): Express {
  return instrumentedApp(variant, metrics, (app) => {
    const api = variant.express.Router();
    const notes = mergingRouter(variant);
    notes.get('/:noteId', (req, res) => {
      res.json({ params: req.params });
    });
    api.use('/patients/:pid/notes', notes);
    app.use('/api', api);
  });
}

describe.each(EXPRESS.map((v) => [v.name, v.major] as const))(
  'the first request of a freshly loaded %s',
  (_name, major) => {
    it('is labelled with the nested routers’ templates, and so is every later one', async () => {
      // A copy of Express no request has gone through yet: requestContext() patches its request
      // prototype during this very first request.
      let fresh: ExpressVariant['express'] | undefined;
      jest.isolateModules(() => {
        fresh = require(major === 4 ? 'express4' : 'express') as ExpressVariant['express'];
      });
      const variant: ExpressVariant = { name: `fresh ${major}`, major, express: fresh! };
      const metrics = newMetrics();
      const app = notesApp(variant, metrics);
      const first = await request(app).get('/api/patients/42/notes/7').expect(200);
      expect(first.body).toEqual({ params: { pid: '42', noteId: '7' } });
      expect(await routes(metrics)).toEqual([['/api/patients/:pid/notes/:noteId', '200', 1]]);

      await request(app).get('/api/patients/43/notes/8').expect(200);
      await request(app).get('/api/patients/44/notes/9').expect(200);
      expect(await routes(metrics)).toEqual([['/api/patients/:pid/notes/:noteId', '200', 3]]);
    });
  },
);

describe.each(eachExpress)('route templates on %s', (_name, variant) => {
  const { express } = variant;

  it('joins nested routers’ mount templates (mergeParams) for every request, not only the first', async () => {
    const metrics = newMetrics();
    const app = notesApp(variant, metrics);
    for (const [pid, noteId] of [
      ['1', 'a'],
      ['2', 'b'],
      ['3', 'c'],
      ['4', 'd'],
    ])
      await request(app).get(`/api/patients/${pid}/notes/${noteId}`).expect(200);
    expect(await routes(metrics)).toEqual([['/api/patients/:pid/notes/:noteId', '200', 4]]);
  });

  it('keeps two levels of params in mount paths', async () => {
    const metrics = newMetrics();
    const app = instrumentedApp(variant, metrics, (a) => {
      const org = mergingRouter(variant);
      const patient = mergingRouter(variant);
      patient.get('/notes/:nid', (_req, res) => {
        res.json({ ok: true });
      });
      org.use('/patients/:pid', patient);
      a.use('/orgs/:org', org);
    });
    await request(app).get('/orgs/acme/patients/p1/notes/n1').expect(200);
    await request(app).get('/orgs/other/patients/p2/notes/n2').expect(200);
    expect(await routes(metrics)).toEqual([['/orgs/:org/patients/:pid/notes/:nid', '200', 2]]);
  });

  it('uses the mount path of a router without params as is', async () => {
    const metrics = newMetrics();
    const app = instrumentedApp(variant, metrics, (a) => {
      const admin = express.Router();
      admin.get('/users/:id', (_req, res) => {
        res.json({ ok: true });
      });
      admin.get('/stats', (_req, res) => {
        res.json({ ok: true });
      });
      a.use('/admin', admin);
    });
    await request(app).get('/admin/users/u1').expect(200);
    await request(app).get('/admin/users/u2').expect(200);
    await request(app).get('/admin/stats').expect(200);
    expect(await routes(metrics)).toEqual([
      ['/admin/stats', '200', 1],
      ['/admin/users/:id', '200', 2],
    ]);
  });

  it('labels routes of a sub-app mounted with app.use(path, subApp)', async () => {
    const metrics = newMetrics();
    const app = instrumentedApp(variant, metrics, (a) => {
      const v2 = express();
      v2.get('/records/:id', (_req, res) => {
        res.json({ ok: true });
      });
      const nested = mergingRouter(variant);
      nested.get('/entries/:entry', (_req, res) => {
        res.json({ ok: true });
      });
      v2.use('/journals/:jid', nested);
      a.use('/v2', v2);
    });
    await request(app).get('/v2/records/r1').expect(200);
    await request(app).get('/v2/records/r2').expect(200);
    await request(app).get('/v2/journals/j1/entries/e1').expect(200);
    await request(app).get('/v2/journals/j2/entries/e2').expect(200);
    expect(await routes(metrics)).toEqual([
      ['/v2/journals/:jid/entries/:entry', '200', 2],
      ['/v2/records/:id', '200', 2],
    ]);
  });

  it('labels routes of a sub-app mounted on a path with params', async () => {
    const metrics = newMetrics();
    const app = instrumentedApp(variant, metrics, (a) => {
      const tenant = express();
      tenant.get('/records/:id', (_req, res) => {
        res.json({ ok: true });
      });
      a.use('/tenants/:tid', tenant);
    });
    await request(app).get('/tenants/t1/records/r1').expect(200);
    await request(app).get('/tenants/t2/records/r2').expect(200);
    expect(await routes(metrics)).toEqual([['/tenants/:tid/records/:id', '200', 2]]);
  });

  it('keeps the values of a wildcard in a router’s mount path out of the label', async () => {
    const metrics = newMetrics();
    const app = instrumentedApp(variant, metrics, (a) => {
      const files = mergingRouter(variant);
      files.get('/', (_req, res) => {
        res.json({ ok: true });
      });
      // A wildcard param: a list of segments on Express 5, one string across segments on Express 4.
      a.use(variant.major === 5 ? '/files/*rest' : '/files/:rest(*)', files);
    });
    await request(app).get('/files/a1/b2/c3').expect(200);
    await request(app).get('/files/d4').expect(200);
    const found = await routes(metrics);
    expect(found).toHaveLength(1);
    expect(found[0]?.[0]).not.toMatch(/a1|b2|c3|d4/);
    expect(found[0]?.[2]).toBe(2);
  });

  it('labels a regular-expression route and an array route with their (bounded) source', async () => {
    const metrics = newMetrics();
    const app = instrumentedApp(variant, metrics, (a) => {
      a.get(/^\/reports\/(\d+)$/, (_req, res) => {
        res.json({ ok: true });
      });
      a.get(['/alpha/:id', '/beta/:id'], (_req, res) => {
        res.json({ ok: true });
      });
    });
    for (let i = 0; i < 20; i++) {
      await request(app)
        .get(`/reports/${1000 + i}`)
        .expect(200);
      await request(app)
        .get(`/${i % 2 === 0 ? 'alpha' : 'beta'}/${2000 + i}`)
        .expect(200);
    }
    const found = await routes(metrics);
    expect(found).toHaveLength(2);
    expect(found).toContainEqual(['/alpha/:id|/beta/:id', '200', 20]);
    expect(found).toContainEqual([String(/^\/reports\/(\d+)$/), '200', 20]);
    expect(found.some(([route]) => /\d{4}/.test(route))).toBe(false);
  });

  it('labels a request "unmatched" when its route passes it on with next() into the 404', async () => {
    const metrics = newMetrics();
    const app = instrumentedApp(variant, metrics, (a) => {
      a.get('/maybe/:id', (req, res, next) => {
        if (req.params.id === 'here') res.json({ ok: true });
        else next();
      });
    });
    await request(app).get('/maybe/here').expect(200);
    await request(app).get('/maybe/elsewhere').expect(404);
    expect(await routes(metrics)).toEqual([
      ['/maybe/:id', '200', 1],
      ['unmatched', '404', 1],
    ]);
  });

  it('labels the route that answered after a router with params passed the request on', async () => {
    const metrics = newMetrics();
    const app = instrumentedApp(variant, metrics, (a) => {
      const guarded = mergingRouter(variant);
      guarded.get('/secret', (_req, res) => {
        res.json({ ok: true });
      });
      a.use('/p/:id', guarded);
      a.get('/p/:id/summary', (_req, res) => {
        res.json({ ok: true });
      });
    });
    await request(app).get('/p/11/summary').expect(200);
    await request(app).get('/p/12/secret').expect(200);
    await request(app).get('/p/13/summary').expect(200);
    expect(await routes(metrics)).toEqual([
      ['/p/:id/secret', '200', 1],
      ['/p/:id/summary', '200', 2],
    ]);
  });

  it('keeps a route’s template when a param value equals one of its literal segments', async () => {
    const metrics = newMetrics();
    const app = instrumentedApp(variant, metrics, (a) => {
      a.get('/users/:id', (_req, res) => {
        res.json({ ok: true });
      });
    });
    await request(app).get('/users/users').expect(200);
    await request(app).get('/users/42').expect(200);
    expect(await routes(metrics)).toEqual([['/users/:id', '200', 2]]);
  });

  it('keeps mount templates when a param value equals a literal segment of the mount path', async () => {
    const metrics = newMetrics();
    const app = notesApp(variant, metrics);
    for (const pid of ['notes', 'patients', 'api', '42'])
      await request(app).get(`/api/patients/${pid}/notes/n1`).expect(200);
    if (variant.major === 5) {
      // Express 5's router says which pattern matched: exact.
      expect(await routes(metrics)).toEqual([['/api/patients/:pid/notes/:noteId', '200', 4]]);
      return;
    }
    // Express 4 keeps only the values: a value equal to a literal before it may take that
    // literal's place (a documented limit). The labels stay bounded — the only values that can
    // appear are the literals themselves — and an ordinary value is templated.
    const labels = await routes(metrics);
    expect(labels.reduce((sum, [, , count]) => sum + count, 0)).toBe(4);
    expect(labels).toContainEqual(['/api/patients/:pid/notes/:noteId', '200', expect.any(Number)]);
    for (const [route] of labels) {
      const literals = route.split('/').filter((segment) => segment !== '' && !segment.startsWith(':'));
      expect(literals.sort()).toEqual(['api', 'notes', 'patients']);
    }
  });

  it('keeps mount templates when two params of the mount path have the same value', async () => {
    const metrics = newMetrics();
    const app = instrumentedApp(variant, metrics, (a) => {
      const bed = mergingRouter(variant);
      bed.get('/chart', (_req, res) => {
        res.json({ ok: true });
      });
      a.use('/wards/:ward/beds/:bed', bed);
    });
    await request(app).get('/wards/3/beds/3/chart').expect(200);
    await request(app).get('/wards/3/beds/4/chart').expect(200);
    expect(await routes(metrics)).toEqual([['/wards/:ward/beds/:bed/chart', '200', 2]]);
  });

  it('templates percent-encoded param values in mount paths', async () => {
    const metrics = newMetrics();
    const app = notesApp(variant, metrics);
    await request(app).get('/api/patients/a%20b/notes/1').expect(200);
    await request(app).get('/api/patients/x%2Fy/notes/2').expect(200);
    await request(app).get('/api/patients/%C3%A9/notes/3').expect(200);
    expect(await routes(metrics)).toEqual([['/api/patients/:pid/notes/:noteId', '200', 3]]);
  });
});
