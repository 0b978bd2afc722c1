/**
 * Runs the probes of one `health()` router: each bounded by the timeout, at most one call of a probe
 * in flight at a time, results cached for `cacheMs` and shared by concurrent probes, so a burst of
 * probes costs the database one query.
 */
import { performance } from 'node:perf_hooks';
import type { Logger } from '../logging/index.js';
import type { Probe, Reading } from './checks.js';
import type { HealthCheckResult, HealthCheckStatus, HealthReport } from './report.js';
import { errorOutput, worst } from './report.js';

/** One run: the report and the two bodies, serialised once for every probe that reads them. */
export interface Snapshot {
  readonly report: HealthReport;
  readonly body: string;
  readonly ready: boolean;
  readonly readyBody: string;
}

export interface RunnerOptions {
  probes: readonly Probe[];
  /** Ids of the critical probes. */
  critical: ReadonlySet<string>;
  timeoutMs: number;
  cacheMs: number;
  meta: Pick<HealthReport, 'version' | 'serviceId' | 'description'>;
  logger: Logger;
}

interface Call {
  readonly promise: Promise<Reading>;
  readonly controller: AbortController;
}

export class HealthRunner {
  readonly #options: RunnerOptions;
  /** Calls still in flight, by probe: a hung check is joined, never called again on top. */
  readonly #calls = new Map<Probe, Call>();
  /** Last status of each key, to log changes once. */
  readonly #last = new Map<string, HealthCheckStatus>();
  #cached: { snapshot: Snapshot; at: number } | undefined;
  #running: Promise<Snapshot> | undefined;

  constructor(options: RunnerOptions) {
    this.#options = options;
  }

  /** The cached snapshot while fresh, else the run in progress, else a new run. Never rejects. */
  snapshot(): Promise<Snapshot> {
    const cached = this.#cached;
    if (cached !== undefined && performance.now() - cached.at < this.#options.cacheMs)
      return Promise.resolve(cached.snapshot);
    this.#running ??= this.#run().then((snapshot) => {
      this.#cached = { snapshot, at: performance.now() };
      this.#running = undefined;
      return snapshot;
    });
    return this.#running;
  }

  /** Abort the checks still running (they are told through their signal). */
  abort(): void {
    for (const call of this.#calls.values()) call.controller.abort(timedOut());
  }

  async #run(): Promise<Snapshot> {
    const { probes, meta } = this.#options;
    const results = await Promise.all(probes.map((probe) => this.#check(probe)));
    const checks: Record<string, HealthCheckResult[]> = {};
    let status: HealthCheckStatus = 'pass';
    const failing: string[] = [];
    for (const [i, probe] of probes.entries()) {
      const result = results[i] as HealthCheckResult;
      checks[probe.key] = [result];
      status = worst(status, result.status);
      if (result.status === 'fail') failing.push(probe.key);
    }
    const report: HealthReport = { status, ...meta, checks };
    const ready = status !== 'fail';
    return {
      report,
      body: JSON.stringify(report),
      ready,
      readyBody: JSON.stringify(ready ? { status } : { status, output: `failing: ${failing.join(', ')}` }),
    };
  }

  async #check(probe: Probe): Promise<HealthCheckResult> {
    let call = this.#calls.get(probe);
    if (call === undefined) {
      const controller = new AbortController();
      const promise = (async () => probe.run(controller.signal))().catch((err: unknown): Reading => ({
        status: 'fail',
        output: errorOutput(err),
      }));
      const started: Call = { promise, controller };
      call = started;
      this.#calls.set(probe, started);
      void promise.then(() => {
        if (this.#calls.get(probe) === started) this.#calls.delete(probe);
      });
    }
    let timer: NodeJS.Timeout | undefined;
    const { controller } = call;
    const timeout = new Promise<Reading>((resolve) => {
      timer = setTimeout(() => {
        controller.abort(timedOut());
        resolve({ status: 'fail', output: 'timed out' });
      }, this.#options.timeoutMs);
    });
    const reading = await Promise.race([call.promise, timeout]);
    clearTimeout(timer);
    return this.#finish(probe, reading);
  }

  #finish(probe: Probe, reading: Reading): HealthCheckResult {
    // A non-critical check cannot fail the service: its failure is a warning.
    const status =
      reading.status === 'fail' && !this.#options.critical.has(probe.id) ? 'warn' : reading.status;
    const result: HealthCheckResult = {
      ...(reading.componentId === undefined ? {} : { componentId: reading.componentId }),
      componentType: reading.componentType ?? probe.componentType,
      ...(reading.observedValue === undefined ? {} : { observedValue: reading.observedValue }),
      ...(reading.observedUnit === undefined ? {} : { observedUnit: reading.observedUnit }),
      status,
      time: new Date().toISOString(),
      ...(reading.output === undefined ? {} : { output: reading.output }),
    };
    this.#note(probe.key, result);
    return result;
  }

  /** One line when a check stops passing or changes how it fails, one when it passes again. */
  #note(key: string, result: HealthCheckResult): void {
    const before = this.#last.get(key) ?? 'pass';
    this.#last.set(key, result.status);
    if (before === result.status) return;
    const { logger } = this.#options;
    if (result.status === 'pass') logger.info('health check passing again', { check: key });
    else
      logger.warn(`health check ${result.status === 'fail' ? 'failing' : 'warning'}`, {
        check: key,
        output: result.output,
      });
  }
}

function timedOut(): Error {
  return Object.assign(new Error('health check timed out'), { name: 'TimeoutError', code: 'TIMED_OUT' });
}
