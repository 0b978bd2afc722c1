/**
 * `npm run bench:auth`: what authentication costs per request. The same route as `npm run bench`,
 * inside caduceus' pipeline, without authentication, behind caduceus' `authenticate()` +
 * `requireRoles()`, and behind passport-jwt hand-wired as its README shows; plain Express for scale.
 * Same machinery as bench/run.ts (bench/support/): a fresh server process per recording,
 * interleaved rounds, medians, server CPU per request, the server pinned to one core.
 * With `--profile=<variant>` it CPU-profiles that variant and the baseline under load instead.
 * See bench/README.md.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import type { LoadResult, LoadSpec } from '../load.js';
import { git, libDigest, resolveCaduceus } from '../support/build.js';
import type { CaduceusBuild } from '../support/build.js';
import { loadCaduceus } from '../support/caduceus.js';
import { snapshot, waitForQuiet, windowCpu } from '../support/cpu-meter.js';
import type { CpuSnapshot } from '../support/cpu-meter.js';
import { formatDifference, formatSummary, summarise } from '../support/cpu-profile.js';
import type { CpuProfile, ProfileSummary } from '../support/cpu-profile.js';
import { parseOptions, usage } from '../support/options.js';
import type { BenchOptions } from '../support/options.js';
import { REQUEST_PATH } from '../support/patient.js';
import { runLoad, startServer } from '../support/processes.js';
import type { Pin, ServerInfo } from '../support/processes.js';
import { formatTable, summariseVariant } from '../support/report.js';
import type { RoundResult, VariantSummary } from '../support/report.js';
import { AUDIENCE, ISSUER, ROLE, SECRET } from './shared.js';

const ROOT = join(__dirname, '..', '..');
const RESULTS = join(ROOT, 'bench', 'results');

interface Variant {
  name: string;
  script: string;
  /** Protected by a token: must answer 401 without one, 403 without the role. */
  authenticated: boolean;
}

/**
 * In report order; the first is the default baseline. `require.resolve` (tsx resolves `.ts`) fails
 * at start-up if an app is missing, and lets knip follow the apps as part of this entry point.
 */
const ALL: readonly Variant[] = [
  { name: 'unauthenticated', script: require.resolve('./apps/unauthenticated.ts'), authenticated: false },
  { name: 'caduceus-auth', script: require.resolve('./apps/caduceus-auth.ts'), authenticated: true },
  {
    name: 'caduceus-auth-nocache',
    script: require.resolve('./apps/caduceus-auth-nocache.ts'),
    authenticated: true,
  },
  {
    name: 'passport-jwt-string',
    script: require.resolve('./apps/passport-jwt-string.ts'),
    authenticated: true,
  },
  {
    name: 'passport-jwt-keyobject',
    script: require.resolve('./apps/passport-jwt-keyobject.ts'),
    authenticated: true,
  },
  // The one of `npm run bench`, unchanged: Express 5 and the route, nothing else.
  { name: 'bare-express', script: require.resolve('../apps/bare-express.ts'), authenticated: false },
];

const UNAUTHENTICATED = 'unauthenticated';
const CADUCEUS = 'caduceus-auth';
const BARE = 'bare-express';
/** caduceus-auth ÷ unauthenticated must reach this (issue 4). */
const TARGET = 0.85;

function chooseVariants(options: BenchOptions): Variant[] {
  const names = ALL.map((v) => v.name);
  for (const wanted of [...(options.variants ?? []), ...(options.profile ?? []), options.baseline]) {
    if (!names.includes(wanted))
      throw new Error(`bench:auth: no variant ${wanted} (there are ${names.join(', ')})`);
  }
  const wanted = options.profile ?? options.variants;
  return ALL.filter(
    (v) => wanted === undefined || wanted.includes(v.name) || v.name === options.baseline,
  ).sort((a, b) => (a.name === options.baseline ? -1 : b.name === options.baseline ? 1 : 0));
}

function pins(mode: BenchOptions['pin']): { server: Pin; load: Pin } {
  const available = cpus().length >= 2 && existsSync('/usr/bin/taskset');
  if (mode === 'on' && !available) throw new Error('bench:auth: --pin=on needs taskset and at least 2 CPUs');
  return mode === 'off' || !available ? { server: undefined, load: undefined } : { server: '0', load: '1' };
}

const stamp = (): string => new Date().toISOString().replace(/[:.]/g, '-');

interface Tokens {
  /** Sent with every request of every variant (the unauthenticated ones ignore it): role `provider`. */
  provider: string;
  /** Valid, but without the role: 403 from every authenticated variant. */
  patient: string;
  /** The provider token with one signature character changed: 401. */
  tampered: string;
}

/** Made once, with the caduceus build the servers load, and the key and policy they all check. */
async function makeTokens(): Promise<Tokens> {
  const core = loadCaduceus();
  const auth = core.createAuth({
    secret: SECRET,
    algorithm: 'HS256',
    issuer: ISSUER,
    audience: AUDIENCE,
    redis: false,
    jwksUrl: false,
    // Longer than any run, so no token expires in the middle of one.
    accessTokenTtlSeconds: 6 * 3600,
    logger: core.createLogger('auth', { console: false }),
  });
  try {
    const provider = auth.createTokens({
      userId: '4242',
      email: 'bench@example.org',
      roles: [ROLE],
    }).access_token;
    const patient = auth.createTokens({ userId: '4242', roles: ['patient'] }).access_token;
    // A middle character of the signature: its padding bits are not involved, so only the HMAC can tell.
    const at = provider.lastIndexOf('.') + 10;
    const tampered = `${provider.slice(0, at)}${provider[at] === 'A' ? 'B' : 'A'}${provider.slice(at + 1)}`;
    return { provider, patient, tampered };
  } finally {
    await auth.close();
  }
}

const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` });

interface Sanity {
  status: number;
  body: string;
  headers: Record<string, string>;
  notFoundStatus: number;
  withoutToken: number;
  tamperedToken: number;
  withoutRole: number;
}

/**
 * One server per variant before anything is measured: 200 and the same body with the token; an
 * authenticated variant must answer 401 without a token and with a tampered one, 403 without the role.
 */
async function sanityCheck(
  variants: readonly Variant[],
  env: Record<string, string>,
  pin: Pin,
  tokens: Tokens,
): Promise<Record<string, Sanity>> {
  const seen: Record<string, Sanity> = {};
  const problems: string[] = [];
  for (const v of variants) {
    const server = await startServer({ script: v.script, pin, env });
    try {
      const get = async (path: string, headers: Record<string, string>): Promise<[number, string]> => {
        const res = await fetch(`${server.url}${path}`, { headers });
        return [res.status, await res.text()];
      };
      const res = await fetch(`${server.url}${REQUEST_PATH}`, { headers: bearer(tokens.provider) });
      const body = await res.text();
      const s: Sanity = {
        status: res.status,
        body,
        headers: Object.fromEntries(res.headers),
        notFoundStatus: (await get('/no-such-route', bearer(tokens.provider)))[0],
        withoutToken: (await get(REQUEST_PATH, {}))[0],
        tamperedToken: (await get(REQUEST_PATH, bearer(tokens.tampered)))[0],
        withoutRole: (await get(REQUEST_PATH, bearer(tokens.patient)))[0],
      };
      seen[v.name] = s;
      if (s.status !== 200)
        problems.push(`${v.name} answered ${REQUEST_PATH} (with the token) with ${s.status}: ${body}`);
      if (v.authenticated) {
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
    } finally {
      await server.stop();
    }
  }
  const bodies = new Set(Object.values(seen).map((s) => s.body));
  if (bodies.size !== 1) problems.push(`variants return different bodies: ${JSON.stringify(seen, null, 2)}`);
  if (problems.length > 0) throw new Error(`bench:auth: sanity check failed:\n  ${problems.join('\n  ')}`);
  return seen;
}

type Recording = RoundResult & { info: ServerInfo };

async function record(
  v: Variant,
  options: BenchOptions,
  env: Record<string, string>,
  p: { server: Pin; load: Pin },
  headers: Record<string, string>,
): Promise<Recording> {
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
      headers,
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

function roundLine(round: number, rounds: number, name: string, r: Recording): string {
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
    `round ${round}/${rounds}  ${name.padEnd(23)} ${l.requestsPerSec.toFixed(0).padStart(7)} req/s  ` +
    `p50 ${l.latency.p50.toFixed(2)} ms  p99 ${l.latency.p99.toFixed(2)} ms${cpuPerRequest}  loader ${l.loaderCpu.toFixed(2)}${cpu}${problems}${waited}`
  );
}

interface Ratio {
  of: string;
  to: string;
  ratio: number;
  pairedRatio: number;
}

/** Every variant against the unauthenticated pipeline and against bare Express, then caduceus-auth against each. */
function ratios(rounds: Record<string, RoundResult[]>, names: readonly string[]): Ratio[] {
  const out: Ratio[] = [];
  const add = (of: string, to: string): void => {
    const a = rounds[of];
    const b = rounds[to];
    if (a === undefined || b === undefined || of === to) return;
    const s = summariseVariant(of, a, b);
    out.push({ of, to, ratio: s.ratio, pairedRatio: s.pairedRatio });
  };
  for (const of of names) if (of !== BARE) add(of, UNAUTHENTICATED);
  for (const of of names) add(of, BARE);
  for (const to of names) if (to !== UNAUTHENTICATED && to !== BARE) add(CADUCEUS, to);
  return out;
}

function formatRatios(list: readonly Ratio[], summaries: readonly VariantSummary[]): string {
  const cpu = new Map(summaries.map((s) => [s.name, s.serverCpuUsPerRequest]));
  const added = (r: Ratio): string => {
    const d = (cpu.get(r.of) ?? Number.NaN) - (cpu.get(r.to) ?? Number.NaN);
    return Number.isNaN(d) ? '–' : `${d >= 0 ? '+' : ''}${d.toFixed(1)}`;
  };
  const header = ['ratio (req/s)', 'median ×', 'paired ×', 'CPU µs/req Δ', ''];
  const rows = list.map((r) => [
    `${r.of} / ${r.to}`,
    r.ratio.toFixed(3),
    r.pairedRatio.toFixed(3),
    added(r),
    r.of === CADUCEUS && r.to === UNAUTHENTICATED
      ? `target ≥ ${TARGET}: ${Math.min(r.ratio, r.pairedRatio) >= TARGET ? 'met' : r.ratio >= TARGET || r.pairedRatio >= TARGET ? 'borderline' : 'MISSED'}`
      : '',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => (i === 0 || i === cells.length - 1 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(header), widths.map((w) => '─'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

async function benchmark(
  options: BenchOptions,
  variants: readonly Variant[],
  env: Record<string, string>,
  p: { server: Pin; load: Pin },
  note: string,
  tokens: Tokens,
): Promise<void> {
  const perRound = variants.length * (options.warmup + options.duration + 1.5);
  console.log(
    `caduceus bench:auth — ${variants.map((v) => v.name).join(', ')}\n` +
      `node ${process.version}, ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, caduceus from ${note}\n` +
      `${options.rounds} rounds × (${options.warmup}s warm-up + ${options.duration}s), ${options.connections} connections, pipelining ${options.pipelining}, ` +
      `${p.server === undefined ? 'no CPU pinning' : `server on CPU ${p.server}, load on CPU ${p.load ?? ''}`}; about ${Math.ceil((perRound * options.rounds) / 60)} min\n` +
      `every request carries "Authorization: Bearer <HS256 access token, role ${ROLE}>" (${tokens.provider.length} characters), in every variant\n`,
  );
  const digest = libDigest();
  const sanity = await sanityCheck(variants, env, p.server, tokens);
  console.log('');
  const headers = bearer(tokens.provider);
  const rounds: Record<string, RoundResult[]> = Object.fromEntries(variants.map((v) => [v.name, []]));
  const descriptions: Record<string, string> = {};
  for (let round = 1; round <= options.rounds; round++) {
    for (const v of variants) {
      let result = await record(v, options, env, p, headers);
      // A recording during which a neighbour took the server's CPU measures the neighbour: redo it.
      for (
        let retry = 1;
        retry <= options.retries && (result.cpu?.foreignCores ?? 0) > options.maxOthers;
        retry++
      ) {
        console.log(
          `round ${round}/${options.rounds}  ${v.name.padEnd(23)} other processes took ${result.cpu?.foreignCores.toFixed(2) ?? ''} cores: recording again (${retry}/${options.retries})`,
        );
        result = await record(v, options, env, p, headers);
      }
      descriptions[v.name] = result.info.description;
      rounds[v.name]!.push({
        load: result.load,
        server: result.server,
        cpu: result.cpu,
        quiet: result.quiet,
      });
      console.log(roundLine(round, options.rounds, v.name, result));
    }
  }

  const summaries = variants.map((v) =>
    summariseVariant(v.name, rounds[v.name]!, rounds[options.baseline]!, options.maxOthers),
  );
  const ratioList = ratios(
    rounds,
    variants.map((v) => v.name),
  );
  console.log(`\n${formatTable(summaries, options.baseline)}\n\n${formatRatios(ratioList, summaries)}\n`);
  for (const s of summaries) for (const w of s.warnings) console.log(`⚠ ${s.name}: ${w}`);

  mkdirSync(RESULTS, { recursive: true });
  const file = join(RESULTS, `auth-${stamp()}.json`);
  const result = {
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
    tokenLength: tokens.provider.length,
    variants: Object.fromEntries(
      variants.map((v) => [v.name, { description: descriptions[v.name], sanity: sanity[v.name] }]),
    ),
    summary: summaries,
    ratios: ratioList,
    rounds,
  };
  writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
  writeFileSync(join(RESULTS, 'auth-latest.json'), `${JSON.stringify(result, null, 2)}\n`);
  console.log(`results: ${file}`);
}

async function profile(
  options: BenchOptions,
  variants: readonly Variant[],
  env: Record<string, string>,
  p: { server: Pin; load: Pin },
  { note, built }: CaduceusBuild,
  tokens: Tokens,
): Promise<void> {
  const dir = join(RESULTS, 'profiles');
  mkdirSync(dir, { recursive: true });
  const run = stamp();
  const summaries = new Map<string, ProfileSummary>();
  const report: string[] = [];
  for (const v of variants) {
    const file = join(dir, `${run}-auth-${v.name}.cpuprofile`);
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
      headers: bearer(tokens.provider),
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
  const file = join(dir, `${run}-auth.txt`);
  writeFileSync(file, `caduceus from ${note}\n\n${report.join('\n')}\n`);
  console.log(
    `profiles: ${dir}/${run}-auth-*.cpuprofile (open in Chrome DevTools → Performance); this report: ${file}`,
  );
}

async function main(): Promise<void> {
  // Same options as `npm run bench`; only the baseline differs: the pipeline without authentication.
  const options = parseOptions(process.argv.slice(2), {
    ...process.env,
    BENCH_BASELINE: process.env.BENCH_BASELINE ?? UNAUTHENTICATED,
  });
  if (options.help) {
    console.log(
      `${usage().replace('npm run bench ', 'npm run bench:auth ')}\n\nVariants: ${ALL.map((v) => v.name).join(', ')}; baseline ${UNAUTHENTICATED}.`,
    );
    return;
  }
  const variants = chooseVariants(options);
  const caduceus = resolveCaduceus(options.caduceus);
  const env = { BENCH_CADUCEUS_ENTRY: caduceus.entry };
  // This process makes the tokens with the very build the servers load.
  process.env.BENCH_CADUCEUS_ENTRY = caduceus.entry;
  const tokens = await makeTokens();
  const p = pins(options.pin);
  if (options.profile !== undefined) await profile(options, variants, env, p, caduceus, tokens);
  else await benchmark(options, variants, env, p, caduceus.note, tokens);
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exitCode = 1;
});
