/**
 * Shared by the status page suites: an app with the caduceus pipeline and every kind of source the
 * page shows (routes, error codes, a SQLite pool, an open circuit breaker, a rate limiter, feature
 * flags), all reporting into a registry of the test's own; `close()` releases all of it.
 */
import type { Express } from 'express';
import * as core from '../../lib/index';
import type { ExpressVariant } from '../support/express';

export const settings = core.loadSettings({ NODE_ENV: 'test', REDIS_URL: '' });
const logger = core.createLogger('test', { settings, console: false });

export interface StatusApp {
  app: Express;
  metrics: core.Metrics;
  breaker: core.CircuitBreaker;
  close: () => Promise<void>;
}

/** The app, with `status` options for the page mounted at `/status`. */
export function statusApp(variant: ExpressVariant, status: core.StatusPageOptions = {}): StatusApp {
  const metrics = core.createMetrics({ app: 'records', nodeMetrics: false });
  const db = core.createDatabase({
    url: 'sqlite::memory:',
    metrics,
    settings,
    logger,
  });
  const breaker = core.circuitBreaker({
    name: 'labs-api',
    failureThreshold: 1,
    recoveryTimeout: 60_000,
    metrics,
    logger,
    settings,
  });
  const limiter = core.rateLimit({
    name: 'api',
    limit: 3,
    windowMs: 60_000,
    redis: false,
    metrics,
    logger,
    settings,
  });
  const flags = core.featureFlags({
    store: 'memory',
    metrics,
    settings,
    logger,
    flags: { 'new-dashboard': { enabled: true }, 'fhir-export': { enabled: false } },
  });
  const app = variant.express();
  app.use(core.requestContext(), core.metrics({ metrics }), core.security({ metrics, logger, settings }));
  app.use('/status', core.statusPage({ metrics, settings, ...status }));
  app.get('/patients/:id', (_req, res) => {
    res.json({ on: flags.isEnabled('new-dashboard'), fhir: flags.isEnabled('fhir-export') });
  });
  app.get('/limited', limiter, (_req, res) => {
    res.json({ ok: true });
  });
  app.get('/labs', (_req, res, next) => {
    breaker
      .execute(() => Promise.reject(new Error('labs down')))
      .then(
        () => res.json({ ok: true }),
        (err: unknown) => {
          next(err);
        },
      );
  });
  app.get('/db', (_req, res, next) => {
    db.knex.raw('select 1').then(
      () => res.json({ ok: true }),
      (err: unknown) => {
        next(err);
      },
    );
  });
  app.use(core.notFound(), core.errors({ metrics, logger, settings }));
  return {
    app,
    metrics,
    breaker,
    close: async () => {
      await flags.close();
      await limiter.close();
      await breaker.close();
      await db.close();
    },
  };
}
