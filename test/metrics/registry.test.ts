/**
 * createMetrics(): the constant `app` label on every series, the application's own instruments
 * (one per name, checked names and types), and families pulled from several sources at scrape time.
 */
import { Counter, Registry } from 'prom-client';
import request from 'supertest';
import * as core from '../../lib/index';
import { EXPRESS } from '../support/express';
import { instrumentedApp, newMetrics, PROMETHEUS_ACCEPT, samplesOf, scrape, valueOf } from './support';

function expectConfigError(fn: () => unknown, mentions?: string): void {
  let thrown: unknown;
  try {
    fn();
  } catch (err) {
    thrown = err;
  }
  expect(thrown).toBeInstanceOf(core.ConfigError);
  if (mentions !== undefined) expect((thrown as Error).message).toContain(mentions);
}

describe('the app label', () => {
  it('is on every series, in both formats', async () => {
    const metrics = newMetrics('records');
    const variant = EXPRESS[1]!;
    const app = instrumentedApp(variant, metrics, (a) => {
      a.get('/records/:id', (_req, res) => {
        res.json({ ok: true });
      });
    });
    await request(app).get('/records/1').expect(200);
    await request(app).get('/nowhere').expect(404);
    metrics.counter('record_exports_total', 'Exports.', ['format']).inc({ format: 'fhir' });
    metrics.gauge('record_queue_depth', 'Queue depth.').set(4);
    metrics.histogram('record_export_seconds', 'Export time.', [], [1, 2]).observe(1.5);
    metrics.pull({ name: 'record_pool_size', help: 'Pool.', type: 'gauge', labelNames: ['pool'] }, (emit) => {
      emit(['main'], 3);
    });
    new Counter({
      name: 'own_prom_client_total',
      help: 'Registered directly.',
      registers: [metrics.registry],
    }).inc();

    for (const accept of [undefined, PROMETHEUS_ACCEPT]) {
      const exp = await scrape(metrics, accept === undefined ? {} : { accept });
      expect(exp.samples.length).toBeGreaterThan(20);
      expect(exp.samples.filter((s) => s.labels.app !== 'records').map((s) => s.line)).toEqual([]);
      for (const name of [
        'http_requests_total',
        'http_request_duration_seconds_count',
        'http_requests_in_flight',
        'record_exports_total',
        'record_queue_depth',
        'record_export_seconds_count',
        'record_pool_size',
        'own_prom_client_total',
      ])
        expect(samplesOf(exp, name).length).toBeGreaterThan(0);
    }
  });

  it('defaults to APP_NAME', async () => {
    const metrics = core.createMetrics({
      nodeMetrics: false,
      settings: core.loadSettings({ NODE_ENV: 'test', APP_NAME: 'from-env' }),
    });
    expect(metrics.app).toBe('from-env');
    metrics.counter('x_total', 'X.').inc();
    expect(valueOf(await scrape(metrics), 'x_total', { app: 'from-env' })).toBe(1);
  });

  it('keeps the default labels already set on a registry it is given', async () => {
    const registry = new Registry();
    registry.setDefaultLabels({ region: 'eu-west' });
    const metrics = core.createMetrics({ app: 'records', registry, nodeMetrics: false });
    expect(metrics.registry).toBe(registry);
    metrics.counter('y_total', 'Y.').inc();
    expect(samplesOf(await scrape(metrics), 'y_total')[0]?.labels).toEqual({
      region: 'eu-west',
      app: 'records',
    });
  });
});

describe('createMetrics() options', () => {
  it.each([
    ['app', { app: '' }],
    ['app', { app: 7 }],
    ['registry', { registry: {} }],
    ['nodeMetrics', { nodeMetrics: 'yes' }],
    ['cluster', { cluster: 1 }],
    ['enabled', { enabled: 'false' }],
    ['nodeMetric', { nodeMetric: false }],
  ])('throws a ConfigError naming %s', (option, input) => {
    expectConfigError(() => core.createMetrics({ nodeMetrics: false, ...(input as object) }), option);
  });
});

describe('instruments of the application', () => {
  it('returns the same counter, gauge or histogram for the same name', () => {
    const metrics = newMetrics();
    const a = metrics.counter('x_total', 'help', ['a']);
    expect(metrics.counter('x_total', 'help', ['a'])).toBe(a);
    const g = metrics.gauge('x_depth', 'help');
    expect(metrics.gauge('x_depth', 'other help')).toBe(g);
    const h = metrics.histogram('x_seconds', 'help', ['op'], [0.1, 1]);
    expect(metrics.histogram('x_seconds', 'help', ['op'], [0.1, 1])).toBe(h);
  });

  it('counts through either reference', async () => {
    const metrics = newMetrics();
    metrics.counter('x_total', 'help', ['a']).inc({ a: '1' });
    metrics.counter('x_total', 'help', ['a']).inc({ a: '1' }, 2);
    expect(valueOf(await scrape(metrics), 'x_total', { a: '1' })).toBe(3);
  });

  it('throws a ConfigError for a name taken by another type or other labels', () => {
    const metrics = newMetrics();
    metrics.counter('x_total', 'help', ['a']);
    expectConfigError(() => metrics.gauge('x_total', 'help', ['a']), 'x_total');
    expectConfigError(() => metrics.histogram('x_total', 'help', ['a']), 'x_total');
    expectConfigError(() => metrics.counter('x_total', 'help', ['b']), 'x_total');
    expectConfigError(() => metrics.counter('x_total', 'help'), 'x_total');
    metrics.gauge('y', 'help');
    expectConfigError(() => metrics.counter('y', 'help'), 'y');
  });

  it.each([['bad-name'], [''], ['9lives'], ['with space'], ['ünïcode']])(
    'throws a ConfigError for the metric name %j',
    (name) => {
      const metrics = newMetrics();
      expectConfigError(() => metrics.counter(name, 'help'));
      expectConfigError(() => metrics.gauge(name, 'help'));
      expectConfigError(() => metrics.histogram(name, 'help'));
      expectConfigError(() =>
        metrics.pull({ name, help: 'h', type: 'gauge', labelNames: [] }, () => undefined),
      );
    },
  );

  it.each([['bad-label'], ['__reserved'], ['app'], ['1st'], ['']])(
    'throws a ConfigError for the label name %j',
    (label) => {
      const metrics = newMetrics();
      expectConfigError(() => metrics.counter('x_total', 'help', [label]), label);
      expectConfigError(() =>
        metrics.pull({ name: 'p', help: 'h', type: 'gauge', labelNames: [label] }, () => undefined),
      );
    },
  );

  it('throws a ConfigError, not prom-client’s Error, for a histogram labelled le', () => {
    expectConfigError(() => newMetrics().histogram('x_seconds', 'help', ['le']), 'le');
  });

  it('throws a ConfigError rather than hand out an HTTP family of metrics() as a counter or gauge', () => {
    const metrics = newMetrics();
    core.metrics({ metrics });
    // These names belong to metrics(): what is returned would not be a Counter or a Gauge.
    expectConfigError(() => metrics.counter('http_requests_total', 'mine'), 'http_requests_total');
    expectConfigError(() => metrics.gauge('http_requests_in_flight', 'mine'), 'http_requests_in_flight');
  });

  it('throws a ConfigError rather than hand out a pulled family as a counter', () => {
    const metrics = newMetrics();
    metrics.pull({ name: 'pulled_total', help: 'h', type: 'counter', labelNames: [] }, () => undefined);
    expectConfigError(() => metrics.counter('pulled_total', 'h'), 'pulled_total');
  });
});

describe('pulled families', () => {
  const family = {
    name: 'pool_connections',
    help: 'Connections by state.',
    type: 'gauge' as const,
    labelNames: ['state'],
  };

  it('sums the sources with the same labels, and the returned function removes one', async () => {
    const metrics = newMetrics();
    const removeA = metrics.pull(family, (emit) => {
      emit(['idle'], 2);
      emit(['busy'], 1);
    });
    metrics.pull(family, (emit) => {
      emit(['idle'], 5);
      emit(['waiting'], 4);
    });
    let exp = await scrape(metrics);
    expect(exp.types.get('pool_connections')).toBe('gauge');
    expect(valueOf(exp, 'pool_connections', { state: 'idle' })).toBe(7);
    expect(valueOf(exp, 'pool_connections', { state: 'busy' })).toBe(1);
    expect(valueOf(exp, 'pool_connections', { state: 'waiting' })).toBe(4);

    removeA();
    exp = await scrape(metrics);
    expect(valueOf(exp, 'pool_connections', { state: 'idle' })).toBe(5);
    expect(samplesOf(exp, 'pool_connections', { state: 'busy' })).toEqual([]);
    removeA();
    expect(valueOf(await scrape(metrics), 'pool_connections', { state: 'idle' })).toBe(5);
  });

  it('reads the sources at every scrape', async () => {
    const metrics = newMetrics();
    let served = 0;
    metrics.pull({ name: 'served_total', help: 'Served.', type: 'counter', labelNames: [] }, (emit) => {
      emit([], served);
    });
    served = 3;
    expect(valueOf(await scrape(metrics), 'served_total')).toBe(3);
    served = 10;
    const om = await scrape(metrics, { accept: PROMETHEUS_ACCEPT });
    expect(om.types.get('served')).toBe('counter');
    expect(valueOf(om, 'served_total')).toBe(10);
  });

  it('throws a ConfigError for the same name with another type or labels, or taken by a counter', () => {
    const metrics = newMetrics();
    metrics.pull(family, () => undefined);
    expectConfigError(() => metrics.pull({ ...family, type: 'counter' }, () => undefined), family.name);
    expectConfigError(() => metrics.pull({ ...family, labelNames: ['other'] }, () => undefined), family.name);
    metrics.counter('taken_total', 'help');
    expectConfigError(
      () =>
        metrics.pull({ name: 'taken_total', help: 'h', type: 'counter', labelNames: [] }, () => undefined),
      'taken_total',
    );
  });
});
