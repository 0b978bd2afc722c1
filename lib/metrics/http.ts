import type { NextFunction, Request, RequestHandler, Response } from 'express';
import type { ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { Settings } from '../config/index.js';
import { otelRegistered } from '../context/otel.js';
import {
  dropOnResponseClose,
  onResponseClose,
  pinnedContext,
  CONTEXT_KEY,
  patchRequestPrototype,
  ROUTE_TRACKER,
  RouteTracker,
  UNMATCHED,
} from '../context/store.js';
import { ConfigError, readOptions } from '../errors/index.js';
import { routeOf } from '../logging/access-log.js';
import type { Metrics } from './registry.js';
import { metricsFor } from './registry.js';

export interface MetricsMiddlewareOptions {
  /** Where to report. Default: the process's {@link getMetrics}. */
  metrics?: Metrics;
  /** Upper bounds of `http_request_duration_seconds`, in seconds. Default 5 ms … 10 s. */
  buckets?: readonly number[];
  /** Upper bounds of the request/response size histograms, in bytes. Default 100 B … 10 MB. */
  sizeBuckets?: readonly number[];
  /** `route` label of requests no route matched (404s, refusals before routing). Default `'unmatched'`. */
  unmatchedRoute?: string;
  /**
   * Exemplars (`trace_id`, `span_id`) on duration buckets, in the OpenMetrics output:
   * `'auto'` when an OpenTelemetry SDK is registered and the request is sampled, `true` always
   * (the request context's W3C ids), `false` never. Default `'auto'`.
   */
  exemplars?: boolean | 'auto';
  /** Requests not to measure (e.g. health probes). Default: none. */
  skip?: (req: Request) => boolean;
  /** Settings (ENABLE_METRICS). Default: `loadSettings(process.env)` through the default metrics. */
  settings?: Settings;
}

const KNOWN = [
  'metrics',
  'buckets',
  'sizeBuckets',
  'unmatchedRoute',
  'exemplars',
  'skip',
  'settings',
] as const satisfies readonly (keyof MetricsMiddlewareOptions)[];

export const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] as const;
export const SIZE_BUCKETS = [100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000] as const;

/**
 * `metricsEndpoint()` answers this request: it is not traffic. When a `metrics()` of the registry
 * it serves counted it in flight, it leaves `http_requests_in_flight` at once (the gauge about to
 * be read should not count the scrape) and its close listener goes, so it is never counted.
 * Found among what the response runs at close: nothing is stored on every request for this.
 */
export function markScrape(res: Response, metrics: Metrics): void {
  const http = httpByMetrics.get(metrics);
  if (http === undefined) return;
  http.inFlight -= dropOnResponseClose(res.req, res, (fn) => http.closeListeners.has(fn));
}

const HTTP_FAMILIES = [
  'http_requests_total',
  'http_request_duration_seconds',
  'http_request_size_bytes',
  'http_response_size_bytes',
  'http_requests_aborted_total',
  'http_requests_in_flight',
] as const;

const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS'] as const;
const OTHER_METHOD = METHODS.length;
const METHOD_INDEX = new Map<string, number>(METHODS.map((m, i) => [m, i]));
const METHOD_LABELS = [...METHODS, 'OTHER'];

/** Counts of one (method, route, status) combination. Plain numbers and typed arrays: no allocation per request. */
class Series {
  requests = 0;
  aborted = 0;
  durationSum = 0;
  readonly duration: Float64Array;
  requestSizeSum = 0;
  requestSizeCount = 0;
  readonly requestSize: Float64Array;
  responseSizeSum = 0;
  responseSizeCount = 0;
  readonly responseSize: Float64Array;
  /** Per duration bucket (last one = +Inf): the latest exemplar. Made on the first exemplar. */
  exemplarTrace: (string | undefined)[] | undefined = undefined;
  exemplarSpan: (string | undefined)[] | undefined = undefined;
  exemplarValue: Float64Array | undefined = undefined;
  exemplarTime: Float64Array | undefined = undefined;

  constructor(
    readonly method: string,
    readonly route: string,
    readonly status: string,
    durationBuckets: number,
    sizeBuckets: number,
  ) {
    this.duration = new Float64Array(durationBuckets + 1);
    this.requestSize = new Float64Array(sizeBuckets + 1);
    this.responseSize = new Float64Array(sizeBuckets + 1);
  }
}

function bucketOf(bounds: readonly number[], value: number): number {
  let i = 0;
  while (i < bounds.length && value > (bounds[i] as number)) i++;
  return i;
}

interface Sample {
  labels: Record<string, string | number>;
  value: number;
  metricName?: string;
  exemplar?: { labelSet: Record<string, string>; value: number; timestamp: number } | null;
}

/**
 * The RED metrics of every request, kept in per-series counters and handed to prom-client's
 * registry as five families read at scrape time (the registry formats, aggregates across cluster
 * workers and serves them like any prom-client metric).
 */
class HttpMetrics {
  readonly #routes = new Map<string, Map<number, Series>>();
  inFlight = 0;
  /** The close listener of each metrics() reporting here (see markScrape). */
  readonly closeListeners = new Set<() => void>();

  constructor(
    readonly durationBounds: readonly number[],
    readonly sizeBounds: readonly number[],
  ) {}

  series(method: number, route: string, status: number): Series {
    let byCode = this.#routes.get(route);
    if (byCode === undefined) {
      byCode = new Map();
      this.#routes.set(route, byCode);
    }
    const key = method * 1000 + status;
    let series = byCode.get(key);
    if (series === undefined) {
      series = new Series(
        METHOD_LABELS[method] as string,
        route,
        String(status),
        this.durationBounds.length,
        this.sizeBounds.length,
      );
      byCode.set(key, series);
    }
    return series;
  }

  *all(): Generator<Series> {
    for (const byCode of this.#routes.values()) yield* byCode.values();
  }

  register(metrics: Metrics): void {
    for (const name of HTTP_FAMILIES)
      if (metrics.registry.getSingleMetric(name) !== undefined)
        throw new ConfigError(
          `metrics: the registry already has a metric named "${name}"; metrics() needs the http_* names for itself`,
        );
    const family = (name: string, help: string, type: string, values: () => Sample[]): void => {
      const metric = {
        name,
        help,
        type,
        aggregator: 'sum',
        get: () => ({ name, help, type, aggregator: 'sum', values: values() }),
        reset: () => undefined,
      };
      metrics.registry.registerMetric(
        metric as unknown as Parameters<Metrics['registry']['registerMetric']>[0],
      );
    };
    family(
      'http_requests_total',
      'HTTP requests answered, by method, route template and status.',
      'counter',
      () =>
        [...this.all()].map((s) => ({
          labels: { method: s.method, route: s.route, status_code: s.status },
          value: s.requests,
        })),
    );
    family(
      'http_request_duration_seconds',
      'Time from the request entering the pipeline to the last byte of the response.',
      'histogram',
      () => {
        const out: Sample[] = [];
        for (const s of this.all()) {
          if (s.requests === 0) continue;
          histogramSamples(
            out,
            'http_request_duration_seconds',
            this.durationBounds,
            s.duration,
            s.durationSum,
            {
              method: s.method,
              route: s.route,
              status_code: s.status,
            },
            s,
          );
        }
        return out;
      },
    );
    family('http_request_size_bytes', 'Request body sizes (Content-Length).', 'histogram', () => {
      // Request sizes are labelled by method and route only: merge the status codes.
      const merged = new Map<string, { method: string; route: string; sum: number; counts: Float64Array }>();
      for (const s of this.all()) {
        if (s.requestSizeCount === 0) continue;
        const key = `${s.method} ${s.route}`;
        let m = merged.get(key);
        if (m === undefined) {
          m = {
            method: s.method,
            route: s.route,
            sum: 0,
            counts: new Float64Array(this.sizeBounds.length + 1),
          };
          merged.set(key, m);
        }
        m.sum += s.requestSizeSum;
        for (let i = 0; i < m.counts.length; i++) m.counts[i] = (m.counts[i] ?? 0) + (s.requestSize[i] ?? 0);
      }
      const out: Sample[] = [];
      for (const m of merged.values())
        histogramSamples(out, 'http_request_size_bytes', this.sizeBounds, m.counts, m.sum, {
          method: m.method,
          route: m.route,
        });
      return out;
    });
    family(
      'http_response_size_bytes',
      'Response body sizes (Content-Length), when the response declared one.',
      'histogram',
      () => {
        const out: Sample[] = [];
        for (const s of this.all()) {
          if (s.responseSizeCount === 0) continue;
          histogramSamples(
            out,
            'http_response_size_bytes',
            this.sizeBounds,
            s.responseSize,
            s.responseSizeSum,
            {
              method: s.method,
              route: s.route,
              status_code: s.status,
            },
          );
        }
        return out;
      },
    );
    family(
      'http_requests_aborted_total',
      'Requests the client abandoned before the response was complete.',
      'counter',
      () => {
        const merged = new Map<string, Sample>();
        for (const s of this.all()) {
          if (s.aborted === 0) continue;
          const key = `${s.method} ${s.route}`;
          const seen = merged.get(key);
          if (seen === undefined)
            merged.set(key, { labels: { method: s.method, route: s.route }, value: s.aborted });
          else seen.value += s.aborted;
        }
        return [...merged.values()];
      },
    );
    family('http_requests_in_flight', 'Requests being served now.', 'gauge', () => [
      { labels: {}, value: this.inFlight },
    ]);
  }
}

function histogramSamples(
  out: Sample[],
  name: string,
  bounds: readonly number[],
  counts: Float64Array,
  sum: number,
  labels: Record<string, string>,
  exemplars?: Series,
): void {
  let total = 0;
  for (let i = 0; i <= bounds.length; i++) {
    total += counts[i] ?? 0;
    const trace = exemplars?.exemplarTrace?.[i];
    out.push({
      labels: { ...labels, le: i < bounds.length ? (bounds[i] as number) : '+Inf' },
      value: total,
      metricName: `${name}_bucket`,
      exemplar:
        trace === undefined || exemplars === undefined
          ? null
          : {
              labelSet: { trace_id: trace, span_id: exemplars.exemplarSpan?.[i] ?? '' },
              value: exemplars.exemplarValue?.[i] ?? 0,
              timestamp: exemplars.exemplarTime?.[i] ?? 0,
            },
    });
  }
  out.push({ labels, value: sum, metricName: `${name}_sum` });
  out.push({ labels, value: total, metricName: `${name}_count` });
}

function readBuckets(option: string, value: unknown, fallback: readonly number[]): readonly number[] {
  if (value === undefined) return fallback;
  if (
    !Array.isArray(value) ||
    value.length === 0 ||
    value.some(
      (b, i) =>
        typeof b !== 'number' || !Number.isFinite(b) || b <= 0 || (i > 0 && b <= (value[i - 1] as number)),
    )
  )
    throw ConfigError.option('metrics', option, 'increasing positive finite numbers', value);
  return [...(value as number[])];
}

/**
 * Each registry's HTTP series, kept on the Metrics object under a global symbol: a second copy
 * of caduceus (ESM and CJS builds) reporting to the same registry finds the same series.
 */
const HTTP_KEY = Symbol.for('caduceus.metrics.http');
type WithHttp = Metrics & { [HTTP_KEY]?: HttpMetrics };
const httpByMetrics = {
  get: (metrics: Metrics): HttpMetrics | undefined => (metrics as WithHttp)[HTTP_KEY],
  set: (metrics: Metrics, http: HttpMetrics): void => {
    Object.defineProperty(metrics, HTTP_KEY, { value: http, enumerable: false });
  },
};

interface Measured {
  [STARTED]?: number;
}
const STARTED = Symbol('caduceus.metrics.started');

/**
 * RED metrics for every request: `http_requests_total`, `http_request_duration_seconds`,
 * `http_requests_in_flight`, `http_request_size_bytes`, `http_response_size_bytes`,
 * `http_requests_aborted_total` — labelled `method`, `route` (the matched template with its
 * routers' mount paths, never the URL) and `status_code`. Mount it right after `requestContext()`
 * so refusals (401, 403, 429) are counted too.
 *
 * @example
 * app.use(core.requestContext(), core.metrics());
 * app.get('/metrics', core.metricsEndpoint());
 */
export function metrics(input: Readonly<MetricsMiddlewareOptions> = {}): RequestHandler {
  const options = readOptions<MetricsMiddlewareOptions>('metrics', input, KNOWN);
  const target = metricsFor('metrics', options.metrics, options.settings);
  const durationBounds = readBuckets('buckets', options.buckets, DURATION_BUCKETS);
  const sizeBounds = readBuckets('sizeBuckets', options.sizeBuckets, SIZE_BUCKETS);
  const unmatched = options.unmatchedRoute ?? 'unmatched';
  if (typeof unmatched !== 'string' || unmatched === '')
    throw ConfigError.option('metrics', 'unmatchedRoute', 'a non-empty string', unmatched);
  const exemplarOption: unknown = options.exemplars ?? 'auto';
  if (exemplarOption !== true && exemplarOption !== false && exemplarOption !== 'auto')
    throw ConfigError.option('metrics', 'exemplars', "true, false or 'auto'", exemplarOption);
  const skip = options.skip;
  if (skip !== undefined && typeof skip !== 'function')
    throw ConfigError.option('metrics', 'skip', 'a function', skip);
  if (target === undefined)
    return function metricsDisabled(_req: Request, _res: Response, next: NextFunction): void {
      next();
    };

  let http = httpByMetrics.get(target);
  if (http === undefined) {
    http = new HttpMetrics(durationBounds, sizeBounds);
    http.register(target);
    httpByMetrics.set(target, http);
  } else if (
    http.durationBounds.join() !== durationBounds.join() ||
    http.sizeBounds.join() !== sizeBounds.join()
  ) {
    throw new ConfigError(
      'metrics: this registry already has HTTP metrics with other buckets; use one bucket layout per registry',
    );
  }
  const state = http;
  state.closeListeners.add(onClose);

  function onClose(this: ServerResponse & Measured): void {
    const req = this.req as Request & Record<symbol, unknown>;
    state.inFlight--;
    const ctx = pinnedContext(req);
    const now = performance.now();
    const seconds = (now - (ctx?.startHr ?? this[STARTED] ?? now)) / 1000;
    const route = req[UNMATCHED] === true ? unmatched : (routeOf(req) ?? unmatched);
    const series = state.series(METHOD_INDEX.get(req.method) ?? OTHER_METHOD, route, this.statusCode);
    if (!this.writableFinished) {
      series.aborted++;
      return;
    }
    series.requests++;
    series.durationSum += seconds;
    const bucket = bucketOf(state.durationBounds, seconds);
    series.duration[bucket] = (series.duration[bucket] ?? 0) + 1;
    if (
      ctx !== undefined &&
      exemplarOption !== false &&
      (exemplarOption === true || (ctx.traceFlags === '01' && otelRegistered()))
    ) {
      series.exemplarTrace ??= [];
      series.exemplarSpan ??= [];
      series.exemplarValue ??= new Float64Array(state.durationBounds.length + 1);
      series.exemplarTime ??= new Float64Array(state.durationBounds.length + 1);
      series.exemplarTrace[bucket] = ctx.traceId;
      series.exemplarSpan[bucket] = ctx.spanId;
      series.exemplarValue[bucket] = seconds;
      series.exemplarTime[bucket] = Date.now() / 1000;
    }
    const requestLength = req.headers['content-length'];
    if (requestLength !== undefined) {
      const bytes = Number(requestLength);
      if (bytes >= 0) {
        series.requestSizeCount++;
        series.requestSizeSum += bytes;
        const b = bucketOf(state.sizeBounds, bytes);
        series.requestSize[b] = (series.requestSize[b] ?? 0) + 1;
      }
    }
    const responseLength = this.getHeader('content-length');
    if (responseLength !== undefined) {
      const bytes = Number(responseLength);
      if (bytes >= 0) {
        series.responseSizeCount++;
        series.responseSizeSum += bytes;
        const b = bucketOf(state.sizeBounds, bytes);
        series.responseSize[b] = (series.responseSize[b] ?? 0) + 1;
      }
    }
  }

  return function metricsMiddleware(req: Request, res: Response, next: NextFunction): void {
    if (skip !== undefined && skip(req)) {
      next();
      return;
    }
    state.inFlight++;
    if (res.closed) {
      // The client left before this middleware ran: 'close' will not come again. Count it now.
      onClose.call(res);
      next();
      return;
    }
    const holder = req as unknown as Record<symbol, unknown>;
    if (holder[CONTEXT_KEY] === undefined) {
      // No requestContext(): keep the route templates ourselves, or mount params would be labels.
      (res as unknown as Measured)[STARTED] = performance.now();
      if (req.baseUrl) {
        // Used inside a sub-app or router: the path above already holds the mount's values.
        const tracker = new RouteTracker();
        tracker.seedMount(req.baseUrl, req.app);
        holder[ROUTE_TRACKER] = tracker;
      } else holder[ROUTE_TRACKER] = true;
      patchRequestPrototype(req);
    }
    // 'close' follows 'finish' on every response and also fires when the client goes away.
    onResponseClose(req, res, onClose);
    next();
  };
}
