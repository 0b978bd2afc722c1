/** Shared by the defaults() suites: quiet settings, an app with the chain in front and errors() last. */
import type { Express } from 'express';
import * as core from '../../lib/index';
import type { ExpressVariant } from '../support/express';

/** No REDIS_URL, RATE_LIMIT_* or LOG_LEVEL from the environment: each test states what it uses. */
export function quietSettings(env: Record<string, string> = {}): core.Settings {
  return core.loadSettings({ NODE_ENV: 'test', APP_NAME: 'caduceus-test', LOG_LEVEL: 'ERROR', ...env });
}

const silent = core.createLogger('test', { settings: quietSettings(), console: false });

/** Chains made in a test, closed after it. */
const open: core.DefaultsChain[] = [];

export function track(chain: core.DefaultsChain): core.DefaultsChain {
  open.push(chain);
  return chain;
}

export async function closeChains(): Promise<void> {
  await Promise.all(open.splice(0).map((c) => c.close()));
}

/**
 * `app.use(chain)`, one route (`GET /patients/:id`) and one that fails, then `notFound()` and
 * `errors()` last — the adoption the README shows.
 */
export function appWith({ express }: ExpressVariant, chain: core.DefaultsChain): Express {
  const app = express();
  app.use(chain);
  app.get('/patients/:id', (req, res) => {
    res.json({ id: req.params.id, request_id: core.getRequestId() ?? null });
  });
  app.use(core.notFound());
  app.use(core.errors({ settings: quietSettings(), logger: silent, format: 'envelope', metrics: false }));
  return app;
}
