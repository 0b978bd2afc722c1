/**
 * Timing helpers for the repository benchmark: interleaved rounds, throughput at a fixed
 * concurrency, per-operation latencies, medians, and how busy the machine was meanwhile.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';

export type Op = (i: number) => Promise<unknown>;

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return Number.NaN;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] as number;
}

/**
 * `ops` calls of `op`, at most `concurrency` in flight. Returns operations per second and this
 * process's CPU time per operation (µs) — the part of the cost that is JavaScript, not the database.
 */
export async function throughput(
  op: Op,
  ops: number,
  concurrency: number,
  offset = 0,
): Promise<{ opsPerSec: number; cpuUsPerOp: number }> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < ops) {
      const i = next++;
      await op(offset + i);
    }
  };
  const cpu0 = process.cpuUsage();
  const start = performance.now();
  await Promise.all(Array.from({ length: Math.min(concurrency, ops) }, worker));
  const seconds = (performance.now() - start) / 1000;
  const cpu = process.cpuUsage(cpu0);
  return { opsPerSec: ops / seconds, cpuUsPerOp: (cpu.user + cpu.system) / ops };
}

/** Sequential calls for about `budgetMs` (at least `minOps`); returns each call's latency in ms. */
export async function latencies(op: Op, budgetMs: number, minOps: number, offset = 0): Promise<number[]> {
  const out: number[] = [];
  const end = performance.now() + budgetMs;
  for (let i = 0; i < minOps || performance.now() < end; i++) {
    const t0 = performance.now();
    await op(offset + i);
    out.push(performance.now() - t0);
  }
  return out;
}

/** The order of the variants in round `r`: A,B,C… then rotated by one each round, so no variant always goes first. */
export function roundOrder<T>(variants: readonly T[], r: number): T[] {
  const k = r % variants.length;
  return [...variants.slice(k), ...variants.slice(0, k)];
}

function cpuTicks(): { busy: number; total: number } | undefined {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
    const f = line.trim().split(/\s+/).slice(1).map(Number);
    const total = f.reduce((a, b) => a + b, 0);
    const idle = (f[3] ?? 0) + (f[4] ?? 0);
    return { busy: total - idle, total };
  } catch {
    return undefined;
  }
}

/** CPU seconds used so far by every process named `name` (Linux /proc), keyed by pid. */
function cpuOfProcesses(name: string): Map<number, number> {
  const out = new Map<number, number>();
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((p) => /^\d+$/.test(p));
  } catch {
    return out;
  }
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const close = stat.lastIndexOf(')');
      const comm = stat.slice(stat.indexOf('(') + 1, close);
      if (comm !== name) continue;
      const f = stat.slice(close + 2).split(' ');
      // Fields 14 and 15 of /proc/<pid>/stat (utime, stime), counted from after the name.
      out.set(Number(pid), (Number(f[11]) + Number(f[12])) / CLOCK_TICKS);
    } catch {
      // The process ended meanwhile.
    }
  }
  return out;
}
const CLOCK_TICKS = 100;

export interface MachineLoad {
  seconds: number;
  /** Average busy cores of the whole machine. */
  machineBusyCores: number | undefined;
  /** Average cores used by this process. */
  benchProcessCores: number;
  /** Average cores used by PostgreSQL server processes (part of what is measured). */
  postgresCores: number | undefined;
  /** Everything else: other benchmarks or tests running on the machine. Should be near 0. */
  otherCores: number | undefined;
  cores: number;
  loadavg1mStart: number;
  loadavg1mEnd: number;
}

/** Measures how busy the machine is between the call and `stop()` (Linux /proc; elsewhere partial). */
export function machineLoad(): { stop(): MachineLoad } {
  const t0 = performance.now();
  const ticks0 = cpuTicks();
  const pg0 = cpuOfProcesses('postgres');
  const cpu0 = process.cpuUsage();
  const la0 = loadavg()[0] ?? 0;
  const n = cpus().length;
  return {
    stop(): MachineLoad {
      const seconds = (performance.now() - t0) / 1000;
      const ticks1 = cpuTicks();
      const pg1 = cpuOfProcesses('postgres');
      const cpu = process.cpuUsage(cpu0);
      const own = (cpu.user + cpu.system) / 1e6 / seconds;
      const busy =
        ticks0 !== undefined && ticks1 !== undefined && ticks1.total > ticks0.total
          ? ((ticks1.busy - ticks0.busy) / (ticks1.total - ticks0.total)) * n
          : undefined;
      let pgSeconds = 0;
      for (const [pid, s] of pg1) pgSeconds += s - (pg0.get(pid) ?? 0);
      const pg = pg1.size === 0 ? undefined : pgSeconds / seconds;
      return {
        seconds,
        machineBusyCores: busy,
        benchProcessCores: own,
        postgresCores: pg,
        otherCores: busy === undefined ? undefined : Math.max(0, busy - own - (pg ?? 0)),
        cores: n,
        loadavg1mStart: la0,
        loadavg1mEnd: loadavg()[0] ?? 0,
      };
    },
  };
}

/**
 * Waits up to `maxMs` for the machine to be nearly idle (under `threshold` busy cores over one
 * second), so the run does not start on top of another benchmark. Returns the last busy reading.
 */
export async function waitForQuiet(maxMs: number, threshold: number): Promise<number | undefined> {
  const end = performance.now() + maxMs;
  let busy: number | undefined;
  do {
    const m = machineLoad();
    await new Promise((r) => setTimeout(r, 1000));
    const l = m.stop();
    busy =
      l.machineBusyCores === undefined ? undefined : Math.max(0, l.machineBusyCores - l.benchProcessCores);
    if (busy === undefined || busy < threshold) return busy;
  } while (performance.now() < end);
  return busy;
}

export const fmt = {
  int: (v: number): string => (Number.isFinite(v) ? Math.round(v).toLocaleString('en-US') : '–'),
  ms: (v: number): string => (Number.isFinite(v) ? (v < 10 ? v.toFixed(3) : v.toFixed(2)) : '–'),
  ratio: (v: number): string => (Number.isFinite(v) ? v.toFixed(3) : '–'),
  x: (v: number): string => (Number.isFinite(v) ? `${v.toFixed(2)}×` : '–'),
  cores: (v: number | undefined): string => (v === undefined || !Number.isFinite(v) ? '–' : v.toFixed(2)),
};

/** A plain text table: columns padded, numbers right-aligned. */
export function table(head: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const numeric = head.map(
    (_, i) => i > 0 && rows.every((r) => /^[-–\d.,×%/() ]*[\d–×%)]$/.test(r[i] ?? '')),
  );
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => (numeric[i] === true ? c.padStart(widths[i] ?? 0) : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(head), widths.map((w) => '─'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}
