/**
 * Exemplars on the duration buckets (OpenMetrics only): the request's W3C trace with
 * `exemplars: true`; with the default `'auto'`, only when an OpenTelemetry SDK is registered and
 * the request is sampled. And OpenMetrics escaping of what applications put in HELP and labels.
 */
import { context, ROOT_CONTEXT, trace, type Context, type ContextManager } from '@opentelemetry/api';
import { AsyncLocalStorage } from 'node:async_hooks';
import request from 'supertest';
import * as core from '../../lib/index';
import { eachExpress, type ExpressVariant } from '../support/express';
import {
  instrumentedApp,
  newMetrics,
  parseExposition,
  PROMETHEUS_ACCEPT,
  samplesOf,
  scrape,
  type Sample,
} from './support';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT = '00f067aa0ba902b7';
const sampled = (trace = TRACE) => `00-${trace}-${PARENT}-01`;
const EXEMPLAR = / # \{trace_id="[0-9a-f]{32}",span_id="[0-9a-f]{16}"\} \d+(\.\d+)?(e-\d+)? \d+(\.\d+)?$/;

function appFor(variant: ExpressVariant, metrics: core.Metrics, options: core.MetricsMiddlewareOptions) {
  return instrumentedApp(
    variant,
    metrics,
    (app) => {
      app.get('/patients/:id', (_req, res) => {
        res.json({ ok: true });
      });
      app.get('/slow', (_req, res) => {
        setTimeout(() => res.json({ ok: true }), 30);
      });
    },
    options,
  );
}

function withExemplars(samples: readonly Sample[]): Sample[] {
  return samples.filter((s) => s.exemplar !== undefined);
}

describe.each(eachExpress)('exemplars on %s', (_name, variant) => {
  it('puts the request’s trace on the duration bucket it fell in, with exemplars: true', async () => {
    const metrics = newMetrics();
    const app = appFor(variant, metrics, { exemplars: true });
    const before = Date.now() / 1000;
    await request(app).get('/patients/1').set('traceparent', sampled()).expect(200);

    const exp = await scrape(metrics, { accept: PROMETHEUS_ACCEPT });
    const bucketLines = samplesOf(exp, 'http_request_duration_seconds_bucket', { route: '/patients/:id' });
    const marked = withExemplars(bucketLines);
    expect(marked).toHaveLength(1);
    const [line] = marked as [Sample];
    expect(line.line).toMatch(EXEMPLAR);
    expect(line.exemplar?.labels.trace_id).toBe(TRACE);
    // The span of this request (a child of the caller's), not the caller's own.
    expect(line.exemplar?.labels.span_id).toMatch(/^[0-9a-f]{16}$/);
    expect(line.exemplar?.labels.span_id).not.toBe(PARENT);
    // Its value is the duration, within the bucket: above the bound before, at most this one.
    const index = bucketLines.indexOf(line);
    const value = line.exemplar?.value ?? NaN;
    expect(value).toBeGreaterThan(0);
    expect(value).toBeLessThanOrEqual(Number(line.labels.le === '+Inf' ? Infinity : line.labels.le));
    if (index > 0) expect(value).toBeGreaterThan(Number(bucketLines[index - 1]?.labels.le));
    expect(line.exemplar?.timestamp).toBeGreaterThanOrEqual(Math.floor(before));
    expect(line.exemplar?.timestamp).toBeLessThanOrEqual(Date.now() / 1000 + 1);
    // Nowhere else: not on _sum, _count or the counter.
    expect(withExemplars(exp.samples)).toEqual(marked);
  });

  it('keeps one exemplar per bucket: the latest request’s', async () => {
    const metrics = newMetrics();
    const app = appFor(variant, metrics, { exemplars: true });
    const first = 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa';
    const second = 'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb';
    const slow = 'cccccccccccccccccccccccccccccccc';
    await request(app).get('/patients/1').set('traceparent', sampled(first)).expect(200);
    await request(app).get('/patients/2').set('traceparent', sampled(second)).expect(200);
    await request(app).get('/slow').set('traceparent', sampled(slow)).expect(200);
    const exp = await scrape(metrics, { accept: PROMETHEUS_ACCEPT });
    const traces = withExemplars(exp.samples).map((s) => [s.labels.route, s.exemplar?.labels.trace_id]);
    expect(traces).toContainEqual(['/slow', slow]);
    expect(traces.filter(([, t]) => t === first || t === second).length).toBeGreaterThanOrEqual(1);
    // Both fast requests fell in the first bucket (≤ 5 ms) unless the machine is slow; then the
    // later one replaced the earlier one.
    const fastBuckets = withExemplars(
      samplesOf(exp, 'http_request_duration_seconds_bucket', { route: '/patients/:id' }),
    );
    if (fastBuckets.length === 1) expect(fastBuckets[0]?.exemplar?.labels.trace_id).toBe(second);
  });

  it('never writes exemplars in the text format', async () => {
    const metrics = newMetrics();
    const app = appFor(variant, metrics, { exemplars: true });
    await request(app).get('/patients/1').set('traceparent', sampled()).expect(200);
    const text = await scrape(metrics);
    expect(text.text).not.toContain('trace_id');
    expect(withExemplars(text.samples)).toEqual([]);
  });

  it.each([
    ['the default (auto) without an OpenTelemetry SDK', {}],
    ["'auto' without an OpenTelemetry SDK", { exemplars: 'auto' as const }],
    ['exemplars: false', { exemplars: false }],
  ])('writes none with %s', async (_case, options) => {
    const metrics = newMetrics();
    const app = appFor(variant, metrics, options);
    await request(app).get('/patients/1').set('traceparent', sampled()).expect(200);
    await request(app).get('/patients/2').expect(200);
    const exp = await scrape(metrics, { accept: PROMETHEUS_ACCEPT });
    expect(samplesOf(exp, 'http_requests_total')).toHaveLength(1);
    expect(exp.text).not.toContain('trace_id');
  });
});

/**
 * A context manager on AsyncLocalStorage, registered through @opentelemetry/api as an SDK does,
 * and a middleware in front of the pipeline that makes a server span active, as the SDK's HTTP
 * instrumentation does.
 */
class AsyncLocalContextManager implements ContextManager {
  readonly #als = new AsyncLocalStorage<Context>();
  active(): Context {
    return this.#als.getStore() ?? ROOT_CONTEXT;
  }
  with<A extends unknown[], F extends (...args: A) => ReturnType<F>>(
    ctx: Context,
    fn: F,
    thisArg?: ThisParameterType<F>,
    ...args: A
  ): ReturnType<F> {
    return this.#als.run(ctx, () => fn.apply(thisArg, args));
  }
  bind<T>(_ctx: Context, target: T): T {
    return target;
  }
  enable(): this {
    return this;
  }
  disable(): this {
    this.#als.disable();
    return this;
  }
}

describe.each(eachExpress)(
  "exemplars: 'auto' with an OpenTelemetry SDK registered on %s",
  (_name, variant) => {
    beforeAll(() => {
      expect(context.setGlobalContextManager(new AsyncLocalContextManager())).toBe(true);
    });
    afterAll(() => {
      context.disable();
    });

    function tracedApp(metrics: core.Metrics, flags: number) {
      const app = variant.express();
      app.use((_req, _res, next) => {
        const span = trace.wrapSpanContext({ traceId: TRACE, spanId: 'a1b2c3d4e5f60718', traceFlags: flags });
        context.with(trace.setSpan(context.active(), span), next);
      });
      app.use(core.requestContext(), core.metrics({ metrics }));
      app.get('/patients/:id', (_req, res) => {
        res.json({ traceId: core.getContext()?.traceId });
      });
      return app;
    }

    it('writes the SDK span’s trace and span ids for a sampled request', async () => {
      const metrics = newMetrics();
      const res = await request(tracedApp(metrics, 1)).get('/patients/1').expect(200);
      expect(res.body).toEqual({ traceId: TRACE });
      const exp = await scrape(metrics, { accept: PROMETHEUS_ACCEPT });
      const marked = withExemplars(exp.samples);
      expect(marked.map((s) => s.exemplar?.labels)).toEqual([
        { trace_id: TRACE, span_id: 'a1b2c3d4e5f60718' },
      ]);
      expect(marked[0]?.name).toBe('http_request_duration_seconds_bucket');
    });

    it('writes none for a request the SDK did not sample', async () => {
      const metrics = newMetrics();
      await request(tracedApp(metrics, 0)).get('/patients/1').expect(200);
      const exp = await scrape(metrics, { accept: PROMETHEUS_ACCEPT });
      expect(withExemplars(exp.samples)).toEqual([]);
    });
  },
);

describe('OpenMetrics escaping of application metrics', () => {
  const HELP = 'Records "exported" to C:\\exports, by format\nsecond line';
  const FORMAT = 'fhir "r4" \\ bundle\nv2';

  async function both(): Promise<[ReturnType<typeof parseExposition>, ReturnType<typeof parseExposition>]> {
    const metrics = newMetrics();
    metrics.counter('records_exported_total', HELP, ['format']).inc({ format: FORMAT }, 3);
    const om = await scrape(metrics, { accept: PROMETHEUS_ACCEPT });
    const text = await scrape(metrics);
    return [om, text];
  }

  it('escapes label values so they read back unchanged, in both formats', async () => {
    for (const exp of await both()) {
      const [sample] = samplesOf(exp, 'records_exported_total');
      expect(sample?.labels).toEqual({ format: FORMAT, app: 'test' });
      expect(sample?.value).toBe(3);
    }
  });

  it('escapes HELP as each format requires (OpenMetrics: \\\\, \\n and \\")', async () => {
    const [om, text] = await both();
    const omHelp = om.lines.find((l) => l.startsWith('# HELP records_exported '));
    const textHelp = text.lines.find((l) => l.startsWith('# HELP records_exported_total '));
    // OpenMetrics HELP is an escaped-string: no raw double quote (ABNF normal-char excludes %x22).
    expect(omHelp?.replace(/\\./g, '')).not.toContain('"');
    expect(om.help.get('records_exported')).toBe(HELP);
    // The 0.0.4 text format escapes only backslash and newline in HELP.
    expect(textHelp).toContain('"exported"');
    expect(text.help.get('records_exported_total')).toBe(HELP);
  });
});
