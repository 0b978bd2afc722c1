import { AggregatorRegistry, collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Settings } from '../config/index.js';
import { loadSettings } from '../config/index.js';
import { ConfigError, readOptions } from '../errors/index.js';
import { renderOpenMetrics } from './openmetrics.js';

export interface MetricsOptions {
  /** Value of the constant `app` label on every series. Default `APP_NAME`. */
  app?: string;
  /** The prom-client registry to fill. Default: a new one (nothing is registered globally). */
  registry?: Registry;
  /** Node.js process metrics (event loop lag, GC, heap, CPU, handles). Default `true`. */
  nodeMetrics?: boolean;
  /**
   * In a worker of a Node cluster: answer the primary's requests for this registry, so
   * `metricsEndpoint({ cluster: true })` in the primary serves every worker's series summed.
   * Default `false`.
   */
  cluster?: boolean;
  /** `false` turns every part that would report here into a no-op. Default `ENABLE_METRICS`. */
  enabled?: boolean;
  /** Settings for defaults. Default `loadSettings(process.env)`. */
  settings?: Settings;
}

/** One sample of a pulled family: label values in the family's label order, and the value. */
export type Emit = (labels: readonly string[], value: number) => void;

/** A function that reports the current values of a source (a limiter, a pool, …) at scrape time. */
export type Reader = (emit: Emit) => void;

export interface PulledFamily {
  name: string;
  help: string;
  type: 'counter' | 'gauge';
  labelNames: readonly string[];
}

interface FamilyValue {
  labels: Record<string, string>;
  value: number;
}

/**
 * A family whose values are read from its sources when scraped, not pushed per event: parts that
 * already count (auth, security, rate limits, pools) cost nothing per request for their metrics.
 * Sources with the same label values are summed. Implements what prom-client's registry asks of
 * a metric (`get`, `reset`, `name`, `help`, `type`, `aggregator`).
 */
class PullMetric {
  readonly name: string;
  readonly help: string;
  readonly type: 'counter' | 'gauge';
  readonly aggregator = 'sum';
  readonly labelNames: readonly string[];
  readonly readers = new Set<Reader>();

  constructor(family: PulledFamily) {
    this.name = family.name;
    this.help = family.help;
    this.type = family.type;
    this.labelNames = family.labelNames;
  }

  get(): { name: string; help: string; type: string; aggregator: string; values: FamilyValue[] } {
    const byKey = new Map<string, FamilyValue>();
    const names = this.labelNames;
    const emit: Emit = (labels, value) => {
      if (!Number.isFinite(value)) return;
      const key = labels.join('\u0000');
      const seen = byKey.get(key);
      if (seen !== undefined) {
        seen.value += value;
        return;
      }
      const record: Record<string, string> = {};
      for (let i = 0; i < names.length; i++) record[names[i] as string] = labels[i] ?? '';
      byKey.set(key, { labels: record, value });
    };
    for (const read of this.readers) read(emit);
    return {
      name: this.name,
      help: this.help,
      type: this.type,
      aggregator: this.aggregator,
      values: [...byKey.values()],
    };
  }

  reset(): void {
    // Values belong to the sources; there is nothing to reset here.
  }
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/**
 * A metrics registry and the instruments caduceus and the application put in it. Every part that
 * reports (`metrics()`, `errors()`, `createDatabase()`, `createAuth()`, `security()`,
 * `rateLimit()`, …) takes a `metrics` option; without it they report into {@link getMetrics}.
 *
 * @example
 * const metrics = core.createMetrics({ app: 'records' });
 * const exports = metrics.counter('record_exports_total', 'Records exported.', ['format']);
 * exports.inc({ format: 'fhir' });
 */
const BRAND = Symbol.for('caduceus.metrics');

/** Whether `value` is a Metrics from any copy of caduceus (the ESM and the CJS build, two versions). */
export function isMetrics(value: unknown): value is Metrics {
  return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[BRAND] === true;
}

export class Metrics {
  /** @internal Brand checked by `isMetrics` (instanceof fails across copies of the library). */
  readonly [BRAND] = true;
  /** The prom-client registry: register your own prom-client metrics here (`registers: [m.registry]`). */
  readonly registry: Registry;
  readonly app: string;
  readonly enabled: boolean;
  readonly #pulled = new Map<string, PullMetric>();

  constructor(input: Readonly<MetricsOptions> = {}) {
    const options = readOptions<MetricsOptions>('createMetrics', input, KNOWN);
    const settings = options.settings ?? loadSettings(process.env);
    if (options.app !== undefined && (typeof options.app !== 'string' || options.app === ''))
      throw ConfigError.option('createMetrics', 'app', 'a non-empty string', options.app);
    if (options.registry !== undefined && !(options.registry instanceof Registry))
      throw ConfigError.option('createMetrics', 'registry', 'a prom-client Registry', options.registry);
    for (const key of ['nodeMetrics', 'cluster', 'enabled'] as const) {
      const value = options[key];
      if (value !== undefined && typeof value !== 'boolean')
        throw ConfigError.option('createMetrics', key, 'true or false', value);
    }
    this.enabled = options.enabled ?? settings.monitoring.enableMetrics;
    this.app = options.app ?? settings.appName;
    this.registry = options.registry ?? new Registry();
    if (!this.enabled) return;
    this.registry.setDefaultLabels({ ...defaultLabelsOf(this.registry), app: this.app });
    if (options.nodeMetrics ?? true) collectDefaultMetrics({ register: this.registry });
    if (options.cluster === true) joinCluster(this.registry);
  }

  /** A counter in this registry; the same name again returns the same counter. */
  counter<L extends string = string>(name: string, help: string, labelNames: readonly L[] = []): Counter<L> {
    return this.#instrument(name, help, Counter, labelNames, () => {
      return new Counter<L>({ name, help, labelNames, registers: [this.registry] });
    });
  }

  /** A gauge in this registry; the same name again returns the same gauge. */
  gauge<L extends string = string>(name: string, help: string, labelNames: readonly L[] = []): Gauge<L> {
    return this.#instrument(name, help, Gauge, labelNames, () => {
      return new Gauge<L>({ name, help, labelNames, registers: [this.registry] });
    });
  }

  /** A histogram in this registry; the same name again returns the same histogram. */
  histogram<L extends string = string>(
    name: string,
    help: string,
    labelNames: readonly L[] = [],
    buckets?: readonly number[],
  ): Histogram<L> {
    const bounds = buckets === undefined ? undefined : checkBuckets(name, buckets);
    return this.#instrument(name, help, Histogram, labelNames, () => {
      return new Histogram<L>({
        name,
        help,
        labelNames,
        registers: [this.registry],
        ...(bounds === undefined ? {} : { buckets: bounds }),
      });
    });
  }

  /**
   * Report a family read at scrape time: `read` emits the source's current values. Several
   * sources may report into one family (two pools, three limiters); returns the function that
   * removes this source (call it on close).
   */
  pull(family: PulledFamily, read: Reader): () => void {
    if (!this.enabled) return noop;
    let metric = this.#pulled.get(family.name);
    if (metric === undefined) {
      checkNames(family.name, family.labelNames);
      if (this.registry.getSingleMetric(family.name) !== undefined)
        throw new ConfigError(`metrics: "${family.name}" is already registered as another kind of metric`);
      metric = new PullMetric(family);
      this.#pulled.set(family.name, metric);
      this.registry.registerMetric(metric as unknown as Parameters<Registry['registerMetric']>[0]);
    } else if (metric.type !== family.type || metric.labelNames.join() !== family.labelNames.join()) {
      throw new ConfigError(
        `metrics: "${family.name}" is already registered with labels [${metric.labelNames.join(', ')}] as a ${metric.type}`,
      );
    }
    const readers = metric.readers;
    readers.add(read);
    return () => {
      readers.delete(read);
    };
  }

  /** The registry in Prometheus text format (0.0.4), or OpenMetrics 1.0 with exemplars. */
  async render(openMetrics = false): Promise<string> {
    return openMetrics ? renderOpenMetrics(await this.registry.getMetricsAsJSON()) : this.registry.metrics();
  }

  #instrument<T>(
    name: string,
    help: unknown,
    kind: abstract new (...args: never[]) => unknown,
    labelNames: readonly string[],
    make: () => T,
  ): T {
    const existing = this.registry.getSingleMetric(name) as
      { type?: string; labelNames?: readonly string[] } | undefined;
    if (existing !== undefined) {
      // Only an instrument of the same class and labels is handed out again: never a family
      // that metrics() or pull() keeps (it has no inc/set/observe).
      if (!(existing instanceof kind) || (existing.labelNames ?? []).join() !== labelNames.join())
        throw new ConfigError(
          `metrics: "${name}" is already registered as a ${String(existing.type)} with labels [${(existing.labelNames ?? []).join(', ')}]`,
        );
      return existing as T;
    }
    checkNames(name, labelNames, kind === Histogram);
    if (typeof help !== 'string' || help === '')
      throw new ConfigError(`metrics: the help text of ${name} must be a non-empty string`);
    return make();
  }
}

const KNOWN = ['app', 'registry', 'nodeMetrics', 'cluster', 'enabled', 'settings'] as const;

function noop(): void {
  // Nothing was registered.
}

/** Histogram bounds: increasing positive finite numbers, or a ConfigError naming the metric. */
export function checkBuckets(owner: string, value: unknown): number[] {
  if (
    !Array.isArray(value) ||
    value.length === 0 ||
    value.some(
      (b, i) =>
        typeof b !== 'number' || !Number.isFinite(b) || b <= 0 || (i > 0 && b <= (value[i - 1] as number)),
    )
  )
    throw new ConfigError(`metrics: buckets of ${owner} must be increasing positive finite numbers`);
  return [...(value as number[])];
}

function checkNames(name: unknown, labelNames: unknown, histogram = false): void {
  if (typeof name !== 'string' || !METRIC_NAME.test(name))
    throw new ConfigError(`metrics: "${String(name)}" is not a valid metric name`);
  if (!Array.isArray(labelNames))
    throw new ConfigError(`metrics: the label names of ${name} must be an array`);
  for (const label of labelNames as unknown[])
    if (
      typeof label !== 'string' ||
      !LABEL_NAME.test(label) ||
      label.startsWith('__') ||
      label === 'app' ||
      (histogram && (label === 'le' || label === 'quantile'))
    )
      throw new ConfigError(`metrics: "${String(label)}" is not a valid label name for ${name}`);
}

function defaultLabelsOf(registry: Registry): Record<string, string> {
  return (registry as unknown as { _defaultLabels?: Record<string, string> })._defaultLabels ?? {};
}

const clusterRegistries = new Set<Registry>();

/** In a cluster worker, answer the primary's requests with these registries (prom-client's protocol). */
function joinCluster(registry: Registry): void {
  clusterRegistries.add(registry);
  AggregatorRegistry.setRegistries([...clusterRegistries]);
  // Constructing one installs prom-client's worker-side message listener (once per process).
  new AggregatorRegistry();
}

/** A new metrics registry; see {@link Metrics}. */
export function createMetrics(options: Readonly<MetricsOptions> = {}): Metrics {
  return new Metrics(options);
}

const DEFAULT_KEY = Symbol.for('caduceus.metrics.default');
type Holder = Record<symbol, Metrics | undefined>;

/**
 * The process's default metrics, made on first use (never at import) from `ENABLE_METRICS` and
 * `APP_NAME`: what `metrics()`, `metricsEndpoint()` and every reporting part use when not given
 * their own `metrics`. Shared by the ESM and CJS builds.
 */
export function getMetrics(settings?: Settings): Metrics {
  const holder = globalThis as unknown as Holder;
  let metrics = holder[DEFAULT_KEY];
  if (metrics === undefined) {
    // The first caller's settings (APP_NAME, ENABLE_METRICS) shape it; later callers share it.
    metrics = new Metrics(settings === undefined ? {} : { settings });
    holder[DEFAULT_KEY] = metrics;
  }
  return metrics;
}

/**
 * Where a part reports: `false` nowhere, a `Metrics` there, otherwise the process default — unless
 * the part's settings turn metrics off (`ENABLE_METRICS=false`).
 */
export function metricsFor(
  factory: string,
  option: Metrics | false | undefined,
  settings?: Settings,
): Metrics | undefined {
  if (option === false) return undefined;
  if (option !== undefined) {
    if (!isMetrics(option))
      throw ConfigError.option(factory, 'metrics', 'a Metrics from core.createMetrics(), or false', option);
    return option.enabled ? option : undefined;
  }
  if (settings !== undefined && !settings.monitoring.enableMetrics) return undefined;
  const metrics = getMetrics(settings);
  return metrics.enabled ? metrics : undefined;
}
