/**
 * OpenTelemetry, read through the API's own global registration.
 *
 * `@opentelemetry/api` keeps the registered context manager on
 * `globalThis[Symbol.for('opentelemetry.js.api.1')]` and the active span under the context key
 * `Symbol.for('OpenTelemetry Context Key SPAN')`; every copy of the 1.x API finds the SDK that
 * way. Reading the same two keys lets caduceus follow an SDK without importing the package (an
 * optional peer: neither the ESM nor the CJS build can load it conditionally without a loader
 * trick) and costs one property read per request when no SDK is registered.
 */
const API_KEY = Symbol.for('opentelemetry.js.api.1');
const SPAN_KEY = Symbol.for('OpenTelemetry Context Key SPAN');

export interface OtelSpanContext {
  traceId: string;
  spanId: string;
  traceFlags: number;
}

/** The subset of an OpenTelemetry `Span` caduceus uses. */
export interface OtelSpan {
  spanContext(): OtelSpanContext;
  isRecording(): boolean;
  recordException(exception: { name?: string; message?: string; stack?: string; code?: string }): void;
  setStatus(status: { code: number; message?: string }): void;
  setAttribute(key: string, value: string | number | boolean): void;
  updateName(name: string): void;
}

interface OtelGlobal {
  context?: { active(): { getValue(key: symbol): unknown } };
}

const INVALID_TRACE = '00000000000000000000000000000000';

/** The span active in the current async context, when an OpenTelemetry SDK is registered. */
export function activeSpan(): OtelSpan | undefined {
  const api = (globalThis as Record<symbol, OtelGlobal | undefined>)[API_KEY];
  const manager = api?.context;
  if (manager === undefined) return undefined;
  const span = manager.active().getValue(SPAN_KEY) as OtelSpan | undefined;
  if (span === undefined || typeof span.spanContext !== 'function') return undefined;
  const { traceId } = span.spanContext();
  return traceId === INVALID_TRACE ? undefined : span;
}

/** True when an OpenTelemetry SDK has registered a context manager (so spans can be active). */
export function otelRegistered(): boolean {
  return (globalThis as Record<symbol, OtelGlobal | undefined>)[API_KEY]?.context !== undefined;
}

/** `Span.setStatus` code for an error (`SpanStatusCode.ERROR`). */
export const SPAN_STATUS_ERROR = 2;
