/**
 * statusPage(): one HTML document with its own strict CSP (also behind security()), its script
 * and its JSON beside it, numbers that follow the traffic, the same token / allow-list protection
 * as metricsEndpoint(), no raw URLs, and bad options refused at creation.
 */
import request from 'supertest';
import * as core from '../../lib/index';
import { eachExpress } from '../support/express';
import { settings, statusApp, type StatusApp } from './support';

const TOKEN = 'stk-4b8e2d6f0a-status-token';
const opened: StatusApp[] = [];
afterEach(async () => {
  await Promise.all(opened.splice(0).map((s) => s.close()));
});
function make(...args: Parameters<typeof statusApp>): StatusApp {
  const built = statusApp(...args);
  opened.push(built);
  return built;
}

/** The CSP directives of a header value, by name. */
function directives(header: unknown): Map<string, string> {
  return new Map(
    String(header)
      .split(';')
      .map((d) => d.trim().split(/\s+/))
      .map(([name = '', ...values]) => [name, values.join(' ')]),
  );
}

/** Cells of the page's table rows, by section id, from the server-rendered HTML. */
function rowsOf(html: string, id: string): string[][] {
  const section = new RegExp(`<section class="panel" id="s-${id}">(.*?)</section>`).exec(html)?.[1] ?? '';
  return [...section.matchAll(/<tr class="t-\w+">(.*?)<\/tr>/g)].map((m) =>
    [...(m[1] ?? '').matchAll(/<td>(.*?)<\/td>/g)].map((c) => c[1] ?? ''),
  );
}

describe.each(eachExpress)('statusPage on %s', (_name, variant) => {
  it('serves one HTML document with a strict CSP of its own, replacing security()’s', async () => {
    const { app } = make(variant);
    const res = await request(app).get('/status').expect(200);
    expect(res.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    const csp = directives(res.headers['content-security-policy']);
    expect(csp.get('default-src')).toBe("'none'");
    expect(csp.get('script-src')).toBe("'self'");
    expect(csp.get('style-src')).toMatch(/^'sha256-[A-Za-z0-9+/]+=*'$/);
    expect(csp.get('connect-src')).toBe("'self'");
    expect(csp.get('frame-ancestors')).toBe("'none'");
    expect(res.headers['content-security-policy']).not.toMatch(/unsafe-inline|unsafe-eval|https?:/);
    // Self-contained: no external asset, no inline script, no style attribute.
    expect(res.text).not.toMatch(/(src|href)="(https?:)?\/\//);
    expect(res.text).not.toMatch(/<script>|<script [^>]*>[^<]/);
    expect(res.text).not.toMatch(/ style=/);
    expect(res.text).toContain('<script src="/status/status.js" defer></script>');
    expect(res.text).toContain('data-src="/status/status.json"');
    expect(res.text).toContain('<title>records status</title>');

    const script = await request(app).get('/status/status.js').expect(200);
    expect(script.headers['content-type']).toBe('text/javascript; charset=utf-8');
    expect(script.text).not.toMatch(/\beval\(|new Function|innerHTML/);
    const json = await request(app).get('/status/status.json').expect(200);
    expect(json.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(directives(json.headers['content-security-policy']).get('default-src')).toBe("'none'");
    expect(await request(app).post('/status').expect(404)).toBeTruthy();
    expect(await request(app).get('/status/other').expect(404)).toBeTruthy();
  });

  it('shows RED per route, error codes, the pool, the breaker, limiter hits and flags after traffic', async () => {
    const { app } = make(variant);
    const before = await request(app).get('/status/status.json').expect(200);
    expect((before.body as { sections: { id: string; rows: unknown[] }[] }).sections[0]?.rows).toEqual([]);

    for (let i = 0; i < 4; i++) await request(app).get(`/patients/p-${i}-secret`).expect(200);
    for (let i = 0; i < 5; i++) await request(app).get('/limited');
    await request(app).get('/labs').expect(500); // the failure opens the breaker
    await request(app).get('/labs').expect(503); // refused by the open breaker
    await request(app).get('/db').expect(200);
    await request(app).get('/nowhere/else').expect(404);

    const page = await request(app).get('/status').expect(200);
    const routes = rowsOf(page.text, 'routes');
    const patients = routes.find((r) => r[0] === '/patients/:id');
    expect(patients?.slice(0, 3)).toEqual(['/patients/:id', 'GET', '4']);
    expect(patients?.[6]).toBe('0 %');
    expect(patients?.[7]).toMatch(/^[\d.]+ ms$/);
    expect(patients?.[8]).toMatch(/^[\d.]+ ms$/);
    const limited = routes.find((r) => r[0] === '/limited');
    expect(limited?.slice(2, 6)).toEqual(['5', '—', '2', '0']);
    const labs = routes.find((r) => r[0] === '/labs');
    expect(labs?.slice(5, 7)).toEqual(['2', '100 %']);
    // Labels are route templates: never the raw URL, and the page's own requests are not traffic.
    expect(page.text).not.toMatch(/p-\d-secret|nowhere/);
    expect(routes.some((r) => r[0]?.startsWith('/status'))).toBe(false);

    const codes = rowsOf(page.text, 'errors');
    expect(codes).toEqual([
      ['RATE_LIMITED', '429', '2'],
      ['CIRCUIT_OPEN', '503', '1'],
      ['INTERNAL_ERROR', '500', '1'],
      ['NOT_FOUND', '404', '1'],
    ]);
    expect(rowsOf(page.text, 'pools')[0]?.[0]).toBe('primary');
    expect(page.text).toMatch(/<meter [^>]*value="[\d.]+"><\/meter>/);
    expect(rowsOf(page.text, 'breakers')).toEqual([['labs-api', 'open', '0', '1', '1']]);
    expect(rowsOf(page.text, 'limits')).toEqual([['api', '2', '0', '0']]);
    const flags = rowsOf(page.text, 'flags');
    expect(flags).toContainEqual(['new-dashboard', 'on', '4', 'on 4']);
    expect(flags).toContainEqual(['fhir-export', 'off', '4', 'off 4']);
    expect(page.text).toContain('<span class="label">Open breakers</span><span class="value">1</span>');

    // The JSON carries the same view.
    const json = await request(app).get('/status/status.json').expect(200);
    const view = json.body as { tiles: { label: string; value: string }[]; sections: { id: string }[] };
    expect(view.tiles.find((t) => t.label === 'Requests')?.value).toBe('13');
    expect(view.sections.map((s) => s.id)).toEqual([
      'routes',
      'errors',
      'pools',
      'breakers',
      'limits',
      'flags',
      'security',
    ]);
  });

  it('asks for the token (Bearer, or Basic so browsers prompt) and never echoes it', async () => {
    const { app } = make(variant, { token: TOKEN });
    const none = await request(app).get('/status').expect(401);
    expect(none.headers['www-authenticate']).toBe('Basic realm="status", charset="UTF-8"');
    await request(app).get('/status/status.json').set('Authorization', 'Bearer wrong').expect(401);
    const basicWrong = Buffer.from('ops:wrong').toString('base64');
    await request(app).get('/status').set('Authorization', `Basic ${basicWrong}`).expect(401);
    await request(app).get('/status/status.js').expect(401);
    await request(app).get('/status').set('Authorization', `Bearer ${TOKEN}`).expect(200);
    const basic = Buffer.from(`ops:${TOKEN}`).toString('base64');
    const ok = await request(app)
      .get('/status/status.json')
      .set('Authorization', `Basic ${basic}`)
      .expect(200);
    expect(ok.text).not.toContain(TOKEN);
  });

  it('refuses addresses outside the allow-list with 403', async () => {
    await request(make(variant, { allow: ['10.0.0.0/8'] }).app)
      .get('/status')
      .expect(403);
    await request(make(variant, { allow: ['127.0.0.1', '::1'] }).app)
      .get('/status')
      .expect(200);
  });

  it('takes the title and refresh interval from options, escaped', async () => {
    const { app } = make(variant, { title: 'Records <prod>', refreshSeconds: 30 });
    const res = await request(app).get('/status').expect(200);
    expect(res.text).toContain('<title>Records &lt;prod&gt;</title>');
    expect(res.text).toContain('data-refresh="30"');
  });
});

describe('statusPage options', () => {
  const bad: [string, Record<string, unknown>, RegExp][] = [
    ['unknown key', { refresh: 5 }, /unknown option "refresh"/],
    ['metrics', { metrics: {} }, /metrics/],
    ['token', { token: '' }, /token/],
    ['allow', { allow: ['not-an-ip'] }, /allow\[0\]/],
    ['allow type', { allow: '10.0.0.1' }, /allow/],
    ['refreshSeconds', { refreshSeconds: 0 }, /refreshSeconds/],
    ['refreshSeconds too long', { refreshSeconds: 7200 }, /refreshSeconds/],
    ['title', { title: '' }, /title/],
  ];
  it.each(bad)('refuses a bad %s with a ConfigError', (_what, options, message) => {
    const attempt = (): unknown => core.statusPage({ settings, ...options });
    expect(attempt).toThrow(core.ConfigError);
    expect(attempt).toThrow(message);
  });

  it('refuses app.use(core.statusPage) without the call', () => {
    const fakeReq = { method: 'GET', headers: {} };
    expect(() => core.statusPage(fakeReq as never)).toThrow(/call it to get the middleware/);
  });
});
