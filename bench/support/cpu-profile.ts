/**
 * Summarises a V8 CPU profile (`.cpuprofile`, as written by `Profiler.stop` or `node --cpu-prof`)
 * in per-request terms: where the server's CPU time went, by package and by function, self and
 * inclusive. Open the same file in Chrome DevTools (Performance tab) for the flame chart.
 */
import { existsSync, readFileSync } from 'node:fs';
import { SourceMap } from 'node:module';
import { dirname, relative, resolve, sep } from 'node:path';

export interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}

export interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface Row {
  name: string;
  /** Microseconds over the whole profile. */
  us: number;
}

export interface ProfileSummary {
  /** Microseconds covered by samples. */
  totalUs: number;
  requests: number;
  selfByCategory: Row[];
  /** Every sample charged to the innermost caduceus, Express, router or app frame on its stack. */
  byOwner: Row[];
  selfByFunction: Row[];
  /** caduceus functions: self time plus what they call, up to the next Express, router or app frame. */
  caduceusAttributed: Row[];
}

export interface SummariseOptions {
  /** Repository root: paths are shown relative to it, and lib/ under it is caduceus. */
  root: string;
  /** The built caduceus file the server loaded (its `.map` beside it turns positions into lib/ lines). */
  caduceusFile?: string | undefined;
}

/** Frameworks whose frames end a caduceus attribution: past them, the time is theirs (or the app's). */
const OWNERS = new Set(['caduceus', 'express', 'router', 'bench (app)']);

const SPECIAL = new Set(['(garbage collector)', '(program)', '(idle)', '(root)']);

const pathOf = (url: string): string =>
  url.startsWith('file://') ? decodeURIComponent(url.slice('file://'.length)) : url;

/** Names frames: which package they belong to, and `function file:line` (through the source map for caduceus' build). */
class Frames {
  readonly #root: string;
  readonly #caduceusFile: string | undefined;
  readonly #map: SourceMap | undefined;
  readonly #categories = new Map<string, string>();
  readonly #labels = new Map<string, string>();

  constructor(options: SummariseOptions) {
    this.#root = options.root;
    this.#caduceusFile = options.caduceusFile;
    const mapFile = options.caduceusFile === undefined ? undefined : `${options.caduceusFile}.map`;
    this.#map =
      mapFile !== undefined && existsSync(mapFile)
        ? new SourceMap(JSON.parse(readFileSync(mapFile, 'utf8')) as never)
        : undefined;
  }

  category(frame: CallFrame): string {
    const { url, functionName } = frame;
    if (url === '') return SPECIAL.has(functionName) ? functionName : '(native)';
    let cat = this.#categories.get(url);
    if (cat !== undefined) return cat;
    const path = pathOf(url);
    const nm = path.lastIndexOf(`${sep}node_modules${sep}`);
    const rel = relative(this.#root, path);
    if (url.startsWith('node:')) cat = 'node (internals)';
    else if (path === this.#caduceusFile || rel.startsWith(`lib${sep}`) || rel.startsWith(`dist${sep}`))
      cat = 'caduceus';
    else if (nm !== -1) {
      const parts = path.slice(nm + 14).split(sep);
      cat = parts[0]!.startsWith('@') ? `${parts[0]!}/${parts[1] ?? ''}` : parts[0]!;
    } else if (rel.startsWith(`bench${sep}`)) cat = 'bench (app)';
    else cat = 'other';
    this.#categories.set(url, cat);
    return cat;
  }

  label(frame: CallFrame): string {
    const key = `${frame.functionName}\u0000${frame.url}\u0000${frame.lineNumber}\u0000${frame.columnNumber}`;
    let label = this.#labels.get(key);
    if (label === undefined) {
      label = this.#label(frame);
      this.#labels.set(key, label);
    }
    return label;
  }

  #label(frame: CallFrame): string {
    const name = frame.functionName === '' ? '(anonymous)' : frame.functionName;
    if (frame.url === '') return name;
    const path = pathOf(frame.url);
    if (path === this.#caduceusFile && this.#map !== undefined) {
      const entry = this.#map.findEntry(frame.lineNumber, frame.columnNumber) as {
        originalSource?: string;
        originalLine?: number;
      };
      if (entry.originalSource !== undefined && entry.originalLine !== undefined) {
        const source = relative(this.#root, resolve(dirname(path), entry.originalSource));
        return `${name} ${source}:${entry.originalLine + 1}`;
      }
    }
    const nm = path.lastIndexOf(`${sep}node_modules${sep}`);
    const short =
      nm !== -1 ? path.slice(nm + 14) : path.startsWith('node:') ? path : relative(this.#root, path);
    return `${name} ${short}:${frame.lineNumber + 1}`;
  }
}

const sortRows = (map: Map<string, number>): Row[] =>
  [...map].map(([name, us]) => ({ name, us })).sort((a, b) => b.us - a.us);

function add(map: Map<string, number>, key: string, us: number): void {
  map.set(key, (map.get(key) ?? 0) + us);
}

interface Stack {
  /** Package that owns the sample (innermost caduceus, Express, router or app frame), or the leaf's package. */
  owner: string;
  /** Innermost caduceus function when no Express, router or app frame lies between it and the leaf. */
  caduceus: string | undefined;
}

export function summarise(profile: CpuProfile, requests: number, options: SummariseOptions): ProfileSummary {
  const frames = new Frames(options);
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const node of profile.nodes) {
    byId.set(node.id, node);
    for (const child of node.children ?? []) parent.set(child, node.id);
  }
  const stacks = new Map<number, Stack>();
  const stackOf = (id: number): Stack => {
    let stack = stacks.get(id);
    if (stack !== undefined) return stack;
    const leaf = frames.category(byId.get(id)!.callFrame);
    stack = { owner: OWNERS.has(leaf) ? leaf : `${leaf} (outside any middleware)`, caduceus: undefined };
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const frame = byId.get(at)!.callFrame;
      const cat = frames.category(frame);
      if (!OWNERS.has(cat)) continue;
      stack.owner = cat;
      if (cat === 'caduceus') stack.caduceus = frames.label(frame);
      break;
    }
    stacks.set(id, stack);
    return stack;
  };

  const selfCat = new Map<string, number>();
  const owners = new Map<string, number>();
  const selfFn = new Map<string, number>();
  const caduceus = new Map<string, number>();
  let total = 0;
  const { samples, timeDeltas } = profile;
  for (let i = 0; i < samples.length; i++) {
    // A sample stands for the time until the next one (how DevTools attributes it).
    const us = timeDeltas[i + 1] ?? 0;
    const id = samples[i]!;
    const frame = byId.get(id)!.callFrame;
    total += us;
    add(selfCat, frames.category(frame), us);
    add(selfFn, frames.label(frame), us);
    const stack = stackOf(id);
    add(owners, stack.owner, us);
    if (stack.caduceus !== undefined) add(caduceus, stack.caduceus, us);
  }
  return {
    totalUs: total,
    requests,
    selfByCategory: sortRows(selfCat),
    byOwner: sortRows(owners),
    selfByFunction: sortRows(selfFn),
    caduceusAttributed: sortRows(caduceus),
  };
}

const IDLE = '(idle)';
const busyOf = (summary: ProfileSummary): number =>
  summary.totalUs - (summary.selfByCategory.find((r) => r.name === IDLE)?.us ?? 0);

/**
 * What a profile's weights are: CPU time in µs, or (a heap profile read through `asCpuProfile`)
 * bytes allocated.
 */
export type ProfileUnit = 'µs' | 'B';

export function formatSummary(summary: ProfileSummary, top: number, unit: ProfileUnit = 'µs'): string {
  const { totalUs, requests } = summary;
  const busy = busyOf(summary);
  const perReq = (us: number): string =>
    (requests > 0 ? (us / requests).toFixed(unit === 'B' ? 0 : 2) : 'n/a').padStart(8);
  const share = (us: number): string => `${((100 * us) / busy).toFixed(1)}%`.padStart(7);
  const table = (title: string, rows: readonly Row[]): string[] =>
    rows.length === 0
      ? []
      : [
          '',
          title.replace('time', unit === 'B' ? 'allocation' : 'time'),
          `${`${unit}/req`.padStart(8)} ${(unit === 'B' ? 'of all' : 'of busy').padStart(7)}  name`,
          ...rows
            .filter((r) => !r.name.startsWith(IDLE))
            .slice(0, top)
            .map((r) => `${perReq(r.us)} ${share(r.us)}  ${r.name}`),
        ];
  return [
    unit === 'B'
      ? `sampled ${(totalUs / 2 ** 20).toFixed(1)} MiB of allocations (objects collected by GC included), ${requests} requests → ${perReq(busy).trim()} bytes allocated per request`
      : `profiled ${(totalUs / 1000).toFixed(0)} ms, main thread busy ${(busy / 1000).toFixed(0)} ms (idle ${(((totalUs - busy) / totalUs) * 100).toFixed(0)}%), ` +
        `${requests} requests → ${perReq(busy).trim()} µs of main-thread CPU per request`,
    ...table('Self time by package', summary.selfByCategory),
    ...table(
      'Who the time is for: each sample charged to the innermost caduceus / express / router / app frame above it',
      summary.byOwner,
    ),
    ...table('Self time by function', summary.selfByFunction),
    ...table(
      'caduceus functions: self time + what they call (winston, node, …) up to the next express/router/app frame',
      summary.caduceusAttributed,
    ),
  ].join('\n');
}

/** What a variant costs per request beyond the baseline: differences of µs per request, largest first. */
export function formatDifference(
  name: string,
  summary: ProfileSummary,
  baselineName: string,
  baseline: ProfileSummary,
  top: number,
  unit: ProfileUnit = 'µs',
): string {
  const perRequest = (rows: readonly Row[], requests: number): Map<string, number> =>
    new Map(rows.filter((r) => !r.name.startsWith(IDLE)).map((r) => [r.name, r.us / requests]));
  const diff = (mine: readonly Row[], theirs: readonly Row[]): [string, number, number][] => {
    const a = perRequest(mine, summary.requests);
    const b = perRequest(theirs, baseline.requests);
    const names = new Set([...a.keys(), ...b.keys()]);
    return [...names]
      .map((n): [string, number, number] => [n, a.get(n) ?? 0, b.get(n) ?? 0])
      .sort((x, y) => y[1] - y[2] - (x[1] - x[2]));
  };
  const table = (title: string, rows: [string, number, number][]): string[] => [
    '',
    title,
    `${`+${unit}/req`.padStart(8)} ${name.slice(0, 14).padStart(14)} ${baselineName.slice(0, 14).padStart(14)}  name`,
    ...rows
      .slice(0, top)
      .map(
        ([n, a, b]) =>
          `${(a - b >= 0 ? '+' : '') + (a - b).toFixed(digits).padStart(7)} ${a.toFixed(digits).padStart(14)} ${b.toFixed(digits).padStart(14)}  ${n}`,
      ),
  ];
  const digits = unit === 'B' ? 0 : 2;
  const mine = busyOf(summary) / summary.requests;
  const theirs = busyOf(baseline) / baseline.requests;
  return [
    unit === 'B'
      ? `${name} vs ${baselineName}: ${mine.toFixed(0)} vs ${theirs.toFixed(0)} bytes allocated per request (+${(mine - theirs).toFixed(0)})`
      : `${name} vs ${baselineName}: ${mine.toFixed(1)} vs ${theirs.toFixed(1)} µs of main-thread CPU per request (+${(mine - theirs).toFixed(1)}, ` +
        `so at most ${(theirs / mine).toFixed(2)}× the baseline's throughput when the CPU is the limit)`,
    ...table('By owner', diff(summary.byOwner, baseline.byOwner)),
    ...table(
      unit === 'B' ? 'By function (self allocation)' : 'By function (self time)',
      diff(summary.selfByFunction, baseline.selfByFunction),
    ),
  ].join('\n');
}
