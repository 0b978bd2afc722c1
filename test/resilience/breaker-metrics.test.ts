/**
 * What a breaker reports: `circuit_breaker_state` (0 closed, 1 half-open, 2 open — the alert rule
 * reads `== 2`), `circuit_breaker_transitions_total{from,to}` and `circuit_breaker_calls_total{result}`.
 */
import * as core from '../../lib/index';
import { samples, testMetrics, valueOf } from '../support/metrics';
import { breakers, deferred, fail, ok, rejectionOf, settings, silent } from './support';

const make = breakers();

beforeEach(() => {
  jest.useFakeTimers({ now: new Date('2025-01-01T00:00:00Z'), doNotFake: ['setImmediate', 'nextTick'] });
});
afterEach(async () => {
  await make.closeAll();
  jest.useRealTimers();
});

describe('breaker metrics', () => {
  it('the state gauge follows the state: 0, 2, 1, 0', async () => {
    const { breaker, metrics } = make({ failureThreshold: 1, recoveryTimeout: 1000 });
    const state = () => valueOf(metrics, 'circuit_breaker_state', { service_name: 'labs' });
    expect(await state()).toBe(0);
    await rejectionOf(breaker.execute(fail));
    expect(await state()).toBe(2);
    await jest.advanceTimersByTimeAsync(1000);
    expect(await state()).toBe(1);
    const probe = deferred<string>();
    const running = breaker.execute(() => probe.promise);
    expect(await state()).toBe(1);
    probe.resolve('ok');
    await running;
    expect(await state()).toBe(0);
  });

  it('counts transitions by from and to', async () => {
    const { breaker, metrics } = make({ failureThreshold: 1, recoveryTimeout: 1000 });
    await rejectionOf(breaker.execute(fail));
    await jest.advanceTimersByTimeAsync(1000);
    await rejectionOf(breaker.execute(fail));
    await jest.advanceTimersByTimeAsync(1000);
    await breaker.execute(ok);
    const transitions = await samples(metrics, 'circuit_breaker_transitions_total');
    expect(
      transitions
        .map((s) => [s.labels.from, s.labels.to, s.value])
        .sort((a, b) => String(a).localeCompare(String(b))),
    ).toEqual([
      ['closed', 'open', 1],
      ['half_open', 'closed', 1],
      ['half_open', 'open', 1],
      ['open', 'half_open', 2],
    ]);
    expect(transitions.every((s) => s.labels.service_name === 'labs' && s.labels.app === 'test')).toBe(true);
  });

  it('counts calls by result', async () => {
    const { breaker, metrics } = make({ failureThreshold: 2 });
    await breaker.execute(ok);
    await breaker.execute(ok);
    await rejectionOf(breaker.execute(fail));
    await rejectionOf(breaker.execute(fail));
    await rejectionOf(breaker.execute(ok));
    await rejectionOf(breaker.execute(ok, AbortSignal.abort()));
    const calls = async (result: string) =>
      valueOf(metrics, 'circuit_breaker_calls_total', { service_name: 'labs', result });
    expect(await calls('success')).toBe(2);
    expect(await calls('failure')).toBe(2);
    expect(await calls('rejected')).toBe(1);
    expect(await calls('fallback')).toBe(0);
    expect(await calls('cancelled')).toBe(1);
  });

  it('fallback answers are counted as fallback', async () => {
    const { breaker, metrics } = make({ failureThreshold: 1, fallback: () => 'cached' });
    await breaker.execute(fail);
    await breaker.execute(ok);
    expect(await valueOf(metrics, 'circuit_breaker_calls_total', { result: 'fallback' })).toBe(2);
    expect(await valueOf(metrics, 'circuit_breaker_calls_total', { result: 'failure' })).toBe(0);
  });

  it('two breakers report side by side; close() removes only its own series', async () => {
    const metrics = testMetrics();
    const labs = make({ name: 'labs', metrics, failureThreshold: 1 }).breaker;
    const pharmacy = make({ name: 'pharmacy', metrics }).breaker;
    await rejectionOf(labs.execute(fail));
    expect(await valueOf(metrics, 'circuit_breaker_state', { service_name: 'labs' })).toBe(2);
    expect(await valueOf(metrics, 'circuit_breaker_state', { service_name: 'pharmacy' })).toBe(0);
    await labs.close();
    expect(await valueOf(metrics, 'circuit_breaker_state', { service_name: 'labs' })).toBeUndefined();
    expect(await valueOf(metrics, 'circuit_breaker_state', { service_name: 'pharmacy' })).toBe(0);
    await pharmacy.close();
  });

  it('renders in the Prometheus text format the alert rule reads', async () => {
    const { breaker, metrics } = make({ failureThreshold: 1 });
    await rejectionOf(breaker.execute(fail));
    const text = await metrics.render();
    expect(text).toContain('# TYPE circuit_breaker_state gauge');
    expect(text).toContain('circuit_breaker_state{service_name="labs",app="test"} 2');
    expect(text).toContain('# TYPE circuit_breaker_calls_total counter');
  });

  it('metrics: false reports nowhere; a disabled registry costs nothing', async () => {
    const quiet = core.circuitBreaker({ name: 'quiet', metrics: false, logger: silent, settings });
    const disabled = core.createMetrics({ enabled: false, nodeMetrics: false });
    const off = core.circuitBreaker({ name: 'off', metrics: disabled, logger: silent, settings });
    await quiet.execute(ok);
    await off.execute(ok);
    expect(await samples(disabled, 'circuit_breaker_state')).toEqual([]);
    await quiet.close();
    await off.close();
  });
});
