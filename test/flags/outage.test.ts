/**
 * Flags while Redis is out of reach (a TcpProxy between one instance and Redis, cut or frozen):
 * the last known flags keep serving without waiting, writes fail fast with 503 (dependency redis),
 * the outage is logged once, and on reconnect the instance reloads — picking up a change another
 * instance made meanwhile — logs the recovery once, and shares changes again.
 */
import * as core from '../../lib/index';
import { TcpProxy } from '../faults/proxy';
import { captureLogger } from '../support/logs';
import { count, REDIS_PORT, redisScope, within } from './support';

const OUTAGE = 'feature flags: redis unavailable, serving the last known flags until it returns';
const BACK = 'feature flags: redis is back, flags reloaded';
/** Reconnection after the line is back (the client's back-off is capped at 3 s). */
const RECOVERY_MS = 6_000;
const ALICE = { userId: 'alice', roles: ['patient'] };

const scope = redisScope('outage');
let proxy: TcpProxy;

beforeEach(async () => {
  proxy = new TcpProxy(REDIS_PORT);
  await proxy.start();
});
// The proxy goes after the flags (scope's afterEach runs first: registered earlier).
afterEach(async () => {
  await proxy.close();
});

/** Flags seeded with `beta` on, reaching Redis through the proxy, ready, with their log. */
async function behindProxy() {
  const log = captureLogger('flags');
  const flags = scope.open({
    prefix: scope.prefix(),
    redis: `redis://127.0.0.1:${proxy.port}`,
    log,
    flags: { beta: { enabled: true } },
  });
  await flags.ready();
  return { flags, log };
}

async function expectUnavailable(write: Promise<unknown>, withinMs: number): Promise<void> {
  const start = Date.now();
  const err = (await write.then(
    () => undefined,
    (e: unknown) => e,
  )) as core.AppError | undefined;
  expect(Date.now() - start).toBeLessThan(withinMs);
  expect(core.isAppError(err)).toBe(true);
  expect(err?.status).toBe(503);
  expect(err?.code).toBe('SERVICE_UNAVAILABLE');
  expect(err?.details).toEqual({ dependency: 'redis' });
}

it('cut: last known flags serve, writes 503 at once, one outage line; back: reloads what changed meanwhile, one recovery line', async () => {
  const prefix = scope.prefix();
  const log = captureLogger('flags');
  const cutOff = scope.open({ prefix, redis: `redis://127.0.0.1:${proxy.port}`, log });
  const direct = scope.open({ prefix });
  await Promise.all([cutOff.ready(), direct.ready()]);
  await direct.setFlag('beta', { enabled: true, users: ['alice'] });
  await within(1_000, () => cutOff.isEnabled('beta', ALICE), Boolean);
  await within(1_000, () => cutOff.status().healthy, Boolean);

  await proxy.cut();
  await within(
    1_000,
    () => cutOff.status().healthy,
    (healthy) => !healthy,
  );
  expect(cutOff.status()).toMatchObject({ store: 'redis', healthy: false, flags: 1 });
  // Logged when the line drops, not when a reconnect attempt fails later (that may be seconds).
  expect(count(log, OUTAGE)).toBe(1);
  // Evaluations are answered from memory: the last known flags, no waiting.
  const start = Date.now();
  for (let i = 0; i < 100; i++) expect(cutOff.isEnabled('beta', ALICE)).toBe(true);
  expect(Date.now() - start).toBeLessThan(50);
  await expectUnavailable(cutOff.setFlag('beta', { enabled: false }), 500);
  await expectUnavailable(cutOff.deleteFlag('beta'), 500);
  expect(cutOff.isEnabled('beta', ALICE)).toBe(true);

  // Meanwhile another instance changes flags: the cut-off one cannot hear it.
  await direct.setFlag('beta', { enabled: false });
  await direct.setFlag('gamma', { enabled: true });
  expect(cutOff.isEnabled('beta', ALICE)).toBe(true);
  expect(count(log, OUTAGE)).toBe(1);

  await proxy.restore();
  const back = await within(RECOVERY_MS, () => cutOff.isEnabled('gamma', ALICE), Boolean, 50);
  expect(back.value).toBe(true);
  expect(cutOff.isEnabled('beta', ALICE)).toBe(false);
  await within(1_000, () => cutOff.status().healthy, Boolean);
  expect(cutOff.status().healthy).toBe(true);
  expect(count(log, OUTAGE)).toBe(1);
  expect(count(log, BACK)).toBe(1);

  // And writes are shared again.
  await cutOff.setFlag('delta', { enabled: true });
  const seen = await within(1_000, () => direct.isEnabled('delta', ALICE), Boolean);
  expect(seen.value).toBe(true);
});

it('a clean hang-up (no error on the socket) is an outage from the moment the line drops', async () => {
  const { flags, log } = await behindProxy();

  await proxy.hangUp();
  const down = await within(
    1_000,
    () => flags.status().healthy,
    (healthy) => !healthy,
    1,
  );
  expect(down.value).toBe(false);
  // Before the first reconnect attempt (200 ms later) has had a chance to fail.
  expect(count(log, OUTAGE)).toBe(1);
  expect(log.lines().find((l) => l.message === OUTAGE)).toMatchObject({ error_code: 'CONNECTION_CLOSED' });
  expect(flags.isEnabled('beta', ALICE)).toBe(true);

  await proxy.restore();
  const back = await within(RECOVERY_MS, () => flags.status().healthy, Boolean, 50);
  expect(back.value).toBe(true);
  expect(count(log, OUTAGE)).toBe(1);
  expect(count(log, BACK)).toBe(1);
});

it('a silent partition: evaluations never wait, writes fail within the command timeout, recovery on restore', async () => {
  const { flags: frozen, log } = await behindProxy();

  await proxy.freeze();
  // The client still thinks it is connected: the write waits for the 1 s command timeout, no more.
  await expectUnavailable(frozen.setFlag('beta', { enabled: false }), 2_000);
  expect(frozen.isEnabled('beta', ALICE)).toBe(true);
  expect(frozen.status().healthy).toBe(false);
  expect(count(log, OUTAGE)).toBe(1);

  await proxy.cut();
  await proxy.restore();
  const back = await within(RECOVERY_MS, () => frozen.status().healthy, Boolean, 50);
  expect(back.value).toBe(true);
  expect(count(log, BACK)).toBe(1);
  // The refused write never reached Redis.
  expect(frozen.isEnabled('beta', ALICE)).toBe(true);
});
