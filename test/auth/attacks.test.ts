/**
 * The known JWT attacks, each against a real Express app: every one is a 401 in our envelope,
 * with a code that says what kind of failure it was and nothing more — never a 500, never a 200.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { generateKeyPairSync } from 'node:crypto';
import fc from 'fast-check';
import request from 'supertest';
import * as core from '../../lib/index';
import { eachExpress } from '../support/express';
import { captureLogger } from '../support/logs';
import { accessClaims, authApp, b64, forge, headerOf, SECRET, settings } from './support';

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const rsaPublicPem = rsa.publicKey.export({ type: 'spki', format: 'pem' }) as string;

describe.each(eachExpress)('JWT attacks on %s', (_name, variant) => {
  const captured = captureLogger('auth');
  const hs = core.createAuth({ settings, secret: SECRET, redis: false, logger: captured.logger });
  const rs = core.createAuth({ settings, privateKey: rsa.privateKey, redis: false, logger: captured.logger });
  const hsApp = authApp(variant, hs);
  const rsApp = authApp(variant, rs);
  const good = hs.createTokens({ userId: 'user-1', email: 'ada@example.org', roles: ['patient'] });
  const kid = headerOf(good.access_token).kid as string;

  afterAll(async () => {
    await hs.close();
    await rs.close();
  });

  async function rejected(app: typeof hsApp, token: string, code = 'TOKEN_INVALID') {
    const res = await request(app).get('/me').set('Authorization', `Bearer ${token}`);
    expect(res.status).toBe(401);
    expect(res.body).toMatchObject({ success: false, error_code: code });
    expect(res.headers['www-authenticate']).toMatch(/^Bearer realm="api", error="invalid_token"$/);
    expect(JSON.stringify(res.body)).not.toContain(token.slice(0, 20));
    return res;
  }

  it('accepts the real token (the baseline every attack is measured against)', async () => {
    const res = await request(hsApp)
      .get('/me')
      .set('Authorization', `Bearer ${good.access_token}`)
      .expect(200);
    expect(res.body.user).toMatchObject({
      id: 'user-1',
      email: 'ada@example.org',
      roles: ['patient'],
      via: 'token',
    });
    expect(res.body.context).toBe('user-1');
  });

  it('refuses alg "none" in every spelling, with or without a signature', async () => {
    for (const alg of ['none', 'None', 'NONE', 'nOnE']) {
      const unsigned = `${b64({ alg, typ: 'JWT', kid })}.${b64(accessClaims())}.`;
      await rejected(hsApp, unsigned);
      await rejected(hsApp, `${unsigned}c2lnbmF0dXJl`);
    }
  });

  it('refuses HS256 signed with the RSA public key (algorithm confusion)', async () => {
    const rsKid = headerOf(rs.createTokens({ userId: 'x' }).access_token).kid;
    const forged = forge(
      { alg: 'HS256', typ: 'at+jwt', kid: rsKid },
      accessClaims({ roles: ['admin'] }),
      rsaPublicPem,
    );
    await rejected(rsApp, forged);
    // Even when the allow-list is widened to HMAC, the RSA key verifies RS256 only.
    const wide = core.createAuth({
      settings,
      privateKey: rsa.privateKey,
      algorithms: ['RS256', 'HS256'],
      redis: false,
    });
    await rejected(authApp(variant, wide), forged);
    await wide.close();
  });

  it('refuses unknown, path-traversal, SQL and non-string kids', async () => {
    for (const bad of [
      'unknown',
      '../../../../etc/passwd',
      "' OR '1'='1' --",
      '/dev/null',
      'a'.repeat(300),
      42,
      null,
      ['x'],
    ]) {
      await rejected(hsApp, forge({ alg: 'HS256', typ: 'at+jwt', kid: bad }, accessClaims(), SECRET));
    }
  });

  it('never follows jku / x5u / jwk / x5c headers, even on a correctly signed token', async () => {
    let hits = 0;
    const server = createServer((_req, res) => {
      hits++;
      res.end('{"keys":[]}');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks.json`;
    const attacker = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const jwk = attacker.publicKey.export({ format: 'jwk' });
    try {
      for (const extra of [{ jku: url }, { x5u: url }, { jwk }, { x5c: ['MIIB'] }]) {
        await rejected(hsApp, forge({ alg: 'HS256', typ: 'at+jwt', kid, ...extra }, accessClaims(), SECRET));
        await rejected(
          rsApp,
          forge(
            { alg: 'RS256', typ: 'at+jwt', kid: 'attacker', ...extra },
            accessClaims(),
            attacker.privateKey,
          ),
        );
      }
      expect(hits).toBe(0);
    } finally {
      server.close();
    }
  });

  it('refuses crit, b64=false and JWE-shaped tokens', async () => {
    await rejected(
      hsApp,
      forge({ alg: 'HS256', typ: 'at+jwt', kid, crit: ['exp'], exp: 1 }, accessClaims(), SECRET),
    );
    await rejected(
      hsApp,
      forge({ alg: 'HS256', typ: 'at+jwt', kid, b64: false, crit: ['b64'] }, accessClaims(), SECRET),
    );
    await rejected(hsApp, `${b64({ alg: 'dir', enc: 'A256GCM' })}..aXY.Y2lwaGVy.dGFn`);
  });

  it('says TOKEN_EXPIRED for an expired token and TOKEN_INVALID for nbf/iat in the future beyond tolerance', async () => {
    const now = Math.floor(Date.now() / 1000);
    await rejected(
      hsApp,
      forge({ alg: 'HS256', typ: 'at+jwt', kid }, accessClaims({ iat: now - 900, exp: now - 60 }), SECRET),
      'TOKEN_EXPIRED',
    );
    await rejected(
      hsApp,
      forge({ alg: 'HS256', typ: 'at+jwt', kid }, accessClaims({ nbf: now + 120 }), SECRET),
    );
    await rejected(
      hsApp,
      forge({ alg: 'HS256', typ: 'at+jwt', kid }, accessClaims({ iat: now + 120 }), SECRET),
    );
    // Within the 30 s default tolerance, skewed clocks are forgiven.
    for (const skew of [{ nbf: now + 10 }, { iat: now + 10 }, { exp: now - 10 }]) {
      const token = forge({ alg: 'HS256', typ: 'at+jwt', kid }, accessClaims(skew), SECRET);
      await request(hsApp).get('/me').set('Authorization', `Bearer ${token}`).expect(200);
    }
  });

  it('refuses the wrong issuer or audience, and audiences given as arrays without ours', async () => {
    await rejected(hsApp, forge({ alg: 'HS256', typ: 'at+jwt', kid }, accessClaims({ iss: 'evil' }), SECRET));
    await rejected(
      hsApp,
      forge({ alg: 'HS256', typ: 'at+jwt', kid }, accessClaims({ aud: 'other-api' }), SECRET),
    );
    await rejected(
      hsApp,
      forge({ alg: 'HS256', typ: 'at+jwt', kid }, accessClaims({ aud: ['a', 'b'] }), SECRET),
    );
    // A missing claim is not a passing claim: fast-jwt skips absent iss/aud unless they are required.
    const { iss: _i, ...noIss } = accessClaims();
    await rejected(hsApp, forge({ alg: 'HS256', typ: 'at+jwt', kid }, noIss, SECRET));
    const { aud: _a, ...noAud } = accessClaims();
    await rejected(hsApp, forge({ alg: 'HS256', typ: 'at+jwt', kid }, noAud, SECRET));
    await rejected(
      hsApp,
      forge({ alg: 'HS256', typ: 'at+jwt', kid }, accessClaims({ iss: ['caduceus-test'] }), SECRET),
    );
  });

  it('requires exp (as a number) and sub', async () => {
    const { exp: _e, ...noExp } = accessClaims();
    await rejected(hsApp, forge({ alg: 'HS256', typ: 'at+jwt', kid }, noExp, SECRET));
    await rejected(
      hsApp,
      forge({ alg: 'HS256', typ: 'at+jwt', kid }, accessClaims({ exp: '9999999999' }), SECRET),
    );
    const { sub: _s, ...noSub } = accessClaims();
    await rejected(hsApp, forge({ alg: 'HS256', typ: 'at+jwt', kid }, noSub, SECRET));
  });

  it('refuses a tampered payload, truncated tokens and malformed base64', async () => {
    const [h, p, s] = good.access_token.split('.') as [string, string, string];
    const payload = JSON.parse(Buffer.from(p, 'base64url').toString()) as Record<string, unknown>;
    await rejected(hsApp, `${h}.${b64({ ...payload, roles: ['admin'] })}.${s}`);
    await rejected(hsApp, `${h}.${p}.${s.slice(0, -2)}`);
    await rejected(hsApp, `${h}.${p}`);
    await rejected(hsApp, good.access_token.slice(0, 40));
    await rejected(hsApp, `${h}.${p}.${s}.${s}`);
    await rejected(hsApp, `${h}.${p}!.${s}`);
    await rejected(hsApp, `${h}=.${p}.${s}`);
    await rejected(hsApp, `${b64('not json')}.${p}.${s}`);
    await rejected(hsApp, `${b64('[1,2]')}.${p}.${s}`);
    await rejected(hsApp, `${h}.${b64('"a string payload"')}.${s}`);
  });

  it('refuses a signature re-encoded with different trailing bits (base64url malleability)', async () => {
    const [h, p, s] = good.access_token.split('.') as [string, string, string];
    const last = s.slice(-1);
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    // 32 bytes → 43 characters: the last one carries 4 bits; its 2 low bits are padding.
    const twin = alphabet[(alphabet.indexOf(last) & ~3) | 1] as string;
    expect(Buffer.from(`${s.slice(0, -1)}${twin}`, 'base64url')).toEqual(Buffer.from(s, 'base64url'));
    await rejected(hsApp, `${h}.${p}.${s.slice(0, -1)}${twin}`);
  });

  it('refuses an oversized token before doing any crypto', async () => {
    const res = await rejected(
      hsApp,
      forge({ alg: 'HS256', typ: 'at+jwt', kid }, accessClaims({ pad: 'x'.repeat(9000) }), SECRET),
    );
    expect(res.body.error).toBe('Token is too large');
  });

  it('refuses a revoked token with TOKEN_REVOKED, and the family of a revoked login', async () => {
    const pair = hs.createTokens({ userId: 'user-2', roles: ['patient'] });
    await request(hsApp).get('/me').set('Authorization', `Bearer ${pair.access_token}`).expect(200);
    await hs.revokeToken(pair.access_token);
    await rejected(hsApp, pair.access_token, 'TOKEN_REVOKED');
    const other = hs.createTokens({ userId: 'user-3' });
    const rotated = await hs.refreshTokens(other.refresh_token);
    await hs.revokeToken(other.access_token, { family: true });
    await rejected(hsApp, rotated.access_token, 'TOKEN_REVOKED');
    await expect(hs.refreshTokens(rotated.refresh_token)).rejects.toMatchObject({ code: 'TOKEN_REVOKED' });
  });

  it('revokes the whole family when a refresh token is used twice', async () => {
    const login = hs.createTokens({ userId: 'user-4', roles: ['patient'] });
    const first = await hs.refreshTokens(login.refresh_token);
    await request(hsApp).get('/me').set('Authorization', `Bearer ${first.access_token}`).expect(200);
    // The stolen copy of the original refresh token is replayed.
    await expect(hs.refreshTokens(login.refresh_token)).rejects.toMatchObject({
      status: 401,
      code: 'TOKEN_REVOKED',
    });
    // …and now neither the thief nor the client holds a working token of that login.
    await rejected(hsApp, first.access_token, 'TOKEN_REVOKED');
    await rejected(hsApp, login.access_token, 'TOKEN_REVOKED');
    await expect(hs.refreshTokens(first.refresh_token)).rejects.toMatchObject({ code: 'TOKEN_REVOKED' });
    expect(hs.counters().refreshReuse).toBeGreaterThanOrEqual(1);
    expect(
      captured.lines().some((l) => l.security_event === 'refresh_token_reuse' && l.user_id === 'user-4'),
    ).toBe(true);
  });

  it('keeps access and refresh tokens apart', async () => {
    const pair = hs.createTokens({ userId: 'user-5' });
    await rejected(hsApp, pair.refresh_token);
    await expect(hs.refreshTokens(pair.access_token)).rejects.toMatchObject({
      status: 401,
      code: 'TOKEN_INVALID',
    });
    // A refresh-typed payload under an access header (and the reverse) is refused too.
    const refreshClaims = JSON.parse(
      Buffer.from(pair.refresh_token.split('.')[1] as string, 'base64url').toString(),
    ) as Record<string, unknown>;
    await rejected(hsApp, forge({ alg: 'HS256', typ: 'at+jwt', kid }, refreshClaims, SECRET));
    await expect(
      hs.refreshTokens(forge({ alg: 'HS256', typ: 'refresh+jwt', kid }, accessClaims(), SECRET)),
    ).rejects.toMatchObject({
      code: 'TOKEN_INVALID',
    });
  });

  it('refuses tokens in the query string unless allowed, and says TOKEN_MISSING without one', async () => {
    const res = await request(hsApp).get(`/me?access_token=${good.access_token}`).expect(401);
    expect(res.body.error_code).toBe('TOKEN_INVALID');
    const allowed = authApp(variant, hs, undefined, { allowQueryToken: true });
    await request(allowed).get(`/me?access_token=${good.access_token}`).expect(200);
    const missing = await request(hsApp).get('/me').expect(401);
    expect(missing.body.error_code).toBe('TOKEN_MISSING');
    expect(missing.headers['www-authenticate']).toBe('Bearer realm="api"');
    await request(hsApp).get('/me').set('Authorization', 'Basic dXNlcjpwYXNz').expect(401);
    const empty = await request(hsApp).get('/me').set('Authorization', 'Bearer    ').expect(401);
    expect(empty.body.error_code).toBe('TOKEN_INVALID');
    await request(hsApp).get('/me').set('Authorization', `bearer ${good.access_token}`).expect(200);
    // `access_token=` in the path is not a query parameter, allowed or not.
    await request(allowed).get(`/me&access_token=${good.access_token}`).expect(404);
  });

  it('answers 401, never 500 or 200, for any mutation of a valid token (property)', async () => {
    const token = good.access_token;
    await fc.assert(
      fc.asyncProperty(
        fc.nat(token.length - 1),
        fc.string({ minLength: 1, maxLength: 3 }),
        async (at, insert) => {
          const mutated = token.slice(0, at) + insert + token.slice(at + 1);
          fc.pre(mutated !== token && !/[\r\n\0]/.test(mutated) && /^[\x21-\x7e]+$/.test(mutated));
          const res = await request(hsApp).get('/me').set('Authorization', `Bearer ${mutated}`);
          expect(res.status).toBe(401);
        },
      ),
      { numRuns: 150 },
    );
  });

  it('logs each failure with its reason, never the token', () => {
    const failures = captured.lines().filter((l) => l.security_event === 'authentication_failed');
    expect(failures.length).toBeGreaterThan(10);
    expect(new Set(failures.map((l) => l.reason))).toEqual(
      expect.objectContaining({ size: expect.any(Number) as number }),
    );
    expect(captured.raw()).not.toContain(good.access_token.split('.')[2]);
    expect(hs.counters().failure.expired).toBeGreaterThanOrEqual(1);
  });
});
