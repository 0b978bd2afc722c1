/** `bulkhead(limit, queue)`: concurrency limit, queue in order, 503 BULKHEAD_FULL, aborts while queued. */
import * as core from '../../lib/index';
import { deferred, rejectionOf, type Deferred } from './support';

/** A call that runs until its gate opens; records when it started. */
function gated(
  log: string[],
  name: string,
): { fn: (signal: AbortSignal) => Promise<string>; gate: Deferred<string> } {
  const gate = deferred<string>();
  return {
    gate,
    fn: () => {
      log.push(`start ${name}`);
      return gate.promise;
    },
  };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('bulkhead', () => {
  it('runs up to the limit at once and refuses the next with 503 BULKHEAD_FULL, Retry-After 1', async () => {
    const pool = core.bulkhead(2);
    const log: string[] = [];
    const a = gated(log, 'a');
    const b = gated(log, 'b');
    const running = [pool.execute(a.fn), pool.execute(b.fn)];
    expect(pool.active).toBe(2);
    const fn = jest.fn(() => Promise.resolve('c'));
    const err = await rejectionOf(pool.execute(fn));
    expect(fn).not.toHaveBeenCalled();
    expect(err).toBeInstanceOf(core.ServiceUnavailableError);
    expect(err).toMatchObject({
      status: 503,
      code: 'BULKHEAD_FULL',
      expose: true,
      retryAfter: 1,
      headers: { 'Retry-After': '1' },
    });
    a.gate.resolve('a');
    b.gate.resolve('b');
    await expect(Promise.all(running)).resolves.toEqual(['a', 'b']);
    expect(pool.active).toBe(0);
    await expect(pool.execute(fn)).resolves.toBe('c');
  });

  it('queues up to `queue` calls and starts them in order as slots free', async () => {
    const pool = core.bulkhead(1, 2);
    const log: string[] = [];
    const calls = ['a', 'b', 'c'].map((name) => gated(log, name));
    const running = calls.map((c) => pool.execute(c.fn));
    expect({ active: pool.active, queued: pool.queued }).toEqual({ active: 1, queued: 2 });
    await expect(pool.execute(() => Promise.resolve('d'))).rejects.toMatchObject({ code: 'BULKHEAD_FULL' });
    expect(log).toEqual(['start a']);
    calls[0]?.gate.resolve('a');
    await running[0];
    await tick();
    expect(log).toEqual(['start a', 'start b']);
    expect({ active: pool.active, queued: pool.queued }).toEqual({ active: 1, queued: 1 });
    calls[1]?.gate.reject(new Error('b failed')); // a failure frees its slot too
    await expect(running[1]).rejects.toThrow('b failed');
    await tick();
    expect(log).toEqual(['start a', 'start b', 'start c']);
    calls[2]?.gate.resolve('c');
    await expect(running[2]).resolves.toBe('c');
    expect({ active: pool.active, queued: pool.queued }).toEqual({ active: 0, queued: 0 });
  });

  it('an aborted signal takes a waiting call out of the queue at once', async () => {
    const pool = core.bulkhead(1, 2);
    const log: string[] = [];
    const a = gated(log, 'a');
    const b = gated(log, 'b');
    const c = gated(log, 'c');
    const controller = new AbortController();
    const runA = pool.execute(a.fn);
    const runB = pool.execute(b.fn, controller.signal);
    const runC = pool.execute(c.fn);
    controller.abort(new Error('client went away'));
    expect(await rejectionOf(runB)).toMatchObject({ message: 'client went away' });
    expect(pool.queued).toBe(1);
    // The place it held is free again.
    const d = gated(log, 'd');
    const runD = pool.execute(d.fn);
    a.gate.resolve('a');
    await runA;
    await tick();
    c.gate.resolve('c');
    await runC;
    await tick();
    d.gate.resolve('d');
    await runD;
    expect(log).toEqual(['start a', 'start c', 'start d']);
  });

  it('passes the signal to fn, and refuses a call whose signal already aborted', async () => {
    const pool = core.bulkhead(1);
    const signal = new AbortController().signal;
    const fn = jest.fn((s: AbortSignal) => Promise.resolve(s));
    await expect(pool.execute(fn, signal)).resolves.toBe(signal);
    await expect(pool.execute(fn, AbortSignal.abort())).rejects.toMatchObject({ name: 'AbortError' });
    expect(fn).toHaveBeenCalledTimes(1);
  });

  it('a synchronous throw from fn frees the slot', async () => {
    const pool = core.bulkhead(1);
    await expect(
      pool.execute(() => {
        throw new Error('sync');
      }),
    ).rejects.toThrow('sync');
    expect(pool.active).toBe(0);
  });

  it('reports its limits', () => {
    expect(core.bulkhead(4, 20)).toMatchObject({ limit: 4, queue: 20, active: 0, queued: 0 });
  });
});
