/**
 * Shared by the health suites: quiet settings, an app with the health router mounted (Express 4
 * or 5), the routers built in a test closed after it, and a port nothing listens on.
 */
import type { Express } from 'express';
import type request from 'supertest';
import * as core from '../../lib/index';
import type { ExpressVariant } from '../support/express';

export const settings = core.loadSettings({
  NODE_ENV: 'test',
  APP_NAME: 'health-test',
  APP_VERSION: '2.3.4',
  LOG_LEVEL: 'ERROR',
});

export const silent = core.createLogger('health-test', { console: false, settings });

/** Health routers of the current test, closed after it. */
const open: core.HealthRouter[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((h) => h.close()));
});

/** `core.health()` with quiet defaults; closed after the test. */
export function makeHealth(options: core.HealthOptions = {}): core.HealthRouter {
  const router = core.health({ settings, logger: silent, ...options });
  open.push(router);
  return router;
}

/** An app with `router` mounted, then `notFound()` and `errors()`. */
export function appWith({ express }: ExpressVariant, router: core.HealthRouter): Express {
  const app = express();
  app.use(core.requestContext());
  app.use(router);
  app.use(core.notFound());
  app.use(core.errors({ settings, logger: silent, format: 'envelope' }));
  return app;
}

/** The report of a `GET /health` answer. */
export function reportOf(res: request.Response): core.HealthReport {
  return JSON.parse(res.text) as core.HealthReport;
}

/** The one reading of `key` in a report. */
export function entry(report: core.HealthReport, key: string): core.HealthCheckResult {
  const found = report.checks[key];
  if (found?.length !== 1) throw new Error(`no single ${key} in ${JSON.stringify(report.checks)}`);
  return found[0]!;
}

/** A port on 127.0.0.1 that nothing listens on: the database suites' helper. */
export { closedPort } from '../database/helpers';

export const ISO_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
