/**
 * The variants of `npm run bench -- --suite guards`: caduceus' security() and rateLimit() against
 * the same libraries wired by hand as their READMEs show them (helmet(), cors(), express.json(),
 * express-rate-limit with its memory store or rate-limit-redis on ioredis). Limits are high enough
 * never to refuse: what is measured is the cost of checking, not of refusing.
 */
import cors from 'cors';
import express from 'express';
import { rateLimit } from 'express-rate-limit';
import helmet from 'helmet';
import { Redis } from 'ioredis';
import { RedisStore } from 'rate-limit-redis';
import { loadCaduceus } from '../support/caduceus.js';
import { getPatient, PATIENT_PATH } from '../support/patient.js';
import { serve } from '../support/serve.js';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const LIMIT = 1_000_000_000;

/** helmet + cors + express.json + express-rate-limit, by hand. */
export function serveByHand(store: 'memory' | 'redis'): void {
  const redis = store === 'redis' ? new Redis(REDIS_URL) : undefined;
  const app = express();
  app.use(helmet());
  app.use(cors({ origin: ['http://localhost:3000'], credentials: true }));
  app.use(express.json());
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
              prefix: `bench:hand:${String(process.pid)}:`,
              sendCommand: (command: string, ...args: string[]) =>
                redis.call(command, ...args) as Promise<never>,
            }),
    }),
  );
  app.get(PATIENT_PATH, getPatient);
  serve(app, {
    description: `Express 5 + helmet, cors, express.json, express-rate-limit (${store}) by hand`,
    shutdown() {
      redis?.disconnect();
      return {};
    },
  });
}

/** caduceus' security(), rateLimit(), or both. */
export function serveCaduceus(guards: 'security' | 'rate-limit' | 'both', store: 'memory' | 'redis'): void {
  const core = loadCaduceus();
  const logger = core.createLogger('guards', { console: false });
  const settings = core.loadSettings({});
  const security =
    guards === 'rate-limit' ? undefined : core.security({ settings, logger, threats: { redis: false } });
  const limiter =
    guards === 'security'
      ? undefined
      : core.rateLimit({
          settings,
          logger,
          redis: store === 'redis' ? REDIS_URL : false,
          limit: LIMIT,
          name: `bench-${String(process.pid)}`,
        });
  const app = express();
  if (security !== undefined) app.use(security);
  if (limiter !== undefined) app.use(limiter);
  app.get(PATIENT_PATH, getPatient);
  const parts = [security && 'security()', limiter && `rateLimit() (${store})`].filter(Boolean);
  serve(app, {
    description: `Express 5 + caduceus ${parts.join(' + ')}`,
    async shutdown() {
      await security?.close();
      await limiter?.close();
      return {};
    },
  });
}
