/**
 * What every variant of `npm run bench:auth` shares: the HS256 key and claims policy the token is
 * made and checked with, and the caduceus pipeline (the same as bench/apps/caduceus-core.ts) that
 * each variant puts its authentication into.
 */
import express from 'express';
import type { RequestHandler } from 'express';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadCaduceus } from '../support/caduceus.js';
import type { Caduceus } from '../support/caduceus.js';
import { countLines } from '../support/files.js';
import { getPatient, PATIENT_PATH } from '../support/patient.js';
import { serve } from '../support/serve.js';

/** The HMAC secret of every variant (a benchmark key, at least 32 bytes as caduceus requires). */
export const SECRET = 'caduceus-bench-auth-hs256-secret-not-for-production';
export const ISSUER = 'caduceus-bench';
export const AUDIENCE = 'caduceus-bench-api';
/** The role the route requires; the benchmark's token has it. */
export const ROLE = 'provider';

/**
 * Express 5 with requestContext(), logging() (JSON lines to a file in a temp directory), the
 * patient route behind `guards`, notFound() and errors(); then `serve()` it.
 */
export function serveCaduceusApp(
  description: string,
  guards: (core: Caduceus) => readonly RequestHandler[],
): void {
  const core = loadCaduceus();
  const dir = mkdtempSync(join(tmpdir(), 'caduceus-bench-auth-'));
  const accessFile = join(dir, 'access.log');
  const accessLog = core.createLogger('access', { console: false, file: accessFile });
  const errorLog = core.createLogger('errors', { console: false });

  const app = express();
  app.use(core.requestContext());
  app.use(core.logging({ logger: accessLog }));
  app.get(PATIENT_PATH, ...guards(core), getPatient);
  app.use(core.notFound());
  app.use(core.errors({ logger: errorLog }));

  serve(app, {
    description,
    async shutdown() {
      await core.flushLogger(accessLog);
      // Counted so the report can show that every request was really logged.
      const accessLogLines = countLines(accessFile);
      accessLog.close();
      rmSync(dir, { recursive: true, force: true });
      return { accessLogLines };
    },
  });
}

/** caduceus' own authentication: createAuth (HS256, in-memory denylist), authenticate(), requireRoles(). */
export function serveCaduceusAuth(description: string, cacheSize: number | undefined): void {
  serveCaduceusApp(description, (core) => {
    const auth = core.createAuth({
      secret: SECRET,
      algorithm: 'HS256',
      issuer: ISSUER,
      audience: AUDIENCE,
      redis: false,
      jwksUrl: false,
      logger: core.createLogger('auth', { console: false }),
      ...(cacheSize === undefined ? {} : { cacheSize }),
    });
    return [auth.authenticate(), core.requireRoles(ROLE)];
  });
}
