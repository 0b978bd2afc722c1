/** authenticate(), the role guards, keys and rotation, JWKS, passport interop — through real Express apps. */
import { generateKeyPairSync } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import passport from 'passport';
import request from 'supertest';
import * as core from '../../lib/index';
import { eachExpress } from '../support/express';
import { accessClaims, authApp, forge, headerOf, SECRET, settings } from './support';

const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });

describe.each(eachExpress)('authenticate() and role guards on %s', (_name, variant) => {
  const auth = core.createAuth({ settings, secret: SECRET, redis: false });
  afterAll(() => auth.close());

  function guarded() {
    return authApp(variant, auth, (app) => {
      app.get('/providers', auth.authenticate(), core.requireRoles('provider', 'doctor'), (_q, r) =>
        r.send('ok'),
      );
      app.get('/both', auth.authenticate(), core.requireAllRoles('provider', 'admin'), (_q, r) =>
        r.send('ok'),
      );
      app.get('/scoped', auth.authenticate(), core.requireScopes('patients:read'), (_q, r) => r.send('ok'));
      app.get('/admin', auth.authenticate(), core.requireAdmin(), (_q, r) => r.send('ok'));
      app.get('/clinic', auth.authenticate(), core.requireHealthcareProvider(), (_q, r) => r.send('ok'));
      app.get(
        '/ward',
        auth.authenticate(),
        core.requireHealthcareProvider({ roles: ['ward-nurse'] }),
        (_q, r) => r.send('ok'),
      );
      app.get(
        '/patients/:patientId',
        auth.authenticate(),
        core.requireSelfOrRoles('patientId', 'provider'),
        (req, res) => {
          res.json({ id: req.params.patientId });
        },
      );
      app.get(
        '/records/:patientId',
        auth.authenticate(),
        core.requireSelfOrRoles({ param: 'patientId', self: (u) => u.claims.patient_id }, 'admin'),
        (_q, r) => r.send('ok'),
      );
      app.get('/unguarded-role', core.requireRoles('admin'), (_q, r) => r.send('ok'));
      app.get('/maybe', auth.authenticate({ optional: true }), (req, res) =>
        res.json({ user: req.user?.id ?? null }),
      );
    });
  }
  const app = guarded();
  const token = (roles: string[], extra: Record<string, unknown> = {}, userId = 'u-1') =>
    auth.createTokens({ userId, roles, ...extra }).access_token;

  it('requireRoles: any of the roles', async () => {
    await request(app)
      .get('/providers')
      .set(bearer(token(['doctor'])))
      .expect(200);
    const res = await request(app)
      .get('/providers')
      .set(bearer(token(['patient'])))
      .expect(403);
    expect(res.body).toMatchObject({ success: false, error_code: 'FORBIDDEN' });
  });

  it('requireAllRoles: every role', async () => {
    await request(app)
      .get('/both')
      .set(bearer(token(['provider', 'admin'])))
      .expect(200);
    await request(app)
      .get('/both')
      .set(bearer(token(['provider'])))
      .expect(403);
  });

  it('requireScopes reads `scope` and `scp`, and says insufficient_scope', async () => {
    await request(app)
      .get('/scoped')
      .set(bearer(token([], { scope: 'patients:read labs:read' })))
      .expect(200);
    await request(app)
      .get('/scoped')
      .set(bearer(token([], { scp: ['patients:read'] })))
      .expect(200);
    const res = await request(app)
      .get('/scoped')
      .set(bearer(token([], { scope: 'labs:read' })))
      .expect(403);
    expect(res.headers['www-authenticate']).toBe('Bearer error="insufficient_scope", scope="patients:read"');
  });

  it('requireAdmin and requireHealthcareProvider (default and configured roles)', async () => {
    await request(app)
      .get('/admin')
      .set(bearer(token(['admin'])))
      .expect(200);
    await request(app)
      .get('/admin')
      .set(bearer(token(['provider'])))
      .expect(403);
    for (const role of core.HEALTHCARE_PROVIDER_ROLES) {
      await request(app)
        .get('/clinic')
        .set(bearer(token([role])))
        .expect(200);
    }
    await request(app)
      .get('/clinic')
      .set(bearer(token(['patient'])))
      .expect(403);
    await request(app)
      .get('/ward')
      .set(bearer(token(['ward-nurse'])))
      .expect(200);
    await request(app)
      .get('/ward')
      .set(bearer(token(['nurse'])))
      .expect(403);
  });

  it('requireSelfOrRoles: a patient reaches only their own record; providers reach any', async () => {
    await request(app)
      .get('/patients/p-7')
      .set(bearer(token(['patient'], {}, 'p-7')))
      .expect(200);
    await request(app)
      .get('/patients/p-8')
      .set(bearer(token(['patient'], {}, 'p-7')))
      .expect(403);
    await request(app)
      .get('/patients/p-8')
      .set(bearer(token(['provider'], {}, 'dr-1')))
      .expect(200);
  });

  it('requireSelfOrRoles with self(): the own value can be a claim, and a missing one never matches', async () => {
    await request(app)
      .get('/records/p-1')
      .set(bearer(token(['patient'], { patient_id: 'p-1' })))
      .expect(200);
    await request(app)
      .get('/records/p-2')
      .set(bearer(token(['patient'], { patient_id: 'p-1' })))
      .expect(403);
    await request(app)
      .get('/records/u-1')
      .set(bearer(token(['patient'], {}, 'u-1')))
      .expect(403);
    await request(app)
      .get('/records/p-2')
      .set(bearer(token(['admin'])))
      .expect(200);
    expect(() => core.requireSelfOrRoles({ param: 'id', self: 'x' as never })).toThrow(core.ConfigError);
  });

  it('guards without authenticate() answer 401 TOKEN_MISSING, not 403', async () => {
    const res = await request(app).get('/unguarded-role').expect(401);
    expect(res.body.error_code).toBe('TOKEN_MISSING');
  });

  it('optional: anonymous passes, a bad token is still a 401', async () => {
    expect((await request(app).get('/maybe').expect(200)).body).toEqual({ user: null });
    expect(
      (
        await request(app)
          .get('/maybe')
          .set(bearer(token(['x'])))
          .expect(200)
      ).body,
    ).toEqual({ user: 'u-1' });
    const res = await request(app).get('/maybe').set(bearer('not.a.token')).expect(401);
    expect(res.body.error_code).toBe('TOKEN_INVALID');
  });

  it('sets req.user with id, email, roles, scopes and claims, and the user in the request context', async () => {
    const t = auth.createTokens({
      userId: 42,
      email: 'x@example.org',
      roles: ['nurse'],
      tenant: 'ward-3',
    }).access_token;
    const res = await request(app).get('/me').set(bearer(t)).expect(200);
    expect(res.body.user).toMatchObject({
      id: '42',
      email: 'x@example.org',
      roles: ['nurse'],
      scopes: [],
      via: 'token',
    });
    expect(res.body.user.claims).toMatchObject({
      sub: '42',
      tenant: 'ward-3',
      type: 'access',
      iss: 'caduceus-test',
    });
    expect(res.body.context).toBe('42');
  });

  it('an unexpected failure in the chain is a 401 or 503, never a 500 with a stack', async () => {
    const broken = core.createAuth({
      settings,
      secret: SECRET,
      revocation: {
        kind: 'memory',
        revoke: () => Promise.resolve(),
        isRevoked: () => Promise.reject(new core.ServiceUnavailableError('down')),
        consume: () => Promise.resolve(true),
        close: () => Promise.resolve(),
      },
    });
    const res = await request(authApp(variant, broken))
      .get('/me')
      .set(bearer(broken.createTokens({ userId: 'a' }).access_token));
    expect(res.status).toBe(503);
    expect(res.body.error_code).toBe('SERVICE_UNAVAILABLE');
    expect(JSON.stringify(res.body)).not.toMatch(/at .*\.ts/);
  });
});

describe.each(eachExpress)('keys, algorithms and rotation on %s', (_name, variant) => {
  it.each([
    ['RS256', generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey],
    ['PS256', generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey],
    ['ES256', generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey],
    ['ES384', generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey],
    ['EdDSA', generateKeyPairSync('ed25519').privateKey],
  ] as const)('%s: signs, verifies and publishes its public key', async (alg, privateKey) => {
    const auth = core.createAuth({
      settings,
      privateKey,
      algorithm: alg === 'PS256' ? 'PS256' : undefined,
      redis: false,
    });
    const pair = auth.createTokens({ userId: 'u', roles: ['a'] });
    expect(headerOf(pair.access_token)).toMatchObject({ alg, typ: 'at+jwt' });
    const app = authApp(variant, auth, (a) => a.get('/.well-known/jwks.json', auth.jwks()));
    await request(app).get('/me').set(bearer(pair.access_token)).expect(200);
    const jwks = await request(app).get('/.well-known/jwks.json').expect(200);
    expect(jwks.headers['cache-control']).toBe('public, max-age=300');
    expect(jwks.body.keys).toHaveLength(1);
    expect(jwks.body.keys[0]).toMatchObject({ kid: headerOf(pair.access_token).kid, alg, use: 'sig' });
    expect(jwks.body.keys[0]).not.toHaveProperty('d');
    await auth.close();
  });

  it('rotates HMAC secrets: the previous secret verifies, only the new one signs', async () => {
    const oldSecret = 'the-old-secret-which-is-also-long-enough-000';
    const before = core.createAuth({ settings, secret: oldSecret, redis: false });
    const after = core.createAuth({ settings, secret: SECRET, previousSecrets: [oldSecret], redis: false });
    const oldToken = before.createTokens({ userId: 'u' }).access_token;
    const newToken = after.createTokens({ userId: 'u' }).access_token;
    const app = authApp(variant, after);
    await request(app).get('/me').set(bearer(oldToken)).expect(200);
    await request(app).get('/me').set(bearer(newToken)).expect(200);
    expect(headerOf(newToken).kid).not.toBe(headerOf(oldToken).kid);
    await request(authApp(variant, before)).get('/me').set(bearer(newToken)).expect(401);
    await before.close();
    await after.close();
  });

  it('rotates key pairs: a verify-only JWKS keeps the previous key working', async () => {
    const oldKey = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const newKey = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const before = core.createAuth({
      settings,
      privateKey: oldKey.privateKey,
      keyId: 'k-2026-10',
      redis: false,
    });
    const oldToken = before.createTokens({ userId: 'u' }).access_token;
    const jwk = { ...oldKey.publicKey.export({ format: 'jwk' }), kid: 'k-2026-10', alg: 'ES256', use: 'sig' };
    const after = core.createAuth({
      settings,
      privateKey: newKey.privateKey,
      keyId: 'k-2026-11',
      publicKeys: { keys: [jwk] },
      redis: false,
    });
    const app = authApp(variant, after, (a) => a.get('/jwks', after.jwks()));
    await request(app).get('/me').set(bearer(oldToken)).expect(200);
    await request(app)
      .get('/me')
      .set(bearer(after.createTokens({ userId: 'u' }).access_token))
      .expect(200);
    const kids = (await request(app).get('/jwks').expect(200)).body.keys.map((k: { kid: string }) => k.kid);
    expect(kids.sort()).toEqual(['k-2026-10', 'k-2026-11']);
    await before.close();
    await after.close();
  });

  it('accepts access tokens of an identity provider through its JWKS URL, and only those it publishes', async () => {
    const idp = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const jwk = { ...idp.publicKey.export({ format: 'jwk' }), kid: 'idp-1', alg: 'RS256', use: 'sig' };
    let hits = 0;
    const server: Server = createServer((_req, res) => {
      hits++;
      res.setHeader('Content-Type', 'application/json');
      res.end(JSON.stringify({ keys: [jwk] }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks`;
    const auth = core.createAuth({
      settings,
      secret: SECRET,
      jwksUrl: url,
      algorithms: ['HS256', 'RS256'],
      issuer: ['caduceus-test', 'https://idp.example.org'],
      rolesClaim: 'realm_access.roles',
      redis: false,
    });
    try {
      const app = authApp(variant, auth);
      const claims = accessClaims({ iss: 'https://idp.example.org', realm_access: { roles: ['provider'] } });
      delete claims.type;
      const idpToken = forge({ alg: 'RS256', typ: 'JWT', kid: 'idp-1' }, claims, idp.privateKey);
      const res = await request(app).get('/me').set(bearer(idpToken)).expect(200);
      expect(res.body.user).toMatchObject({ id: 'user-1', roles: ['provider'] });
      await request(app).get('/me').set(bearer(idpToken)).expect(200);
      expect(hits).toBe(1);
      const stranger = generateKeyPairSync('rsa', { modulusLength: 2048 });
      await request(app)
        .get('/me')
        .set(bearer(forge({ alg: 'RS256', typ: 'JWT', kid: 'idp-1' }, claims, stranger.privateKey)))
        .expect(401);
      // Refresh tokens are ours alone: an IdP-signed "refresh" token never rotates.
      await expect(
        auth.refreshTokens(
          forge(
            { alg: 'RS256', typ: 'refresh+jwt', kid: 'idp-1' },
            { ...claims, type: 'refresh' },
            idp.privateKey,
          ),
        ),
      ).rejects.toMatchObject({ status: 401 });
    } finally {
      await auth.close();
      server.close();
    }
  });
});

describe.each(eachExpress)('the verified-token cache on %s', (_name, variant) => {
  afterEach(() => {
    jest.restoreAllMocks();
  });

  it('a cached token still expires (exp + tolerance is rechecked on every hit)', async () => {
    const auth = core.createAuth({ settings, secret: SECRET, redis: false, accessTokenTtlSeconds: 60 });
    const app = authApp(variant, auth);
    const t = auth.createTokens({ userId: 'u' }).access_token;
    await request(app).get('/me').set(bearer(t)).expect(200);
    await request(app).get('/me').set(bearer(t)).expect(200);
    const later = Date.now() + 95_000; // past exp (60 s) and the 30 s tolerance
    jest.spyOn(Date, 'now').mockReturnValue(later);
    const res = await request(app).get('/me').set(bearer(t)).expect(401);
    expect(res.body.error_code).toBe('TOKEN_EXPIRED');
    await auth.close();
  });

  it('a cached identity-provider token stops working once the provider withdraws its key', async () => {
    const idp = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    let keys = [{ ...idp.publicKey.export({ format: 'jwk' }), kid: 'idp-2', alg: 'ES256', use: 'sig' }];
    const server: Server = createServer((_req, res) => {
      res.setHeader('Content-Type', 'application/json');
      res.end(JSON.stringify({ keys }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const auth = core.createAuth({
      settings,
      secret: SECRET,
      jwksUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks`,
      jwks: { cacheMaxAgeMs: 50, cooldownMs: 50 },
      algorithms: ['HS256', 'ES256'],
      redis: false,
    });
    try {
      const app = authApp(variant, auth);
      const claims = accessClaims();
      delete claims.type;
      const token = forge({ alg: 'ES256', typ: 'JWT', kid: 'idp-2' }, claims, idp.privateKey);
      await request(app).get('/me').set(bearer(token)).expect(200);
      // Rotation at the provider: a new key replaces the old one (an empty set would read as an outage).
      const next = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      keys = [{ ...next.publicKey.export({ format: 'jwk' }), kid: 'idp-3', alg: 'ES256', use: 'sig' }];
      let status = 200;
      for (let i = 0; i < 40 && status === 200; i++) {
        await new Promise((resolve) => setTimeout(resolve, 50));
        status = (await request(app).get('/me').set(bearer(token))).status;
      }
      expect(status).toBe(401);
    } finally {
      await auth.close();
      server.close();
    }
  });
});

describe.each(eachExpress)('passport interop on %s', (_name, { express }) => {
  it('the strategy works in an application-owned passport chain and fails over to the next strategy', async () => {
    const auth = core.createAuth({ settings, secret: SECRET, redis: false });
    const authenticator = new passport.Authenticator();
    authenticator.use(auth.strategy());
    class Fallback extends passport.Strategy {
      override name = 'fallback';
      override authenticate(req: { headers: Record<string, unknown> }) {
        if (req.headers['x-api-key'] === 'k') this.success({ id: 'service' } as Express.User);
        else this.fail('ApiKey', 401);
      }
    }
    authenticator.use(new Fallback());
    const app = express();
    app.get('/x', authenticator.authenticate(['caduceus-jwt', 'fallback'], { session: false }), (req, res) =>
      res.json({ id: req.user?.id }),
    );
    const token = auth.createTokens({ userId: 'jwt-user' }).access_token;
    expect((await request(app).get('/x').set(bearer(token)).expect(200)).body).toEqual({ id: 'jwt-user' });
    expect((await request(app).get('/x').set('x-api-key', 'k').expect(200)).body).toEqual({ id: 'service' });
    await request(app).get('/x').set(bearer('bad.token.here')).expect(401);
    await auth.close();
  });
});

describe('tokens, refresh and settings', () => {
  it('createTokens returns the seed shape with iss, aud, sub, jti, iat, exp and lifetimes from settings', async () => {
    const s = core.loadSettings({
      NODE_ENV: 'test',
      APP_NAME: 'caduceus-test',
      LOG_LEVEL: 'ERROR',
      JWT_ACCESS_TOKEN_EXPIRE_MINUTES: '15',
      JWT_REFRESH_TOKEN_EXPIRE_DAYS: '2',
    });
    const auth = core.createAuth({ settings: s, secret: SECRET, redis: false });
    const pair = auth.createTokens({ userId: 'u', email: 'e@example.org', roles: ['a'] });
    expect(pair).toMatchObject({ token_type: 'bearer', expires_in: 900, refresh_expires_in: 172_800 });
    const claims = JSON.parse(
      Buffer.from(pair.access_token.split('.')[1] as string, 'base64url').toString(),
    ) as Record<string, number | string>;
    expect(claims).toMatchObject({ sub: 'u', iss: 'caduceus-test', aud: 'caduceus-test', type: 'access' });
    expect(Number(claims.exp) - Number(claims.iat)).toBe(900);
    expect(typeof claims.jti).toBe('string');
    await auth.close();
  });

  it('refuses reserved claims and bad inputs to createTokens', async () => {
    const auth = core.createAuth({ settings, secret: SECRET, redis: false });
    expect(() => auth.createTokens({ userId: 'u', exp: 1 })).toThrow(/"exp" is set by caduceus/);
    expect(() => auth.createTokens({ userId: '' })).toThrow(/userId/);
    expect(() => auth.createTokens({ userId: 'u', roles: 'admin' as unknown as string[] })).toThrow(/roles/);
    await expect(auth.refreshTokens(undefined as unknown as string)).rejects.toMatchObject({ status: 401 });
    await expect(auth.revokeToken(undefined as unknown as string)).rejects.toThrow(TypeError);
    await auth.close();
  });

  it('refresh: loadUser can update roles or end the family', async () => {
    let active = true;
    const auth = core.createAuth({
      settings,
      secret: SECRET,
      redis: false,
      loadUser: (claims) => (active ? { ...claims, roles: ['provider', 'admin'] } : null),
    });
    const first = auth.createTokens({ userId: 'u', roles: ['provider'], ward: 3 });
    const second = await auth.refreshTokens(first.refresh_token);
    const payload = JSON.parse(
      Buffer.from(second.access_token.split('.')[1] as string, 'base64url').toString(),
    ) as Record<string, unknown>;
    expect(payload).toMatchObject({ sub: 'u', roles: ['provider', 'admin'], ward: 3 });
    active = false;
    await expect(auth.refreshTokens(second.refresh_token)).rejects.toMatchObject({ code: 'TOKEN_REVOKED' });
    await expect(auth.verifyToken(second.access_token)).rejects.toMatchObject({ code: 'TOKEN_REVOKED' });
    await auth.close();
  });

  it('refuses bad configuration at creation with a clear ConfigError', () => {
    const pss = generateKeyPairSync('rsa-pss', { modulusLength: 2048 }).privateKey;
    expect(() => core.createAuth({ settings, privateKey: pss, redis: false })).toThrow(/RS\* or PS\*/);
    expect(() => core.createAuth({ settings, secret: 'short', redis: false })).toThrow(/at least 32 bytes/);
    expect(() =>
      core.createAuth({ settings, secret: SECRET, redis: false, algorithms: ['none' as 'HS256'] }),
    ).toThrow(core.ConfigError);
    expect(() => core.createAuth({ settings, secret: SECRET, redis: false, algorithm: 'RS256' })).toThrow(
      /algorithm/,
    );
    expect(() => core.createAuth({ settings, secret: SECRET, redis: false, maxTokenBytes: 10 })).toThrow(
      /maxTokenBytes/,
    );
    expect(() => core.createAuth({ settings, secret: SECRET, redis: false, issuer: '' })).toThrow(/issuer/);
    expect(() => core.createAuth({ settings, secert: SECRET } as core.AuthOptions)).toThrow(
      /Did you mean "secret"/,
    );
    const small = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey;
    expect(() => core.createAuth({ settings, privateKey: small, redis: false })).toThrow(/2048/);
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    expect(() => core.createAuth({ settings, privateKey: ec, algorithm: 'RS256', redis: false })).toThrow(
      /ES256/,
    );
    const hmac = core.createAuth({ settings, secret: SECRET, redis: false });
    expect(() => hmac.jwks()).toThrow(/never published/);
    expect(() => hmac.authenticate({ optinal: true } as core.AuthenticateOptions)).toThrow(
      /Did you mean "optional"/,
    );
    expect(() => core.requireRoles()).toThrow(core.ConfigError);
    expect(() => core.requireRoles('')).toThrow(core.ConfigError);
    expect(() => core.requireSelfOrRoles('')).toThrow(core.ConfigError);
    void hmac.close();
  });

  it('reads keys from the environment: JWT_PRIVATE_KEY(_FILE), JWT_KEY_ID, JWT_ALGORITHM', async () => {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-384' });
    const s = core.loadSettings({
      NODE_ENV: 'production',
      APP_NAME: 'svc',
      LOG_LEVEL: 'ERROR',
      JWT_PRIVATE_KEY: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
      JWT_KEY_ID: 'prod-1',
      JWT_ALGORITHM: 'ES384',
    });
    expect(JSON.stringify(s.auth)).not.toContain('PRIVATE KEY');
    const auth = core.createAuth({ settings: s, redis: false });
    expect(headerOf(auth.createTokens({ userId: 'u' }).access_token)).toMatchObject({
      alg: 'ES384',
      kid: 'prod-1',
    });
    await auth.close();
    expect(() => core.loadSettings({ JWT_PRIVATE_KEY: 'not pem' })).toThrow(/JWT_PRIVATE_KEY/);
  });

  it('a core.authenticate() made before configureAuth() follows the swap, and a closed denylist fails closed', async () => {
    const first = core.configureAuth({ settings, secret: SECRET, redis: false });
    const app = (require('express') as () => import('express').Express)();
    app.get('/me', core.authenticate(), (req, res) => res.json({ id: req.user?.id }));
    app.use(core.errors({ settings, logger: core.createLogger('errors', { settings, console: false }) }));
    const t1 = core.createTokens({ userId: 'swap' }).access_token;
    await core.revokeToken(t1);
    await request(app).get('/me').set(bearer(t1)).expect(401);
    const second = core.configureAuth({ settings, secret: SECRET, redis: false });
    const t2 = core.createTokens({ userId: 'swap' }).access_token;
    expect(await core.revokeToken(t2)).toBe(true);
    // The old middleware now asks the new Auth: t2's revocation applies to it.
    await request(app).get('/me').set(bearer(t2)).expect(401);
    // The replaced Auth is closed: its list answers 503, never "not revoked".
    await expect(first.verifyToken(t1)).rejects.toMatchObject({ status: 503 });
    await second.close();
  });

  it('verifyToken checks certificate binding, and revokeToken says when there is nothing to revoke', async () => {
    const auth = core.createAuth({ settings, secret: SECRET, redis: false });
    const bound = auth.createTokens({ userId: 'svc' }, { certificateThumbprint: 'abc' }).access_token;
    await expect(auth.verifyToken(bound)).rejects.toMatchObject({ code: 'TOKEN_INVALID' });
    expect((await auth.verifyToken(bound, { certificateThumbprint: 'abc' })).id).toBe('svc');
    expect(auth.counters().failure.certificate_mismatch).toBe(1);
    const service: core.AuthUser = {
      id: 'svc',
      email: undefined,
      roles: [],
      scopes: [],
      claims: {},
      via: 'certificate',
    };
    expect(await auth.revokeToken(service)).toBe(false);
    expect(auth.counters().revoked).toBe(0);
    await auth.close();
  });

  it('the shared instance behind core.createTokens / core.authenticate is replaceable with configureAuth', async () => {
    const auth = core.configureAuth({ settings, secret: SECRET, redis: false });
    const pair = core.createTokens({ userId: 'shared' });
    expect((await auth.verifyToken(pair.access_token)).id).toBe('shared');
    const rotated = await core.refreshTokens(pair.refresh_token);
    await core.revokeToken(rotated.access_token);
    await expect(auth.verifyToken(rotated.access_token)).rejects.toMatchObject({ code: 'TOKEN_REVOKED' });
    expect(typeof core.authenticate()).toBe('function');
    await auth.close();
  });
});

describe('passwords', () => {
  it('hashes with scrypt into a self-describing string and verifies in constant time', async () => {
    const hash = await core.hashPassword('correct horse battery staple', { cost: 1024 });
    expect(hash).toMatch(/^\$scrypt\$n=1024,r=8,p=1\$[A-Za-z0-9+/]+=*\$[A-Za-z0-9+/]+=*$/);
    expect(await core.verifyPassword('correct horse battery staple', hash)).toBe(true);
    expect(await core.verifyPassword('correct horse battery stapler', hash)).toBe(false);
    expect(await core.hashPassword('same', { cost: 1024 })).not.toBe(
      await core.hashPassword('same', { cost: 1024 }),
    );
  });

  it('treats malformed, hostile or foreign hashes as a mismatch, never an exception', async () => {
    for (const bad of [
      '',
      'plain',
      '$2b$10$abcdefghijklmnopqrstuv',
      '$scrypt$n=1073741824,r=8,p=1$AAAA$AAAA',
      '$scrypt$n=1000,r=8,p=1$AAAA$AAAA',
      // Well-formed but hostile: 4 GiB of memory, or 16× the work.
      `$scrypt$n=1048576,r=32,p=1$AAAA$${Buffer.alloc(32).toString('base64')}`,
      `$scrypt$n=1024,r=8,p=16$AAAA$${Buffer.alloc(32).toString('base64')}`,
      undefined,
      null,
    ]) {
      expect(await core.verifyPassword('pw', bad as string)).toBe(false);
    }
    const hash = await core.hashPassword('pw', { cost: 1024 });
    expect(await core.verifyPassword('x'.repeat(2000), hash)).toBe(false);
    await expect(core.hashPassword('')).rejects.toThrow(TypeError);
    await expect(core.hashPassword('x'.repeat(2000))).rejects.toThrow(RangeError);
    await expect(core.hashPassword('pw', { cost: 1000 })).rejects.toThrow(/power of two/);
    await expect(core.hashPassword('pw', { cost: 2 ** 18 })).rejects.toThrow(/128 MiB/);
  });
});
