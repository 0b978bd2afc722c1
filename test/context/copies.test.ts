/**
 * Two copies of caduceus in one process (the ESM and the CJS build, two versions): the route and
 * baseUrl accessors one copy installs must serve the other copy's requests.
 */
import type { Express, Router } from 'express';
import request from 'supertest';
import type * as Core from '../../lib/index';

/** Express 4 (the `express4` alias) typed with Express's own types, as test/support/express.ts does. */
interface Express4 {
  (): Express;
  Router: (options?: { mergeParams?: boolean }) => Router;
}

/** A copy of caduceus and of Express 4, as another module registry (another test file, another build) has them. */
function loadCopy(): { core: typeof Core; express4: Express4 } {
  let copy: { core: typeof Core; express4: Express4 } | undefined;
  jest.isolateModules(() => {
    copy = {
      core: jest.requireActual<typeof Core>('../../lib/index'),
      express4: jest.requireActual<Express4>('express4'),
    };
  });
  if (copy === undefined) throw new Error('no copy');
  return copy;
}

test('a second copy keeps nested route templates and baseUrl on Express 4 after the first copy patched', async () => {
  const { core: first, express4: expressA } = loadCopy();
  const { core: second, express4: express4 } = loadCopy();
  expect(first).not.toBe(second);
  expect(expressA).not.toBe(express4);
  const settings = second.loadSettings({ NODE_ENV: 'test' });

  // The first copy installs its accessors (on IncomingMessage, as Express 4 needs).
  const one = expressA();
  one.use(first.requestContext());
  const inner = expressA.Router({ mergeParams: true });
  inner.get('/:id', (_req, res) => {
    res.json({ ok: true });
  });
  one.use('/a/:x', inner);
  await request(one).get('/a/1/2').expect(200);
  await request(one).get('/a/1/2').expect(200);

  // The second copy serves another app in the same process.
  const metrics = second.createMetrics({ app: 'copies', nodeMetrics: false });
  const lines: string[] = [];
  const logger = second.createLogger('errors', { console: false, settings });
  logger.on('data', (info: { route?: string }) => lines.push(String(info.route)));
  const two = express4();
  two.use(second.requestContext(), second.metrics({ metrics }));
  const notes = express4.Router({ mergeParams: true });
  notes.get('/:noteId', (req, res) => {
    res.json({ baseUrl: req.baseUrl });
  });
  notes.get('/:noteId/fail', () => {
    throw new second.NotFoundError('Note', 'n');
  });
  two.use('/patients/:pid/notes', notes);
  // No router entered: the only baseUrl is the one Express 4 assigned before the request had the
  // app's prototype — through the first copy's accessor on IncomingMessage.
  two.get('/top', (req, res) => {
    res.json({ baseUrl: req.baseUrl });
  });
  two.use(second.errors({ settings, logger, metrics: false }));
  for (let i = 0; i < 3; i++) {
    const res = await request(two).get(`/patients/${i}/notes/${i}`).expect(200);
    expect(res.body).toEqual({ baseUrl: `/patients/${i}/notes` });
  }
  await request(two).get('/patients/9/notes/9/fail').expect(404);
  expect((await request(two).get('/top').expect(200)).body).toEqual({ baseUrl: '' });
  const text = await metrics.render();
  expect(text).toContain('route="/patients/:pid/notes/:noteId"');
  expect(text).not.toMatch(/route="\/patients\/\d/);
  expect(lines.every((route) => !route.includes('undefined'))).toBe(true);
});
