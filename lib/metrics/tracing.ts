import type { Request } from 'express';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type { Settings } from '../config/index.js';
import { loadSettings } from '../config/index.js';
import { ConfigError, readOptions } from '../errors/index.js';
import type { Logger } from '../logging/index.js';
import { createLogger } from '../logging/index.js';
import { routeOf } from '../logging/access-log.js';

export interface TracingOptions {
  /** `service.name` of the spans. Default `OTEL_SERVICE_NAME`, else `APP_NAME`. */
  serviceName?: string;
  /**
   * OTLP/HTTP traces endpoint (`http://collector:4318/v1/traces`). Default: the exporter's own,
   * from `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` / `OTEL_EXPORTER_OTLP_ENDPOINT`, else localhost:4318.
   */
  endpoint?: string;
  /**
   * OpenTelemetry instrumentations to register. Default: `@opentelemetry/instrumentation-http`
   * (server and client spans; caduceus names server spans by route template itself).
   */
  instrumentations?: readonly unknown[];
  /** Start even when `ENABLE_TRACING` is false (tests, scripts). Default: `ENABLE_TRACING`. */
  enabled?: boolean;
  logger?: Logger;
  settings?: Settings;
}

/** A started tracing SDK. */
export interface Tracing {
  /** Export what is buffered and stop. Call it on shutdown, or the last spans are lost. */
  shutdown(): Promise<void>;
}

const KNOWN = [
  'serviceName',
  'endpoint',
  'instrumentations',
  'enabled',
  'logger',
  'settings',
] as const satisfies readonly (keyof TracingOptions)[];

interface NodeSdk {
  start(): void;
  shutdown(): Promise<void>;
}
type NodeSdkModule = { NodeSDK: new (config: Record<string, unknown>) => NodeSdk };
type ExporterModule = { OTLPTraceExporter: new (config: { url?: string }) => unknown };
type HttpModule = { HttpInstrumentation: new (config: Record<string, unknown>) => unknown };

interface SpanLike {
  setAttribute(key: string, value: string): void;
}

const REDACTED = '[REDACTED]';

/** Attributes that carry a raw URL or its parts, in the old and the stable HTTP conventions. */
const SERVER_PATHS = ['url.path', 'http.target'] as const;
const SERVER_QUERIES = ['url.query'] as const;
const CLIENT_URLS = ['url.full', 'http.url'] as const;
const CLIENT_PATHS = ['http.target', 'url.path', 'url.query'] as const;

function present(span: SpanLike, key: string): boolean {
  const attributes = (span as { attributes?: Record<string, unknown> }).attributes;
  return attributes === undefined || attributes[key] !== undefined;
}

/**
 * The HTTP instrumentation records the raw URL — ids in the path, anything in the query — which
 * caduceus keeps out of logs and labels. As soon as a span starts (so a request that fails or is
 * cut off exports nothing raw either): a server span's path and query become `[REDACTED]`, a
 * client span's URL keeps only its origin. When a server span ends normally, its path becomes the
 * route template.
 */
function redactUrls(span: SpanLike, request: unknown, atEnd: boolean): void {
  const outgoing = request as { getHeader?: unknown; protocol?: string; host?: string; path?: string };
  if (typeof outgoing.getHeader === 'function') {
    const origin = `${outgoing.protocol ?? 'http:'}//${outgoing.host ?? ''}`;
    const path = outgoing.path ?? '/';
    const url = path === '/' ? `${origin}/` : `${origin}/${REDACTED}`;
    for (const key of CLIENT_URLS) if (present(span, key)) span.setAttribute(key, url);
    for (const key of CLIENT_PATHS) if (present(span, key)) span.setAttribute(key, REDACTED);
    return;
  }
  const incoming = request as Request;
  const path = atEnd ? (routeOf(incoming) ?? REDACTED) : REDACTED;
  for (const key of SERVER_PATHS) if (present(span, key)) span.setAttribute(key, path);
  const url: unknown = incoming.originalUrl;
  if (typeof url === 'string' && url.includes('?'))
    for (const key of SERVER_QUERIES) if (present(span, key)) span.setAttribute(key, REDACTED);
}

const PACKAGES =
  '@opentelemetry/api @opentelemetry/sdk-node @opentelemetry/exporter-trace-otlp-http @opentelemetry/instrumentation-http';

async function load<T>(name: string): Promise<T> {
  try {
    return (await import(name)) as T;
  } catch (err) {
    throw new ConfigError(
      `startTracing: ${name} is not installed (${err instanceof Error ? err.message.split('\n')[0] : 'import failed'}). ` +
        `Tracing needs the optional peer dependencies: npm install ${PACKAGES}`,
    );
  }
}

/**
 * Start OpenTelemetry tracing with OTLP/HTTP export when `ENABLE_TRACING=true` (resolves
 * `undefined` otherwise). Call it first, before the app's modules create servers, and await it.
 * The SDK packages are optional peer dependencies, loaded only here. Once started, every request's
 * context takes the server span's ids, so log lines, `traceparent` on outgoing calls and metric
 * exemplars name the exported trace; `errors()` records 5xx on the span.
 *
 * @example
 * const tracing = await core.startTracing();          // ENABLE_TRACING=true
 * process.on('SIGTERM', () => void tracing?.shutdown());
 */
export async function startTracing(input: Readonly<TracingOptions> = {}): Promise<Tracing | undefined> {
  const options = readOptions<TracingOptions>('startTracing', input, KNOWN);
  const settings = options.settings ?? loadSettings(process.env);
  const { serviceName, endpoint, instrumentations } = options;
  if (serviceName !== undefined && (typeof serviceName !== 'string' || serviceName === ''))
    throw ConfigError.option('startTracing', 'serviceName', 'a non-empty string', serviceName);
  if (endpoint !== undefined && (typeof endpoint !== 'string' || !/^https?:\/\//.test(endpoint)))
    throw ConfigError.option('startTracing', 'endpoint', 'an http(s) URL', endpoint);
  if (instrumentations !== undefined && !Array.isArray(instrumentations))
    throw ConfigError.option(
      'startTracing',
      'instrumentations',
      'an array of instrumentations',
      instrumentations,
    );
  // Options are checked even when tracing is off: a mistake must not wait for ENABLE_TRACING=true.
  const enabled = options.enabled ?? settings.monitoring.enableTracing;
  if (typeof enabled !== 'boolean')
    throw ConfigError.option('startTracing', 'enabled', 'true or false', enabled);
  if (!enabled) return undefined;
  const logger = options.logger ?? createLogger('tracing', { settings });

  const { NodeSDK } = await load<NodeSdkModule>('@opentelemetry/sdk-node');
  const { OTLPTraceExporter } = await load<ExporterModule>('@opentelemetry/exporter-trace-otlp-http');
  const registered = instrumentations ?? [
    new (await load<HttpModule>('@opentelemetry/instrumentation-http')).HttpInstrumentation({
      requestHook: (span: SpanLike, request: unknown) => {
        redactUrls(span, request, false);
      },
      applyCustomAttributesOnSpan: (span: SpanLike, request: unknown) => {
        redactUrls(span, request, true);
      },
    }),
  ];
  const sdk = new NodeSDK({
    serviceName: serviceName ?? process.env.OTEL_SERVICE_NAME ?? settings.appName,
    traceExporter: new OTLPTraceExporter(endpoint === undefined ? {} : { url: endpoint }),
    instrumentations: registered,
    // Traces only: metrics are Prometheus' job here, logs go through winston.
    metricReaders: [],
    logRecordProcessors: [],
  });
  sdk.start();
  // Instrumentations patch a module when it is next `require`d. Express (and caduceus) loaded
  // `http` long before this call, so require it once more now: the server created by
  // `app.listen()` afterwards then makes spans even though nothing else requires `http` again.
  const requireHere = createRequire(join(process.cwd(), 'caduceus-tracing.js'));
  requireHere('http');
  requireHere('https');
  logger.info('tracing started', {
    service: serviceName ?? process.env.OTEL_SERVICE_NAME ?? settings.appName,
    instrumentations: registered.length,
  });
  let stopped: Promise<void> | undefined;
  return {
    shutdown: () => (stopped ??= sdk.shutdown()),
  };
}
