import defaultExpress from 'express';
import type { Express, Router } from 'express';
import type {
  AuditTrail,
  Auth,
  Database,
  FeatureFlags,
  FlagDefinition,
  HealthRouter,
  Logger,
  Metrics,
  PasswordHashOptions,
  RateLimiter,
  RateLimitOptions,
  RepositoryEvent,
  SecurityMiddleware,
  Settings,
} from '../../lib/index';
import {
  audit,
  auditEventsRouter,
  createLogger,
  database,
  errors,
  loadSettings,
  featureFlags,
  getMetrics,
  health,
  loginRateLimit,
  logging,
  metrics,
  metricsEndpoint,
  notFound,
  rateLimit,
  requestContext,
  security,
} from '../../lib/index';
import { ADMIN, AUDITOR } from './access';
import { authRoutes, serviceAuth, userRoutes } from './auth';
import type { LabClient, ResilientLabs, ResilientLabsOptions } from './labs';
import { disconnectedLabs, resilientLabs } from './labs';
import { PatientRepository } from './patients';
import { patientRoutes } from './routes';
import { UserRepository } from './users';

/** What the service needs from the `express` module: Express 4 and 5 both fit. */
export interface ExpressFactory {
  (): Express;
  Router: () => Router;
}

export interface HealthServiceOptions {
  /**
   * The database, migrated (see `prepareDatabase()` in `database.ts`). The app uses it but does
   * not own it: whoever created it closes it (`server.ts` does on SIGTERM/SIGINT).
   */
  db: Database;
  /** The `express` module to build with. Default: the installed `express` (5); tests also pass Express 4. */
  express?: ExpressFactory;
  /** Settings (API prefix, app name, log level, …). Default: `loadSettings(process.env)`. */
  settings?: Settings;
  /**
   * Tokens, verification and revocation. Default: `serviceAuth({ db, settings })` — keys from
   * `JWT_*`, the denylist in Redis when `REDIS_URL` is set, else in memory. Pass your own to share
   * it or to close it (`server.ts` does: a Redis connection should be closed on shutdown).
   */
  auth?: Auth;
  /**
   * The audit trail: every read, search and write of patients (and of patients' logins), every
   * 401/403 under the API prefix, logins and logouts, in the hash-chained `audit_events` table
   * (`migrate(db)` in `database.ts` creates it), served to auditors as FHIR AuditEvents at
   * `GET <apiPrefix>/audit`. Default: `core.audit({ db, auth })` created here — not closed by the app, so
   * events still buffered when the process ends are lost. Pass your own and close it (it writes
   * what is buffered) before the database on shutdown, as `server.ts` does.
   */
  audit?: AuditTrail;
  /**
   * scrypt cost of the passwords the service hashes (`POST /users`), and of the stand-in hash an
   * unknown email is checked against so that it takes as long as a wrong password. Use the cost
   * your stored hashes have. Default: `core.hashPassword()`'s (N = 32768).
   */
  passwordHash?: PasswordHashOptions;
  /**
   * Builds each named logger of the service: `http` (access log), `patients` (app log and the
   * repository's access events), `auth` (token events and failed logins), `audit` (the trail's
   * write failures and drops) and `errors`.
   * Default: `createLogger(name, { settings })`.
   */
  createLogger?: (name: string) => Logger;
  /**
   * The lab system. Default: a client whose every call fails (no lab system is connected). The app
   * puts it behind `resilientLabs()` (timeout, retry, circuit breaker `labs`) unless it already is.
   */
  labs?: LabClient | ResilientLabs;
  /** Breaker and retry settings for the lab client the app wraps. Default: `resilientLabs()`'s. */
  labsResilience?: Omit<ResilientLabsOptions, 'metrics' | 'logger'>;
  /**
   * Feature flags (`patient-summary` gates `GET /patients/:id/summary`). Default: in memory with
   * {@link DEMO_FLAGS}; `server.ts` passes its own (shared through Redis with `REDIS_URL`).
   */
  flags?: FeatureFlags;
  /** `/health`, `/health/live`, `/health/ready`. Default: database, lab breaker and flag checks. */
  health?: HealthRouter;
  /** Largest JSON body accepted; bigger ones get 413 PAYLOAD_TOO_LARGE. Default `'100kb'`. */
  bodyLimit?: string | number;
  /**
   * The security layer, the API rate limit and the login limit. Default: created here from
   * `settings`, counting in memory — an app cannot close what it opens, so it opens no Redis
   * connection. Pass your own to share them through Redis (`REDIS_URL`) and close them on
   * shutdown, as `server.ts` does. See {@link createProtection}.
   */
  protection?: Protection;
  /**
   * Where the service's metrics go (served at `GET /metrics`, `METRICS_TOKEN` / `METRICS_ALLOW_IPS`
   * protect it). Default: the process's `getMetrics()`, which the database, Auth and guards report
   * into unless told otherwise — so one endpoint shows them all.
   */
  metrics?: Metrics;
}

/** The flags the demo starts with: the patient summary is being rolled out, to admins first. */
export const DEMO_FLAGS: Readonly<Record<string, FlagDefinition>> = {
  'patient-summary': { enabled: true, roles: ['admin'], percentage: 0 },
};

/** The request guards of the service: each may hold a Redis connection, so each has `close()`. */
export interface Protection {
  security: SecurityMiddleware;
  rateLimit: RateLimiter;
  loginRateLimit: RateLimiter;
}

/** The service's guards from settings; close them with {@link closeProtection}. */
export function createProtection(
  settings: Settings,
  makeLogger: (name: string) => Logger,
  options: {
    bodyLimit?: string | number;
    loginRateLimit?: RateLimitOptions;
    /** `false`: count in memory even when `REDIS_URL` is set (nothing to close). Default: `REDIS_URL`. */
    redis?: false;
    /** Where the guards report. Default: `getMetrics()`. */
    metrics?: Metrics;
  } = {},
): Protection {
  const logger = makeLogger('security');
  const redis = options.redis;
  const reportTo = options.metrics;
  return {
    security: security({
      settings,
      logger,
      metrics: reportTo,
      threats: { redis },
      limits: { bodySize: options.bodyLimit ?? '100kb' },
      // List queries are validated field by field (a repeated scalar is a 400 naming the field),
      // so repeated parameters reach parseListQuery as they were sent.
      parameterPollution: false,
    }),
    rateLimit: rateLimit({ settings, logger, redis, metrics: reportTo }),
    loginRateLimit: loginRateLimit({
      settings,
      logger,
      redis,
      metrics: reportTo,
      ...options.loginRateLimit,
    }),
  };
}

export async function closeProtection(protection: Protection): Promise<void> {
  await Promise.all([
    protection.security.close(),
    protection.rateLimit.close(),
    protection.loginRateLimit.close(),
  ]);
}

/**
 * The patient-records service as an Express app, not listening: `server.ts` listens, tests drive
 * it with supertest. The middleware order is the one of the caduceus pipeline.
 */
export function createApp(options: Readonly<HealthServiceOptions>): Express {
  const { db } = options;
  const express = options.express ?? defaultExpress;
  const settings = options.settings ?? loadSettings(process.env);
  const makeLogger = options.createLogger ?? ((name: string) => createLogger(name, { settings }));
  const patientLogger = makeLogger('patients');
  const authLogger = makeLogger('auth');
  const registry = options.metrics ?? getMetrics();
  const auth = options.auth ?? serviceAuth({ db, settings, logger: authLogger, metrics: registry });
  const trail =
    options.audit ?? audit({ db, auth, settings, logger: makeLogger('audit'), metrics: registry });
  const users = new UserRepository(db, trail);
  const api = settings.apiPrefix;

  const patients = new PatientRepository(db, trail);
  // A debug trace of every read and write of a patient, with ids and filtered field names — never
  // values. The record of who accessed what is the audit trail; this is for following a request in the logs.
  patients.events.on('access', (event: RepositoryEvent) => {
    patientLogger.debug('patient access', {
      action: event.action,
      outcome: event.outcome,
      patient_ids: event.ids,
      filter_fields: event.filterFields,
      actor: event.actor,
    });
  });

  const protection =
    options.protection ??
    createProtection(settings, makeLogger, {
      bodyLimit: options.bodyLimit,
      redis: false,
      metrics: registry,
    });

  const labsClient = options.labs ?? disconnectedLabs();
  const labs: ResilientLabs =
    'breaker' in labsClient
      ? (labsClient as ResilientLabs)
      : resilientLabs(labsClient, {
          ...options.labsResilience,
          metrics: registry,
          logger: makeLogger('labs'),
        });
  const flags =
    options.flags ??
    featureFlags({
      store: 'memory',
      flags: DEMO_FLAGS,
      settings,
      metrics: registry,
      logger: makeLogger('flags'),
    });
  const probes =
    options.health ??
    health({ database: db, breakers: [labs.breaker], flags, settings, logger: makeLogger('health') });

  const app = express();
  app.disable('x-powered-by');

  // 1. Context first: request id, trace, start time — everything below reads it.
  app.use(requestContext());
  // 2. RED metrics per route template, counted before any guard can refuse the request; the
  //    scrape endpoint sits before the access log (a line per scrape would be noise).
  app.use(metrics({ metrics: registry, settings }));
  app.get('/metrics', metricsEndpoint({ metrics: registry, settings }));
  //    Health probes (application/health+json): liveness, readiness (database, flag store; the lab
  //    breaker only warns — the service still serves everything but lab results) and the report.
  app.use(probes);
  // 3. One access-log line per request (skips /health by default).
  app.use(logging({ logger: makeLogger('http') }));
  // 4. Security headers, CORS, input limits, threat detection; JSON bodies are parsed here (a
  //    malformed one is 400 INVALID_JSON, an oversized one 413, a probe 403 THREAT_DETECTED).
  app.use(protection.security);
  // 5. Rate limits: the API by client address (RATE_LIMIT_*), login by address + email (5/min).
  app.use(protection.rateLimit);
  app.post(`${api}/auth/login`, protection.loginRateLimit);
  // 6. `req.db` for handlers that want the database itself.
  app.use(database(db));

  // 7. The audit trail: `req.audit()`, and every 401/403 under the API prefix recorded as
  //    access-denied. Before authenticate(), so refused tokens are recorded too.
  app.use(api, trail.middleware());

  // Login and refresh are public; everything else under the API prefix needs a bearer token
  // (an anonymous request to an unknown API path is a 401 too: it learns nothing about routes).
  app.use(
    api,
    authRoutes({
      router: express.Router(),
      auth,
      users,
      logger: authLogger,
      passwordHash: options.passwordHash,
    }),
  );
  app.use(api, auth.authenticate());
  // `req.flags` for the signed-in user; flags are administered by admins.
  app.use(api, flags.middleware());
  app.use(`${api}/admin/flags`, flags.adminRouter({ roles: ['admin'] }));
  // Who touched which record, as FHIR R4 AuditEvents: auditors and admins (a 403 for anyone else,
  // itself recorded). Reading the trail is recorded too.
  app.use(`${api}/audit`, auditEventsRouter({ trail, roles: [AUDITOR, ADMIN] }));
  app.use(
    api,
    patientRoutes({
      router: express.Router(),
      db,
      patients,
      users,
      labs,
      flags,
      logger: patientLogger,
      basePath: api,
    }),
  );
  app.use(
    api,
    userRoutes({ router: express.Router(), users, basePath: api, passwordHash: options.passwordHash }),
  );

  // Last: unmatched routes become 404, and every error becomes one response in one format.
  app.use(notFound());
  app.use(errors({ settings, logger: makeLogger('errors'), metrics: registry }));
  return app;
}
