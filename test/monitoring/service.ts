/**
 * The example service for the monitoring tests, wired the way `server.ts` wires it but with a
 * registry of its own: the database (in-memory SQLite, migrated and seeded), Auth, the guards and
 * the app all report into one fresh `createMetrics()`, which `GET /metrics` serves. Logs are
 * captured, not printed. Everything is closed after the suite.
 */
import type { Server } from 'node:http';
import type { Express } from 'express';
import type { Auth, Database, Metrics } from '../../lib/index';
import { createDatabase, createMetrics, hashPassword, loadSettings } from '../../lib/index';
import type { ExpressFactory } from '../../examples/health-service/app';
import { createApp } from '../../examples/health-service/app';
import { serviceAuth } from '../../examples/health-service/auth';
import { migrate } from '../../examples/health-service/database';
import { seedDemo } from '../../examples/health-service/seed';
import { captureLogs, TEST_PASSWORD_HASH } from '../examples/support';

/** `APP_NAME=health-service`: the `app` label of every series, as in docker-compose.yml. */
export const SERVICE_SETTINGS = loadSettings({
  NODE_ENV: 'test',
  LOG_LEVEL: 'warn',
  APP_NAME: 'health-service',
});

export interface MonitoredService {
  /** The app; ready from the suite's first hook on. */
  app: () => Express;
  /** The app listening on 127.0.0.1 and a free port; closed after the suite. */
  listen: () => Promise<Server>;
}

/**
 * Registers the suite's beforeAll (database, app) and afterAll (server, Auth, database).
 * `express`: the module to build with (default: the installed Express 5).
 */
export function startService(express?: ExpressFactory): MonitoredService {
  const logs = captureLogs(SERVICE_SETTINGS);
  let db: Database | undefined;
  let auth: Auth | undefined;
  let app: Express | undefined;
  let server: Server | undefined;

  beforeAll(async () => {
    const metrics: Metrics = createMetrics({ settings: SERVICE_SETTINGS });
    db = createDatabase({
      url: 'sqlite::memory:',
      settings: SERVICE_SETTINGS,
      logger: logs.createLogger('database'),
      metrics,
    });
    await migrate(db);
    await seedDemo(db.knex, { hash: (password) => hashPassword(password, TEST_PASSWORD_HASH) });
    auth = serviceAuth({ db, settings: SERVICE_SETTINGS, logger: logs.createLogger('auth'), metrics });
    app = createApp({
      ...(express === undefined ? {} : { express }),
      db,
      settings: SERVICE_SETTINGS,
      auth,
      metrics,
      createLogger: logs.createLogger,
      passwordHash: TEST_PASSWORD_HASH,
    });
  });

  afterAll(async () => {
    if (server !== undefined) {
      const closed = new Promise<void>((resolve) => {
        server!.close(() => {
          resolve();
        });
      });
      server.closeAllConnections();
      await closed;
    }
    await auth?.close();
    await db?.close();
  });

  const ready = (): Express => {
    if (app === undefined)
      throw new Error('the example service is built in beforeAll: use it in a hook or a test');
    return app;
  };

  return {
    app: ready,
    listen: async () => {
      const listening = ready().listen(0, '127.0.0.1');
      await new Promise<void>((resolve, reject) => {
        listening.once('listening', resolve);
        listening.once('error', reject);
      });
      server = listening;
      return listening;
    },
  };
}
