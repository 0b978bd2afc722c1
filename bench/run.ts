/**
 * `npm run bench`: every variant of a suite (bench/apps/ by default; see support/suites.ts) under the same load, in interleaved rounds
 * (A, B, A, B, …), each round a fresh server process; prints medians and ratios to the baseline
 * and writes the raw results to bench/results/. With `--profile=<variant>` it CPU-profiles that
 * variant under load instead. Suites `auth` and `full` send a bearer token, made at start, with
 * every request. See bench/README.md.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import type { LoadResult, LoadSpec } from './load.js';
import { git, libDigest, resolveCaduceus } from './support/build.js';
import type { CaduceusBuild } from './support/build.js';
import { snapshot, waitForQuiet, windowCpu } from './support/cpu-meter.js';
import type { CpuSnapshot } from './support/cpu-meter.js';
import { formatDifference, formatSummary, summarise } from './support/cpu-profile.js';
import type { CpuProfile, ProfileSummary, ProfileUnit } from './support/cpu-profile.js';
import type { HeapProfile } from './support/heap-profile.js';
import { asCpuProfile } from './support/heap-profile.js';
import { formatCounts } from './metrics/counts.js';
import { parseOptions, usage } from './support/options.js';
import type { BenchOptions } from './support/options.js';
import { runLoad, startServer } from './support/processes.js';
import type { Pin, ServerInfo } from './support/processes.js';
import { REQUEST_PATH } from './support/patient.js';
import { formatRatios, formatTable, ratiosOf, summariseVariant } from './support/report.js';
import type { RoundResult } from './support/report.js';
import { SUITES } from './support/suites.js';
import type { Suite } from './support/suites.js';
import { bearer, makeTokens } from './support/tokens.js';
import type { Tokens } from './support/tokens.js';

const ROOT = join(__dirname, '..');
const APPS = join(__dirname, 'apps');
const RESULTS = join(__dirname, 'results');

/** What every request of a run carries, and the tokens the sanity check tries. */
interface Run {
  suite: Suite;
  env: Record<string, string>;
  pins: { server: Pin; load: Pin };
  tokens: Tokens | undefined;
  headers: Record<string, string> | undefined;
}

interface Variant {
  name: string;
  script: string;
}

function discoverVariants(options: BenchOptions): Variant[] {
  const dir = SUITES[options.suite].dir;
  const all = readdirSync(dir)
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))
    .map((f) => ({ name: f.slice(0, -3), script: join(dir, f) }));
  // Every suite is measured against the same baseline, bare Express.
  if (!all.some((v) => v.name === 'bare-express'))
    all.push({ name: 'bare-express', script: join(APPS, 'bare-express.ts') });
  const names = all.map((v) => v.name);
  for (const wanted of [...(options.variants ?? []), ...(options.profile ?? []), options.baseline]) {
    if (!names.includes(wanted))
      throw new Error(`bench: no variant ${wanted} (the suite has ${names.join(', ')})`);
  }
  const chosen = options.variants === undefined ? all : all.filter((v) => options.variants?.includes(v.name));
  if (!chosen.some((v) => v.name === options.baseline))
    chosen.push(all.find((v) => v.name === options.baseline)!);
  // Baseline first, the rest alphabetically: A, B, C, A, B, C, …
  return chosen.sort((a, b) =>
    a.name === options.baseline ? -1 : b.name === options.baseline ? 1 : a.name.localeCompare(b.name),
  );
}

function pins(mode: BenchOptions['pin']): { server: Pin; load: Pin } {
  const available = cpus().length >= 2 && existsSync('/usr/bin/taskset');
  if (mode === 'on' && !available) throw new Error('bench: --pin=on needs taskset and at least 2 CPUs');
  return mode === 'off' || !available ? { server: undefined, load: undefined } : { server: '0', load: '1' };
}

const stamp = (): string => new Date().toISOString().replace(/[:.]/g, '-');

interface Sanity {
  status: number;
  body: string;
  headers: Record<string, string>;
  notFoundStatus: number;
  /** With a token suite: the answers without a token, to a tampered one, and to one without the role. */
  withoutToken?: number;
  tamperedToken?: number;
  withoutRole?: number;
}

/**
 * One server per variant before anything is measured: 200 and the same body (with the token, in a
 * token suite), or stop. In a token suite every variant not listed as open must answer 401 without
 * a token and to a tampered one, and 403 to a valid token without the role.
 */
async function sanityCheck(variants: readonly Variant[], run: Run): Promise<Record<string, Sanity>> {
  const seen: Record<string, Sanity> = {};
  const problems: string[] = [];
  for (const v of variants) {
    const server = await startServer({ script: v.script, pin: run.pins.server, env: run.env });
    try {
      const get = async (path: string, headers: Record<string, string> = {}): Promise<[number, string]> => {
        const res = await fetch(`${server.url}${path}`, { headers });
        return [res.status, await res.text()];
      };
      const res = await fetch(`${server.url}${REQUEST_PATH}`, { headers: run.headers ?? {} });
      const body = await res.text();
      const s: Sanity = {
        status: res.status,
        body,
        headers: Object.fromEntries(res.headers),
        notFoundStatus: (await get('/no-such-route', run.headers))[0],
      };
      if (res.status !== 200) problems.push(`${v.name} answered ${REQUEST_PATH} with ${res.status}: ${body}`);
      const t = run.tokens;
      if (t !== undefined) {
        s.withoutToken = (await get(REQUEST_PATH))[0];
        s.tamperedToken = (await get(REQUEST_PATH, bearer(t.tampered)))[0];
        s.withoutRole = (await get(REQUEST_PATH, bearer(t.patient)))[0];
        if (!run.suite.open.includes(v.name)) {
          if (s.withoutToken !== 401)
            problems.push(`${v.name} answered ${s.withoutToken} without a token, not 401`);
          if (s.tamperedToken !== 401)
            problems.push(`${v.name} answered ${s.tamperedToken} to a tampered token, not 401`);
          if (s.withoutRole !== 403)
            problems.push(`${v.name} answered ${s.withoutRole} without the role, not 403`);
        }
        console.log(
          `sanity  ${v.name.padEnd(23)} token ${s.status}  no token ${s.withoutToken}  tampered ${s.tamperedToken}  ` +
            `no role ${s.withoutRole}  unknown route ${s.notFoundStatus}`,
        );
      }
      seen[v.name] = s;
    } finally {
      await server.stop();
    }
  }
  const bodies = new Set(Object.values(seen).map((s) => s.body));
  if (bodies.size !== 1) problems.push(`variants return different bodies: ${JSON.stringify(seen, null, 2)}`);
  if (problems.length > 0) throw new Error(`bench: sanity check failed:\n  ${problems.join('\n  ')}`);
  return seen;
}

type Recording = RoundResult & { info: ServerInfo };

async function runRound(v: Variant, options: BenchOptions, run: Run): Promise<Recording> {
  const quiet =
    options.idleWait > 0 ? await waitForQuiet(options.idleWait, options.idleThreshold) : undefined;
  const server = await startServer({ script: v.script, pin: run.pins.server, env: run.env });
  let load: LoadResult;
  let before: CpuSnapshot | undefined;
  let after: CpuSnapshot | undefined;
  try {
    const spec: LoadSpec = {
      url: `${server.url}${REQUEST_PATH}`,
      connections: options.connections,
      pipelining: options.pipelining,
      warmup: options.warmup,
      duration: options.duration,
      ...(run.headers === undefined ? {} : { headers: run.headers }),
    };
    load = await runLoad(spec, run.pins.load, {
      onMeasure: () => (before = snapshot(server.info.pid)),
      onResult: () => (after = snapshot(server.info.pid)),
    });
  } catch (err) {
    await server.stop();
    throw err;
  }
  const stats = await server.stop();
  const cpu =
    before !== undefined && after !== undefined
      ? windowCpu(before, after, run.pins.server, load.loaderCpu)
      : undefined;
  return { load, server: stats, cpu, quiet, info: server.info };
}

function roundLine(round: number, rounds: number, name: string, width: number, r: Recording): string {
  const l = r.load;
  const cpu =
    r.cpu === undefined
      ? ''
      : `  server ${r.cpu.serverCores.toFixed(2)} cores, others ${r.cpu.foreignCores.toFixed(2)}`;
  const cpuPerRequest =
    r.cpu === undefined ? '' : `  ${((r.cpu.serverCores / l.requestsPerSec) * 1e6).toFixed(1)} µs/req`;
  const problems =
    l.errors + l.timeouts + l.non2xx > 0
      ? `  ⚠ errors ${l.errors}, timeouts ${l.timeouts}, non-2xx ${l.non2xx}`
      : '';
  const waited =
    r.quiet !== undefined && r.quiet.waited >= 1
      ? `  (waited ${r.quiet.waited.toFixed(0)}s for a quiet machine)`
      : '';
  return (
    `round ${round}/${rounds}  ${name.padEnd(width)} ${l.requestsPerSec.toFixed(0).padStart(7)} req/s  ` +
    `p50 ${l.latency.p50.toFixed(2)} ms  p99 ${l.latency.p99.toFixed(2)} ms${cpuPerRequest}  loader ${l.loaderCpu.toFixed(2)}${cpu}${problems}${waited}`
  );
}

/** `bench-<time>.json` and `latest.json`; `auth-…` and `auth-latest.json` for a suite with its own prefix. */
const resultsFile = (suite: Suite, name: string): string =>
  join(RESULTS, suite.results === 'bench' && name === 'latest.json' ? name : `${suite.results}-${name}`);

async function benchmark(
  options: BenchOptions,
  variants: readonly Variant[],
  run: Run,
  note: string,
): Promise<void> {
  const p = run.pins;
  const perRound = variants.length * (options.warmup + options.duration + 1.5);
  const width = Math.max(18, ...variants.map((v) => v.name.length));
  console.log(
    `caduceus bench --suite ${options.suite} — ${variants.map((v) => v.name).join(', ')}\n` +
      `node ${process.version}, ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, caduceus from ${note}\n` +
      `${options.rounds} rounds × (${options.warmup}s warm-up + ${options.duration}s), ${options.connections} connections, pipelining ${options.pipelining}, ` +
      `${p.server === undefined ? 'no CPU pinning' : `server on CPU ${p.server}, load on CPU ${p.load ?? ''}`}; about ${Math.ceil((perRound * options.rounds) / 60)} min\n` +
      (run.tokens === undefined
        ? ''
        : `every request carries "Authorization: Bearer <HS256 access token, role provider>" (${run.tokens.provider.length} characters), in every variant\n`),
  );
  const digest = libDigest();
  const sanity = await sanityCheck(variants, run);
  if (run.tokens !== undefined) console.log('');
  const rounds: Record<string, RoundResult[]> = Object.fromEntries(variants.map((v) => [v.name, []]));
  const descriptions: Record<string, string> = {};
  /** Cores other processes took from the server's CPU in every recording made, retries included. */
  const stolen: number[] = [];
  for (let round = 1; round <= options.rounds; round++) {
    for (const v of variants) {
      let result = await runRound(v, options, run);
      stolen.push(result.cpu?.foreignCores ?? 0);
      // A recording during which a neighbour took the server's CPU measures the neighbour: redo it.
      for (
        let retry = 1;
        retry <= options.retries && (result.cpu?.foreignCores ?? 0) > options.maxOthers;
        retry++
      ) {
        console.log(
          `round ${round}/${options.rounds}  ${v.name.padEnd(width)} other processes took ${result.cpu?.foreignCores.toFixed(2) ?? ''} cores: recording again (${retry}/${options.retries})`,
        );
        result = await runRound(v, options, run);
        stolen.push(result.cpu?.foreignCores ?? 0);
      }
      descriptions[v.name] = result.info.description;
      rounds[v.name]!.push({
        load: result.load,
        server: result.server,
        cpu: result.cpu,
        quiet: result.quiet,
      });
      console.log(roundLine(round, options.rounds, v.name, width, result));
    }
  }

  const summaries = variants.map((v) =>
    summariseVariant(v.name, rounds[v.name]!, rounds[options.baseline]!, options.maxOthers),
  );
  const ratios = ratiosOf(rounds, run.suite.ratios?.(variants.map((v) => v.name)) ?? []);
  console.log(`\n${formatTable(summaries, options.baseline)}\n`);
  if (ratios.length > 0) console.log(`${formatRatios(ratios)}\n`);
  const kept = Object.values(rounds).flat();
  const disturbed = kept.filter((r) => (r.cpu?.foreignCores ?? 0) > options.maxOthers).length;
  console.log(
    `other processes on the server's CPU: ${stolen.length} recordings made (${stolen.length - kept.length} redone), ` +
      `mean ${(stolen.reduce((a, b) => a + b, 0) / Math.max(1, stolen.length)).toFixed(3)} cores, ` +
      `max ${Math.max(0, ...stolen).toFixed(2)}; ${disturbed} of ${kept.length} kept recordings above ${options.maxOthers}\n`,
  );
  for (const s of summaries) {
    for (const w of s.warnings) console.log(`⚠ ${s.name}: ${w}`);
  }
  const counts = formatCounts(rounds, 2 * options.connections * options.pipelining);
  if (counts !== '') console.log(`${counts}\n`);

  mkdirSync(RESULTS, { recursive: true });
  const file = resultsFile(run.suite, `${stamp()}.json`);
  const record = {
    date: new Date().toISOString(),
    git: {
      commit: git(['rev-parse', 'HEAD']),
      dirty: (git(['status', '--porcelain', '--', 'lib', 'bench']) ?? '') !== '',
      libDigest: digest,
    },
    machine: {
      node: process.version,
      platform: process.platform,
      arch: process.arch,
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model,
      memoryGb: totalmem() / 2 ** 30,
    },
    options,
    caduceus: note,
    pinning: p,
    ...(run.tokens === undefined ? {} : { tokenLength: run.tokens.provider.length }),
    variants: Object.fromEntries(
      variants.map((v) => [v.name, { description: descriptions[v.name], sanity: sanity[v.name] }]),
    ),
    summary: summaries,
    ratios,
    others: { recordings: stolen, redone: stolen.length - kept.length, disturbed },
    rounds,
  };
  writeFileSync(file, `${JSON.stringify(record, null, 2)}\n`);
  writeFileSync(resultsFile(run.suite, 'latest.json'), `${JSON.stringify(record, null, 2)}\n`);
  console.log(`results: ${file}`);
}

async function profile(
  options: BenchOptions,
  variants: readonly Variant[],
  run: Run,
  { note, built }: CaduceusBuild,
): Promise<void> {
  const p = run.pins;
  const dir = join(RESULTS, 'profiles');
  mkdirSync(dir, { recursive: true });
  const name = `${stamp()}-${options.suite}`;
  const summaries = new Map<string, ProfileSummary>();
  const report: string[] = [];
  const heap = options.profileKind === 'heap';
  const unit: ProfileUnit = heap ? 'B' : 'µs';
  const extension = heap ? 'heapprofile' : 'cpuprofile';
  for (const v of variants) {
    const file = join(dir, `${name}-${v.name}.${extension}`);
    if (options.idleWait > 0) await waitForQuiet(options.idleWait, options.idleThreshold);
    console.log(
      heap
        ? `profiling ${v.name}'s allocations: ${options.warmup}s warm-up, then ${options.duration}s sampled every 512 bytes`
        : `profiling ${v.name}: ${options.warmup}s warm-up, then ${options.duration}s sampled every ${options.profileInterval} µs`,
    );
    const server = await startServer({
      script: v.script,
      pin: p.server,
      env: {
        ...run.env,
        ...(heap ? { BENCH_HEAP_PROFILE: file } : { BENCH_CPU_PROFILE: file }),
        BENCH_CPU_PROFILE_INTERVAL: String(options.profileInterval),
      },
      stdin: true,
    });
    const spec: LoadSpec = {
      url: `${server.url}${REQUEST_PATH}`,
      connections: options.connections,
      pipelining: options.pipelining,
      warmup: 0,
      duration: options.warmup,
      ...(run.headers === undefined ? {} : { headers: run.headers }),
    };
    let load: LoadResult;
    try {
      if (options.warmup > 0) await runLoad(spec, p.load);
      server.child.stdin?.write('profile-start\n');
      await server.waitFor('PROFILING', 10_000);
      load = await runLoad({ ...spec, duration: options.duration }, p.load);
    } finally {
      await server.stop();
    }
    if (load.non2xx + load.errors > 0)
      console.log(`⚠ ${v.name}: ${load.non2xx} non-2xx responses and ${load.errors} errors while profiled`);
    const raw = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile | HeapProfile;
    const profiled = heap ? asCpuProfile(raw as HeapProfile) : (raw as CpuProfile);
    const summary = summarise(profiled, load.requests, { root: ROOT, caduceusFile: built });
    summaries.set(v.name, summary);
    const text = `${v.name}: ${load.requestsPerSec.toFixed(0)} req/s while profiled (${file})\n${formatSummary(summary, options.top, unit)}\n`;
    report.push(text);
    console.log(`\n${text}`);
  }
  const base = summaries.get(options.baseline);
  for (const [variant, summary] of summaries) {
    if (base === undefined || variant === options.baseline) continue;
    const text = formatDifference(variant, summary, options.baseline, base, options.top, unit);
    report.push(text);
    console.log(`${text}\n`);
  }
  const file = join(dir, `${name}.txt`);
  writeFileSync(file, `caduceus from ${note}\n\n${report.join('\n')}\n`);
  console.log(
    `profiles: ${dir}/${name}-*.${extension} (open in Chrome DevTools → ${heap ? 'Memory' : 'Performance'}); this report: ${file}`,
  );
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const first = parseOptions(argv, process.env);
  const suite = SUITES[first.suite];
  // The baseline defaults to the suite's own (`--suite auth`: the pipeline without authentication).
  const options = parseOptions(argv, {
    ...process.env,
    BENCH_BASELINE: process.env.BENCH_BASELINE ?? suite.baseline,
  });
  if (options.help) {
    console.log(usage());
    return;
  }
  const variants = discoverVariants(
    options.profile === undefined ? options : { ...options, variants: options.profile },
  );
  const caduceus = resolveCaduceus(options.caduceus);
  // This process makes the tokens with the very build the servers load.
  const tokens = suite.token ? await makeTokens(caduceus.entry) : undefined;
  const run: Run = {
    suite,
    env: { BENCH_CADUCEUS_ENTRY: caduceus.entry },
    pins: pins(options.pin),
    tokens,
    headers: tokens === undefined ? undefined : bearer(tokens.provider),
  };
  if (options.profile !== undefined) {
    // The baseline is always profiled too: the report is the difference.
    await profile(options, variants, run, caduceus);
  } else {
    await benchmark(options, variants, run, caduceus.note);
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exitCode = 1;
});
