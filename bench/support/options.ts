/**
 * Options of `npm run bench`: `--name=value` / `--name value` on the command line, else the
 * environment variable `BENCH_NAME`, else the default. See bench/README.md.
 */
export interface BenchOptions {
  /** Seconds recorded per round and variant. */
  duration: number;
  /** Seconds of unrecorded load before each recording (every round starts a fresh server). */
  warmup: number;
  connections: number;
  pipelining: number;
  rounds: number;
  /**
   * Which set of variants (bench/support/suites.ts): `core` (bench/apps/), `guards` (security() and
   * rateLimit()), `metrics` (metrics() and express-prom-bundle), `audit` (the audit trail), `auth`
   * (authenticate() and passport-jwt) or `full` (the whole stack against node:http, Express and the
   * same features assembled by hand).
   */
  suite: 'core' | 'guards' | 'metrics' | 'audit' | 'auth' | 'full';
  /** Variant names (files of the suite's apps folder without `.ts`); undefined = all. */
  variants: readonly string[] | undefined;
  /** The variant the ratios are relative to (default: the suite's, bare-express or unauthenticated). */
  baseline: string;
  /** Which caduceus the apps load: a fresh build of lib/, the existing dist/, the TypeScript source, or a path to a CommonJS build. */
  caduceus: string;
  /** Pin the server to CPU 0 and the load generator to CPU 1 with taskset. */
  pin: 'auto' | 'on' | 'off';
  /** Longest wait, in seconds, for the machine to go quiet before each recording (0 = never wait). */
  idleWait: number;
  /** Busy cores (whole machine) under which it counts as quiet. */
  idleThreshold: number;
  /** A recording during which other processes took more than this many cores from the server's CPU is repeated. */
  maxOthers: number;
  /** How many times such a recording is repeated at most (the last one counts). */
  retries: number;
  /** Variants to CPU-profile instead of benchmarking. */
  profile: readonly string[] | undefined;
  /** What `profile` samples: CPU time (µs per request) or allocations (bytes per request). */
  profileKind: 'cpu' | 'heap';
  /** V8 sampling interval for profiles, microseconds. */
  profileInterval: number;
  /** Lines of the profile report per section. */
  top: number;
  help: boolean;
}

interface Spec {
  key: keyof BenchOptions;
  flag: string;
  help: string;
}

const SPECS: readonly Spec[] = [
  { key: 'duration', flag: 'duration', help: 'seconds recorded per round and variant (default 5)' },
  { key: 'warmup', flag: 'warmup', help: 'seconds of unrecorded load before each recording (default 2)' },
  { key: 'connections', flag: 'connections', help: 'concurrent keep-alive connections (default 32)' },
  { key: 'pipelining', flag: 'pipelining', help: 'requests in flight per connection (default 1)' },
  { key: 'rounds', flag: 'rounds', help: 'interleaved rounds; medians are reported (default 5)' },
  {
    key: 'suite',
    flag: 'suite',
    help: 'core | guards | metrics | audit | auth | full: bench/apps/, security() and rateLimit() vs helmet + express-rate-limit by hand, metrics() vs express-prom-bundle, a protected route with the audit trail on vs off, authenticate() vs passport-jwt, or the whole stack vs node:http, Express and the same features by hand (default core)',
  },
  {
    key: 'variants',
    flag: 'variants',
    help: "comma-separated files of the suite's apps folder to run (default all)",
  },
  {
    key: 'baseline',
    flag: 'baseline',
    help: 'variant the ratios are relative to (default bare-express; unauthenticated in --suite auth)',
  },
  {
    key: 'caduceus',
    flag: 'caduceus',
    help: 'build | dist | source | <file>: fresh build of lib/, dist/ as is, lib/ via tsx, or any CommonJS build (default build)',
  },
  { key: 'pin', flag: 'pin', help: 'auto | on | off: taskset server to CPU 0, load to CPU 1 (default auto)' },
  {
    key: 'idleWait',
    flag: 'idle-wait',
    help: 'max seconds to wait for a quiet machine before each recording (default 10, 0 = off)',
  },
  {
    key: 'idleThreshold',
    flag: 'idle-threshold',
    help: 'busy cores under which the machine counts as quiet (default 0.3)',
  },
  {
    key: 'maxOthers',
    flag: 'max-others',
    help: "repeat a recording when other processes took more cores than this from the server's CPU (default 0.1)",
  },
  {
    key: 'retries',
    flag: 'retries',
    help: 'repeats of such a recording at most; the last one counts (default 2)',
  },
  {
    key: 'profile',
    flag: 'profile',
    help: 'comma-separated variants to CPU-profile under load instead of benchmarking',
  },
  {
    key: 'profileKind',
    flag: 'profile-kind',
    help: "cpu (default): V8's CPU sampler, µs per request; heap: its sampling heap profiler, bytes allocated per request (collected objects included)",
  },
  {
    key: 'profileInterval',
    flag: 'profile-interval',
    help: 'sampling interval of profiles in µs (default 200)',
  },
  { key: 'top', flag: 'top', help: 'rows per section of the profile report (default 25)' },
];

const envName = (flag: string): string => `BENCH_${flag.toUpperCase().replace(/-/g, '_')}`;

export function usage(): string {
  const rows = SPECS.map((s) => `  --${`${s.flag}=…`.padEnd(20)} ${envName(s.flag).padEnd(24)} ${s.help}`);
  return [
    'Usage: npm run bench -- [options]   (each option can also be set in the environment)',
    '',
    ...rows,
  ].join('\n');
}

function positive(name: string, raw: string, integer: boolean, allowZero = false): number {
  const n = Number(raw);
  const ok = Number.isFinite(n) && (allowZero ? n >= 0 : n > 0) && (!integer || Number.isInteger(n));
  if (!ok)
    throw new Error(
      `bench: --${name} must be a ${integer ? 'whole ' : ''}number${allowZero ? ' ≥ 0' : ' > 0'}, got ${JSON.stringify(raw)}`,
    );
  return n;
}

function oneOf<T extends string>(name: string, raw: string, allowed: readonly T[]): T {
  if (!(allowed as readonly string[]).includes(raw))
    throw new Error(`bench: --${name} must be one of ${allowed.join(', ')}, got ${JSON.stringify(raw)}`);
  return raw as T;
}

const list = (raw: string | undefined): readonly string[] | undefined => {
  const items = raw
    ?.split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  return items === undefined || items.length === 0 ? undefined : items;
};

/** Reads argv (without node and script) and env; throws on unknown flags and bad values. */
export function parseOptions(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
): BenchOptions {
  const given = new Map<string, string>();
  let help = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--help' || arg === '-h') {
      help = true;
      continue;
    }
    const match = /^--([a-z-]+)(?:=(.*))?$/.exec(arg);
    const flag = match?.[1];
    if (flag === undefined || !SPECS.some((s) => s.flag === flag))
      throw new Error(`bench: unknown argument ${arg}\n\n${usage()}`);
    let value = match?.[2];
    if (value === undefined) {
      value = argv[i + 1];
      i++;
      if (value === undefined) throw new Error(`bench: --${flag} needs a value`);
    }
    given.set(flag, value);
  }
  const read = (flag: string): string | undefined => {
    const value = given.get(flag) ?? env[envName(flag)];
    return value === undefined || value === '' ? undefined : value;
  };
  const num = (flag: string, fallback: number, integer: boolean, allowZero = false): number => {
    const raw = read(flag);
    return raw === undefined ? fallback : positive(flag, raw, integer, allowZero);
  };

  return {
    duration: num('duration', 5, false),
    warmup: num('warmup', 2, false, true),
    connections: num('connections', 32, true),
    pipelining: num('pipelining', 1, true),
    rounds: num('rounds', 5, true),
    suite: oneOf('suite', read('suite') ?? 'core', ['core', 'guards', 'metrics', 'audit', 'auth', 'full']),
    variants: list(read('variants')),
    baseline: read('baseline') ?? 'bare-express',
    caduceus: read('caduceus') ?? 'build',
    pin: oneOf('pin', read('pin') ?? 'auto', ['auto', 'on', 'off']),
    idleWait: num('idle-wait', 10, false, true),
    idleThreshold: num('idle-threshold', 0.3, false),
    maxOthers: num('max-others', 0.1, false, true),
    retries: num('retries', 2, true, true),
    profile: list(read('profile')),
    profileKind: oneOf('profile-kind', read('profile-kind') ?? 'cpu', ['cpu', 'heap']),
    profileInterval: num('profile-interval', 200, true),
    top: num('top', 25, true),
    help,
  };
}
