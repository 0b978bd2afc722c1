/**
 * The documented composition — `timeout` inside `retry` inside `circuitBreaker` — against a real
 * local HTTP dependency: one AbortSignal cancels the whole chain, timeouts count as the
 * dependency's failures, and a `Retry-After` from the dependency's 503 is honoured.
 */
import { getEventListeners } from 'node:events';
import * as core from '../../lib/index';
import { breakers, rejectionOf, slowServer, type SlowServer } from './support';

const make = breakers();
let server: SlowServer | undefined;

afterEach(async () => {
  await make.closeAll();
  await server?.close();
  server = undefined;
  jest.restoreAllMocks();
});

/** The chain as docs/resilience.md shows it. */
function fetchLabs(
  breaker: core.CircuitBreaker<unknown>,
  url: string,
  options: { timeoutMs?: number; retry?: core.RetryOptions; signal?: AbortSignal } = {},
): Promise<unknown> {
  return breaker.execute(
    (signal) =>
      core.retry(
        (s) =>
          core.timeout(
            async (t) => {
              const res = await fetch(url, { signal: t });
              // Status and headers decide: retry 5xx/429 (after Retry-After); a 404 is not a failure.
              if (!res.ok)
                throw Object.assign(new Error(`labs answered ${res.status}`), {
                  status: res.status,
                  headers: res.headers,
                });
              return res.json();
            },
            options.timeoutMs ?? 1000,
            { signal: s },
          ),
        { ...options.retry, signal },
      ),
    options.signal,
  );
}

describe('timeout inside retry inside circuitBreaker', () => {
  it('one signal cancels the request in flight: the server sees the socket close, nothing retries or counts', async () => {
    server = await slowServer();
    const { breaker } = make({ failureThreshold: 1 });
    const controller = new AbortController();
    const call = fetchLabs(breaker, server.url, { signal: controller.signal, retry: { baseDelay: 0 } });
    await server.arrived(1);
    controller.abort(new Error('client went away'));
    expect(await rejectionOf(call)).toMatchObject({ message: 'client went away' });
    await server.socketsClosed(1);
    expect(server.received).toBe(1);
    expect(breaker.state).toBe('closed');
    expect(breaker.stats().calls).toMatchObject({ cancelled: 1, failure: 0 });
  });

  it('one signal ends the wait between attempts: no second attempt', async () => {
    server = await slowServer();
    jest.spyOn(Math, 'random').mockReturnValue(0.9);
    const { breaker } = make({ failureThreshold: 5 });
    const controller = new AbortController();
    const onRetry = jest.fn(() => {
      setTimeout(() => {
        controller.abort(new Error('client went away'));
      }, 20);
    });
    const started = Date.now();
    const call = fetchLabs(breaker, server.url, {
      timeoutMs: 50,
      signal: controller.signal,
      retry: { baseDelay: 10_000, onRetry },
    });
    expect(await rejectionOf(call)).toMatchObject({ message: 'client went away' });
    expect(Date.now() - started).toBeLessThan(2000); // not the 9 s wait
    expect(onRetry).toHaveBeenCalledTimes(1);
    expect(server.received).toBe(1);
    expect(breaker.stats().calls.cancelled).toBe(1);
  });

  it('timeouts are failures: retried, then counted once per call; the open circuit spares the server', async () => {
    server = await slowServer();
    const { breaker } = make({ failureThreshold: 2 });
    const options = { timeoutMs: 40, retry: { maxRetries: 1, baseDelay: 0 } };
    for (let i = 0; i < 2; i++)
      expect(await rejectionOf(fetchLabs(breaker, server.url, options))).toBeInstanceOf(core.TimeoutError);
    expect(server.received).toBe(4);
    expect(breaker.state).toBe('open');
    expect(await rejectionOf(fetchLabs(breaker, server.url, options))).toMatchObject({
      code: 'CIRCUIT_OPEN',
    });
    expect(server.received).toBe(4);
  });

  it('a 503 with Retry-After from the dependency: the retry waits for it (capped by maxDelay)', async () => {
    server = await slowServer((_req, res, count) => {
      if (count === 1) res.writeHead(503, { 'Retry-After': '120' }).end();
      else res.writeHead(200, { 'content-type': 'application/json' }).end('{"results":[]}');
    });
    jest.spyOn(Math, 'random').mockReturnValue(0);
    const { breaker } = make();
    const started = Date.now();
    await expect(fetchLabs(breaker, server.url, { retry: { baseDelay: 0, maxDelay: 300 } })).resolves.toEqual(
      {
        results: [],
      },
    );
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
    expect(server.received).toBe(2);
  });

  it('a 404 from the dependency is neither retried nor a failure', async () => {
    server = await slowServer((_req, res) => {
      res.writeHead(404).end();
    });
    const { breaker } = make({ failureThreshold: 1 });
    const err = await rejectionOf(fetchLabs(breaker, server.url));
    expect(err).toMatchObject({ status: 404 });
    expect(server.received).toBe(1);
    expect(breaker.state).toBe('closed');
  });

  it('a long-lived signal collects no abort listeners, however the calls end', async () => {
    const { breaker } = make({ failureThreshold: 1000 });
    const pool = core.bulkhead(2, 30);
    const client = new AbortController();
    const signal = client.signal;
    const attempt = (i: number, n: number) =>
      i % 3 === 0 && n === 0
        ? Promise.reject(Object.assign(new Error('reset'), { code: 'ECONNRESET' }))
        : i % 3 === 1
          ? Promise.reject(new core.NotFoundError('Lab'))
          : Promise.resolve(i);
    const calls = Array.from({ length: 30 }, (_, i) =>
      pool.execute(
        (p) =>
          breaker.execute(
            (b) =>
              core.retry((r, n) => core.timeout(() => attempt(i, n), 1000, { signal: r }), {
                signal: b,
                baseDelay: 1,
              }),
            p,
          ),
        signal,
      ),
    );
    const results = await Promise.allSettled(calls);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(20);
    expect(getEventListeners(signal, 'abort')).toHaveLength(0);
  });
});
