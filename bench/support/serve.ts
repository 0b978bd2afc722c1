/**
 * The one way a variant under bench/apps/ starts: listen on `PORT`, print `READY {…}` on stdout,
 * and on SIGTERM close, report `STATS {…}` and exit 0 (a clean exit is also what lets a CPU
 * profile be written). The orchestrator (bench/run.ts) reads those two lines and nothing else.
 */
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { RequestListener } from 'node:http';
import { Session } from 'node:inspector/promises';
import { createInterface } from 'node:readline';

export interface ServeOptions {
  /** One line on what the variant is; shown in the report and stored in the JSON results. */
  description: string;
  /** Runs after the server closed and before the process exits; what it returns goes into `STATS`. */
  shutdown?: () => Promise<Record<string, unknown>> | Record<string, unknown>;
}

/**
 * Profiling on demand: with BENCH_CPU_PROFILE (or BENCH_HEAP_PROFILE) set, `profile-start` on stdin
 * starts V8's CPU sampler (or its sampling heap profiler, counting objects that GC collected as
 * well, so the profile is every allocation, not what survived).
 */
function profiler(): { stop(): Promise<void> } | undefined {
  const cpu = process.env.BENCH_CPU_PROFILE;
  const heap = process.env.BENCH_HEAP_PROFILE;
  const output = cpu === undefined || cpu === '' ? heap : cpu;
  if (output === undefined || output === '') return undefined;
  const onHeap = output === heap;
  const interval = Number(process.env.BENCH_CPU_PROFILE_INTERVAL ?? '200');
  const session = new Session();
  session.connect();
  let started = false;
  const lines = createInterface({ input: process.stdin });
  lines.on('line', (line) => {
    if (line.trim() !== 'profile-start' || started) return;
    started = true;
    void (async () => {
      if (onHeap) {
        await session.post('HeapProfiler.enable');
        await session.post('HeapProfiler.startSampling', {
          samplingInterval: 512,
          includeObjectsCollectedByMajorGC: true,
          includeObjectsCollectedByMinorGC: true,
        });
      } else {
        await session.post('Profiler.enable');
        await session.post('Profiler.setSamplingInterval', { interval });
        await session.post('Profiler.start');
      }
      process.stdout.write('PROFILING\n');
    })();
  });
  return {
    async stop() {
      lines.close();
      if (!started) return;
      const { profile } = onHeap
        ? await session.post('HeapProfiler.stopSampling')
        : await session.post('Profiler.stop');
      writeFileSync(output, JSON.stringify(profile));
      session.disconnect();
    },
  };
}

export function serve(handler: RequestListener, options: ServeOptions): void {
  const port = Number(process.env.PORT ?? '3000');
  const server = createServer(handler);
  const profile = profiler();

  server.listen(port, '127.0.0.1', () => {
    process.stdout.write(
      `READY ${JSON.stringify({ port, pid: process.pid, description: options.description })}\n`,
    );
  });

  let stopping = false;
  const stop = async (): Promise<void> => {
    if (stopping) return;
    stopping = true;
    await profile?.stop();
    await new Promise<void>((resolve) => {
      server.close(() => {
        resolve();
      });
      server.closeAllConnections();
    });
    const stats = (await options.shutdown?.()) ?? {};
    const cpu = process.cpuUsage();
    const memory = process.memoryUsage();
    const report = {
      ...stats,
      cpuUserMs: cpu.user / 1000,
      cpuSystemMs: cpu.system / 1000,
      rssMb: memory.rss / 2 ** 20,
      // Peak resident set over the process' life (ru_maxrss, KiB on Linux): what the server needed under load.
      maxRssMb: process.resourceUsage().maxRSS / 2 ** 10,
    };
    process.stdout.write(`STATS ${JSON.stringify(report)}\n`, () => {
      process.exit(0);
    });
  };
  const onSignal = (): void => {
    stop().catch((err: unknown) => {
      process.stderr.write(`shutdown failed: ${String(err)}\n`);
      process.exit(1);
    });
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}
