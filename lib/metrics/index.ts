export type { MetricsOptions, PulledFamily, Reader, Emit } from './registry.js';
export { Metrics, createMetrics, getMetrics, metricsFor, isMetrics } from './registry.js';
export type { MetricsMiddlewareOptions } from './http.js';
export { metrics, DURATION_BUCKETS, SIZE_BUCKETS } from './http.js';
export type { MetricsEndpointOptions } from './endpoint.js';
export { metricsEndpoint } from './endpoint.js';
export type { TracingOptions, Tracing } from './tracing.js';
export { startTracing } from './tracing.js';
