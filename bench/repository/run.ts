/**
 * Repository benchmark (`npm run bench:repository`): what BaseRepository costs over the same raw
 * Knex query, and what a keyset page costs at depth 100,000 of a 200,000-row table compared with
 * the first page and with offset pagination at the same depth. Real PostgreSQL (and SQLite in
 * memory); see bench/repository/README.md for how to read the output.
 */
import type { Knex } from 'knex';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import * as core from '../../lib/index.js';
import type { PatientRow } from './data.js';
import { prng, seedPatients } from './data.js';
import type { MachineLoad, Op } from './measure.js';
import {
  fmt,
  latencies,
  machineLoad,
  median,
  quantile,
  roundOrder,
  table,
  throughput,
  waitForQuiet,
} from './measure.js';

const HELP = `npm run bench:repository [-- options]

  --dialects <list>      postgres,sqlite (default both)
  --parts <list>         overhead,depth (default both)
  --rounds <n>           interleaved rounds per comparison (default 7)
  --round-ms <ms>        target duration of one throughput measurement (default 400)
  --max-ops <n>          upper bound of operations per measurement (default 2000)
  --concurrency <n>      in-flight operations for the concurrent mode (default 8)
  --small-rows <n>       rows of the table for getById/list (default 10000)
  --deep-rows <n>        rows of the keyset/offset table (default 200000)
  --depth <n>            position of the deep page (default 100000)
  --deep-round-ms <ms>   time per latency variant per round (default 250)
  --idle-wait <s>        wait up to this long for a quiet machine before each dialect (default 60)

Environment: BENCH_REPO_PG (default postgres://postgres@127.0.0.1:5432/test); the schema
bench_repo is created, used through search_path, and dropped.`;

const { values: args } = parseArgs({
  options: {
    dialects: { type: 'string', default: 'postgres,sqlite' },
    parts: { type: 'string', default: 'overhead,depth' },
    rounds: { type: 'string', default: '7' },
    'round-ms': { type: 'string', default: '400' },
    'max-ops': { type: 'string', default: '2000' },
    concurrency: { type: 'string', default: '8' },
    'small-rows': { type: 'string', default: '10000' },
    'deep-rows': { type: 'string', default: '200000' },
    depth: { type: 'string', default: '100000' },
    'deep-round-ms': { type: 'string', default: '250' },
    'idle-wait': { type: 'string', default: '60' },
    help: { type: 'boolean', default: false },
  },
});

if (args.help) {
  console.log(HELP);
  process.exit(0);
}

function int(name: keyof typeof args): number {
  const n = Number(args[name]);
  if (!Number.isInteger(n) || n < 1) {
    console.error(`--${name} must be a positive integer`);
    process.exit(2);
  }
  return n;
}

const OPTS = {
  rounds: int('rounds'),
  roundMs: int('round-ms'),
  maxOps: int('max-ops'),
  concurrency: int('concurrency'),
  smallRows: int('small-rows'),
  deepRows: int('deep-rows'),
  depth: int('depth'),
  deepRoundMs: int('deep-round-ms'),
  idleWaitSeconds: int('idle-wait'),
  pageSize: 20,
};
const DIALECTS = args.dialects
  .split(',')
  .map((d) => d.trim())
  .filter((d) => d.length > 0);
const PARTS = new Set(args.parts.split(',').map((p) => p.trim()));
if ([...PARTS].some((p) => p !== 'overhead' && p !== 'depth')) {
  console.error('--parts: overhead, depth');
  process.exit(2);
}
for (const d of DIALECTS) {
  if (d !== 'postgres' && d !== 'sqlite') {
    console.error(`--dialects: unknown dialect ${d} (postgres, sqlite)`);
    process.exit(2);
  }
}
if (OPTS.depth >= OPTS.deepRows || OPTS.depth % OPTS.pageSize !== 0) {
  console.error(`--depth must be a multiple of ${OPTS.pageSize} below --deep-rows`);
  process.exit(2);
}

const SCHEMA = 'bench_repo';
const PG_BASE = process.env.BENCH_REPO_PG ?? 'postgres://postgres@127.0.0.1:5432/test';
const PG_URL = `${PG_BASE}${PG_BASE.includes('?') ? '&' : '?'}options=-c%20search_path%3D${SCHEMA}`;

type Sort = core.SortSpec[];
const BY_ID: Sort = [{ field: 'id', direction: 'asc' }];
const BY_CREATED_DESC: Sort = [{ field: 'created_at', direction: 'desc' }];

function repository(
  db: core.Database,
  table: string,
  maxPageSize?: number,
  hidden: string[] = ['ssn'],
): core.BaseRepository<PatientRow> {
  return new core.BaseRepository<PatientRow>(db, {
    table,
    filterable: ['status', 'family_name', 'created_at'],
    sortable: ['created_at', 'family_name'],
    hidden,
    ...(maxPageSize === undefined ? {} : { maxPageSize }),
  });
}

const log = (line: string): void => {
  console.log(line);
};

/** The SQL statements one call sends, in order (text only, from Knex's `query` events). */
async function statementsOf(
  knex: Knex,
  fn: () => Promise<unknown>,
): Promise<{ sql: string; bindings: unknown[] }[]> {
  const seen: { sql: string; bindings: unknown[] }[] = [];
  const listener = (q: { sql?: string; bindings?: unknown[] }): void => {
    seen.push({ sql: q.sql ?? '', bindings: q.bindings ?? [] });
  };
  knex.on('query', listener);
  try {
    await fn();
  } finally {
    knex.removeListener('query', listener);
  }
  return seen;
}

// ───────────────────────────── part 1: repository vs raw Knex ─────────────────────────────

interface OverheadResult {
  operation: string;
  mode: string;
  concurrency: number;
  opsPerMeasurement: number;
  sql: { repository: string[]; raw: string[]; identical: boolean };
  repositoryOpsPerSec: number[];
  rawOpsPerSec: number[];
  repositoryMedian: number;
  rawMedian: number;
  /** median(repository) / median(raw). */
  ratio: number;
  /** repository / raw within each round: median, min, max. */
  pairedRatio: { median: number; min: number; max: number };
  /** This process's CPU time per call (µs), median over rounds: the JavaScript side of the cost. */
  repositoryCpuUsPerOp: number;
  rawCpuUsPerOp: number;
  target: string;
  met: boolean;
  /** Cores used by other processes (neither this one nor PostgreSQL) while this was measured. */
  otherCores: number | undefined;
}

interface Pair {
  operation: string;
  repository: Op;
  raw: Op;
  /** A diagnostic pair: measured sequentially only, to explain the others. */
  diagnostic?: boolean;
}

async function overhead(
  dialect: core.Dialect,
  db: core.Database,
): Promise<{ rows: number; seed: object; results: OverheadResult[] }> {
  const table = 'patients';
  const seed = await seedPatients(db.knex, dialect, table, OPTS.smallRows);
  log(
    `  ${table}: ${fmt.int(OPTS.smallRows)} rows seeded in ${seed.insertSeconds.toFixed(1)} s, indexes ${seed.indexSeconds.toFixed(1)} s`,
  );
  const repo = repository(db, table);
  const repoNoHidden = repository(db, table, undefined, []);
  const k = db.knex;
  const rand = prng(42);
  const ids = Array.from({ length: 4096 }, () => 1 + Math.floor(rand() * OPTS.smallRows));
  const idAt = (i: number): number => ids[i % ids.length] as number;
  const size = OPTS.pageSize;
  const filters = { status: 'active' };
  const rawPage = (): Knex.QueryBuilder =>
    k(table).where('status', 'active').orderBy('id', 'asc').limit(size).offset(0);
  const rawCount = (): Promise<number> =>
    (k(table).where('status', 'active').count({ n: '*' }).first() as Promise<{ n: number | string }>).then(
      (r) => Number(r.n),
    );

  const pairs: Pair[] = [
    {
      operation: 'getById',
      repository: (i) => repo.getById(idAt(i)),
      raw: (i) =>
        k(table)
          .where({ id: idAt(i) })
          .first(),
    },
    {
      operation: `list ${size} + total`,
      repository: () => repo.list({ filters, sort: BY_ID, page: 1, size }),
      raw: () => Promise.all([rawPage(), rawCount()]),
    },
    {
      operation: `list ${size}, withTotal:false`,
      repository: () => repo.list({ filters, sort: BY_ID, page: 1, size, withTotal: false }),
      raw: () => rawPage(),
    },
    {
      // Diagnostic: the same repository without `hidden`, so rows are returned as the driver made
      // them instead of having a property deleted (see the README).
      operation: `list ${size}, withTotal:false, no hidden (diag)`,
      repository: () => repoNoHidden.list({ filters, sort: BY_ID, page: 1, size, withTotal: false }),
      raw: () => rawPage(),
      diagnostic: true,
    },
  ];

  const modes =
    dialect === 'sqlite'
      ? [{ mode: 'sequential', concurrency: 1 }]
      : [
          { mode: 'sequential', concurrency: 1 },
          { mode: `concurrency ${OPTS.concurrency}`, concurrency: OPTS.concurrency },
        ];

  const results: OverheadResult[] = [];
  for (const pair of pairs) {
    const repoSql = (await statementsOf(k, () => pair.repository(0))).map((s) => s.sql).sort();
    const rawSql = (await statementsOf(k, () => pair.raw(0))).map((s) => s.sql).sort();
    const identical = JSON.stringify(repoSql) === JSON.stringify(rawSql);
    for (const { mode, concurrency } of pair.diagnostic === true ? modes.slice(0, 1) : modes) {
      const load = machineLoad();
      // Warm-up (not recorded), which also calibrates the operations per measurement.
      await throughput(pair.repository, 300, concurrency);
      await throughput(pair.raw, 300, concurrency);
      const rate = (await throughput(pair.raw, 300, concurrency)).opsPerSec;
      const ops = Math.max(200, Math.min(OPTS.maxOps, Math.round((rate * OPTS.roundMs) / 1000)));
      const got = { repository: [] as number[], raw: [] as number[] };
      const cpu = { repository: [] as number[], raw: [] as number[] };
      for (let r = 0; r < OPTS.rounds; r++) {
        for (const v of roundOrder(['repository', 'raw'] as const, r)) {
          const m = await throughput(pair[v], ops, concurrency, r * ops);
          got[v].push(m.opsPerSec);
          cpu[v].push(m.cpuUsPerOp);
        }
      }
      const paired = got.repository.map((x, i) => x / (got.raw[i] as number));
      const ratio = median(got.repository) / median(got.raw);
      const result: OverheadResult = {
        operation: pair.operation,
        mode,
        concurrency,
        opsPerMeasurement: ops,
        sql: { repository: repoSql, raw: rawSql, identical },
        repositoryOpsPerSec: got.repository,
        rawOpsPerSec: got.raw,
        repositoryMedian: median(got.repository),
        rawMedian: median(got.raw),
        ratio,
        pairedRatio: { median: median(paired), min: Math.min(...paired), max: Math.max(...paired) },
        repositoryCpuUsPerOp: median(cpu.repository),
        rawCpuUsPerOp: median(cpu.raw),
        target: pair.diagnostic === true ? 'diagnostic, no target' : 'ratio ≥ 0.90',
        met: ratio >= 0.9,
        otherCores: load.stop().otherCores,
      };
      results.push(result);
      log(
        `  ${pair.operation} [${mode}, ${ops} ops × ${OPTS.rounds} rounds]: repository ${fmt.int(result.repositoryMedian)} ops/s, raw ${fmt.int(result.rawMedian)} ops/s, ratio ${fmt.ratio(ratio)} (paired ${fmt.ratio(result.pairedRatio.median)}), CPU ${fmt.int(result.repositoryCpuUsPerOp)} vs ${fmt.int(result.rawCpuUsPerOp)} µs/op, others ${fmt.cores(result.otherCores)}`,
      );
    }
  }
  return { rows: OPTS.smallRows, seed, results };
}

// ───────────────────────────── part 2: keyset and offset at depth ─────────────────────────────

interface DepthVariant {
  medianMs: number;
  p90Ms: number;
  samples: number;
  roundMediansMs: number[];
}

interface DepthResult {
  sort: string;
  deepCursor: { method: string; rowAtDepth: number; crossCheckedWithSql: boolean };
  samePageRows: boolean;
  keysetFirst: DepthVariant;
  keysetDeep: DepthVariant;
  offsetDeep: DepthVariant;
  /** keyset at depth / keyset first page (target ≤ 2). */
  keysetDeepOverFirst: number;
  /** offset at depth / keyset at depth. */
  offsetDeepOverKeysetDeep: number;
  target: string;
  met: boolean;
  otherCores: number | undefined;
  plans: { keysetDeep: string; offsetDeep: string; keysetDeepBounded: string };
  diagnostic: { what: string; sql: string; keysetDeepBounded: DepthVariant; overKeysetFirst: number };
}

function describeSort(sort: Sort): string {
  const full = sort.some((s) => s.field === 'id')
    ? sort
    : [...sort, { field: 'id', direction: sort[sort.length - 1]?.direction ?? 'asc' }];
  return full.map((s) => `${s.field} ${s.direction}`).join(', ');
}

async function explain(
  db: core.Database,
  dialect: core.Dialect,
  statement: { sql: string; bindings: unknown[] },
): Promise<string> {
  // Knex reports PostgreSQL statements with $n placeholders; knex.raw wants `?`.
  const sql = statement.sql.replace(/\$\d+/g, '?');
  const bindings = statement.bindings as Knex.RawBinding[];
  if (dialect === 'postgres') {
    const r = await db.knex.raw<{ rows: { 'QUERY PLAN': string }[] }>(
      `explain (analyze, buffers) ${sql}`,
      bindings,
    );
    return r.rows.map((x) => x['QUERY PLAN']).join('\n');
  }
  const r = await db.knex.raw<{ detail: string }[]>(`explain query plan ${sql}`, bindings);
  return r.map((x) => x.detail).join('\n');
}

/** The lines of a plan worth printing: scans, sorts, index conditions, filters, timing. */
function planSummary(plan: string): string[] {
  return plan
    .split('\n')
    .filter((l) => /Scan|SCAN|SEARCH|Sort|TEMP|Index Cond|Filter|Rows Removed|Execution Time/.test(l))
    .map((l) => l.trim().slice(0, 150));
}

async function depth(
  dialect: core.Dialect,
  db: core.Database,
): Promise<{ rows: number; seed: object; results: DepthResult[] }> {
  const table = 'patients_deep';
  const seed = await seedPatients(db.knex, dialect, table, OPTS.deepRows);
  log(
    `  ${table}: ${fmt.int(OPTS.deepRows)} rows seeded in ${seed.insertSeconds.toFixed(1)} s (batches of ${seed.batch}, one transaction), indexes + analyze ${seed.indexSeconds.toFixed(1)} s`,
  );
  const k = db.knex;
  const repo = repository(db, table);
  // Reaching the depth: a second repository on the same table, identical but for maxPageSize, reads
  // the first `depth` rows as one keyset page; its next_cursor is the repository's own encoding of
  // row number `depth`. A cursor holds only the sort signature and that row's values, so it is
  // valid for `repo` too. Its next page is rows depth+1 … depth+20: the same rows as offset page
  // depth/20 + 1, which is checked below.
  const walker = repository(db, table, OPTS.depth);
  const size = OPTS.pageSize;
  const page = OPTS.depth / size + 1;
  const results: DepthResult[] = [];

  for (const sort of [BY_ID, BY_CREATED_DESC]) {
    const label = describeSort(sort);
    const load = machineLoad();
    const walked = await walker.list({ sort, limit: OPTS.depth, cursor: null });
    const deepCursor = walked.next_cursor;
    const atDepth = walked.items[OPTS.depth - 1];
    if (deepCursor === null || atDepth === undefined) throw new Error('the walk did not reach the depth');
    const fullSort = label.split(', ').map((s) => s.split(' ') as [string, 'asc' | 'desc']);
    const rawAt = (await fullSort
      .reduce((qb, [f, d]) => qb.orderBy(f, d), k(table).select('id'))
      .offset(OPTS.depth - 1)
      .limit(1)
      .first()) as { id: number } | undefined;
    const crossChecked = rawAt?.id === atDepth.id;
    if (!crossChecked) throw new Error(`row ${OPTS.depth} by SQL is ${rawAt?.id}, by the walk ${atDepth.id}`);

    const variants = {
      keysetFirst: () => repo.list({ sort, limit: size, cursor: null }),
      keysetDeep: () => repo.list({ sort, limit: size, cursor: deepCursor }),
      offsetDeep: () => repo.list({ sort, page, size, withTotal: false }),
    };
    const deepIds = (await variants.keysetDeep()).items.map((r) => r.id);
    const offsetIds = (await variants.offsetDeep()).items.map((r) => r.id);
    const samePageRows = deepIds.length === size && JSON.stringify(deepIds) === JSON.stringify(offsetIds);
    if (!samePageRows) throw new Error(`keyset and offset pages at depth differ for ${label}`);

    // Diagnostic, not a repository call: the repository's own deep keyset statement with one more,
    // redundant predicate in front — `first sort column <= its cursor value` (>= when ascending) —
    // which gives the database an index range to start from instead of a filter over every row
    // before the cursor. Sent with knex.raw, so it skips the query builder: it shows what the
    // database would do with that statement, not a cost of the repository.
    const keysetStmt = (await statementsOf(k, variants.keysetDeep))[0];
    const first = sort[0];
    if (keysetStmt === undefined || first === undefined || !keysetStmt.sql.includes(' where '))
      throw new Error('could not capture the keyset statement');
    const boundedSql = keysetStmt.sql
      .replace(/\$\d+/g, '?')
      .replace(' where ', ` where ?? ${first.direction === 'desc' ? '<=' : '>='} ? and `);
    const boundedBindings = [
      first.field,
      keysetStmt.bindings[0],
      ...keysetStmt.bindings,
    ] as Knex.RawBinding[];
    const keysetDeepBounded = async (): Promise<{ id: number }[]> => {
      const r = (await k.raw(boundedSql, boundedBindings)) as { id: number }[] | { rows: { id: number }[] };
      return Array.isArray(r) ? r : r.rows;
    };
    const boundedIds = (await keysetDeepBounded()).slice(0, size).map((r) => r.id);
    if (JSON.stringify(boundedIds) !== JSON.stringify(deepIds))
      throw new Error(`the bounded keyset statement returns other rows for ${label}`);
    const allVariants = { ...variants, keysetDeepBounded };

    const names = ['keysetFirst', 'keysetDeep', 'offsetDeep', 'keysetDeepBounded'] as const;
    for (const n of names) await latencies(allVariants[n], 100, 5); // warm-up, not recorded
    const samples: Record<(typeof names)[number], number[]> = {
      keysetFirst: [],
      keysetDeep: [],
      offsetDeep: [],
      keysetDeepBounded: [],
    };
    const roundMedians: Record<(typeof names)[number], number[]> = {
      keysetFirst: [],
      keysetDeep: [],
      offsetDeep: [],
      keysetDeepBounded: [],
    };
    for (let r = 0; r < OPTS.rounds; r++) {
      for (const n of roundOrder(names, r)) {
        const got = await latencies(allVariants[n], OPTS.deepRoundMs, 5);
        samples[n].push(...got);
        roundMedians[n].push(median(got));
      }
    }
    const summary = (n: (typeof names)[number]): DepthVariant => ({
      medianMs: median(samples[n]),
      p90Ms: quantile(samples[n], 0.9),
      samples: samples[n].length,
      roundMediansMs: roundMedians[n],
    });
    const keysetFirst = summary('keysetFirst');
    const keysetDeep = summary('keysetDeep');
    const offsetDeep = summary('offsetDeep');
    const bounded = summary('keysetDeepBounded');

    const offsetStmt = (await statementsOf(k, variants.offsetDeep))[0];
    const plans = {
      keysetDeep: await explain(db, dialect, keysetStmt),
      offsetDeep: offsetStmt === undefined ? '' : await explain(db, dialect, offsetStmt),
      keysetDeepBounded: await explain(db, dialect, { sql: boundedSql, bindings: boundedBindings }),
    };
    const ratio = keysetDeep.medianMs / keysetFirst.medianMs;
    const result: DepthResult = {
      sort: label,
      deepCursor: {
        method: `next_cursor of one keyset page of ${OPTS.depth} rows from an identical repository with maxPageSize ${OPTS.depth}`,
        rowAtDepth: atDepth.id,
        crossCheckedWithSql: crossChecked,
      },
      samePageRows,
      keysetFirst,
      keysetDeep,
      offsetDeep,
      diagnostic: {
        what: "the repository's deep keyset SQL plus a leading bound on the first sort column, sent with knex.raw",
        sql: boundedSql,
        keysetDeepBounded: bounded,
        overKeysetFirst: bounded.medianMs / keysetFirst.medianMs,
      },
      keysetDeepOverFirst: ratio,
      offsetDeepOverKeysetDeep: offsetDeep.medianMs / keysetDeep.medianMs,
      target: 'keyset deep / first ≤ 2',
      met: ratio <= 2,
      otherCores: load.stop().otherCores,
      plans,
    };
    results.push(result);
    log(
      `  sort ${label}: keyset first ${fmt.ms(keysetFirst.medianMs)} ms, keyset @${fmt.int(OPTS.depth)} ${fmt.ms(keysetDeep.medianMs)} ms, offset page ${page} ${fmt.ms(offsetDeep.medianMs)} ms (row ${fmt.int(OPTS.depth)} = id ${atDepth.id}, keyset and offset pages identical), others ${fmt.cores(result.otherCores)}`,
    );
    log(`    keyset @depth plan: ${planSummary(plans.keysetDeep).join(' | ')}`);
    log(`    offset @depth plan: ${planSummary(plans.offsetDeep).join(' | ')}`);
    log(
      `    diagnostic, same keyset SQL + leading bound (raw): ${fmt.ms(bounded.medianMs)} ms; plan: ${planSummary(plans.keysetDeepBounded).join(' | ')}`,
    );
  }
  return { rows: OPTS.deepRows, seed, results };
}

// ───────────────────────────── driver ─────────────────────────────

interface DialectReport {
  dialect: core.Dialect;
  url: string;
  serverVersion: string | undefined;
  overhead: Awaited<ReturnType<typeof overhead>> | undefined;
  depth: Awaited<ReturnType<typeof depth>> | undefined;
  /** Busy cores (besides this process) when the dialect started, after waiting for a quiet machine. */
  busyAtStart: number | undefined;
  load: MachineLoad;
  seconds: number;
}

async function runDialect(dialect: core.Dialect): Promise<DialectReport> {
  const busyAtStart = await waitForQuiet(OPTS.idleWaitSeconds * 1000, 0.3);
  if (busyAtStart !== undefined && busyAtStart >= 0.3)
    log(
      `\nwarning: the machine is busy (${busyAtStart.toFixed(2)} cores used by others); results will be noisy`,
    );
  const started = Date.now();
  const url = dialect === 'postgres' ? PG_URL : 'sqlite::memory:';
  // The slow-query log stays on (as in production) but above anything this run does on purpose.
  const db = core.createDatabase({ url, slowQueryMs: 10_000 });
  const health = await db.healthCheck();
  if (health.status !== 'healthy') {
    await db.close();
    throw new Error(`${dialect}: database unreachable (${health.error ?? 'unknown'}) at ${url}`);
  }
  log(`\n${dialect}: ${health.version ?? ''}`);
  try {
    if (dialect === 'postgres') {
      await db.knex.raw('drop schema if exists ?? cascade', [SCHEMA]);
      await db.knex.raw('create schema ??', [SCHEMA]);
    }
    const load = machineLoad();
    const o = PARTS.has('overhead') ? await overhead(dialect, db) : undefined;
    const d = PARTS.has('depth') ? await depth(dialect, db) : undefined;
    return {
      dialect,
      url: url.replace(/\/\/([^:@/]+):[^@]*@/, '//$1:***@'),
      serverVersion: health.version,
      busyAtStart,
      overhead: o,
      depth: d,
      load: load.stop(),
      seconds: (Date.now() - started) / 1000,
    };
  } finally {
    if (dialect === 'postgres') await db.knex.raw('drop schema if exists ?? cascade', [SCHEMA]);
    await db.close();
  }
}

function printReport(reports: readonly DialectReport[]): void {
  const printOverhead = reports.some((r) => r.overhead !== undefined);
  const printDepth = reports.some((r) => r.depth !== undefined);
  if (printOverhead) printOverheadTable(reports);
  if (printDepth) printDepthTable(reports);
  log(
    '\n"others": average cores used meanwhile by processes other than this one and PostgreSQL (should be near 0).',
  );
  log('Machine during each dialect (average busy cores):');
  for (const r of reports) {
    const l = r.load;
    log(
      `  ${r.dialect}: ${r.seconds.toFixed(0)} s, machine ${fmt.cores(l.machineBusyCores)} of ${l.cores}: this process ${fmt.cores(l.benchProcessCores)}, PostgreSQL ${fmt.cores(l.postgresCores)}, others ${fmt.cores(l.otherCores)}; load average ${l.loadavg1mStart.toFixed(2)} → ${l.loadavg1mEnd.toFixed(2)}`,
    );
  }
}

function printOverheadTable(reports: readonly DialectReport[]): void {
  log('\n═══ BaseRepository vs the same raw Knex query (ops/s: median of interleaved rounds) ═══');
  log(
    `list ${OPTS.pageSize}: filters { status: 'active' }, sort id asc, page 1, size ${OPTS.pageSize}; "+ total" adds the count(*) run in parallel (list's default)\n`,
  );
  log(
    table(
      [
        'dialect',
        'operation',
        'mode',
        'repository ops/s',
        'raw ops/s',
        'ratio',
        'paired median (min–max)',
        'CPU µs/op repo / raw',
        'same SQL',
        '≥ 0.90',
        'others',
      ],
      reports.flatMap((r) =>
        (r.overhead?.results ?? []).map((x) => [
          r.dialect,
          x.operation,
          x.mode,
          fmt.int(x.repositoryMedian),
          fmt.int(x.rawMedian),
          fmt.ratio(x.ratio),
          `${fmt.ratio(x.pairedRatio.median)} (${fmt.ratio(x.pairedRatio.min)}–${fmt.ratio(x.pairedRatio.max)})`,
          `${fmt.int(x.repositoryCpuUsPerOp)} / ${fmt.int(x.rawCpuUsPerOp)}`,
          x.sql.identical ? 'yes' : 'NO',
          x.target.startsWith('diag') ? '(diag)' : x.met ? 'yes' : 'NO',
          fmt.cores(x.otherCores),
        ]),
      ),
    ),
  );
}

function printDepthTable(reports: readonly DialectReport[]): void {
  log(
    `\n═══ Keyset vs offset pages, ${fmt.int(OPTS.pageSize)} rows at depth ${fmt.int(OPTS.depth)} of ${fmt.int(OPTS.deepRows)} (median latency, sequential) ═══\n`,
  );
  log(
    table(
      [
        'dialect',
        'sort',
        'keyset first ms',
        `keyset @${OPTS.depth / 1000}k ms`,
        `offset p${OPTS.depth / OPTS.pageSize + 1} ms`,
        'deep/first',
        'offset/keyset',
        '≤ 2×',
        'diag: keyset @depth + bound ms',
        'others',
      ],
      reports.flatMap((r) =>
        (r.depth?.results ?? []).map((x) => [
          r.dialect,
          x.sort,
          fmt.ms(x.keysetFirst.medianMs),
          fmt.ms(x.keysetDeep.medianMs),
          fmt.ms(x.offsetDeep.medianMs),
          fmt.x(x.keysetDeepOverFirst),
          fmt.x(x.offsetDeepOverKeysetDeep),
          x.met ? 'yes' : 'NO',
          `${fmt.ms(x.diagnostic.keysetDeepBounded.medianMs)} (${fmt.x(x.diagnostic.overKeysetFirst)} first)`,
          fmt.cores(x.otherCores),
        ]),
      ),
    ),
  );
}

async function main(): Promise<void> {
  const started = new Date();
  log(
    `repository benchmark: ${DIALECTS.join(', ')}; ${OPTS.rounds} interleaved rounds; node ${process.version}; ${cpus().length} CPUs`,
  );
  const reports: DialectReport[] = [];
  for (const d of DIALECTS) reports.push(await runDialect(d as core.Dialect));
  printReport(reports);
  const dir = join(__dirname, '..', 'results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `repository-${started.toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(
    file,
    `${JSON.stringify(
      {
        started: started.toISOString(),
        seconds: (Date.now() - started.getTime()) / 1000,
        node: process.version,
        cpus: cpus().length,
        options: OPTS,
        dialects: reports,
      },
      null,
      2,
    )}\n`,
  );
  log(`\nJSON: ${file}`);
}

main().catch((err: unknown) => {
  // Driver errors can quote a whole multi-row INSERT: keep the message short.
  const e = err instanceof Error ? err : new Error(String(err));
  console.error(`${e.name}: ${e.message.slice(0, 500)}`);
  console.error(e.stack?.split('\n').slice(1, 8).join('\n'));
  process.exitCode = 1;
});
