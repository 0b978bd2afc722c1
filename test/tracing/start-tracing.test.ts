/**
 * core.startTracing() when it must not start, and the W3C trace without any OpenTelemetry SDK. In
 * process: none of these calls may register anything (the traced app runs in tracing.test.ts).
 */
import request from 'supertest';
import * as core from '../../lib/index';
import { eachExpress } from '../support/express';
import { captureLogger } from '../support/logs';

const OTEL_API = Symbol.for('opentelemetry.js.api.1');
const otelGlobal = (): unknown => (globalThis as Record<symbol, unknown>)[OTEL_API];
const settings = (env: Record<string, string> = {}): core.Settings =>
  core.loadSettings({ NODE_ENV: 'test', ...env });

// Every test here also checks that nothing registered an OpenTelemetry API global.
beforeAll(() => {
  expect(otelGlobal()).toBeUndefined();
});
afterEach(() => {
  expect(otelGlobal()).toBeUndefined();
});

describe('startTracing() disabled', () => {
  let saved: string | undefined;
  beforeEach(() => {
    saved = process.env.ENABLE_TRACING;
    delete process.env.ENABLE_TRACING;
  });
  afterEach(() => {
    if (saved === undefined) delete process.env.ENABLE_TRACING;
    else process.env.ENABLE_TRACING = saved;
  });

  test('ENABLE_TRACING unset: resolves undefined', async () => {
    await expect(core.startTracing()).resolves.toBeUndefined();
  });

  test('ENABLE_TRACING=false, or enabled: false over ENABLE_TRACING=true: resolves undefined', async () => {
    process.env.ENABLE_TRACING = 'false';
    await expect(core.startTracing()).resolves.toBeUndefined();
    await expect(
      core.startTracing({ settings: settings({ ENABLE_TRACING: 'false' }) }),
    ).resolves.toBeUndefined();
    await expect(
      core.startTracing({ enabled: false, settings: settings({ ENABLE_TRACING: 'true' }) }),
    ).resolves.toBeUndefined();
  });
});

describe('startTracing() refuses bad options with ConfigError', () => {
  // `enabled: true`: these must be refused before anything is loaded or registered.
  test.each([
    ['an endpoint that is not http(s)', { endpoint: 'ftp://x' }, /endpoint must be an http\(s\) URL/],
    [
      'an empty serviceName',
      { serviceName: '' },
      /serviceName must be a non-empty string, got an empty string/,
    ],
    [
      'instrumentations that are not an array',
      { instrumentations: 'http' },
      /instrumentations must be an array/,
    ],
    ['enabled that is not a boolean', { enabled: 'yes' }, /enabled must be true or false/],
    [
      'an unknown option',
      { endpont: 'http://x:4318/v1/traces' },
      /unknown option "endpont".*Did you mean "endpoint"/,
    ],
  ])('%s', async (_case, bad, message) => {
    const options = { enabled: true, ...bad } as unknown as core.TracingOptions;
    const failure = core.startTracing(options);
    await expect(failure).rejects.toBeInstanceOf(core.ConfigError);
    await expect(failure).rejects.toMatchObject({ code: 'CONFIG_INVALID', message });
  });

  test('an unknown option is refused even when tracing is disabled', async () => {
    const options = { enabled: false, sampleRate: 1 } as unknown as core.TracingOptions;
    await expect(core.startTracing(options)).rejects.toBeInstanceOf(core.ConfigError);
  });

  // A bad value must not hide until ENABLE_TRACING is turned on (in production).
  test('a bad endpoint is refused even when tracing is disabled', async () => {
    await expect(core.startTracing({ enabled: false, endpoint: 'ftp://x' })).rejects.toBeInstanceOf(
      core.ConfigError,
    );
  });
});

describe.each(eachExpress)('without an OpenTelemetry SDK, on %s', (_name, { express }) => {
  const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
  const PARENT = '00f067aa0ba902b7';

  function app() {
    const captured = captureLogger('http');
    const a = express();
    a.use(core.requestContext(), core.logging({ logger: captured.logger }));
    a.get('/patients/:id', (_req, res) => {
      res.json({ headers: core.traceHeaders(), spanId: core.getContext()?.spanId });
    });
    return { app: a, captured };
  }

  test('log lines carry the caller trace id and traceHeaders() continues it from this request span', async () => {
    const { app: a, captured } = app();
    const res = await request(a)
      .get('/patients/7')
      .set('traceparent', `00-${TRACE}-${PARENT}-01`)
      .expect(200);
    const { headers, spanId } = res.body as { headers: Record<string, string>; spanId: string };
    expect(spanId).toMatch(/^[0-9a-f]{16}$/);
    expect(spanId).not.toBe(PARENT);
    expect(headers).toEqual({
      traceparent: `00-${TRACE}-${spanId}-01`,
      'x-request-id': res.headers['x-request-id'],
    });
    const [line] = captured.lines().filter((l) => l.message === 'request completed');
    expect(line).toMatchObject({ trace_id: TRACE, span_id: spanId, route: '/patients/:id', status: 200 });
  });

  test('an unsampled caller trace stays unsampled on outgoing calls', async () => {
    const { app: a } = app();
    const res = await request(a)
      .get('/patients/8')
      .set('traceparent', `00-${TRACE}-${PARENT}-00`)
      .expect(200);
    const { headers, spanId } = res.body as { headers: Record<string, string>; spanId: string };
    expect(headers.traceparent).toBe(`00-${TRACE}-${spanId}-00`);
  });

  test('without a traceparent, a new trace is started and continued', async () => {
    const { app: a, captured } = app();
    const res = await request(a).get('/patients/9').expect(200);
    const { headers, spanId } = res.body as { headers: Record<string, string>; spanId: string };
    const [, traceId] = headers.traceparent!.split('-');
    expect(traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(headers.traceparent).toBe(`00-${traceId}-${spanId}-01`);
    expect(captured.lines().find((l) => l.message === 'request completed')).toMatchObject({
      trace_id: traceId,
      span_id: spanId,
    });
  });
});

test('traceHeaders() is empty outside a request', () => {
  expect(core.traceHeaders()).toEqual({});
});
