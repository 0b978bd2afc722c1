import type { Metrics } from '../metrics/index.js';
import type { CallResult, CircuitBreakerState } from './breaker-types.js';

/** The values of `circuit_breaker_state`: the monitoring rules alert on `== 2`. */
export const STATE_VALUE: Readonly<Record<CircuitBreakerState, number>> = {
  closed: 0,
  half_open: 1,
  open: 2,
};

/** What a breaker keeps and its metrics read at scrape time. */
export interface BreakerCounters {
  readonly name: string;
  readonly state: CircuitBreakerState;
  readonly calls: Readonly<Record<CallResult, number>>;
  /** Transitions by `from` then `to`. */
  readonly transitions: ReadonlyMap<CircuitBreakerState, ReadonlyMap<CircuitBreakerState, number>>;
}

/** Report a breaker's three families into `target`; returns the functions that remove it again. */
export function reportBreaker(target: Metrics, source: BreakerCounters): (() => void)[] {
  const name = source.name;
  return [
    target.pull(
      {
        name: 'circuit_breaker_state',
        help: 'State of each circuit breaker: 0 closed, 1 half-open, 2 open.',
        type: 'gauge',
        labelNames: ['service_name'],
      },
      (emit) => {
        emit([name], STATE_VALUE[source.state]);
      },
    ),
    target.pull(
      {
        name: 'circuit_breaker_transitions_total',
        help: 'State changes of each circuit breaker, by from and to state.',
        type: 'counter',
        labelNames: ['service_name', 'from', 'to'],
      },
      (emit) => {
        for (const [from, targets] of source.transitions)
          for (const [to, count] of targets) emit([name, from, to], count);
      },
    ),
    target.pull(
      {
        name: 'circuit_breaker_calls_total',
        help: 'Calls through each circuit breaker, by result: success, failure, rejected, fallback, cancelled.',
        type: 'counter',
        labelNames: ['service_name', 'result'],
      },
      (emit) => {
        for (const [result, count] of Object.entries(source.calls)) emit([name, result], count);
      },
    ),
  ];
}
