import type { CircuitBreaker, Logger, Metrics } from '../../lib/index';
import { circuitBreaker, retry, ServiceUnavailableError, timeout } from '../../lib/index';

/** One laboratory result, as a lab information system (LIS) would return it. */
export interface LabResult {
  readonly code: string;
  readonly display: string;
  readonly value: number;
  readonly unit: string;
  readonly observed_at: string;
}

/** The outbound dependency of the demo: a lab system reached over the network. */
export interface LabClient {
  /** `signal` aborts the call (a timeout, or the caller giving up). */
  resultsFor(patientId: string, signal?: AbortSignal): Promise<LabResult[]>;
}

/**
 * The demo's lab client: no lab system is connected, so every call fails — after an `await`, the
 * way a network call does. The message is internal on purpose: `errors()` logs it and answers
 * with a generic 500, so it never reaches the client. Pass your own `LabClient` to `createApp()`.
 */
export function disconnectedLabs(): LabClient {
  return {
    async resultsFor(): Promise<LabResult[]> {
      await new Promise((resolve) => setImmediate(resolve));
      throw new Error(
        'LIS request failed: lis.internal.example:7443 refused the connection (pool lis-primary)',
      );
    },
  };
}

/** A lab system simulated in process, for the demo's tests: it can be made to fail or to hang. */
export interface SimulatedLabs extends LabClient {
  /** `'ok'` answers; `'failing'` resets every connection (a transient failure); `'hanging'` never answers. */
  mode: 'ok' | 'failing' | 'hanging';
  /** Calls that reached it (retries included). */
  readonly calls: number;
}

export function simulatedLabs(latencyMs = 2): SimulatedLabs {
  let calls = 0;
  const labs: SimulatedLabs = {
    mode: 'ok',
    get calls() {
      return calls;
    },
    async resultsFor(patientId, signal) {
      calls++;
      await new Promise<void>((resolve, reject) => {
        if (labs.mode === 'hanging') {
          signal?.addEventListener('abort', () => {
            reject(Object.assign(new Error('lab request aborted'), { name: 'AbortError' }));
          });
          return;
        }
        setTimeout(resolve, latencyMs);
      });
      if (labs.mode === 'failing')
        throw Object.assign(new Error('lab system reset the connection'), { code: 'ECONNRESET' });
      return [
        { code: '2345-7', display: 'Glucose', value: 5.4, unit: 'mmol/L', observed_at: '2026-01-01' },
        {
          code: '718-7',
          display: `Hemoglobin (${patientId.slice(0, 8)})`,
          value: 13.9,
          unit: 'g/dL',
          observed_at: '2026-01-01',
        },
      ];
    },
  };
  return labs;
}

export interface ResilientLabsOptions {
  /** Consecutive failures that open the circuit. Default 5. */
  failureThreshold?: number;
  /** Time the circuit stays open before one probe. Default 30 000 ms. */
  recoveryTimeout?: number;
  /** Each attempt's time limit. Default 2 000 ms. */
  timeoutMs?: number;
  /** Retries of a transient failure (refused/reset connection, timeout, 5xx). Default 2. */
  maxRetries?: number;
  /** Backoff base (full jitter). Default 100 ms. */
  baseDelay?: number;
  metrics?: Metrics;
  logger?: Logger;
}

/** The lab client behind the service's resilience: timeout inside retry inside a circuit breaker. */
export interface ResilientLabs extends LabClient {
  readonly breaker: CircuitBreaker;
}

/**
 * Every call: a circuit breaker (`labs`: open after 5 failures in a row, one probe after 30 s —
 * then 503 CIRCUIT_OPEN with Retry-After at once, the lab system gets time to recover), around a
 * retry of transient failures (full-jitter backoff), around a per-attempt timeout that aborts the
 * request. One AbortSignal runs through the chain. A transient failure that outlasts the retries is
 * a 503 naming the lab system; anything else keeps its own answer (the demo's disconnected client
 * is a generic 500).
 */
export function resilientLabs(client: LabClient, options: ResilientLabsOptions = {}): ResilientLabs {
  const breaker = circuitBreaker({
    name: 'labs',
    failureThreshold: options.failureThreshold ?? 5,
    recoveryTimeout: options.recoveryTimeout ?? 30_000,
    ...(options.metrics === undefined ? {} : { metrics: options.metrics }),
    ...(options.logger === undefined ? {} : { logger: options.logger }),
  });
  const timeoutMs = options.timeoutMs ?? 2_000;
  return {
    breaker,
    resultsFor(patientId, outer) {
      return breaker.execute(
        (signal) =>
          retry(
            (attemptSignal) =>
              timeout((deadline) => client.resultsFor(patientId, deadline), timeoutMs, {
                signal: attemptSignal,
              }),
            {
              signal,
              name: 'labs',
              maxRetries: options.maxRetries ?? 2,
              baseDelay: options.baseDelay ?? 100,
              ...(options.metrics === undefined ? {} : { metrics: options.metrics }),
            },
          ).catch((err: unknown) => {
            if (
              (err as { code?: unknown }).code === 'ECONNRESET' ||
              (err as { name?: unknown }).name === 'TimeoutError'
            )
              throw new ServiceUnavailableError('The lab system is not answering', 5, {
                details: { dependency: 'labs' },
              });
            throw err;
          }),
        outer,
      );
    },
  };
}
