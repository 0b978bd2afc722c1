/**
 * The example service's full stack (examples/health-service `createApp()`: context, metrics,
 * health, logging, security, rate limits, audit trail, auth, flags, patient and user routes,
 * errors) on real PostgreSQL and Redis, composed as `server.ts` composes it, with what a test
 * needs on top: its own Redis key prefix for every Redis user (rate limits, denylist, flags,
 * threat counts), a fresh metrics registry, quiet loggers, fast database timeouts (a cut database
 * is a 503 within a second, not after the 10 s default) and API limits high enough for a load test.
 * Used in a child process by the fault and soak suites (stack-server.ts) and in-process by the fuzz
 * suite.
 */
import type { Express } from 'express';
import * as core from '../../lib/index';
import type { ExpressFactory, Protection } from '../../examples/health-service/app';
import { closeProtection, createApp, DEMO_FLAGS } from '../../examples/health-service/app';
import { serviceAuth } from '../../examples/health-service/auth';
import { prepareDatabase } from '../../examples/health-service/database';
import { disconnectedLabs, resilientLabs } from '../../examples/health-service/labs';
import type { DemoUser } from '../../examples/health-service/seed';
import {
  DEMO_ADMIN,
  DEMO_AUDITOR,
  DEMO_PATIENTS,
  DEMO_PROVIDERS,
  SEED_PATIENTS,
} from '../../examples/health-service/seed';
import { claimsOf } from '../../examples/health-service/users';

/** The lowest scrypt cost `hashPassword()` accepts: a login costs ~4 ms instead of ~100. */
export const STACK_PASSWORD_HASH: core.PasswordHashOptions = { cost: 1024 };
export const STACK_SECRET = 'a-full-stack-test-secret-that-is-long-enough-0123456789';

export interface StackOptions {
  /** A PostgreSQL URL whose search_path is an empty schema of the test's own (migrated and seeded here). */
  databaseUrl: string;
  /** Redis (possibly through a TcpProxy). */
  redisUrl: string;
  /** Prefix of every Redis key and channel of this stack, e.g. `caduceus:test:t_1_abc:`. */
  redisPrefix: string;
  /** Default: the installed `express` (5). */
  express?: ExpressFactory;
  /** Default `'test'`; the fuzz suite runs `'production'` (no stack in any response). */
  nodeEnv?: 'test' | 'production';
  /** Builds each logger. Default: silent, or JSON lines on stdout from this level when `logLevel` is set. */
  createLogger?: (name: string) => core.Logger;
  /** For diagnosis: log to stdout from this level (`debug`, `info`, `warn`, `error`). */
  logLevel?: core.LogLevel | undefined;
}

export interface Stack {
  app: Express;
  db: core.Database;
  auth: core.Auth;
  trail: core.AuditTrail;
  settings: core.Settings;
  /** The security layer and the limiters the app runs (`protection.security.unban(ip)`). */
  protection: Protection;
  /** Access tokens (`Bearer …`) of demo users, valid for the test's duration. */
  bearer: { admin: string; provider: string; patient: string; auditor: string };
  /** A patient the provider (and the admin) may read. */
  providerPatientId: string;
  /** A demo login whose password the seed set, for login traffic. */
  login: { email: string; password: string };
  /** The guards, flags, probes, auth, audit trail (flushed) and database, closed in server.ts's order. */
  close(): Promise<void>;
}

export function silentLogger(settings: core.Settings): (name: string) => core.Logger {
  return (name) => core.createLogger(name, { settings, console: false, transports: [] });
}

export async function buildStack(options: Readonly<StackOptions>): Promise<Stack> {
  const { redisUrl, redisPrefix: prefix } = options;
  const settings = core.loadSettings({
    NODE_ENV: options.nodeEnv ?? 'test',
    LOG_LEVEL: 'CRITICAL',
    JWT_SECRET_KEY: STACK_SECRET,
    REDIS_URL: redisUrl,
    // The load suites send a few hundred requests a second from one address; the limiter itself
    // still counts every one of them (in Redis, in memory while Redis is away).
    RATE_LIMIT_REQUESTS: '100000000',
  });
  const level = options.logLevel;
  const makeLogger =
    options.createLogger ??
    (level === undefined
      ? silentLogger(settings)
      : (name: string) => core.createLogger(name, { settings, format: 'json', level }));
  const metrics = core.createMetrics({ app: 'fullstack', nodeMetrics: false });
  const db = core.createDatabase({
    url: options.databaseUrl,
    settings,
    connectTimeoutMs: 1000,
    acquireTimeoutMs: 1000,
    statementTimeoutMs: 5000,
    logger: makeLogger('database'),
    metrics,
  });
  const auth = serviceAuth({
    db,
    settings,
    redis: redisUrl,
    keyPrefix: `${prefix}auth:`,
    logger: makeLogger('auth'),
    metrics,
  });
  const trail = core.audit({ db, auth, settings, logger: makeLogger('audit'), metrics });
  const hashes = new Map<string, Promise<string>>();
  const hash = (password: string): Promise<string> => {
    let h = hashes.get(password);
    if (h === undefined) hashes.set(password, (h = core.hashPassword(password, STACK_PASSWORD_HASH)));
    return h;
  };
  await prepareDatabase(db, { audit: trail, hash });
  const protection: Protection = {
    security: core.security({
      settings,
      logger: makeLogger('security'),
      metrics,
      threats: { redis: redisUrl, prefix: `${prefix}sec` },
      limits: { bodySize: '100kb' },
      parameterPollution: false,
    }),
    rateLimit: core.rateLimit({
      settings,
      logger: makeLogger('rate-limit'),
      redis: redisUrl,
      prefix,
      metrics,
    }),
    // The login limiter as configured in the example (ip+username, failing closed while Redis is
    // away), with a budget the load does not exhaust.
    loginRateLimit: core.loginRateLimit({
      settings,
      logger: makeLogger('rate-limit'),
      redis: redisUrl,
      prefix,
      metrics,
      limit: 100_000_000,
    }),
  };
  const flags = core.featureFlags({
    settings,
    flags: DEMO_FLAGS,
    redis: redisUrl,
    prefix: `${prefix}flags:`,
    logger: makeLogger('flags'),
    metrics,
  });
  const labs = resilientLabs(disconnectedLabs(), { logger: makeLogger('labs'), metrics });
  const probes = core.health({
    database: db,
    breakers: [labs.breaker],
    flags,
    settings,
    logger: makeLogger('health'),
  });
  const app = createApp({
    express: options.express,
    settings,
    db,
    auth,
    audit: trail,
    protection,
    flags,
    labs,
    health: probes,
    metrics,
    createLogger: makeLogger,
    passwordHash: STACK_PASSWORD_HASH,
  });
  const tokenOf = (user: DemoUser) => `Bearer ${auth.createTokens(claimsOf(user)).access_token}`;
  const provider = DEMO_PROVIDERS[0]!;
  return {
    app,
    db,
    auth,
    trail,
    settings,
    protection,
    bearer: {
      admin: tokenOf(DEMO_ADMIN),
      provider: tokenOf(provider),
      patient: tokenOf(DEMO_PATIENTS[0]!),
      auditor: tokenOf(DEMO_AUDITOR),
    },
    providerPatientId: SEED_PATIENTS.find((p) => p.provider_id === provider.id)!.id,
    login: { email: provider.email, password: provider.password },
    async close() {
      await closeProtection(protection);
      await flags.close();
      await probes.close();
      await auth.close();
      await trail.close();
      await db.close();
    },
  };
}
