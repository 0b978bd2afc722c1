/**
 * `loginRateLimit()` on POST /login: 5 attempts per client address and username, the username
 * normalised (case, spaces, NFKC) and hashed — an e-mail address never reaches a Redis key or a header.
 */
import type { Express } from 'express';
import request from 'supertest';
import * as core from '../../lib/index';
import { eachExpress, type ExpressVariant } from '../support/express';
import { appWith, expectLimited, limiterScope, uniqueName, within } from './support';

const scope = limiterScope('login');

function loginApp(variant: ExpressVariant, limiter: core.RateLimiter, trustProxy?: boolean): Express {
  return appWith(
    variant,
    (app) => {
      app.post('/login', variant.express.json(), limiter, (_req, res) => {
        res.status(401).json({ success: false, error_code: 'INVALID_CREDENTIALS' });
      });
    },
    trustProxy,
  );
}

/** Statuses of `n` login attempts with `body`. */
async function attempts(app: Express, body: object, n: number, xff?: string): Promise<number[]> {
  const statuses: number[] = [];
  for (let i = 0; i < n; i++) {
    let req = request(app).post('/login');
    if (xff !== undefined) req = req.set('X-Forwarded-For', xff);
    const res = await req.send(body);
    if (res.status === 429) expectLimited(res, 60);
    statuses.push(res.status);
  }
  return statuses;
}

const FIVE_THEN_LIMITED = [401, 401, 401, 401, 401, 429];

describe.each(eachExpress)('%s', (_label, variant) => {
  it('allows 5 attempts per username from an address, then 429; another username has its own 5', async () => {
    const name = uniqueName('login');
    const app = loginApp(variant, scope.login({ name }));
    expect(await attempts(app, { username: 'ada', password: 'x' }, 6)).toEqual(FIVE_THEN_LIMITED);
    expect(await attempts(app, { username: 'grace', password: 'x' }, 6)).toEqual(FIVE_THEN_LIMITED);
    // Still refused for ada: the window is a minute.
    expect(await attempts(app, { username: 'ada', password: 'y' }, 1)).toEqual([429]);
    const keys = await scope.keys(name);
    expect(keys).toHaveLength(2);
    for (const key of keys)
      expect(key).toMatch(
        new RegExp(`^${scope.redisKey(name, '')}ip:127\\.0\\.0\\.1\\|name:[A-Za-z0-9_-]{22}$`),
      );
  });

  it('states 5 per 60 s in its headers by default', async () => {
    const name = uniqueName('login-policy');
    const app = loginApp(variant, scope.login({ name }));
    const res = await request(app).post('/login').send({ username: 'ada' });
    expect(res.headers['ratelimit-policy']).toMatch(new RegExp(`^"${name}"; q=5; w=60; pk=:[^:]+:$`));
    expect(res.headers.ratelimit).toMatch(new RegExp(`^"${name}"; r=4; t=(59|60)$`));
  });

  it('gives the same username from another address its own budget (no lock-out from elsewhere)', async () => {
    const app = loginApp(variant, scope.login({ name: uniqueName('login-ip') }), true);
    expect(await attempts(app, { username: 'ada' }, 6, '198.51.100.1')).toEqual(FIVE_THEN_LIMITED);
    expect(await attempts(app, { username: 'ada' }, 6, '198.51.100.2')).toEqual(FIVE_THEN_LIMITED);
  });

  it('normalises the username: case, surrounding spaces and compatibility forms share one budget', async () => {
    const name = uniqueName('login-norm');
    const app = loginApp(variant, scope.login({ name }));
    const spellings = [
      { username: 'Ada.Lovelace@Example.ORG' },
      { username: '  ada.lovelace@example.org\t' },
      { username: 'ADA.LOVELACE@EXAMPLE.ORG' },
      // Full-width letters (NFKC folds them to ASCII).
      { username: 'ａｄａ.lovelace@example.org' },
      // The same address in the other field the limiter reads.
      { email: 'ada.lovelace@example.org' },
    ];
    for (const body of spellings) expect(await attempts(app, body, 1)).toEqual([401]);
    expect(await attempts(app, { username: 'ada.lovelace@example.org' }, 1)).toEqual([429]);
    expect(await scope.keys(name)).toHaveLength(1);
  });

  it('never puts the username or e-mail in a Redis key, a header or the 429 body', async () => {
    const name = uniqueName('login-secret');
    const app = loginApp(variant, scope.login({ name }));
    const secrets = [
      'Patient.Zero@Hospital.example',
      'patient.zero@hospital.example',
      'patient.zero',
      'hospital',
    ];
    const responses: request.Response[] = [];
    for (let i = 0; i < 6; i++)
      responses.push(await request(app).post('/login').send({ email: secrets[0], password: 'p' }));
    expect(responses.map((r) => r.status)).toEqual(FIVE_THEN_LIMITED);

    const keys = await scope.keys(name);
    expect(keys).toHaveLength(1);
    // Everything the limiter stored, with its value: the count and nothing else.
    const stored = [...keys, ...(await Promise.all(keys.map((k) => scope.admin().get(k))))]
      .join('\n')
      .toLowerCase();
    expect(await scope.admin().get(keys[0]!)).toBe('6');
    for (const res of responses) {
      const visible = `${JSON.stringify(res.headers)}\n${JSON.stringify(res.body)}`.toLowerCase();
      for (const secret of secrets) {
        expect(stored).not.toContain(secret.toLowerCase());
        expect(visible).not.toContain(secret.toLowerCase());
      }
    }
  });

  it('counts a body without a username under the address alone, apart from named attempts', async () => {
    const name = uniqueName('login-anon');
    const app = loginApp(variant, scope.login({ name }));
    expect(await attempts(app, { password: 'x' }, 6)).toEqual(FIVE_THEN_LIMITED);
    expect(await attempts(app, { username: '   ' }, 1)).toEqual([429]);
    expect(await attempts(app, { username: 'ada' }, 1)).toEqual([401]);
    const keys = await scope.keys(name);
    expect(keys).toHaveLength(2);
    expect(keys).toContain(scope.redisKey(name, 'ip:127.0.0.1|name:-'));
    expect(keys.find((k) => !k.endsWith('|name:-'))).toMatch(/\|name:[A-Za-z0-9_-]{22}$/);
  });

  it('with skipSuccessfulRequests, counts failed attempts only: a user who logs in is not locked out', async () => {
    const name = uniqueName('login-failed');
    const limiter = scope.login({ name, skipSuccessfulRequests: true });
    const app = appWith(variant, (a) => {
      a.post('/login', variant.express.json(), limiter, (req, res) => {
        const ok = (req.body as { password?: unknown }).password === 'right';
        res.status(ok ? 200 : 401).json({ ok });
      });
    });
    for (let i = 0; i < 10; i++) {
      expect((await request(app).post('/login').send({ username: 'ada', password: 'right' })).status).toBe(
        200,
      );
    }
    expect(await attempts(app, { username: 'ada', password: 'wrong' }, 6)).toEqual(FIVE_THEN_LIMITED);
    // Once the failures are used up, a right password is refused too: guessing stops here.
    expect((await request(app).post('/login').send({ username: 'ada', password: 'right' })).status).toBe(429);
    const keys = await scope.keys(name);
    expect(keys).toHaveLength(1);
    // 5 failures and 2 refusals (a 429 is not a success); the 10 logins were taken back.
    const counted = await within(
      1000,
      () => scope.admin().get(keys[0]!),
      (v) => v === '7',
    );
    expect(counted.value).toBe('7');
  });

  it('reads the username from the fields named by usernameFields', async () => {
    const app = loginApp(
      variant,
      scope.login({ name: uniqueName('login-fields'), usernameFields: ['login'] }),
    );
    expect(await attempts(app, { login: 'ada' }, 6)).toEqual(FIVE_THEN_LIMITED);
    expect(await attempts(app, { login: 'grace' }, 1)).toEqual([401]);
    // `username` is not one of them now: these two share the address-only budget.
    expect(await attempts(app, { username: 'ada' }, 5)).toEqual([401, 401, 401, 401, 401]);
    expect(await attempts(app, { username: 'grace' }, 1)).toEqual([429]);
  });
});

describe.each(eachExpress)('%s: a decoy field', (_name, variant) => {
  test('a decoy username next to the email the handler reads buys no fresh budget', async () => {
    const app = variant.express();
    app.use(variant.express.json());
    const limiter = core.loginRateLimit({ redis: false, settings: core.loadSettings({ NODE_ENV: 'test' }) });
    app.post('/login', limiter, (_req, res) => res.status(401).json({ ok: false }));
    app.use(core.errors({ settings: core.loadSettings({ NODE_ENV: 'test' }) }));
    const statuses: number[] = [];
    for (let i = 0; i < 8; i++) {
      const res = await request(app)
        .post('/login')
        .send({ email: 'victim@clinic.example', username: `decoy-${String(i)}`, password: 'guess' });
      statuses.push(res.status);
    }
    expect(statuses).toEqual([401, 401, 401, 401, 401, 429, 429, 429]);
    await limiter.close();
  });
});
