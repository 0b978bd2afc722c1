/**
 * The variants of `npm run bench -- --suite full`: one authenticated route, `GET /patients/:id`
 * (HS256 bearer token, role `provider`), behind a whole production stack. caduceus' pipeline
 * against the same features assembled by hand from the libraries people reach for, wired as their
 * READMEs show them: helmet, cors, express.json, express-prom-bundle, express-winston (JSON lines to
 * a file through winston's File transport), express-rate-limit (memory, or rate-limit-redis on
 * ioredis), passport-jwt with a role check, a 404 handler, express-winston's error logger and an
 * error handler. Limits are high enough never to refuse. Every variant serves the same body; the
 * plain variants (node:http, Express) ignore the token the load generator sends with every request.
 */
import cors from 'cors';
import express from 'express';
import type { NextFunction, Request, Response } from 'express';
import promBundle from 'express-prom-bundle';
import { rateLimit } from 'express-rate-limit';
import expressWinston from 'express-winston';
import helmet from 'helmet';
import { Redis } from 'ioredis';
import { createSecretKey } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Registry } from 'prom-client';
import { RedisStore } from 'rate-limit-redis';
import winston from 'winston';
import { passportJwt } from '../auth/passport.js';
import { AUDIENCE, ISSUER, ROLE, SECRET } from '../auth/shared.js';
import { loadCaduceus } from '../support/caduceus.js';
import { countLines } from '../support/files.js';
import { getPatient, patient, PATIENT_PATH } from '../support/patient.js';
import { serve } from '../support/serve.js';

type Store = 'memory' | 'redis';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const LIMIT = 1_000_000_000;

function logDirectory(): { dir: string; file: string } {
  const dir = mkdtempSync(join(tmpdir(), 'caduceus-bench-full-'));
  return { dir, file: join(dir, 'access.log') };
}

/**
 * Lines in the access log once its writer is done: winston's File transport has no flush that
 * waits for the disk, so wait until the count stops growing (at most 5 s).
 */
async function settledLines(file: string): Promise<number> {
  let last = -1;
  for (let i = 0; i < 50; i++) {
    const now = countLines(file);
    if (now === last) return now;
    last = now;
    await sleep(100);
  }
  return last;
}

/** node:http alone: the same body as `res.json()` writes, no routing library, no middleware. */
export function serveBareNode(): void {
  const prefix = '/patients/';
  serve(
    (req, res) => {
      const url = req.url ?? '';
      const id = url.startsWith(prefix) ? url.slice(prefix.length) : '';
      if (req.method !== 'GET' || id === '' || id.includes('/')) {
        res.writeHead(404, { 'content-type': 'application/json; charset=utf-8' });
        res.end('{"error":"not found"}');
        return;
      }
      const body = JSON.stringify(patient(decodeURIComponent(id)));
      res.writeHead(200, {
        'content-type': 'application/json; charset=utf-8',
        'content-length': Buffer.byteLength(body),
      });
      res.end(body);
    },
    { description: 'node:http, no framework, no middleware (ignores the token)' },
  );
}

/** The final error handler people write: a status from the error, a JSON body, no stack. */
function handError(err: unknown, _req: Request, res: Response, next: NextFunction): void {
  if (res.headersSent) {
    next(err);
    return;
  }
  const status = (err as { status?: unknown }).status;
  const code = typeof status === 'number' && status >= 400 && status < 600 ? status : 500;
  res
    .status(code)
    .json({ error: code >= 500 || !(err instanceof Error) ? 'internal server error' : err.message });
}

/**
 * The stack assembled by hand. `secret: 'string'` is passport-jwt's README (jsonwebtoken converts
 * the string on every verification); `'keyobject'` the tuned form, `crypto.createSecretKey()`.
 */
export function serveByHand(store: Store, secret: 'string' | 'keyobject'): void {
  const redis = store === 'redis' ? new Redis(REDIS_URL) : undefined;
  const log = logDirectory();
  const app = express();
  app.use(helmet());
  app.use(cors({ origin: ['http://localhost:3000'], credentials: true }));
  app.use(express.json());
  app.use(
    promBundle({
      includeMethod: true,
      includePath: true,
      includeStatusCode: true,
      promRegistry: new Registry(),
    }),
  );
  app.use(
    expressWinston.logger({
      transports: [new winston.transports.File({ filename: log.file })],
      format: winston.format.json(),
      meta: true,
      msg: 'HTTP {{req.method}} {{req.url}}',
      expressFormat: true,
      colorize: false,
    }),
  );
  app.use(
    rateLimit({
      windowMs: 60_000,
      limit: LIMIT,
      standardHeaders: 'draft-8',
      legacyHeaders: false,
      store:
        redis === undefined
          ? undefined
          : new RedisStore({
              prefix: `bench:full:${String(process.pid)}:`,
              sendCommand: (command: string, ...args: string[]) =>
                redis.call(command, ...args) as Promise<never>,
            }),
    }),
  );
  const key = secret === 'string' ? SECRET : createSecretKey(Buffer.from(SECRET, 'utf8'));
  app.get(PATIENT_PATH, ...passportJwt(key), getPatient);
  app.use((_req: Request, res: Response) => {
    res.status(404).json({ error: 'not found' });
  });
  app.use(
    expressWinston.errorLogger({
      transports: [new winston.transports.File({ filename: join(log.dir, 'error.log') })],
      format: winston.format.json(),
    }),
  );
  app.use(handError);

  serve(app, {
    description: `Express 5 + helmet, cors, express.json, express-prom-bundle, express-winston (file), express-rate-limit (${store}), passport-jwt (secret as a ${secret === 'string' ? 'string' : 'KeyObject'}), role check, 404 and error handlers, by hand`,
    async shutdown() {
      redis?.disconnect();
      const accessLogLines = await settledLines(log.file);
      rmSync(log.dir, { recursive: true, force: true });
      return { accessLogLines };
    },
  });
}

/**
 * caduceus with the same features: `defaults()` — requestContext(), metrics() (+ metricsEndpoint()
 * at /metrics), logging() to a file, security(), rateLimit() (memory or Redis) — then
 * createAuth().authenticate() and requireRoles(), notFound(), errors().
 */
export function serveCaduceus(store: Store): void {
  const core = loadCaduceus();
  // Settings of their own: nothing in the caller's environment changes what is measured.
  const settings = core.loadSettings({});
  const log = logDirectory();
  const accessLog = core.createLogger('access', { console: false, file: log.file, settings });
  const logger = core.createLogger('app', { console: false, settings });
  const metrics = core.createMetrics({ app: 'bench', settings });
  // The recommended front of the pipeline in one app.use: requestContext, metrics, logging,
  // security, rateLimit — one router layer for the five.
  const chain = core.defaults({
    settings,
    registry: metrics,
    logging: { logger: accessLog },
    security: { logger, threats: { redis: false } },
    rateLimit: {
      logger,
      redis: store === 'redis' ? REDIS_URL : false,
      limit: LIMIT,
      name: `bench-full-${String(process.pid)}`,
    },
  });
  const auth = core.createAuth({
    settings,
    secret: SECRET,
    algorithm: 'HS256',
    issuer: ISSUER,
    audience: AUDIENCE,
    redis: false,
    jwksUrl: false,
    logger,
    metrics,
  });

  const app = express();
  app.use(chain);
  app.get('/metrics', core.metricsEndpoint({ metrics, settings }));
  app.get(PATIENT_PATH, auth.authenticate(), core.requireRoles(ROLE), getPatient);
  app.use(core.notFound());
  app.use(core.errors({ logger }));

  serve(app, {
    description: `Express 5 + caduceus defaults() (requestContext, metrics, logging to a file, security, rateLimit ${store}), authenticate, requireRoles, notFound, errors`,
    async shutdown() {
      await core.flushLogger(accessLog);
      const accessLogLines = countLines(log.file);
      accessLog.close();
      await Promise.all([chain.close(), auth.close()]);
      rmSync(log.dir, { recursive: true, force: true });
      return { accessLogLines };
    },
  });
}
