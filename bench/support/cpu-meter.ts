/**
 * CPU accounting for one recording window, from /proc (Linux): how much CPU the server used, and
 * how much other processes took from the CPU the server runs on. A busy neighbour (a test run,
 * a compiler) lowers a round's figures; this is how the report tells such rounds apart.
 * Elsewhere every figure is NaN and the report leaves the columns empty.
 */
import { readFileSync } from 'node:fs';

/** USER_HZ: the unit of /proc/stat and /proc/<pid>/stat times. 100 on every Linux that Node supports. */
const TICKS_PER_SECOND = 100;

export interface CpuSnapshot {
  at: number;
  /** Busy and total ticks per `cpu` line of /proc/stat (`cpu` = all, `cpu0`, `cpu1`, …). */
  system: Map<string, { busy: number; total: number }>;
  /** utime + stime of the process, all threads, in ticks. */
  process: number;
}

export interface WindowCpu {
  seconds: number;
  /** Cores the server process used (1 = one core fully busy). */
  serverCores: number;
  /** Cores other processes used where the server runs (its pinned CPU, else the whole machine minus server and load generator). */
  foreignCores: number;
}

function readSystem(): Map<string, { busy: number; total: number }> {
  const out = new Map<string, { busy: number; total: number }>();
  try {
    for (const line of readFileSync('/proc/stat', 'utf8').split('\n')) {
      if (!line.startsWith('cpu')) continue;
      const [name, ...fields] = line.trim().split(/\s+/);
      const n = fields.map(Number);
      const total = n.slice(0, 8).reduce((a, b) => a + b, 0);
      const idle = (n[3] ?? 0) + (n[4] ?? 0);
      out.set(name!, { busy: total - idle, total });
    }
  } catch {
    // not Linux: no system figures
  }
  return out;
}

function readProcess(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may contain spaces; fields after its closing parenthesis are fixed.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return Number.NaN;
  }
}

export function snapshot(pid: number): CpuSnapshot {
  return { at: performance.now(), system: readSystem(), process: readProcess(pid) };
}

/**
 * @param serverCpu the CPU the server is pinned to (`'0'`), or undefined when not pinned.
 * @param loaderCores cores the load generator used in the window (it measures itself).
 */
export function windowCpu(
  before: CpuSnapshot,
  after: CpuSnapshot,
  serverCpu: string | undefined,
  loaderCores: number,
): WindowCpu {
  const seconds = (after.at - before.at) / 1000;
  const serverCores = (after.process - before.process) / TICKS_PER_SECOND / seconds;
  const line = serverCpu === undefined ? 'cpu' : `cpu${serverCpu}`;
  const a = after.system.get(line);
  const b = before.system.get(line);
  let foreignCores = Number.NaN;
  if (a !== undefined && b !== undefined) {
    const busyCores = (a.busy - b.busy) / TICKS_PER_SECOND / seconds;
    foreignCores = Math.max(0, busyCores - serverCores - (serverCpu === undefined ? loaderCores : 0));
  }
  return { seconds, serverCores, foreignCores };
}

/**
 * Waits (at most `maxSeconds`) until the whole machine is nearly idle — less than `threshold`
 * cores busy over half a second — so a recording does not start in the middle of someone's build.
 * Returns the seconds waited and the last busy figure (NaN where /proc/stat is missing).
 */
export async function waitForQuiet(
  maxSeconds: number,
  threshold: number,
): Promise<{ waited: number; busyCores: number }> {
  const start = performance.now();
  for (;;) {
    const before = readSystem().get('cpu');
    await new Promise((resolve) => setTimeout(resolve, 500));
    const after = readSystem().get('cpu');
    const busyCores =
      before === undefined || after === undefined
        ? Number.NaN
        : (after.busy - before.busy) / TICKS_PER_SECOND / 0.5;
    const waited = (performance.now() - start) / 1000;
    if (!(busyCores >= threshold) || waited >= maxSeconds) return { waited, busyCores };
  }
}
