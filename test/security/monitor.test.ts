/**
 * What security() tells operators: every decision is one security log line carrying the request
 * id the client got in X-Request-Id, one count in stats(), and one onEvent call; refusals of a
 * client already deny-listed or banned are counted every time but logged once a minute per
 * client; an onEvent hook that throws breaks nothing.
 */
import type { Express } from 'express';
import request from 'supertest';
import type * as core from '../../lib/index';
import { eachExpress, type ExpressVariant } from '../support/express';
import { captureLogger, type CapturedLogger } from '../support/logs';
import {
  BENIGN_PATH,
  eventLines,
  expectRefusal,
  plus,
  PROBE_PATH,
  secure,
  secureApp,
  within,
} from './support';

interface Monitored {
  app: Express;
  security: core.SecurityMiddleware;
  log: CapturedLogger;
  events: core.SecurityEvent[];
}

function monitored(variant: ExpressVariant, options: core.SecurityOptions = {}): Monitored {
  const log = captureLogger('security');
  const events: core.SecurityEvent[] = [];
  const security = secure({
    logger: log.logger,
    onEvent: (e) => events.push(e),
    ...options,
    threats: { redis: false, ban: false, ...(options.threats === false ? {} : options.threats) },
  });
  return { app: secureApp(variant, security, { trustProxy: true }), security, log, events };
}

interface Decision {
  name: string;
  method: 'GET' | 'POST';
  options: core.SecurityOptions;
  send: (app: Express) => request.Test;
  status: number;
  code?: string;
  line: Record<string, unknown>;
  counter?: string;
}

const DECISIONS: Decision[] = [
  {
    name: 'a threat blocked',
    method: 'GET',
    options: {},
    send: (app) => request(app).get(PROBE_PATH),
    status: 403,
    code: 'THREAT_DETECTED',
    line: {
      message: 'security event: threat_detected',
      reason: 'sql_injection',
      action: 'blocked',
      location: 'query',
      level: 'warn',
      severity: 'medium',
    },
    counter: 'sql_injection:blocked',
  },
  {
    name: 'a threat logged (monitor mode)',
    method: 'GET',
    options: { threats: { mode: 'monitor' } },
    send: (app) => request(app).get(PROBE_PATH),
    status: 200,
    line: {
      message: 'security event: threat_detected',
      reason: 'sql_injection',
      action: 'logged',
      location: 'query',
    },
    counter: 'sql_injection:logged',
  },
  {
    name: 'a threat in the body',
    method: 'POST',
    options: {},
    send: (app) => request(app).post('/api/v1/notes').send({ text: '<script>alert(1)</script>' }),
    status: 403,
    code: 'THREAT_DETECTED',
    line: {
      message: 'security event: threat_detected',
      reason: 'script_injection',
      action: 'blocked',
      location: 'body',
    },
    counter: 'script_injection:blocked',
  },
  {
    name: 'a scanner user agent',
    method: 'GET',
    options: {},
    send: (app) => request(app).get('/').set('User-Agent', 'sqlmap/1.8.3#stable (https://sqlmap.org)'),
    status: 403,
    code: 'THREAT_DETECTED',
    line: {
      message: 'security event: threat_detected',
      reason: 'scanner',
      action: 'blocked',
      location: 'user_agent',
    },
    counter: 'scanner:blocked',
  },
  {
    name: 'a deny-listed client',
    method: 'GET',
    options: { threats: { denyList: ['203.0.113.0/24'] } },
    send: (app) => request(app).get(BENIGN_PATH).set('X-Forwarded-For', '203.0.113.8'),
    status: 403,
    code: 'CLIENT_BLOCKED',
    line: {
      message: 'security event: client_blocked',
      reason: 'deny_list',
      action: 'blocked',
      ip: '203.0.113.8',
      level: 'warn',
    },
    counter: 'deny_list:blocked',
  },
  {
    name: 'a polluting query name',
    method: 'GET',
    options: {},
    send: (app) => request(app).get('/x?__proto__[admin]=1'),
    status: 400,
    code: 'INVALID_INPUT',
    line: { message: 'security event: request_rejected', reason: 'invalid_input', action: 'rejected' },
    counter: 'invalid_input:rejected',
  },
  {
    name: 'a polluting JSON key',
    method: 'POST',
    options: {},
    send: (app) =>
      request(app).post('/x').set('Content-Type', 'application/json').send('{"__proto__":{"a":1}}'),
    status: 400,
    code: 'INVALID_INPUT',
    line: { message: 'security event: request_rejected', reason: 'invalid_input', action: 'rejected' },
    counter: 'invalid_input:rejected',
  },
  {
    name: 'a repeated parameter refused',
    method: 'GET',
    options: { parameterPollution: 'reject' },
    send: (app) => request(app).get('/x?role=a&role=b'),
    status: 400,
    code: 'INVALID_INPUT',
    line: { message: 'security event: request_rejected', reason: 'invalid_input', action: 'rejected' },
    counter: 'invalid_input:rejected',
  },
  {
    name: 'a JSON body nested too deeply',
    method: 'POST',
    options: { limits: { jsonDepth: 2 } },
    send: (app) =>
      request(app)
        .post('/x')
        .send({ a: { b: { c: 1 } } }),
    status: 400,
    code: 'INVALID_INPUT',
    line: { message: 'security event: request_rejected', reason: 'invalid_input', action: 'rejected' },
    counter: 'invalid_input:rejected',
  },
  {
    name: 'too many query parameters',
    method: 'GET',
    options: { limits: { queryParameters: 2 } },
    send: (app) => request(app).get('/x?a=1&b=2&c=3'),
    status: 400,
    code: 'INVALID_INPUT',
    line: { message: 'security event: request_rejected', reason: 'invalid_input', action: 'rejected' },
    counter: 'invalid_input:rejected',
  },
  {
    name: 'a URL too long',
    method: 'GET',
    options: { limits: { urlLength: 32 } },
    send: (app) => request(app).get(`/x?a=${'a'.repeat(40)}`),
    status: 414,
    code: 'URI_TOO_LONG',
    line: { message: 'security event: request_rejected', reason: 'uri_too_long', action: 'rejected' },
    counter: 'uri_too_long:rejected',
  },
  {
    name: 'too many headers',
    method: 'GET',
    options: { limits: { headerCount: 4 } },
    send: (app) => request(app).get('/x').set('X-A', '1').set('X-B', '2').set('X-C', '3'),
    status: 431,
    code: 'HEADERS_TOO_LARGE',
    line: { message: 'security event: request_rejected', reason: 'headers_too_large', action: 'rejected' },
    counter: 'headers_too_large:rejected',
  },
  {
    name: 'a header too long',
    method: 'GET',
    options: { limits: { headerLength: 16 } },
    send: (app) => request(app).get('/x').set('X-Note', 'n'.repeat(17)),
    status: 431,
    code: 'HEADERS_TOO_LARGE',
    line: { message: 'security event: request_rejected', reason: 'headers_too_large', action: 'rejected' },
    counter: 'headers_too_large:rejected',
  },
  {
    // limits.bodySize is one of security()'s limits: its refusal is a decision like the others.
    // (No reason is named for it yet; any one counts, as long as there is exactly one line.)
    name: 'a JSON body over limits.bodySize',
    method: 'POST',
    options: { limits: { bodySize: 64 } },
    send: (app) =>
      request(app)
        .post('/x')
        .send({ note: 'x'.repeat(100) }),
    status: 413,
    code: 'PAYLOAD_TOO_LARGE',
    line: { message: 'security event: request_rejected', action: 'rejected' },
  },
];

describe.each(eachExpress)('%s: one log line, one count, one event per decision', (_name, variant) => {
  it.each(DECISIONS)('$name', async (decision) => {
    const m = monitored(variant, decision.options);
    const before = m.security.stats();
    const res = await decision.send(m.app);
    if (decision.code === undefined) expect(res.status).toBe(decision.status);
    else expectRefusal(res, decision.status, decision.code);
    const requestId = res.headers['x-request-id'] as string;
    expect(requestId).toMatch(/^[0-9a-f-]{36}$/);

    const lines = eventLines(m.log.lines());
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      ...decision.line,
      request_id: requestId,
      ip: decision.line.ip ?? '127.0.0.1',
      method: decision.method,
      category: 'security',
    });
    expect(m.events).toHaveLength(1);
    expect(m.events[0]).toMatchObject({ action: lines[0]?.action, reason: lines[0]?.reason, requestId });

    const after = m.security.stats();
    if (decision.counter === undefined) {
      const total = (c: core.SecurityCounters) => Object.values(c).reduce((a, b) => a + b, 0);
      expect(total(after)).toBe(total(before) + 1);
    } else {
      expect(after).toEqual(plus(before, decision.counter));
    }
  });

  it('a ban: the violation that crosses the threshold is logged, then the ban (high severity), with one request id', async () => {
    const m = monitored(variant, {
      threats: { ban: { threshold: 2, windowMs: 60_000, durationMs: 600_000 } },
    });
    const ip = '192.0.2.5';
    await request(m.app).get(PROBE_PATH).set('X-Forwarded-For', ip);
    const res = await request(m.app).get(PROBE_PATH).set('X-Forwarded-For', ip);
    expectRefusal(res, 403, 'THREAT_DETECTED');
    const requestId = res.headers['x-request-id'] as string;
    const { value: lines } = await within(
      1_000,
      () => eventLines(m.log.lines(), requestId),
      (l) => l.length >= 2,
    );
    expect(lines.map((l) => [l.message, l.reason, l.action, l.level, l.severity, l.ip])).toEqual([
      ['security event: threat_detected', 'sql_injection', 'blocked', 'warn', 'medium', ip],
      ['security event: client_banned', 'banned', 'banned', 'error', 'high', ip],
    ]);
    expect(m.security.stats()).toEqual({ 'sql_injection:blocked': 2, 'banned:banned': 1 });

    // The first refusal of the banned client is a decision of its own: one line, one count.
    const refused = await request(m.app).get(BENIGN_PATH).set('X-Forwarded-For', ip);
    expectRefusal(refused, 403, 'CLIENT_BLOCKED');
    expect(eventLines(m.log.lines(), refused.headers['x-request-id'] as string)).toEqual([
      expect.objectContaining({
        message: 'security event: client_blocked',
        reason: 'banned',
        action: 'blocked',
        ip,
      }),
    ]);
    expect(m.security.stats()).toEqual({
      'sql_injection:blocked': 2,
      'banned:banned': 1,
      'banned:blocked': 1,
    });
  });

  it('a client banned again after its ban ran out is logged again', async () => {
    const m = monitored(variant, { threats: { ban: { threshold: 1, windowMs: 60_000, durationMs: 300 } } });
    const ip = '192.0.2.6';
    expectRefusal(await request(m.app).get(PROBE_PATH).set('X-Forwarded-For', ip), 403, 'THREAT_DETECTED');
    await new Promise((resolve) => setTimeout(resolve, 350));
    expect((await request(m.app).get(BENIGN_PATH).set('X-Forwarded-For', ip)).status).toBe(200);
    expectRefusal(await request(m.app).get(PROBE_PATH).set('X-Forwarded-For', ip), 403, 'THREAT_DETECTED');
    await within(
      500,
      () => m.security.stats()['banned:banned'],
      (n) => n === 2,
    );
    expect(m.security.stats()['banned:banned']).toBe(2);
    expect(
      eventLines(m.log.lines()).filter((l) => l.message === 'security event: client_banned'),
    ).toHaveLength(2);
  });
});

describe.each(eachExpress)('%s: repeated refusals of a known-bad client', (_name, variant) => {
  afterEach(() => {
    jest.useRealTimers();
  });

  /** Only Date is faked (and keeps moving): requests, sockets and timers run for real. */
  function fakeDate(): void {
    jest.useFakeTimers({
      advanceTimers: true,
      doNotFake: [
        'nextTick',
        'setImmediate',
        'clearImmediate',
        'setTimeout',
        'clearTimeout',
        'setInterval',
        'clearInterval',
        'queueMicrotask',
        'hrtime',
        'performance',
      ],
    });
  }

  const refusals = (m: Monitored, ip: string) =>
    eventLines(m.log.lines()).filter((l) => l.message === 'security event: client_blocked' && l.ip === ip);

  it('a deny-listed client: 20 refusals, 1 line, 20 counts, 20 events; the next minute says how many were not logged', async () => {
    fakeDate();
    const m = monitored(variant, { threats: { denyList: ['203.0.113.0/24'] } });
    const ip = '203.0.113.20';
    for (let i = 0; i < 20; i++) {
      expectRefusal(await request(m.app).get(BENIGN_PATH).set('X-Forwarded-For', ip), 403, 'CLIENT_BLOCKED');
    }
    expect(refusals(m, ip)).toHaveLength(1);
    expect(m.security.stats()).toEqual({ 'deny_list:blocked': 20 });
    expect(m.events.filter((e) => e.reason === 'deny_list')).toHaveLength(20);
    expect(new Set(m.events.map((e) => e.requestId)).size).toBe(20);

    // Another client is logged on its own.
    await request(m.app).get(BENIGN_PATH).set('X-Forwarded-For', '203.0.113.21');
    expect(refusals(m, '203.0.113.21')).toHaveLength(1);

    jest.setSystemTime(Date.now() + 61_000);
    const res = await request(m.app).get(BENIGN_PATH).set('X-Forwarded-For', ip);
    const lines = refusals(m, ip);
    expect(lines).toHaveLength(2);
    expect(lines[1]).toMatchObject({ request_id: res.headers['x-request-id'], not_logged_since_last: 19 });
    expect(lines[0]).not.toHaveProperty('not_logged_since_last');
  });

  it('a banned client: 20 refusals, 1 line, 20 counts', async () => {
    fakeDate();
    const m = monitored(variant, {
      threats: { ban: { threshold: 1, windowMs: 60_000, durationMs: 600_000 } },
    });
    const ip = '192.0.2.21';
    expectRefusal(await request(m.app).get(PROBE_PATH).set('X-Forwarded-For', ip), 403, 'THREAT_DETECTED');
    for (let i = 0; i < 20; i++) {
      expectRefusal(await request(m.app).get(BENIGN_PATH).set('X-Forwarded-For', ip), 403, 'CLIENT_BLOCKED');
    }
    expect(refusals(m, ip)).toHaveLength(1);
    expect(m.security.stats()).toEqual({
      'sql_injection:blocked': 1,
      'banned:banned': 1,
      'banned:blocked': 20,
    });

    jest.setSystemTime(Date.now() + 61_000);
    await request(m.app).get(BENIGN_PATH).set('X-Forwarded-For', ip);
    expect(refusals(m, ip)).toHaveLength(2);
    expect(m.security.stats()['banned:blocked']).toBe(21);
  });
});

describe.each(eachExpress)('%s: onEvent', (_name, variant) => {
  it('receives each decision: reason, action, signature, location, request id, address — no content', async () => {
    const m = monitored(variant, { threats: { denyList: ['203.0.113.0/24'] } });
    const threat = await request(m.app).get(PROBE_PATH).set('X-Forwarded-For', '192.0.2.30');
    const denied = await request(m.app).get(BENIGN_PATH).set('X-Forwarded-For', '203.0.113.30');
    const invalid = await request(m.app)
      .get('/x?constructor[prototype][a]=1')
      .set('X-Forwarded-For', '192.0.2.31');
    expect(m.events).toEqual([
      {
        reason: 'sql_injection',
        action: 'blocked',
        signature: 'sql-tautology',
        location: 'query',
        requestId: threat.headers['x-request-id'],
        ip: '192.0.2.30',
      },
      {
        reason: 'deny_list',
        action: 'blocked',
        requestId: denied.headers['x-request-id'],
        ip: '203.0.113.30',
      },
      {
        reason: 'invalid_input',
        action: 'rejected',
        requestId: invalid.headers['x-request-id'],
        ip: '192.0.2.31',
      },
    ]);
    const keys = new Set(m.events.flatMap((e) => Object.keys(e)));
    expect([...keys].sort()).toEqual(['action', 'ip', 'location', 'reason', 'requestId', 'signature']);
  });

  it('a hook that throws breaks no request: answered as without it, the failure logged by name only', async () => {
    for (const mode of ['block', 'monitor'] as const) {
      const log = captureLogger('security');
      const security = secure({
        logger: log.logger,
        threats: { mode, redis: false, ban: false, denyList: ['203.0.113.0/24'] },
        onEvent: () => {
          throw new TypeError('hook failed with patient Jane Roe');
        },
      });
      const app = secureApp(variant, security, { trustProxy: true });
      const probe = await request(app).get(PROBE_PATH);
      if (mode === 'block') expectRefusal(probe, 403, 'THREAT_DETECTED');
      else expect(probe.status).toBe(200);
      expectRefusal(
        await request(app).get(BENIGN_PATH).set('X-Forwarded-For', '203.0.113.1'),
        403,
        'CLIENT_BLOCKED',
      );
      expect((await request(app).get(BENIGN_PATH)).status).toBe(200);
      expect(security.stats()).toEqual({
        [`sql_injection:${mode === 'block' ? 'blocked' : 'logged'}`]: 1,
        'deny_list:blocked': 1,
      });
      const failures = log.lines().filter((l) => l.message === 'security onEvent hook threw');
      expect(failures.map((l) => [l.level, l.error])).toEqual([
        ['error', 'TypeError'],
        ['error', 'TypeError'],
      ]);
      expect(log.raw()).not.toContain('Jane Roe');
    }
  });

  it('stats() is a snapshot: changing it changes nothing', async () => {
    const m = monitored(variant);
    await request(m.app).get(PROBE_PATH);
    const snapshot = m.security.stats() as Record<string, number>;
    snapshot['sql_injection:blocked'] = 99;
    expect(m.security.stats()).toEqual({ 'sql_injection:blocked': 1 });
  });
});
