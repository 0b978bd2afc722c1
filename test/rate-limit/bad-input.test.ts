/**
 * Whatever a client sends, a limited route answers a normal 2xx/4xx in the envelope — never a 500:
 * garbage and huge X-Forwarded-For headers, login bodies of the wrong shape or size.
 */
import type { Express } from 'express';
import request from 'supertest';
import * as core from '../../lib/index';
import { eachExpress, type ExpressVariant } from '../support/express';
import { appWith, limitedApp, limiterScope, uniqueName, type Envelope } from './support';

const scope = limiterScope('bad-input');

const GARBAGE_XFF = [
  'not-an-ip, , ::::',
  '::::',
  ',,,',
  ' ',
  'fe80::1%eth0',
  '::ffff:999.1.1.1',
  '[2001:db8::1]:443',
  '1::2::3',
  '203.0.113.1:8080',
  'unknown',
  '\u00e9\u00e9.1.1.1',
  '%00%00',
];

/** A ~12 kB X-Forwarded-For (under Node's 16 kB header limit): a long chain of hops. */
const HUGE_XFF = Array.from({ length: 800 }, (_, i) => `10.${(i >> 8) & 255}.${i & 255}.1`).join(', ');

function loginApp(variant: ExpressVariant, limiter: core.RateLimiter): Express {
  return appWith(variant, (app) => {
    app.post('/login', variant.express.json({ limit: '64kb' }), limiter, (_req, res) => {
      res.status(401).json({ success: false, error_code: 'INVALID_CREDENTIALS' });
    });
  });
}

function expectEnvelope(res: request.Response, status: number, code: string): void {
  expect({ status: res.status, code: (res.body as Envelope).error_code }).toEqual({ status, code });
  expect(res.body).toMatchObject({ success: false, details: { request_id: expect.any(String) } });
}

describe.each(eachExpress)('%s', (_label, variant) => {
  describe.each([
    ['trust proxy off', undefined],
    ['trust proxy on', true],
    ["trust proxy 'loopback'", 'loopback'],
  ] as const)('X-Forwarded-For with %s', (_trust, trustProxy) => {
    it.each(GARBAGE_XFF)('%j is counted, not a 500', async (xff) => {
      const limiter = scope.limiter({ name: uniqueName('xff'), limit: 1 });
      const app = limitedApp(variant, limiter, trustProxy);
      expect((await request(app).get('/').set('X-Forwarded-For', xff)).status).toBe(200);
      const second = await request(app).get('/').set('X-Forwarded-For', xff);
      expectEnvelope(second, 429, 'RATE_LIMITED');
    });

    it('a 12 kB X-Forwarded-For is counted, not a 500', async () => {
      const limiter = scope.limiter({ name: uniqueName('huge'), limit: 1 });
      const app = limitedApp(variant, limiter, trustProxy);
      expect((await request(app).get('/').set('X-Forwarded-For', HUGE_XFF)).status).toBe(200);
      expectEnvelope(await request(app).get('/').set('X-Forwarded-For', HUGE_XFF), 429, 'RATE_LIMITED');
    });
  });

  describe('login bodies', () => {
    const shapes: [string, string, string][] = [
      ['an array', 'application/json', '[{"username":"ada"}]'],
      ['username a number', 'application/json', '{"username":12345}'],
      ['username an object', 'application/json', '{"username":{"$ne":null}}'],
      ['username an array', 'application/json', '{"username":["ada","grace"]}'],
      ['username null', 'application/json', '{"username":null}'],
      ['a __proto__ key', 'application/json', '{"__proto__":{"username":"ada"}}'],
      ['a lone surrogate', 'application/json', '{"username":"\\ud800ada"}'],
      ['a NUL in the username', 'application/json', '{"username":"ada\\u0000|name:x"}'],
      ['form-encoded (not parsed)', 'application/x-www-form-urlencoded', 'username=ada'],
      ['text', 'text/plain', 'ada'],
      ['empty', 'application/json', ''],
    ];
    it.each(shapes)('%s: the route answers (401), and 429 after 5', async (_what, type, body) => {
      const app = loginApp(variant, scope.login({ name: uniqueName('shape') }));
      for (let i = 0; i < 5; i++) {
        const res = await request(app).post('/login').set('Content-Type', type).send(body);
        expect(res.status).toBe(401);
      }
      expectEnvelope(
        await request(app).post('/login').set('Content-Type', type).send(body),
        429,
        'RATE_LIMITED',
      );
    });

    it.each([
      ['a JSON string', '"ada"'],
      ['malformed JSON', '{"username": "ada"'],
      ['a bare number', '42'],
    ])('%s is a 400 from the body parser, in the envelope', async (_what, body) => {
      const app = loginApp(variant, scope.login({ name: uniqueName('json') }));
      const res = await request(app).post('/login').set('Content-Type', 'application/json').send(body);
      expect(res.status).toBe(400);
      expect(res.body).toMatchObject({ success: false, details: { request_id: expect.any(String) } });
    });

    it('a 10 kB username is counted under a short key', async () => {
      const name = uniqueName('long');
      const app = loginApp(variant, scope.login({ name }));
      const username = `${'a'.repeat(10_000)}@example.org`;
      for (let i = 0; i < 5; i++)
        expect((await request(app).post('/login').send({ username })).status).toBe(401);
      expectEnvelope(await request(app).post('/login').send({ username }), 429, 'RATE_LIMITED');
      // A different 10 kB username has its own budget.
      expect(
        (
          await request(app)
            .post('/login')
            .send({ username: `b${username}` })
        ).status,
      ).toBe(401);
      const keys = await scope.keys(name);
      expect(keys).toHaveLength(2);
      for (const key of keys) expect(key.length).toBeLessThan(scope.prefix.length + 100);
    });
  });
});
