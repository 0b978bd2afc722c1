/**
 * Edges an independent review found: inputs that made a signature take quadratic time, a query
 * name that qs splits differently from a naive parser, bodies on GET, an array sent once, and a
 * `trust proxy` that lets a client choose its address. Each case here failed before its fix.
 */
import request from 'supertest';
import * as core from '../../lib/index';
import { EXPRESS, eachExpress } from '../support/express';
import { captureLogger } from '../support/logs';
import { secure, secureApp, settings } from './support';

/** Strings built to make a backtracking regex go quadratic; each must be scanned in linear time. */
const HOSTILE: readonly (readonly [string, string])[] = [
  ['a separator then spaces', `;id${' '.repeat(100_000)}x`],
  ['a run of newlines', `${'\n'.repeat(100_000)}x`],
  ['repeated $(', '$(a'.repeat(33_000)],
  ['repeated concat(', 'concat('.repeat(14_000)],
  ['a quote then spaces', `'${' '.repeat(100_000)}`],
  ['a < then spaces', `<${' '.repeat(100_000)}`],
  ['repeated {{', '{{'.repeat(50_000)],
  ['an unclosed versioned comment', `/*!${'1'.repeat(100_000)}`],
  ['or then spaces', `or${' '.repeat(100_000)}`],
  ['repeated backticks', '`id '.repeat(25_000)],
];

describe.each(eachExpress)('%s', (_name, variant) => {
  test.each(HOSTILE)('a 100 kB body string of %s is scanned quickly', async (_what, text) => {
    const app = secureApp(variant, secure({ threats: { ban: false } }));
    const started = performance.now();
    const res = await request(app).post('/x').send({ note: text });
    const elapsed = performance.now() - started;
    expect([200, 403]).toContain(res.status);
    // Quadratic scans took 2–18 s on these; linear ones take a few ms (the bound leaves room for CI).
    expect(elapsed).toBeLessThan(1_000);
  });

  test('a JSON body on a GET is checked like any other', async () => {
    const app = secureApp(variant, secure({ threats: { ban: false } }));
    const polluting = await request(app)
      .get('/x')
      .set('Content-Type', 'application/json')
      .send('{"constructor":{"prototype":{"isAdmin":true}}}');
    expect(polluting.status).toBe(400);
    expect(polluting.body.error_code).toBe('INVALID_INPUT');
    const probe = await request(app).get('/x').send({ note: "' OR 1=1--" });
    expect(probe.status).toBe(403);
    expect(probe.body.error_code).toBe('THREAT_DETECTED');
    expect(({} as Record<string, unknown>).isAdmin).toBeUndefined();
  });

  test('an array sent once (role[]=admin) is reduced to one value like a repeated name', async () => {
    const app = secureApp(variant, secure({ threats: { ban: false } }), { queryParser: 'extended' });
    const res = await request(app).get('/x?role[]=admin').expect(200);
    expect(res.body.query).toEqual({ role: 'admin' });
    expect(res.body.polluted).toEqual({ role: ['admin'] });
  });

  test("'trust proxy' true is warned about once by security()", async () => {
    const log = captureLogger('security');
    const app = variant.express();
    app.set('trust proxy', true);
    app.use(core.security({ settings, logger: log.logger, cors: false }));
    app.get('/', (_req, res) => res.json({ ok: true }));
    for (let i = 0; i < 3; i++)
      await request(app).get('/').set('X-Forwarded-For', `198.51.100.${i}`).expect(200);
    const warnings = log.lines().filter((l) => String(l.message).includes("'trust proxy' is true"));
    expect(warnings).toHaveLength(1);
  });
});

test('a qs name that closes a bracket right before = (a[x=y][constructor][prototype]) is refused (Express 4)', async () => {
  const app = (EXPRESS[0] as (typeof EXPRESS)[number]).express();
  app.use(core.requestContext(), core.security({ settings, logger: captureLogger().logger, cors: false }));
  app.get('/x', (req, res) => {
    res.json({ query: req.query });
  });
  app.use(core.errors({ settings, logger: captureLogger().logger }));
  const res = await request(app).get('/x?a[x=y][constructor][prototype][isAdmin]=1');
  expect(res.status).toBe(400);
  expect(res.body.error_code).toBe('INVALID_INPUT');
  expect(({} as Record<string, unknown>).isAdmin).toBeUndefined();
});
