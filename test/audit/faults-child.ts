/**
 * Run by faults.test.ts in its own process (tsx), with real 'unhandledRejection' and
 * 'uncaughtException' listeners: the audit store is cut under protected requests ('reject',
 * maxBuffer 3), then the trail is closed while the store is still down. Prints one `REPORT {json}`
 * line and exits on its own — a timer or socket left open keeps it alive and fails the test.
 */
import express from 'express';
import { setTimeout as sleep } from 'node:timers/promises';
import request from 'supertest';
import * as core from '../../lib/index';
import { TcpProxy } from '../faults/proxy';
import { pgSchema } from '../support/isolated';
import { captureLogger } from '../support/logs';

const uncaught: string[] = [];
process.on('uncaughtException', (err) => {
  uncaught.push(`uncaughtException: ${err.stack ?? String(err)}`);
});
process.on('unhandledRejection', (reason) => {
  uncaught.push(
    `unhandledRejection: ${reason instanceof Error ? (reason.stack ?? reason.message) : String(reason)}`,
  );
});

const SETTINGS = core.loadSettings({ NODE_ENV: 'test', APP_NAME: 'caduceus-test', LOG_LEVEL: 'CRITICAL' });
const SECRET = 'a-test-secret-that-is-long-enough-0123456789';

async function main(): Promise<void> {
  const silent = core.createLogger('quiet', { console: false, settings: SETTINGS, transports: [] });
  const target = await pgSchema('auchild');
  const proxy = new TcpProxy(5432);
  const port = await proxy.start();
  const dbOptions = {
    connectTimeoutMs: 1000,
    acquireTimeoutMs: 1000,
    logger: silent,
    settings: SETTINGS,
    metrics: false,
  } as const;
  const data = core.createDatabase({ url: target.url, ...dbOptions });
  const store = core.createDatabase({
    url: target.url.replace('127.0.0.1:5432', `127.0.0.1:${port}`),
    ...dbOptions,
  });
  const log = captureLogger('audit');
  const auth = core.createAuth({
    settings: SETTINGS,
    secret: SECRET,
    redis: false,
    metrics: false,
    logger: silent,
  });
  const trail = core.audit({
    db: store,
    table: 'audit_child',
    onOverflow: 'reject',
    maxBuffer: 3,
    flushIntervalMs: 10,
    retry: { initialMs: 20, maxMs: 100 },
    logger: log.logger,
    metrics: false,
    settings: SETTINGS,
  });
  await trail.migrate();
  const app = express();
  app.use(core.requestContext());
  app.use('/api', core.authenticate({ auth }), trail.middleware());
  app.get('/api/things/:id', (req, res) => {
    req.audit({ action: 'read', resourceType: 'Thing', resourceId: req.params.id });
    res.json({ ok: true });
  });
  app.use(core.notFound(), core.errors({ settings: SETTINGS, logger: silent }));
  const token = auth.createTokens({ userId: 'dr-child', roles: ['clinician'] }).access_token;
  const get = async (): Promise<number> =>
    (await request(app).get('/api/things/1').set('Authorization', `Bearer ${token}`)).status;

  await get();
  await trail.flush();
  await proxy.cut();
  const statuses: number[] = [];
  for (let i = 0; i < 5; i++) statuses.push(await get());
  const buffered = trail.stats().buffered;
  await sleep(150);

  const linesBefore = log.lines().length;
  const start = Date.now();
  const close = await trail.close().then(
    () => ({ ok: true, message: '' }),
    (err: unknown) => ({ ok: false, message: err instanceof Error ? err.message : String(err) }),
  );
  const closeMs = Date.now() - start;
  // Late rejections from timers or retries that outlive close() would land here.
  await sleep(300);
  const closeLogs = log.lines().slice(linesBefore);

  await proxy.close();
  await store.close();
  await data.close();
  await auth.close();
  await target.drop();
  process.stdout.write(
    `REPORT ${JSON.stringify({ uncaught, statuses, buffered, closeMs, close, closeLogs })}\n`,
  );
}

main().catch((err: unknown) => {
  process.stderr.write(`child failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
});
