export type {
  CircuitBreakerOptions,
  CircuitBreakerState,
  CircuitBreakerMode,
  CircuitBreakerEvent,
  CallResult,
  StateChange,
  CircuitBreaker,
  CircuitBreakerStats,
  BreakerDecorator,
} from './breaker-types.js';
export { circuitBreaker } from './circuit-breaker.js';
export type { RetryOptions, RetryEvent } from './retry.js';
export { retry, retryWithBackoff } from './retry.js';
export type { TimeoutOptions } from './timeout.js';
export { timeout } from './timeout.js';
export type { Bulkhead } from './bulkhead.js';
export { bulkhead } from './bulkhead.js';
export { isDependencyFailure, isTransient } from './classify.js';
