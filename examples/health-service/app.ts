import defaultExpress from 'express';
import type { Express, RequestHandler, Router } from 'express';
import type { Logger, Settings } from '../../lib/index';
import { createLogger, errors, loadSettings, logging, notFound, requestContext } from '../../lib/index';
import type { LabClient } from './labs';
import { disconnectedLabs } from './labs';
import type { PatientStore } from './patients';
import { MemoryPatientStore, SAMPLE_PATIENTS } from './patients';
import { patientRoutes } from './routes';

/** What the service needs from the `express` module: Express 4 and 5 both fit. */
export interface ExpressFactory {
  (): Express;
  json: (options?: { limit?: string | number }) => RequestHandler;
  Router: () => Router;
}

export interface HealthServiceOptions {
  /** The `express` module to build with. Default: the installed `express` (5); tests also pass Express 4. */
  express?: ExpressFactory;
  /** Settings (API prefix, app name, log level, …). Default: `loadSettings(process.env)`. */
  settings?: Settings;
  /**
   * Builds each named logger of the service: `http` (access log), `patients` (app log) and
   * `errors`. Default: `createLogger(name, { settings })`.
   */
  createLogger?: (name: string) => Logger;
  /** Where patients live. Default: an in-memory store holding three fictional patients. */
  store?: PatientStore;
  /** The lab system. Default: a client whose every call fails (no lab system is connected). */
  labs?: LabClient;
  /** Largest JSON body accepted; bigger ones get 413 PAYLOAD_TOO_LARGE. Default `'100kb'`. */
  bodyLimit?: string | number;
}

/**
 * The patient-records service as an Express app, not listening: `server.ts` listens, tests drive
 * it with supertest. The middleware order is the one of the caduceus pipeline.
 */
export function createApp(options: Readonly<HealthServiceOptions> = {}): Express {
  const express = options.express ?? defaultExpress;
  const settings = options.settings ?? loadSettings(process.env);
  const makeLogger = options.createLogger ?? ((name: string) => createLogger(name, { settings }));

  const app = express();
  app.disable('x-powered-by');

  // 1. Context first: request id, trace, start time — everything below reads it.
  app.use(requestContext());
  // 2. One access-log line per request (skips /health by default).
  app.use(logging({ logger: makeLogger('http') }));
  // 3. Bodies: malformed JSON becomes 400 INVALID_JSON and an oversized one 413, both in errors().
  app.use(express.json({ limit: options.bodyLimit ?? '100kb' }));

  app.get('/health', (_req, res) => {
    res.json({ status: 'ok', service: settings.appName, version: settings.appVersion });
  });

  app.use(
    settings.apiPrefix,
    patientRoutes({
      router: express.Router(),
      store: options.store ?? new MemoryPatientStore(SAMPLE_PATIENTS),
      labs: options.labs ?? disconnectedLabs(),
      logger: makeLogger('patients'),
      basePath: settings.apiPrefix,
    }),
  );

  // Last: unmatched routes become 404, and every error becomes one response in one format.
  app.use(notFound());
  app.use(errors({ settings, logger: makeLogger('errors') }));
  return app;
}
