/**
 * The load generator, run by bench/run.ts in its own process (pinned to its own CPU when possible),
 * so the server under test never shares an event loop with autocannon.
 *
 * Input: BENCH_LOAD (JSON `LoadSpec`). Output on stdout: `MEASURE` when the recorded window starts,
 * then one JSON `LoadResult` line.
 * Latencies are recorded here from autocannon's per-response timings (sub-millisecond), because
 * autocannon's own histogram rounds to whole milliseconds.
 */
import autocannon from 'autocannon';
import { percentile, Samples } from './support/stats.js';

export interface LoadSpec {
  url: string;
  connections: number;
  pipelining: number;
  /** Seconds of unrecorded load first (JIT, caches, connection set-up). 0 = none. */
  warmup: number;
  /** Seconds recorded. */
  duration: number;
  /** Request headers sent with every request (e.g. `authorization` in `npm run bench:auth`). */
  headers?: Record<string, string>;
}

export interface LoadResult {
  requests: number;
  seconds: number;
  requestsPerSec: number;
  /** Milliseconds, from the client's side, 2xx responses only. */
  latency: { mean: number; p50: number; p90: number; p99: number; p999: number; max: number };
  errors: number;
  timeouts: number;
  non2xx: number;
  statusCodes: Record<string, number>;
  warmupRequests: number;
  bytesPerSec: number;
  /** CPU the load generator used while recording, as a share of one core; near 1 means it, not the server, was the bottleneck. */
  loaderCpu: number;
}

function cannon(spec: LoadSpec, seconds: number, samples: Samples | undefined): Promise<autocannon.Result> {
  return new Promise((resolve, reject) => {
    const instance = autocannon(
      {
        url: spec.url,
        connections: spec.connections,
        pipelining: spec.pipelining,
        duration: seconds,
        timeout: 10,
        ...(spec.headers === undefined ? {} : { headers: spec.headers }),
      },
      (err, result) => {
        if (err === null) resolve(result);
        else reject(err);
      },
    );
    if (samples !== undefined) {
      instance.on(
        'response',
        (_client: unknown, statusCode: number, _bytes: number, responseTime: number) => {
          if (statusCode >= 200 && statusCode < 300) samples.push(responseTime);
        },
      );
    }
  });
}

async function main(): Promise<void> {
  const spec = JSON.parse(process.env.BENCH_LOAD ?? '{}') as LoadSpec;
  const warm = spec.warmup > 0 ? await cannon(spec, spec.warmup, undefined) : undefined;
  const samples = new Samples();
  // Tells bench/run.ts the recorded window starts now (it samples the server's CPU time).
  process.stdout.write('MEASURE\n');
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  const result = await cannon(spec, spec.duration, samples);
  const wall = performance.now() - started;
  const cpu = process.cpuUsage(cpuBefore);
  const sorted = samples.sorted();
  let sum = 0;
  for (const v of sorted) sum += v;
  const statusCodes = Object.fromEntries(
    Object.entries(result.statusCodeStats).map(([code, s]) => [code, s.count]),
  );
  const out: LoadResult = {
    requests: result.requests.total,
    seconds: result.duration,
    requestsPerSec: result.requests.total / result.duration,
    latency: {
      mean: sorted.length === 0 ? Number.NaN : sum / sorted.length,
      p50: percentile(sorted, 50),
      p90: percentile(sorted, 90),
      p99: percentile(sorted, 99),
      p999: percentile(sorted, 99.9),
      max: sorted.length === 0 ? Number.NaN : sorted[sorted.length - 1]!,
    },
    errors: result.errors,
    timeouts: result.timeouts,
    non2xx: result.non2xx,
    statusCodes,
    warmupRequests: warm?.requests.total ?? 0,
    bytesPerSec: result.throughput.average,
    loaderCpu: (cpu.user + cpu.system) / 1000 / wall,
  };
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(
    `load generator failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
  );
  process.exit(1);
});
