import type { LoadResult } from '../load.js';
import type { WindowCpu } from './cpu-meter.js';
import { median } from './stats.js';

/** One recording: what the load generator saw and what the server reported on exit. */
export interface RoundResult {
  load: LoadResult;
  server: Record<string, unknown>;
  /** Server and neighbour CPU during the recorded window (Linux only). */
  cpu: WindowCpu | undefined;
  /** How long the round waited for a quiet machine, and how busy it was when it started. */
  quiet?: { waited: number; busyCores: number } | undefined;
}

export interface VariantSummary {
  name: string;
  rounds: number;
  /** Requests per second: median over rounds, and the lowest and highest round. */
  requestsPerSec: { median: number; min: number; max: number };
  /** Milliseconds: median over rounds of each round's percentile. */
  latencyP50: number;
  latencyP99: number;
  /** Median req/s of this variant ÷ median req/s of the baseline. */
  ratio: number;
  /** Median over rounds of (this variant's req/s ÷ the baseline's in the same round). */
  pairedRatio: number;
  /** Server CPU time per request in the recorded window (user + system, all threads), microseconds; median over rounds. */
  serverCpuUsPerRequest: number;
  /** Peak resident set size of the server process (`maxRssMb` of its STATS, else RSS at exit), MiB; median over rounds. */
  rssMb: number;
  warnings: string[];
}

function warningsOf(results: readonly RoundResult[], maxOthers: number): string[] {
  const warnings: string[] = [];
  const failed = results.reduce((n, r) => n + r.load.errors + r.load.timeouts + r.load.non2xx, 0);
  if (failed > 0)
    warnings.push(`${failed} errors, timeouts or non-2xx responses: the figures are not comparable`);
  const busiest = Math.max(...results.map((r) => r.load.loaderCpu));
  if (busiest > 0.9)
    warnings.push(
      `the load generator used ${(100 * busiest).toFixed(0)}% of a core: it may be the bottleneck`,
    );
  const noisy = results.filter((r) => r.cpu !== undefined && r.cpu.foreignCores > maxOthers);
  if (noisy.length > 0) {
    const worst = Math.max(...noisy.map((r) => r.cpu?.foreignCores ?? 0));
    warnings.push(
      `other processes took up to ${worst.toFixed(2)} cores from the server's CPU in ${noisy.length} of ${results.length} rounds: rerun on a quiet machine`,
    );
  }
  for (const r of results) {
    const lines = r.server.accessLogLines;
    const served = r.load.requests + r.load.warmupRequests;
    if (typeof lines === 'number' && lines < 0.99 * served) {
      warnings.push(`access log has ${lines} lines for ${served} requests: logging is dropping lines`);
      break;
    }
  }
  return warnings;
}

function rssOf(stats: Record<string, unknown>): number {
  const peak = stats.maxRssMb ?? stats.rssMb;
  return typeof peak === 'number' ? peak : Number.NaN;
}

export function summariseVariant(
  name: string,
  results: readonly RoundResult[],
  baseline: readonly RoundResult[],
  /** Cores other processes may take from the server's CPU before a round is called disturbed. */
  maxOthers = 0.1,
): VariantSummary {
  const rps = results.map((r) => r.load.requestsPerSec);
  const baseRps = baseline.map((r) => r.load.requestsPerSec);
  // Server CPU per request during the recorded window: a cost that neighbours cannot inflate as much as req/s.
  const cpuPerRequest = results.map((r) =>
    r.cpu === undefined ? Number.NaN : (r.cpu.serverCores / r.load.requestsPerSec) * 1e6,
  );
  return {
    name,
    rounds: results.length,
    requestsPerSec: { median: median(rps), min: Math.min(...rps), max: Math.max(...rps) },
    latencyP50: median(results.map((r) => r.load.latency.p50)),
    latencyP99: median(results.map((r) => r.load.latency.p99)),
    ratio: median(rps) / median(baseRps),
    pairedRatio: median(rps.map((v, i) => v / baseRps[i]!)),
    serverCpuUsPerRequest: median(cpuPerRequest),
    rssMb: median(results.map((r) => rssOf(r.server))),
    warnings: warningsOf(results, maxOthers),
  };
}

const int = (n: number): string => Math.round(n).toLocaleString('en-US');

export function formatTable(summaries: readonly VariantSummary[], baseline: string): string {
  const header = [
    'variant',
    'req/s (median)',
    'min – max',
    'p50 ms',
    'p99 ms',
    `× ${baseline}`,
    'paired ×',
    'CPU µs/req',
    'RSS MiB',
  ];
  const rows = summaries.map((s) => [
    s.name,
    int(s.requestsPerSec.median),
    `${int(s.requestsPerSec.min)} – ${int(s.requestsPerSec.max)}`,
    s.latencyP50.toFixed(2),
    s.latencyP99.toFixed(2),
    s.ratio.toFixed(3),
    s.pairedRatio.toFixed(3),
    Number.isNaN(s.serverCpuUsPerRequest) ? '–' : s.serverCpuUsPerRequest.toFixed(1),
    Number.isNaN(s.rssMb) ? '–' : s.rssMb.toFixed(0),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: readonly string[]): string =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(header), widths.map((w) => '─'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

export interface Ratio {
  of: string;
  to: string;
  /** Median req/s of `of` ÷ median req/s of `to`. */
  ratio: number;
  /** Median over rounds of the same-round ratio. */
  pairedRatio: number;
  /** Server CPU µs per request of `to` ÷ that of `of`: how many times cheaper `of` is per request. */
  cpuRatio: number;
  /** Server CPU µs per request of `of` minus that of `to`. */
  cpuDelta: number;
  target?: number | undefined;
  /** `met` when median and paired ratios both reach the target, `borderline` when one does. */
  verdict?: 'met' | 'borderline' | 'MISSED' | undefined;
}

/** The ratios a suite asks for (bench/support/suites.ts), from every round of both variants. */
export function ratiosOf(
  rounds: Readonly<Record<string, readonly RoundResult[]>>,
  specs: readonly { of: string; to: string; target?: number }[],
): Ratio[] {
  const out: Ratio[] = [];
  for (const { of, to, target } of specs) {
    const a = rounds[of];
    const b = rounds[to];
    if (a === undefined || b === undefined || of === to) continue;
    const s = summariseVariant(of, a, b);
    const base = summariseVariant(to, b, b);
    const verdict =
      target === undefined
        ? undefined
        : Math.min(s.ratio, s.pairedRatio) >= target
          ? 'met'
          : Math.max(s.ratio, s.pairedRatio) >= target
            ? 'borderline'
            : 'MISSED';
    out.push({
      of,
      to,
      ratio: s.ratio,
      pairedRatio: s.pairedRatio,
      cpuRatio: base.serverCpuUsPerRequest / s.serverCpuUsPerRequest,
      cpuDelta: s.serverCpuUsPerRequest - base.serverCpuUsPerRequest,
      target,
      verdict,
    });
  }
  return out;
}

export function formatRatios(list: readonly Ratio[]): string {
  const num = (n: number, digits: number, sign = false): string =>
    Number.isNaN(n) ? '–' : `${sign && n >= 0 ? '+' : ''}${n.toFixed(digits)}`;
  const header = ['ratio', 'req/s ×', 'paired ×', 'CPU ×', 'CPU µs/req Δ', ''];
  const rows = list.map((r) => [
    `${r.of} / ${r.to}`,
    num(r.ratio, 3),
    num(r.pairedRatio, 3),
    num(r.cpuRatio, 3),
    num(r.cpuDelta, 1, true),
    r.target === undefined ? '' : `target ≥ ${r.target}: ${r.verdict ?? ''}`,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => (i === 0 || i === cells.length - 1 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(header), widths.map((w) => '─'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}
