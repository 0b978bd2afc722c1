import request from 'supertest';
import fc from 'fast-check';
import { setTimeout as sleep } from 'node:timers/promises';
import * as core from '../../lib/index';
import { eachExpress } from '../support/express';

describe.each(eachExpress)('requestContext() on %s', (_name, { express }) => {
  function app(options?: core.RequestContextOptions) {
    const a = express();
    a.use(core.requestContext(options));
    a.get('/ctx', (_req, res) => {
      const ctx = core.getContext();
      res.json({
        requestId: ctx?.requestId,
        traceId: ctx?.traceId,
        parent: ctx?.parentSpanId,
        traceparent: ctx?.traceparent,
        ip: ctx?.ip,
      });
    });
    a.get('/later', async (_req, res) => {
      const before = core.getRequestId();
      await sleep(5);
      const afterAwait = core.getRequestId();
      const inTimer = await new Promise<string | undefined>((resolve) =>
        setTimeout(() => {
          resolve(core.getRequestId());
        }, 5),
      );
      const inImmediate = await new Promise<string | undefined>((resolve) =>
        setImmediate(() => {
          resolve(core.getRequestId());
        }),
      );
      res.json({ before, afterAwait, inTimer, inImmediate });
    });
    a.get('/outgoing', (_req, res) => {
      res.json(core.traceHeaders());
    });
    a.post('/body', express.json(), (req, res) => {
      res.json({ id: core.getRequestId(), got: req.body });
    });
    return a;
  }

  it('generates a UUID request id and echoes it in X-Request-Id', async () => {
    const res = await request(app()).get('/ctx').expect(200);
    expect(res.body.requestId).toMatch(
      /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
    );
    expect(res.headers['x-request-id']).toBe(res.body.requestId);
  });

  it('accepts a safe incoming request id', async () => {
    const res = await request(app()).get('/ctx').set('X-Request-Id', 'gw-01:abc_DEF.9').expect(200);
    expect(res.body.requestId).toBe('gw-01:abc_DEF.9');
    expect(res.headers['x-request-id']).toBe('gw-01:abc_DEF.9');
  });

  it.each([
    ['spaces', 'abc def'],
    ['quotes and markup', '"><script>alert(1)</script>'],
    ['a log-forging newline escape', 'abc\\nFAKE'],
    ['too long', 'a'.repeat(129)],
    ['a path', '../../etc/passwd'],
    ['unicode', 'idé'],
    ['JSON', '{"a":1}'],
  ])('replaces a hostile incoming id (%s) with a generated one', async (_label, hostile) => {
    const res = await request(app()).get('/ctx').set('X-Request-Id', hostile).expect(200);
    expect(res.body.requestId).not.toBe(hostile);
    expect(res.body.requestId).toMatch(/^[0-9a-f-]{36}$/);
  });

  const printable = fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c));

  it('never echoes anything but a safe id (property)', async () => {
    const a = app();
    await fc.assert(
      fc.asyncProperty(fc.string({ minLength: 1, maxLength: 200, unit: printable }), async (raw) => {
        // Header values lose surrounding whitespace on the wire; send what a client really can.
        const incoming = raw.trim() || 'x';
        const res = await request(a).get('/ctx').set('X-Request-Id', incoming);
        expect(res.status).toBe(200);
        expect(res.headers['x-request-id']).toMatch(/^[A-Za-z0-9._:-]{1,128}$/);
      }),
      { numRuns: 60 },
    );
  });

  it('honours a custom header, length and validator, and can stop trusting callers', async () => {
    const custom = app({ header: 'X-Correlation-Id', maxLength: 8 });
    const ok = await request(custom).get('/ctx').set('X-Correlation-Id', 'abc12345').expect(200);
    expect(ok.headers['x-correlation-id']).toBe('abc12345');
    const long = await request(custom).get('/ctx').set('X-Correlation-Id', 'abc123456').expect(200);
    expect(long.body.requestId).not.toBe('abc123456');

    const untrusting = app({ trustIncoming: false, generate: () => 'generated-1' });
    const res = await request(untrusting).get('/ctx').set('X-Request-Id', 'from-client').expect(200);
    expect(res.body.requestId).toBe('generated-1');
  });

  it('traceHeaders() sends the id in the header the request brought it in', async () => {
    const byDefault = await request(app()).get('/outgoing').set('X-Request-Id', 'upstream-1').expect(200);
    expect(Object.keys(byDefault.body as object).sort()).toEqual(['traceparent', 'x-request-id']);
    expect(byDefault.body['x-request-id']).toBe('upstream-1');

    const custom = app({ header: 'X-Correlation-Id' });
    const res = await request(custom).get('/outgoing').set('X-Correlation-Id', 'upstream-2').expect(200);
    expect(res.body).toEqual({
      traceparent: expect.stringMatching(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/),
      'x-correlation-id': 'upstream-2',
    });
    const generated = await request(custom).get('/outgoing').expect(200);
    expect(generated.body['x-correlation-id']).toBe(generated.headers['x-correlation-id']);
    expect(generated.body['x-request-id']).toBeUndefined();
  });

  it('keeps maxLength with a custom validator, and replaces unsafe ids from a custom generator', async () => {
    const narrow = app({ maxLength: 8, validate: (id) => id.startsWith('abc') });
    const fits = await request(narrow).get('/ctx').set('X-Request-Id', 'abc12345').expect(200);
    expect(fits.body.requestId).toBe('abc12345');
    // The validator alone would take it; maxLength still holds.
    const long = await request(narrow).get('/ctx').set('X-Request-Id', 'abc123456').expect(200);
    expect(long.body.requestId).not.toBe('abc123456');
    const refused = await request(narrow).get('/ctx').set('X-Request-Id', 'xyz').expect(200);
    expect(refused.body.requestId).not.toBe('xyz');

    const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
    for (const generate of [
      () => 'has space',
      () => 'line\nbreak',
      () => '',
      () => 42 as unknown as string,
      () => {
        throw new Error('generator broke');
      },
    ]) {
      const res = await request(app({ trustIncoming: false, generate }))
        .get('/ctx')
        .expect(200);
      expect(res.body.requestId).toMatch(UUID);
      expect(res.headers['x-request-id']).toBe(res.body.requestId);
    }
  });

  it('continues a valid W3C trace and starts a new one for an invalid traceparent', async () => {
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const parent = '00f067aa0ba902b7';
    const res = await request(app()).get('/ctx').set('traceparent', `00-${traceId}-${parent}-01`).expect(200);
    expect(res.body.traceId).toBe(traceId);
    expect(res.body.parent).toBe(parent);
    expect(res.body.traceparent).toMatch(new RegExp(`^00-${traceId}-[0-9a-f]{16}-01$`));
    expect(res.body.traceparent).not.toContain(parent);

    for (const bad of [
      `00-${'0'.repeat(32)}-${parent}-01`,
      `ff-${traceId}-${parent}-01`,
      `00-${traceId.toUpperCase()}-${parent}-01`,
      'garbage',
      `00-${traceId}-${parent}-01-extra`,
    ]) {
      const r = await request(app()).get('/ctx').set('traceparent', bad).expect(200);
      expect(r.body.traceId).not.toBe(traceId);
      expect(r.body.traceId).toMatch(/^[0-9a-f]{32}$/);
      expect(r.body.parent).toBeUndefined();
    }
  });

  it('keeps the context across await, setTimeout and setImmediate, separately for concurrent requests', async () => {
    const a = app();
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => request(a).get('/later').set('X-Request-Id', `req-${i}`)),
    );
    results.forEach((res, i) => {
      expect(res.body).toEqual({
        before: `req-${i}`,
        afterAwait: `req-${i}`,
        inTimer: `req-${i}`,
        inImmediate: `req-${i}`,
      });
    });
  });

  it('keeps the context through express.json() body parsing', async () => {
    const res = await request(app()).post('/body').set('X-Request-Id', 'body-1').send({ a: 1 }).expect(200);
    expect(res.body).toEqual({ id: 'body-1', got: { a: 1 } });
  });

  it('reports the client IP, honouring trust proxy', async () => {
    const direct = await request(app()).get('/ctx').set('X-Forwarded-For', '203.0.113.7').expect(200);
    expect(direct.body.ip).toMatch(/127\.0\.0\.1|::1/);
    const proxied = app();
    proxied.set('trust proxy', 'loopback');
    const res = await request(proxied).get('/ctx').set('X-Forwarded-For', '203.0.113.7').expect(200);
    expect(res.body.ip).toBe('203.0.113.7');
  });

  it('lets auth record the user on the context for everything downstream', async () => {
    const a = express();
    a.use(core.requestContext());
    a.use((req, _res, next) => {
      core.setUser('user-42', ['provider'], req);
      next();
    });
    a.get('/me', async (req, res) => {
      await sleep(1);
      res.json({ user: core.getContext()?.userId, roles: core.getContext(req)?.roles });
    });
    const res = await request(a).get('/me').expect(200);
    expect(res.body).toEqual({ user: 'user-42', roles: ['provider'] });
  });
});

describe('requestContext() configuration', () => {
  it('is undefined outside a request and available inside runWithContext', async () => {
    expect(core.getContext()).toBeUndefined();
    expect(core.getRequestId()).toBeUndefined();
    const ctx = core.createContext({ requestId: 'job-1', userId: 'system' });
    const seen = await core.runWithContext(ctx, async () => {
      await sleep(1);
      return [core.getRequestId(), core.getContext()?.userId];
    });
    expect(seen).toEqual(['job-1', 'system']);
    expect(ctx.traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
  });

  it('throws ConfigError at creation for bad options, with a hint', () => {
    expect(() => core.requestContext({ maxLength: 0 })).toThrow(
      /requestContext: maxLength must be an integer from 1 to 1024, got 0/,
    );
    expect(() => core.requestContext({ header: 'bad header' })).toThrow(core.ConfigError);
    expect(() => core.requestContext({ headr: 'x' } as never)).toThrow(
      /unknown option "headr"\. Did you mean "header"\?/,
    );
    expect(() => core.requestContext({ generate: 'uuid' } as never)).toThrow(/generate must be a function/);
    for (const flag of ['trustIncoming', 'setResponseHeader', 'trustTraceparent'])
      expect(() => core.requestContext({ [flag]: 'false' })).toThrow(
        new RegExp(`requestContext: ${flag} must be true or false`),
      );
  });

  it('refuses app.use(core.requestContext) without the call', () => {
    const fakeReq = { method: 'GET', headers: {} };
    expect(() => (core.requestContext as unknown as (a: unknown) => unknown)(fakeReq)).toThrow(
      /app\.use\(core\.requestContext\(\)\)/,
    );
  });

  it('does not mutate the options object', () => {
    const options = Object.freeze({ header: 'X-Trace', maxLength: undefined });
    expect(() => core.requestContext(options)).not.toThrow();
  });
});
