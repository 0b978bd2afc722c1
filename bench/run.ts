/**
 * `npm run bench`: every variant in bench/apps/ under the same load, in interleaved rounds
 * (A, B, A, B, …), each round a fresh server process; prints medians and ratios to the baseline
 * and writes the raw results to bench/results/. With `--profile=<variant>` it CPU-profiles that
 * variant under load instead. See bench/README.md.
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
import type { CpuProfile, ProfileSummary } from './support/cpu-profile.js';
import { formatCounts } from './metrics/counts.js';
import { parseOptions, usage } from './support/options.js';
import type { BenchOptions } from './support/options.js';
import { runLoad, startServer } from './support/processes.js';
import type { Pin, ServerInfo } from './support/processes.js';
import { REQUEST_PATH } from './support/patient.js';
import { formatTable, summariseVariant } from './support/report.js';
import type { RoundResult } from './support/report.js';

const ROOT = join(__dirname, '..');
const APPS = join(__dirname, 'apps');
const RESULTS = join(__dirname, 'results');
const SUITES: Record<BenchOptions['suite'], string> = {
  core: APPS,
  guards: join(__dirname, 'guards', 'apps'),
  metrics: join(__dirname, 'metrics', 'apps'),
  audit: join(__dirname, 'audit', 'apps'),
};

interface Variant {
  name: string;
  script: string;
}

function discoverVariants(options: BenchOptions): Variant[] {
  const dir = SUITES[options.suite];
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

/** One request per variant before anything is measured: same status and body, or stop. */
async function sanityCheck(
  variants: readonly Variant[],
  env: Record<string, string>,
  pin: Pin,
): Promise<Record<string, unknown>> {
  const seen: Record<string, unknown> = {};
  for (const v of variants) {
    const server = await startServer({ script: v.script, pin, env });
    try {
      const res = await fetch(`${server.url}${REQUEST_PATH}`);
      const body = await res.text();
      const missing = await fetch(`${server.url}/no-such-route`);
      await missing.arrayBuffer();
      if (res.status !== 200)
        throw new Error(`bench: ${v.name} answered ${REQUEST_PATH} with ${res.status}: ${body}`);
      seen[v.name] = {
        status: res.status,
        body,
        headers: Object.fromEntries(res.headers),
        notFoundStatus: missing.status,
      };
    } finally {
      await server.stop();
    }
  }
  const bodies = new Set(Object.values(seen).map((s) => (s as { body: string }).body));
  if (bodies.size !== 1)
    throw new Error(`bench: variants return different bodies: ${JSON.stringify(seen, null, 2)}`);
  return seen;
}

async function runRound(
  v: Variant,
  options: BenchOptions,
  env: Record<string, string>,
  p: { server: Pin; load: Pin },
): Promise<RoundResult & { info: ServerInfo; quiet: { waited: number; busyCores: number } | undefined }> {
  const quiet =
    options.idleWait > 0 ? await waitForQuiet(options.idleWait, options.idleThreshold) : undefined;
  const server = await startServer({ script: v.script, pin: p.server, env });
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
    };
    load = await runLoad(spec, p.load, {
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
      ? windowCpu(before, after, p.server, load.loaderCpu)
      : undefined;
  return { load, server: stats, cpu, quiet, info: server.info };
}

async function benchmark(
  options: BenchOptions,
  variants: readonly Variant[],
  env: Record<string, string>,
  p: { server: Pin; load: Pin },
  note: string,
): Promise<void> {
  const perRound = variants.length * (options.warmup + options.duration + 1.5);
  console.log(
    `caduceus bench — ${variants.map((v) => v.name).join(', ')}\n` +
      `node ${process.version}, ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, caduceus from ${note}\n` +
      `${options.rounds} rounds × (${options.warmup}s warm-up + ${options.duration}s), ${options.connections} connections, pipelining ${options.pipelining}, ` +
      `${p.server === undefined ? 'no CPU pinning' : `server on CPU ${p.server}, load on CPU ${p.load ?? ''}`}; about ${Math.ceil((perRound * options.rounds) / 60)} min\n`,
  );
  const digest = libDigest();
  const sanity = await sanityCheck(variants, env, p.server);
  const rounds: Record<string, RoundResult[]> = Object.fromEntries(variants.map((v) => [v.name, []]));
  const descriptions: Record<string, string> = {};
  for (let round = 1; round <= options.rounds; round++) {
    for (const v of variants) {
      let result = await runRound(v, options, env, p);
      // A recording during which a neighbour took the server's CPU measures the neighbour: redo it.
      for (
        let retry = 1;
        retry <= options.retries && (result.cpu?.foreignCores ?? 0) > options.maxOthers;
        retry++
      ) {
        console.log(
          `round ${round}/${options.rounds}  ${v.name.padEnd(18)} other processes took ${result.cpu?.foreignCores.toFixed(2) ?? ''} cores: recording again (${retry}/${options.retries})`,
        );
        result = await runRound(v, options, env, p);
      }
      descriptions[v.name] = result.info.description;
      rounds[v.name]!.push({
        load: result.load,
        server: result.server,
        cpu: result.cpu,
        quiet: result.quiet,
      });
      const l = result.load;
      const cpu =
        result.cpu === undefined
          ? ''
          : `  server ${result.cpu.serverCores.toFixed(2)} cores, others ${result.cpu.foreignCores.toFixed(2)}`;
      const waited =
        result.quiet !== undefined && result.quiet.waited >= 1
          ? `  (waited ${result.quiet.waited.toFixed(0)}s for a quiet machine)`
          : '';
      const problems =
        l.errors + l.timeouts + l.non2xx > 0
          ? `  ⚠ errors ${l.errors}, timeouts ${l.timeouts}, non-2xx ${l.non2xx}`
          : '';
      console.log(
        `round ${round}/${options.rounds}  ${v.name.padEnd(18)} ${l.requestsPerSec.toFixed(0).padStart(7)} req/s  ` +
          `p50 ${l.latency.p50.toFixed(2)} ms  p99 ${l.latency.p99.toFixed(2)} ms  loader ${l.loaderCpu.toFixed(2)}${cpu}${problems}${waited}`,
      );
    }
  }

  const summaries = variants.map((v) =>
    summariseVariant(v.name, rounds[v.name]!, rounds[options.baseline]!, options.maxOthers),
  );
  console.log(`\n${formatTable(summaries, options.baseline)}\n`);
  for (const s of summaries) {
    for (const w of s.warnings) console.log(`⚠ ${s.name}: ${w}`);
  }
  const counts = formatCounts(rounds, 2 * options.connections * options.pipelining);
  if (counts !== '') console.log(`${counts}\n`);

  mkdirSync(RESULTS, { recursive: true });
  const file = join(RESULTS, `bench-${stamp()}.json`);
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
    variants: Object.fromEntries(
      variants.map((v) => [v.name, { description: descriptions[v.name], sanity: sanity[v.name] }]),
    ),
    summary: summaries,
    rounds,
  };
  writeFileSync(file, `${JSON.stringify(record, null, 2)}\n`);
  writeFileSync(join(RESULTS, 'latest.json'), `${JSON.stringify(record, null, 2)}\n`);
  console.log(`results: ${file}`);
}

async function profile(
  options: BenchOptions,
  variants: readonly Variant[],
  env: Record<string, string>,
  p: { server: Pin; load: Pin },
  { note, built }: CaduceusBuild,
): Promise<void> {
  const dir = join(RESULTS, 'profiles');
  mkdirSync(dir, { recursive: true });
  const run = stamp();
  const summaries = new Map<string, ProfileSummary>();
  const report: string[] = [];
  for (const v of variants) {
    const file = join(dir, `${run}-${v.name}.cpuprofile`);
    if (options.idleWait > 0) await waitForQuiet(options.idleWait, options.idleThreshold);
    console.log(
      `profiling ${v.name}: ${options.warmup}s warm-up, then ${options.duration}s sampled every ${options.profileInterval} µs`,
    );
    const server = await startServer({
      script: v.script,
      pin: p.server,
      env: { ...env, BENCH_CPU_PROFILE: file, BENCH_CPU_PROFILE_INTERVAL: String(options.profileInterval) },
      stdin: true,
    });
    const spec: LoadSpec = {
      url: `${server.url}${REQUEST_PATH}`,
      connections: options.connections,
      pipelining: options.pipelining,
      warmup: 0,
      duration: options.warmup,
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
    const summary = summarise(JSON.parse(readFileSync(file, 'utf8')) as CpuProfile, load.requests, {
      root: ROOT,
      caduceusFile: built,
    });
    summaries.set(v.name, summary);
    const text = `${v.name}: ${load.requestsPerSec.toFixed(0)} req/s while profiled (${file})\n${formatSummary(summary, options.top)}\n`;
    report.push(text);
    console.log(`\n${text}`);
  }
  const base = summaries.get(options.baseline);
  for (const [name, summary] of summaries) {
    if (base === undefined || name === options.baseline) continue;
    const text = formatDifference(name, summary, options.baseline, base, options.top);
    report.push(text);
    console.log(`${text}\n`);
  }
  const file = join(dir, `${run}.txt`);
  writeFileSync(file, `caduceus from ${note}\n\n${report.join('\n')}\n`);
  console.log(
    `profiles: ${dir}/${run}-*.cpuprofile (open in Chrome DevTools → Performance); this report: ${file}`,
  );
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2), process.env);
  if (options.help) {
    console.log(usage());
    return;
  }
  const variants = discoverVariants(
    options.profile === undefined ? options : { ...options, variants: options.profile },
  );
  const caduceus = resolveCaduceus(options.caduceus);
  const env = { BENCH_CADUCEUS_ENTRY: caduceus.entry };
  const p = pins(options.pin);
  if (options.profile !== undefined) {
    // The baseline is always profiled too: the report is the difference.
    await profile(options, variants, env, p, caduceus);
  } else {
    await benchmark(options, variants, env, p, caduceus.note);
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exitCode = 1;
});
