/**
 * `trust proxy` decides `req.ip`, which the limiter keys on. A setting that lets clients choose
 * their address, or a proxy in front of an app that does not trust it, is warned about once.
 */
import request from 'supertest';
import * as core from '../../lib/index';
import { eachExpress, type ExpressVariant } from '../support/express';
import { captureLogger } from '../support/logs';

function appWith(variant: ExpressVariant, trust: unknown) {
  const log = captureLogger('rate-limit');
  const app = variant.express();
  if (trust !== undefined) app.set('trust proxy', trust);
  const limiter = core.rateLimit({
    redis: false,
    limit: 100,
    logger: log.logger,
    settings: core.loadSettings({ NODE_ENV: 'test' }),
  });
  app.use(limiter);
  app.get('/', (_req, res) => res.json({ ok: true }));
  return { app, log, limiter };
}

const warnings = (log: ReturnType<typeof captureLogger>) =>
  log.lines().filter((l) => l.level === 'warn' && String(l.message).includes('trust proxy'));

describe.each(eachExpress)('%s', (_name, variant) => {
  test("'trust proxy' true is warned about once", async () => {
    const { app, log, limiter } = appWith(variant, true);
    for (let i = 0; i < 3; i++)
      await request(app).get('/').set('X-Forwarded-For', `198.51.100.${i}`).expect(200);
    expect(warnings(log)).toHaveLength(1);
    expect(String(warnings(log)[0]?.message)).toContain('escape its limit');
    await limiter.close();
  });

  test('X-Forwarded-For with trust proxy off is warned about once, when it first arrives', async () => {
    const { app, log, limiter } = appWith(variant, undefined);
    await request(app).get('/').expect(200);
    expect(warnings(log)).toHaveLength(0);
    for (let i = 0; i < 3; i++)
      await request(app).get('/').set('X-Forwarded-For', '198.51.100.7').expect(200);
    expect(warnings(log)).toHaveLength(1);
    expect(String(warnings(log)[0]?.message)).toContain("shares the proxy's budget");
    await limiter.close();
  });

  test('a specific proxy setting is not warned about', async () => {
    const { app, log, limiter } = appWith(variant, 'loopback');
    for (let i = 0; i < 3; i++)
      await request(app).get('/').set('X-Forwarded-For', '198.51.100.8').expect(200);
    expect(warnings(log)).toHaveLength(0);
    await limiter.close();
  });
});
