/**
 * `timeout()` really aborts: the function sees its signal abort, and an HTTP request in flight to a
 * slow local server is cancelled — the server sees the socket close.
 */
import { request as httpRequest } from 'node:http';
import * as core from '../../lib/index';
import { rejectionOf, slowServer, type SlowServer } from './support';

describe('with fake timers', () => {
  beforeEach(() => {
    jest.useFakeTimers({ doNotFake: ['setImmediate', 'nextTick'] });
  });
  afterEach(() => {
    expect(jest.getTimerCount()).toBe(0);
    jest.useRealTimers();
  });

  it('aborts the signal when time is up and rejects with a 504 TimeoutError', async () => {
    let seen: AbortSignal | undefined;
    const running = core.timeout((signal) => {
      seen = signal;
      return new Promise(() => undefined); // never settles
    }, 250);
    const outcome = rejectionOf(running);
    await jest.advanceTimersByTimeAsync(249);
    expect(seen?.aborted).toBe(false);
    await jest.advanceTimersByTimeAsync(1);
    expect(seen?.aborted).toBe(true);
    const err = await outcome;
    expect(err).toBeInstanceOf(core.TimeoutError);
    expect(err).toMatchObject({ status: 504, code: 'TIMEOUT', timeoutMs: 250, details: { timeout_ms: 250 } });
  });

  it('rejects at the deadline even when fn ignores its signal', async () => {
    const running = core.timeout(() => new Promise((resolve) => setTimeout(resolve, 10_000)), 100);
    const settled = jest.fn();
    running.catch(settled);
    await jest.advanceTimersByTimeAsync(100);
    expect(settled).toHaveBeenCalledWith(expect.any(core.TimeoutError));
    await jest.advanceTimersByTimeAsync(10_000); // let the ignored work end
  });

  it('an answer in time: the value, the timer cleared, the signal left alone', async () => {
    let seen: AbortSignal | undefined;
    const value = await core.timeout((signal) => {
      seen = signal;
      return Promise.resolve('labs');
    }, 1000);
    expect(value).toBe('labs');
    expect(jest.getTimerCount()).toBe(0);
    expect(seen?.aborted).toBe(false);
  });

  it("fn's own error passes through unchanged", async () => {
    const err = new core.NotFoundError('Lab');
    await expect(core.timeout(() => Promise.reject(err), 1000)).rejects.toBe(err);
  });

  it('an outer signal cancels too, rejecting with its reason (not a TimeoutError)', async () => {
    const controller = new AbortController();
    let seen: AbortSignal | undefined;
    const running = core.timeout(
      (signal) => {
        seen = signal;
        return new Promise(() => undefined);
      },
      1000,
      { signal: controller.signal },
    );
    const outcome = rejectionOf(running);
    await jest.advanceTimersByTimeAsync(10);
    controller.abort(new Error('client went away'));
    expect(await outcome).toMatchObject({ message: 'client went away' });
    expect(seen?.aborted).toBe(true);
  });

  it('an outer signal already aborted: fn is not called', async () => {
    const fn = jest.fn(() => Promise.resolve(1));
    await expect(core.timeout(fn, 1000, { signal: AbortSignal.abort() })).rejects.toMatchObject({
      name: 'AbortError',
    });
    expect(fn).not.toHaveBeenCalled();
  });
});

describe('a real HTTP request to a slow server', () => {
  let server: SlowServer;
  afterEach(() => server.close());

  it('fetch is cancelled at the deadline: the server sees its socket close', async () => {
    server = await slowServer(); // never answers
    let seen: AbortSignal | undefined;
    const started = Date.now();
    const err = await rejectionOf(
      core.timeout((signal) => {
        seen = signal;
        return fetch(server.url, { signal });
      }, 150),
    );
    expect(err).toBeInstanceOf(core.TimeoutError);
    expect(Date.now() - started).toBeLessThan(1000);
    expect(seen?.aborted).toBe(true);
    await server.socketsClosed(1);
    expect(server.received).toBe(1);
  });

  it('node:http requests are cancelled too', async () => {
    server = await slowServer();
    const err = await rejectionOf(
      core.timeout(
        (signal) =>
          new Promise((resolve, reject) => {
            httpRequest(server.url, { signal }, resolve).on('error', reject).end();
          }),
        150,
      ),
    );
    expect(err).toBeInstanceOf(core.TimeoutError);
    await server.socketsClosed(1);
  });

  it('a response that arrived in time can still be read after the deadline', async () => {
    server = await slowServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('first half, ');
      setTimeout(() => res.end('second half'), 250);
    });
    const res = await core.timeout((signal) => fetch(server.url, { signal }), 100);
    await expect(res.text()).resolves.toBe('first half, second half');
  });
});
