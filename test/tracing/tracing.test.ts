/**
 * core.startTracing() end to end: the traced fixture app runs in a child process (the SDK patches
 * process globals) and exports to an OTLP/HTTP receiver of the test's; the same suite on Express 4
 * and Express 5. Every request carries a fresh `traceparent`, so its spans are found by trace id.
 */
import { EXPRESS } from '../support/express';
import type { OtlpSpan, Receiver, TracedApp } from './support';
import { attribute, newTrace, SPAN_KIND, startDownstream, startReceiver, startTracedApp } from './support';

const SSN = '123-45-6789';
const EMAIL = 'jane.doe@example.com';
const STATUS_ERROR = 2;

/** Polls `read` until it returns a value (log lines are written when the response closes). */
async function eventually<T>(read: () => T | undefined, timeoutMs = 3_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = read();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`nothing within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

interface Exemplar {
  route: string;
  traceId: string;
  spanId: string;
}

const EXEMPLAR =
  /^http_request_duration_seconds_bucket\{([^}]*)\} \S+ # \{trace_id="([0-9a-f]{32})",span_id="([0-9a-f]{16})"\} \S+/;

function exemplarsOf(openMetrics: string): Exemplar[] {
  const out: Exemplar[] = [];
  for (const line of openMetrics.split('\n')) {
    const match = EXEMPLAR.exec(line);
    if (match === null) continue;
    const route = /(?:^|,)route="([^"]*)"/.exec(match[1]!)?.[1] ?? '';
    out.push({ route, traceId: match[2]!, spanId: match[3]! });
  }
  return out;
}

// The child loads Express itself: only the major version crosses the process boundary.
describe.each(EXPRESS.map((v) => [v.name, v.major] as const))('startTracing() on %s', (_name, major) => {
  let receiver: Receiver;
  let downstream: Awaited<ReturnType<typeof startDownstream>>;
  let app: TracedApp;
  /** Trace ids sent with the sampled flag off: the SDK must export nothing of them. */
  const unsampledTraces: string[] = [];

  /** What beforeAll started, stopped in reverse order (even when a later start failed). */
  const teardown: (() => Promise<unknown>)[] = [];

  beforeAll(async () => {
    receiver = await startReceiver();
    teardown.push(() => receiver.close());
    downstream = await startDownstream();
    teardown.push(() => downstream.close());
    app = await startTracedApp({
      OTLP_ENDPOINT: receiver.endpoint,
      DOWNSTREAM_URL: downstream.url,
      EXPRESS_MAJOR: String(major),
    });
    teardown.push(() => app.stop());
  });

  afterAll(async () => {
    for (const stop of teardown.reverse()) await stop();
  });

  /** GET `path` with a fresh sampled `traceparent`; resolves with the exported server span too. */
  async function traced(path: string): Promise<{
    trace: ReturnType<typeof newTrace>;
    status: number;
    body: Record<string, unknown>;
    span: OtlpSpan;
  }> {
    const trace = newTrace();
    const res = await fetch(`${app.url}${path}`, { headers: { traceparent: trace.traceparent() } });
    const body = (await res.json()) as Record<string, unknown>;
    const span = await receiver.waitForSpan(
      (s) => s.traceId === trace.traceId && s.kind === SPAN_KIND.server,
    );
    return { trace, status: res.status, body, span };
  }

  test('the exported server span continues the caller trace and is named by the route template', async () => {
    const { trace, status, span } = await traced('/patients/42');
    expect(status).toBe(200);
    expect(span).toMatchObject({
      traceId: trace.traceId,
      parentSpanId: trace.parentId,
      name: 'GET /patients/:id',
    });
    expect(attribute(span.attributes, 'http.route')).toBe('/patients/:id');
    expect(span.status?.code).not.toBe(STATUS_ERROR);
  });

  test('the request context, its traceparent and the access-log line carry the exported span ids', async () => {
    const { trace, body, span } = await traced('/patients/43');
    expect(body).toEqual({
      traceId: span.traceId,
      spanId: span.spanId,
      parentSpanId: trace.parentId,
      traceparent: `00-${span.traceId}-${span.spanId}-01`,
    });
    const line = await eventually(() =>
      app.logs().find((l) => l.logger === 'http' && l.trace_id === trace.traceId),
    );
    expect(line).toMatchObject({
      message: 'request completed',
      route: '/patients/:id',
      status: 200,
      trace_id: span.traceId,
      span_id: span.spanId,
    });
  });

  test('a 5xx is recorded on the span: ERROR status, one exception event, no raw message anywhere', async () => {
    const { status, span } = await traced('/explode');
    expect(status).toBe(500);
    expect(span.name).toBe('GET /explode');
    expect(span.status?.code).toBe(STATUS_ERROR);
    // The http instrumentation may set `error.type` (and the status) itself when the response
    // finishes (newer releases write the status code there); errors()' stable code is its own attribute.
    expect(attribute(span.attributes, 'app.error_code')).toBe('INTERNAL_ERROR');
    const exceptions = (span.events ?? []).filter((e) => e.name === 'exception');
    expect(exceptions).toHaveLength(1);
    const event = exceptions[0]!.attributes;
    expect(attribute(event, 'exception.type')).toBe('Error');
    // An internal message never leaves the process: the span carries the stable code instead.
    expect(attribute(event, 'exception.message')).toBe('INTERNAL_ERROR');
    const stack = String(attribute(event, 'exception.stacktrace'));
    expect(stack).toMatch(/^\s+at /);
    expect(stack).toContain('traced-app.ts');
    expect(stack).not.toContain('lookup failed');
    for (const exported of receiver.bodies()) {
      expect(exported).not.toContain(SSN);
      expect(exported).not.toContain(EMAIL);
    }
    // The error's log line is redacted too (and logged under the span's trace).
    const logged = await eventually(() =>
      app.logs().find((l) => l.logger === 'errors' && l.trace_id === span.traceId),
    );
    expect(logged).toMatchObject({ level: 'error', span_id: span.spanId });
    const allLogs = JSON.stringify(app.logs());
    expect(allLogs).not.toContain(SSN);
    expect(allLogs).not.toContain(EMAIL);
  });

  test('a 404 from notFound() is not recorded as an exception nor an error status', async () => {
    const { status, span } = await traced('/no-such-route');
    expect(status).toBe(404);
    expect((span.events ?? []).filter((e) => e.name === 'exception')).toEqual([]);
    expect(span.status?.code).not.toBe(STATUS_ERROR);
    expect(attribute(span.attributes, 'http.route')).toBeUndefined();
  });

  test('an outgoing fetch with core.traceHeaders() continues the trace from the server span', async () => {
    const { trace, body, span } = await traced('/outgoing/fetch');
    const expected = `00-${trace.traceId}-${span.spanId}-01`;
    expect(body.received).toBe(expected);
    expect(body.sent).toMatchObject({ traceparent: expected });
    expect(downstream.received).toContain(expected);
  });

  test('an outgoing node:http call gets traceparent from the http instrumentation, under the server span', async () => {
    const { trace, body, span } = await traced('/outgoing/http');
    expect(body.spanId).toBe(span.spanId);
    const received = String(body.received);
    const [version, traceId, clientSpanId, flags] = received.split('-');
    expect({ version, traceId, flags }).toEqual({ version: '00', traceId: trace.traceId, flags: '01' });
    const client = await receiver.waitForSpan((s) => s.spanId === clientSpanId);
    expect(client).toMatchObject({
      kind: SPAN_KIND.client,
      traceId: trace.traceId,
      parentSpanId: span.spanId,
    });
  });

  test('a failed outgoing call exports its client span with the origin only: no path, no query', async () => {
    const { trace, body } = await traced('/outgoing/refused');
    expect(body.outcome).toBe('ECONNREFUSED');
    const client = await receiver.waitForSpan(
      (s) => s.traceId === trace.traceId && s.kind === SPAN_KIND.client,
    );
    const exported = JSON.stringify(client);
    expect(exported).not.toContain('MRN-777001');
    expect(exported).not.toContain('987-65-4321');
    expect(exported).not.toContain('results');
    expect(exported).toContain('127.0.0.1');
  });

  test('OpenMetrics exemplars name exported spans; unsampled requests leave none', async () => {
    await traced('/patients/44');
    const unsampled = newTrace();
    unsampledTraces.push(unsampled.traceId);
    const skipped = await fetch(`${app.url}/patients/45`, {
      headers: { traceparent: unsampled.traceparent('00') },
    });
    // Unsampled: no span is exported, yet the request context keeps the caller's trace id.
    expect(((await skipped.json()) as { traceId: string }).traceId).toBe(unsampled.traceId);
    const scrape = await fetch(`${app.url}/metrics`, { headers: { accept: 'application/openmetrics-text' } });
    expect(scrape.headers.get('content-type')).toMatch(/^application\/openmetrics-text/);
    const exemplars = exemplarsOf(await scrape.text()).filter((e) => e.route === '/patients/:id');
    expect(exemplars.length).toBeGreaterThan(0);
    for (const exemplar of exemplars) {
      const span = receiver.spans().find((s) => s.traceId === exemplar.traceId);
      expect(span).toMatchObject({ spanId: exemplar.spanId, name: 'GET /patients/:id' });
    }
    expect(exemplars.map((e) => e.traceId)).not.toContain(unsampled.traceId);
    const line = await eventually(() =>
      app.logs().find((l) => l.logger === 'http' && l.trace_id === unsampled.traceId),
    );
    expect(line).toMatchObject({ route: '/patients/:id', status: 200 });
  });

  // startTracing() configures the HTTP instrumentation so that the server span's path is the route
  // template and its query is redacted: identifiers in the URL never leave the process.
  test('identifiers in the URL never reach the exported spans', async () => {
    const { span } = await traced('/patients/MRN-555123?ssn=987-65-4320');
    expect(span.name).toBe('GET /patients/:id');
    expect(attribute(span.attributes, 'url.path')).toBe('/patients/:id');
    expect(attribute(span.attributes, 'url.query')).toBe('[REDACTED]');
    const exported = JSON.stringify(span);
    expect(exported).not.toContain('987-65-4320');
    expect(exported).not.toContain('MRN-555123');
  });

  test('on SIGTERM the app exports what is buffered, then exits 0; unsampled traces were never exported', async () => {
    const trace = newTrace();
    const res = await fetch(`${app.url}/patients/46`, { headers: { traceparent: trace.traceparent() } });
    expect(res.status).toBe(200);
    await res.arrayBuffer();
    expect(await app.stop()).toBe(0);
    expect(receiver.spans().filter((s) => s.traceId === trace.traceId)).toHaveLength(1);
    expect(unsampledTraces).toHaveLength(1);
    expect(receiver.spans().filter((s) => unsampledTraces.includes(s.traceId))).toEqual([]);
    const everything = receiver.bodies().join('\n');
    expect(everything).not.toContain(SSN);
    expect(everything).not.toContain(EMAIL);
  });
});
