/**
 * Issue 9's fault proof, through the example service's whole stack (stack.ts) running in its own
 * process (stack-server.ts) on real PostgreSQL and Redis, each behind a TcpProxy. A steady load of
 * authenticated searches, reads and creates (and a few logins) runs the whole time while
 * (a) PostgreSQL is cut and restored, (b) Redis is cut and restored, (c) both at once, (d) the
 * PostgreSQL line is slowed down. Throughout: no crash, no unhandled rejection, every answer in the
 * envelope and either a success or the 503 the outage calls for; after each outage the service
 * serves everything again within a bound, and at the end every successful protected access is in
 * the audit table exactly once, and the chain verifies.
 *
 * Expected while down (docs/database.md, docs/rate-limit.md, docs/auth.md):
 * - PostgreSQL: every data route and login 503 SERVICE_UNAVAILABLE, dependency "database", fast.
 * - Redis: the API limiter fails open (counts in memory), the denylist answers from its mirror, so
 *   searches, reads and creates succeed; the login limiter fails closed: 503, dependency "redis",
 *   Retry-After: 5.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Pool } from 'pg';
import { Redis } from 'ioredis';
import { deleteKeys, redisPrefix, REDIS_URL } from '../auth/redis-support';
import { pgSchema } from '../support/isolated';
import { requireService } from '../support/services';
import { TcpProxy } from './proxy';
import { type Answer, type Kind, LoadClient, type StackProcess, startStackProcess } from './stack-process';

/** Requests a second the load aims at, and its concurrent client loops. */
const RATE = 250;
const CONCURRENCY = 8;
/** How long each outage lasts. */
const DOWN_MS = 2500;
/** After the line is back, everything succeeds again within this (Redis back-off is capped at 3 s). */
const RECOVERY_MS = 8000;
/** A 503 for a cut dependency comes this fast (connect timeout 1 s + slack). */
const FAST_MS = 2000;
/** What "recovered" means: this long with nothing but successes, of every kind of request. */
const CLEAN_MS = 1000;
/** Latency injected per chunk on the PostgreSQL line, each direction. */
const LATENCY_MS = 100;

const DATA_KINDS: readonly Kind[] = ['list', 'read', 'create'];

let target: Awaited<ReturnType<typeof pgSchema>>;
let pgProxy: TcpProxy;
let redisProxy: TcpProxy;
let stack: StackProcess;
let load: LoadClient;
let direct: Pool;
const prefix = redisPrefix('fullstack');

const ok = (a: Answer): boolean => a.status >= 200 && a.status < 300 && a.success === true;
const summary = (answers: readonly Answer[]) => {
  const out: Record<string, number> = {};
  for (const a of answers) {
    const key = `${a.kind} ${a.status}${a.code === undefined ? '' : ` ${a.code}`}${a.error === undefined ? '' : ` ${a.error}`}`;
    out[key] = (out[key] ?? 0) + 1;
  }
  return out;
};

/** Every answer is a success envelope or the 503 envelope, fast, naming one of `dependencies`. */
function expectOnlyUnavailable(
  answers: readonly Answer[],
  dependencies: readonly string[],
  fastMs = FAST_MS,
): void {
  const wrong = answers.filter(
    (a) =>
      !ok(a) &&
      !(
        a.status === 503 &&
        a.code === 'SERVICE_UNAVAILABLE' &&
        dependencies.includes(String(a.dependency)) &&
        a.ms < fastMs
      ),
  );
  expect({ wrong: summary(wrong), sample: wrong.slice(0, 3) }).toEqual({ wrong: {}, sample: [] });
}

/** Polls until CLEAN_MS of answers (every kind among them) have all succeeded; returns when that window began. */
async function recovered(from: number): Promise<number> {
  const deadline = Date.now() + RECOVERY_MS + CLEAN_MS;
  for (;;) {
    await sleep(100);
    const answers = load.since(from);
    const lastBad = answers.reduce((t, a) => (ok(a) ? t : Math.max(t, a.at)), from - 1);
    const clean = answers.filter((a) => a.at > lastBad);
    const kinds = new Set(clean.map((a) => a.kind));
    if (load.now() - lastBad >= CLEAN_MS && (['login', ...DATA_KINDS] as Kind[]).every((k) => kinds.has(k)))
      return lastBad + 1;
    if (Date.now() > deadline) {
      throw new Error(
        `not recovered ${RECOVERY_MS} ms after restore; since then: ${JSON.stringify(summary(answers))}`,
      );
    }
  }
}

interface Outage {
  /** Answers sent while the line was down (after a short grace for requests already in flight). */
  during: Answer[];
  /** From the restore on. */
  after: Answer[];
  recoveryMs: number;
}

async function outage(cut: () => Promise<void>, restore: () => Promise<void>): Promise<Outage> {
  // Steady before: everything succeeds.
  await sleep(500);
  const before = load.since(load.now() - 500);
  expect(summary(before.filter((a) => !ok(a)))).toEqual({});
  expect(before.length).toBeGreaterThan(RATE / 8);
  const cutAt = load.now();
  await cut();
  await sleep(DOWN_MS);
  const restoreAt = load.now();
  await restore();
  const clean = await recovered(restoreAt);
  return {
    during: load.since(cutAt + 200).filter((a) => a.at < restoreAt),
    after: load.since(restoreAt),
    recoveryMs: clean - restoreAt,
  };
}

beforeAll(async () => {
  await requireService('Redis', '127.0.0.1', 6379);
  target = await pgSchema('fullstack');
  direct = new Pool({ connectionString: target.url, max: 2 });
  pgProxy = new TcpProxy(5432);
  redisProxy = new TcpProxy(6379);
  const pgPort = await pgProxy.start();
  const redisPort = await redisProxy.start();
  stack = await startStackProcess({
    databaseUrl: target.url.replace('127.0.0.1:5432', `127.0.0.1:${pgPort}`),
    redisUrl: `redis://127.0.0.1:${redisPort}`,
    redisPrefix: prefix,
  });
  load = new LoadClient(stack.info, { rate: RATE, concurrency: CONCURRENCY });
  load.start();
  // Warm-up: the first requests of a cold process (JIT, pools filling) are slower.
  await sleep(1000);
}, 40_000);

afterAll(async () => {
  // (beforeAll succeeded, or jest reported its failure already and these throw after it.)
  await load.stop();
  // Only if a test failed before the last one stopped it (stop() resolves once it exited).
  await stack.stop().catch(() => undefined);
  await pgProxy.close();
  await redisProxy.close();
  await direct.end();
  await target.drop();
  const admin = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  await deleteKeys(admin, prefix);
  await admin.quit();
}, 30_000);

describe('the full stack under steady load while its dependencies fail', () => {
  it('(a) PostgreSQL cut and restored: 503 "database" while down, then everything succeeds again', async () => {
    const { during, after, recoveryMs } = await outage(
      () => pgProxy.cut(),
      async () => {
        await pgProxy.restore();
      },
    );
    expectOnlyUnavailable(during, ['database']);
    const refused = during.filter((a) => a.status === 503);
    // Every request needs the database: (almost) nothing got through while it was away — a request
    // whose connection and commit raced the cut may still succeed, and that is correct.
    // Requests that held a connection when the line went may still finish: a few, never most.
    expect(during.filter(ok).length).toBeLessThan(Math.max(5, during.length / 10));
    expect(refused.length).toBeGreaterThan(50);
    expectOnlyUnavailable(after, ['database']);
    expect(recoveryMs).toBeLessThan(RECOVERY_MS);
  }, 30_000);

  it('(b) Redis cut and restored: reads and writes go on (limits fail open, denylist mirror), logins 503 "redis" with Retry-After', async () => {
    const { during, after, recoveryMs } = await outage(
      () => redisProxy.cut(),
      async () => {
        await redisProxy.restore();
      },
    );
    expectOnlyUnavailable(during, ['redis']);
    const data = during.filter((a) => DATA_KINDS.includes(a.kind));
    expect(summary(data.filter((a) => !ok(a)))).toEqual({});
    expect(data.length).toBeGreaterThan(RATE);
    // The login limiter fails closed: 503 with Retry-After (docs/rate-limit.md: 5 s).
    const logins = during.filter((a) => a.kind === 'login');
    expect(logins.length).toBeGreaterThan(3);
    expect(logins.map((a) => [a.status, a.code, a.dependency, a.retryAfter])).toEqual(
      logins.map(() => [503, 'SERVICE_UNAVAILABLE', 'redis', '5']),
    );
    expectOnlyUnavailable(after, ['redis']);
    expect(recoveryMs).toBeLessThan(RECOVERY_MS);
  }, 30_000);

  it('(c) both cut at once and restored: 503s naming one of them, then full recovery', async () => {
    const { during, after, recoveryMs } = await outage(
      async () => {
        await Promise.all([pgProxy.cut(), redisProxy.cut()]);
      },
      async () => {
        await Promise.all([pgProxy.restore(), redisProxy.restore()]);
      },
    );
    expectOnlyUnavailable(during, ['database', 'redis']);
    // Requests that held a connection when the line went may still finish: a few, never most.
    expect(during.filter(ok).length).toBeLessThan(Math.max(5, during.length / 10));
    expect(during.length).toBeGreaterThan(50);
    expectOnlyUnavailable(after, ['database', 'redis']);
    expect(recoveryMs).toBeLessThan(RECOVERY_MS);
  }, 30_000);

  it(`(d) a slow database (${LATENCY_MS} ms each way per chunk): slower answers, successes or fast 503s, never a 500`, async () => {
    const { during, after, recoveryMs } = await outage(
      () => {
        pgProxy.latencyMs = LATENCY_MS;
        return Promise.resolve();
      },
      () => {
        pgProxy.latencyMs = 0;
        return Promise.resolve();
      },
    );
    // A slow line is not an outage: the pool waits up to acquireTimeoutMs, then 503.
    expectOnlyUnavailable(during, ['database'], Infinity);
    expect(during.filter(ok).length).toBeGreaterThan(10);
    // It was slow: each answer that reached the database waited at least a round trip.
    // (A read sent just before the latency was lifted may have had its answer come back at once.)
    const reads = during
      .filter((a) => ok(a) && a.kind === 'read')
      .map((a) => a.ms)
      .sort((x, y) => x - y);
    expect(reads[Math.floor(reads.length / 2)]).toBeGreaterThanOrEqual(2 * LATENCY_MS);
    expectOnlyUnavailable(after, ['database']);
    expect(recoveryMs).toBeLessThan(RECOVERY_MS);
  }, 30_000);

  it('no audit event lost: every successful protected access is in the trail exactly once, the chain verifies; the process never saw an uncaught error and exits by itself', async () => {
    await load.stop();
    const answers = load.answers;
    expect(answers.filter((a) => a.status === 0 || (a.status >= 500 && a.status !== 503))).toEqual([]);
    await stack.call('flush');
    const { rows } = (await direct.query(
      'SELECT request_id, count(*)::int AS n FROM audit_events GROUP BY request_id',
    )) as { rows: { request_id: string | null; n: number }[] };
    const byRequest = new Map(rows.map((r) => [String(r.request_id), r.n]));
    const successes = answers.filter(ok);
    // That the load ran through every phase (about 2,500 successes on a quiet machine), not a
    // throughput bound: a busy machine answers fewer.
    expect(successes.length).toBeGreaterThan(1000);
    const missingOrTwice = successes
      .filter((a) => byRequest.get(a.requestId) !== 1)
      .map((a) => ({ kind: a.kind, requestId: a.requestId, rows: byRequest.get(a.requestId) ?? 0 }));
    expect(missingOrTwice).toEqual([]);
    const verified = await stack.call<{ ok: boolean; brokenAt: unknown }>('verify');
    expect(verified).toMatchObject({ ok: true, brokenAt: null });

    const stopped = await stack.stop();
    expect(stopped).toEqual({ uncaught: [], code: 0, signal: null, stderr: '' });
  }, 40_000);
});
