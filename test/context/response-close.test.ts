/**
 * metrics() and logging() act when the response closes; with a request context they share one
 * 'close' listener. Each must still run exactly once per response — finished, aborted by the
 * client, or passing through a sub-app that opens a second context — and in the order mounted.
 */
import request from 'supertest';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as core from '../../lib/index';
import { eachExpress } from '../support/express';
import { captureLogger } from '../support/logs';
import { testMetrics, valueOf } from '../support/metrics';

const settings = core.loadSettings({ NODE_ENV: 'test' });

async function until(check: () => boolean | Promise<boolean>, ms = 2000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe.each(eachExpress)('%s', (_label, { express }) => {
  function build() {
    const metrics = testMetrics();
    const access = captureLogger('http');
    const app = express();
    app.use(
      core.defaults({ settings, registry: metrics, logging: { logger: access.logger }, rateLimit: false }),
    );
    app.get('/ok', (_req, res) => res.json({ ok: true }));
    app.get('/hang', () => undefined); // never answers: the client gives up
    // A sub-app with its own context, metrics and access log (its own defaults()).
    const inner = express();
    const innerAccess = captureLogger('inner');
    const innerMetrics = testMetrics();
    inner.use(
      core.defaults({
        settings,
        registry: innerMetrics,
        logging: { logger: innerAccess.logger },
        rateLimit: false,
        security: false,
      }),
    );
    inner.get('/ok', (_req, res) => res.json({ inner: true }));
    app.use('/sub', inner);
    app.use(core.notFound(), core.errors({ settings, logger: captureLogger('errors').logger }));
    return { app, metrics, access, innerAccess, innerMetrics };
  }

  const requests = (metrics: core.Metrics, route: string) =>
    valueOf(metrics, 'http_requests_total', { route });

  it('counts and logs a finished response once each, metrics first', async () => {
    const { app, metrics, access } = build();
    for (let i = 0; i < 3; i++) await request(app).get('/ok').expect(200);
    await until(async () => (await requests(metrics, '/ok')) === 3 && access.lines().length === 3);
    const lines = access.lines();
    expect(lines.map((l) => l.status)).toEqual([200, 200, 200]);
    expect(new Set(lines.map((l) => l.request_id)).size).toBe(3);
  });

  it('counts an aborted request as aborted and logs it once', async () => {
    const { app, metrics, access } = build();
    const server = http.createServer(app);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as AddressInfo;
    try {
      await new Promise<void>((resolve) => {
        const req = http.get({ port, host: '127.0.0.1', path: '/hang' });
        req.on('error', () => {
          resolve();
        });
        setTimeout(() => {
          req.destroy();
        }, 50);
      });
      await until(() => access.lines().length === 1);
      expect(access.lines()[0]).toMatchObject({ aborted: true, route: '/hang' });
      await until(
        async () => (await valueOf(metrics, 'http_requests_aborted_total', { route: '/hang' })) === 1,
      );
      expect(await requests(metrics, '/hang')).toBe(0);
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });

  it('runs both chains once when a sub-app opens a second context', async () => {
    const { app, metrics, access, innerAccess, innerMetrics } = build();
    for (let i = 0; i < 2; i++) await request(app).get('/sub/ok').expect(200, { inner: true });
    await until(
      async () =>
        access.lines().length === 2 &&
        (await requests(metrics, '/sub/ok')) === 2 &&
        (await requests(innerMetrics, '/sub/ok')) === 2,
    );
    // Give a second (wrong) run a chance to show up.
    await new Promise((r) => setTimeout(r, 50));
    expect(await requests(metrics, '/sub/ok')).toBe(2);
    // The sub-app's context starts below the mount; its route label still carries it.
    expect(await requests(innerMetrics, '/sub/ok')).toBe(2);
    // One access line per request: the first logging() on the way in writes it.
    expect(access.lines()).toHaveLength(2);
    expect(innerAccess.lines()).toHaveLength(0);
  });
});
