import {
  createPublicKey,
  createSecretKey,
  generateKeyPairSync,
  randomBytes,
  sign,
  verify,
} from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { createServer } from 'node:http';
import type { IncomingHttpHeaders, Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { jwkThumbprint, jwkToVerificationKey, publicJwk } from '../../lib/auth/jwk';
import { RemoteJwks } from '../../lib/auth/remote-jwks';
import type { RemoteJwksOptions } from '../../lib/auth/remote-jwks';
import type { JwtAlgorithm } from '../../lib/index';
import { ConfigError } from '../../lib/index';
import { captureLogger } from '../support/logs';

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const ed = generateKeyPairSync('ed25519');
const jwkOf = (key: KeyObject, kid: string, alg: JwtAlgorithm) => publicJwk(key, kid, alg);
const RSA_JWK = jwkOf(rsa.publicKey, 'rsa-1', 'RS256');
const EC_JWK = jwkOf(ec.publicKey, 'ec-1', 'ES256');
const ED_JWK = jwkOf(ed.publicKey, 'ed-1', 'EdDSA');

/** RFC 7638 §3.1. */
const RFC_7638_JWK = {
  kty: 'RSA',
  n: '0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw',
  e: 'AQAB',
  alg: 'RS256',
  kid: '2011-04-29',
};

type Mode = 'ok' | 'error' | 'hang' | 'invalid' | 'oversized' | 'chunked' | 'useless' | 'redirect';

/** A real JWKS endpoint on 127.0.0.1 whose answer the test controls. */
interface Idp {
  readonly url: string;
  keys: unknown[];
  mode: Mode;
  hits: number;
  readonly requests: IncomingHttpHeaders[];
  stop(): Promise<void>;
  start(): Promise<void>;
}

const PAD = 'x'.repeat(4096);

async function startIdp(keys: unknown[] = [RSA_JWK, EC_JWK, ED_JWK]): Promise<Idp> {
  let server: Server | undefined;
  let port = 0;
  const idp: Idp = {
    url: '',
    keys,
    mode: 'ok',
    hits: 0,
    requests: [],
    async stop() {
      const s = server;
      server = undefined;
      if (s === undefined) return;
      s.closeAllConnections();
      await new Promise((resolve) => s.close(resolve));
    },
    async start() {
      const s = createServer((req, res) => {
        idp.hits++;
        idp.requests.push(req.headers);
        const body = JSON.stringify({ keys: idp.keys });
        if (idp.mode === 'hang') return;
        if (idp.mode === 'error') res.writeHead(500).end('{"error":"down"}');
        else if (idp.mode === 'invalid') res.end(body.slice(0, 40));
        else if (idp.mode === 'oversized') res.end(JSON.stringify({ keys: idp.keys, pad: PAD }));
        else if (idp.mode === 'chunked') {
          res.write(body.slice(0, -1));
          res.write(PAD);
          res.end('}');
        } else if (idp.mode === 'useless')
          res.end(JSON.stringify({ keys: [{ kty: 'oct', kid: 'k', k: 'AAAA' }] }));
        else if (idp.mode === 'redirect') res.writeHead(302, { location: '/elsewhere' }).end();
        else res.setHeader('content-type', 'application/jwk-set+json').end(body);
      });
      await new Promise<void>((resolve) => s.listen(port, '127.0.0.1', resolve));
      port = (s.address() as AddressInfo).port;
      (idp as { url: string }).url = `http://127.0.0.1:${port}/.well-known/jwks.json`;
      server = s;
    },
  };
  await idp.start();
  return idp;
}

let idp: Idp;
const open: RemoteJwks[] = [];
const logs = () => captureLogger('jwks');
function jwks(options: Partial<RemoteJwksOptions> = {}, log = logs()): RemoteJwks {
  const j = new RemoteJwks({ url: idp.url, maxBytes: 4000, logger: log.logger, ...options });
  open.push(j);
  return j;
}

beforeEach(async () => {
  idp = await startIdp();
});
afterEach(async () => {
  for (const j of open.splice(0)) j.close();
  await idp.stop();
});

describe('jwk helpers', () => {
  test('jwkThumbprint gives the RFC 7638 §3.1 value, ignores optional members, takes a KeyObject', () => {
    expect(jwkThumbprint(RFC_7638_JWK)).toBe('NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs');
    const key = createPublicKey({ key: RFC_7638_JWK, format: 'jwk' });
    expect(jwkThumbprint(key)).toBe('NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs');
    expect(jwkThumbprint(ec.privateKey)).toBe(jwkThumbprint(EC_JWK));
    expect(jwkThumbprint(ed.publicKey)).toMatch(/^[\w-]{43}$/);
    expect(() => jwkThumbprint({ kty: 'oct', k: 'c2VjcmV0' })).toThrow(TypeError);
    expect(() => jwkThumbprint(createSecretKey(randomBytes(32)))).toThrow(TypeError);
  });

  test.each([
    ['RSA', rsa, RSA_JWK, 'RS256', 'sha256'],
    ['EC', ec, EC_JWK, 'ES256', 'sha256'],
    ['Ed25519', ed, ED_JWK, 'EdDSA', null],
  ] as const)('a %s JWK becomes a PEM that verifies the pair’s signatures', (_n, pair, jwk, alg, hash) => {
    const key = jwkToVerificationKey(jwk);
    expect(key).toEqual({
      kid: jwk.kid,
      alg,
      material: expect.stringMatching(/^-----BEGIN PUBLIC KEY-----/),
    });
    const data = Buffer.from('payload');
    expect(verify(hash, data, key!.material as string, sign(hash, data, pair.privateKey))).toBe(true);
  });

  test('alg defaults and curve mapping', () => {
    const { alg: _a, ...bare } = RSA_JWK;
    expect(jwkToVerificationKey(bare)?.alg).toBe('RS256');
    expect(jwkToVerificationKey({ ...RSA_JWK, alg: 'PS384' })?.alg).toBe('PS384');
    expect(jwkToVerificationKey(RFC_7638_JWK)?.kid).toBe('2011-04-29');
    for (const [crv, alg] of [
      ['P-384', 'ES384'],
      ['P-521', 'ES512'],
    ] as const) {
      const { publicKey } = generateKeyPairSync('ec', { namedCurve: crv });
      const { alg: _x, ...noAlg } = jwkOf(publicKey, crv, alg);
      expect(jwkToVerificationKey(noAlg)?.alg).toBe(alg);
    }
  });

  test.each<[string, unknown]>([
    ['oct', { kty: 'oct', kid: 'h', k: 'c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0', alg: 'HS256' }],
    ['private EC JWK', { ...ec.privateKey.export({ format: 'jwk' }), kid: 'p' }],
    ['private RSA JWK', { ...rsa.privateKey.export({ format: 'jwk' }), kid: 'p' }],
    ['RSA 1024', publicJwkUnchecked(generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey, 'small')],
    ['EC alg for another curve', { ...EC_JWK, alg: 'ES384' }],
    ['EC with an RSA alg', { ...EC_JWK, alg: 'RS256' }],
    ['RSA with an HMAC alg', { ...RSA_JWK, alg: 'HS256' }],
    ['RSA with alg none', { ...RSA_JWK, alg: 'none' }],
    ['use enc', { ...RSA_JWK, use: 'enc' }],
    ['key_ops without verify', { ...RSA_JWK, key_ops: ['encrypt'] }],
    ['key_ops not an array', { ...RSA_JWK, key_ops: 'verify' }],
    ['no kid', { ...RSA_JWK, kid: undefined }],
    ['numeric kid', { ...RSA_JWK, kid: 7 }],
    ['empty kid', { ...RSA_JWK, kid: '' }],
    ['kid of 257 characters', { ...RSA_JWK, kid: 'k'.repeat(257) }],
    ['X25519', { kty: 'OKP', crv: 'X25519', x: ED_JWK.x, kid: 'x' }],
    ['point off the curve', { ...EC_JWK, y: EC_JWK.x }],
    ['modulus not base64url', { ...RSA_JWK, n: `${String(RSA_JWK.n)}!` }],
    ['not an object', 'rsa-1'],
    ['an array', [RSA_JWK]],
  ])('refuses %s', (_name, jwk) => {
    expect(jwkToVerificationKey(jwk)).toBeUndefined();
  });

  test('accepts key_ops including verify and use sig', () => {
    expect(jwkToVerificationKey({ ...RSA_JWK, key_ops: ['verify'], use: 'sig' })).toBeDefined();
    expect(jwkToVerificationKey({ ...RSA_JWK, kid: 'k'.repeat(256) })).toBeDefined();
  });

  test('publicJwk exports public members only, from a public or a private key', () => {
    for (const [pair, alg] of [
      [rsa, 'PS256'],
      [ec, 'ES256'],
      [ed, 'EdDSA'],
    ] as const) {
      const fromPrivate = publicJwk(pair.privateKey, 'k1', alg);
      expect(fromPrivate).toEqual(publicJwk(pair.publicKey, 'k1', alg));
      expect(fromPrivate).toMatchObject({ kid: 'k1', alg, use: 'sig' });
      for (const member of ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k'])
        expect(fromPrivate).not.toHaveProperty(member);
      expect(jwkToVerificationKey(fromPrivate)?.alg).toBe(alg);
    }
  });

  test('publicJwk refuses secret keys, algorithms that do not fit, small RSA keys and bad kids', () => {
    expect(() => publicJwk(createSecretKey(randomBytes(32)), 'h', 'HS256')).toThrow(ConfigError);
    expect(() => publicJwk(ec.publicKey, 'e', 'ES384')).toThrow(/does not fit/);
    expect(() => publicJwk(rsa.publicKey, 'r', 'HS256')).toThrow(/does not fit/);
    expect(() => publicJwk(ed.publicKey, 'e', 'ES256')).toThrow(/does not fit/);
    const small = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey;
    expect(() => publicJwk(small, 's', 'RS256')).toThrow(ConfigError);
    expect(() => publicJwk(rsa.publicKey, '', 'RS256')).toThrow(ConfigError);
    expect(() => publicJwk(rsa.publicKey, 'k'.repeat(257), 'RS256')).toThrow(ConfigError);
  });
});

function publicJwkUnchecked(key: KeyObject, kid: string): Record<string, unknown> {
  return { ...key.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' };
}

describe('RemoteJwks configuration', () => {
  test.each([
    ['http to another host', { url: 'http://idp.example.org/jwks' }, /url must be an https URL/],
    ['a non-URL', { url: 'not a url' }, /url must be an https URL/],
    ['credentials in the URL', { url: 'https://u:p@idp.example.org/jwks' }, /credentials/],
    ['no url', {}, /url must be/],
    ['a negative cooldown', { url: 'https://idp.example.org/jwks', cooldownMs: -1 }, /cooldownMs must be/],
    ['a fractional timeout', { url: 'https://idp.example.org/jwks', timeoutMs: 1.5 }, /timeoutMs must be/],
    [
      'a misspelt option',
      { url: 'https://idp.example.org/jwks', cacheMaxAge: 1 },
      /Did you mean "cacheMaxAgeMs"/,
    ],
  ])('refuses %s with ConfigError', (_name, options, message) => {
    const create = () => new RemoteJwks(options as RemoteJwksOptions);
    expect(create).toThrow(ConfigError);
    expect(create).toThrow(message);
  });

  test('https anywhere, http only on loopback', () => {
    const logger = logs().logger;
    for (const url of [
      'https://idp.example.org/.well-known/jwks.json',
      'http://localhost:8080/jwks',
      'http://127.0.0.1/jwks',
      'http://[::1]:9000/jwks',
    ]) {
      expect(() => {
        new RemoteJwks({ url, logger }).close();
      }).not.toThrow();
    }
  });
});

describe('RemoteJwks', () => {
  test('the first resolve fetches at once; keys are found by kid, synchronously afterwards', async () => {
    const j = jwks();
    expect(j.get('rsa-1')).toBeUndefined();
    expect(await j.resolve('rsa-1')).toEqual(jwkToVerificationKey(RSA_JWK));
    expect(j.size).toBe(3);
    expect(j.get('ec-1')?.alg).toBe('ES256');
    expect(j.get('ed-1')?.alg).toBe('EdDSA');
    expect(idp.hits).toBe(1);
    expect(idp.requests[0]?.accept).toMatch(/application\/jwk-set\+json.*application\/json/);
  });

  test('concurrent resolves share a single fetch', async () => {
    const j = jwks();
    const keys = await Promise.all(['rsa-1', 'ec-1', 'ed-1', 'nope', 'rsa-1'].map((k) => j.resolve(k)));
    expect(keys.map((k) => k?.alg)).toEqual(['RS256', 'ES256', 'EdDSA', undefined, 'RS256']);
    expect(idp.hits).toBe(1);
  });

  test('an unknown kid refreshes once per cooldown; a key added at the IdP arrives after it', async () => {
    const j = jwks({ cooldownMs: 200 });
    await j.resolve('rsa-1');
    await sleep(250);
    const added = jwkOf(generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey, 'ec-2', 'ES256');
    expect(await j.resolve('garbage-1')).toBeUndefined();
    expect(idp.hits).toBe(2);
    idp.keys = [...idp.keys, added];
    expect(await j.resolve('garbage-2')).toBeUndefined();
    expect(await j.resolve('ec-2')).toBeUndefined(); // still in the cooldown
    expect(idp.hits).toBe(2);
    await sleep(250);
    expect((await j.resolve('ec-2'))?.alg).toBe('ES256');
    expect(idp.hits).toBe(3);
  });

  test('a key removed at the IdP stops resolving after a successful refresh', async () => {
    const j = jwks({ cooldownMs: 0 });
    expect(await j.resolve('ec-1')).toBeDefined();
    idp.keys = [RSA_JWK, ED_JWK];
    await j.refresh();
    expect(j.get('ec-1')).toBeUndefined();
    expect(await j.resolve('ec-1')).toBeUndefined();
    expect(j.size).toBe(2);
  });

  test('get() on a cache older than cacheMaxAgeMs refreshes in the background and answers at once', async () => {
    const j = jwks({ cacheMaxAgeMs: 100, cooldownMs: 0 });
    await j.resolve('rsa-1');
    idp.keys = [RSA_JWK, jwkOf(ed.publicKey, 'ed-2', 'EdDSA')];
    expect(j.get('ec-1')).toBeDefined(); // fresh: no fetch
    expect(idp.hits).toBe(1);
    await sleep(150);
    expect(j.get('ec-1')).toBeDefined(); // stale: served while the refresh runs
    expect(j.get('rsa-1')).toBeDefined();
    await sleep(50);
    expect(idp.hits).toBe(2); // one background refresh, not one per lookup
    expect(j.get('ec-1')).toBeUndefined();
    expect(j.get('ed-2')).toBeDefined();
  });

  const outages: [string, Mode | 'down'][] = [
    ['returns 500', 'error'],
    ['is closed', 'down'],
    ['hangs past timeoutMs', 'hang'],
    ['returns invalid JSON', 'invalid'],
    ['returns a body over maxBytes (Content-Length)', 'oversized'],
    ['streams a body over maxBytes (chunked)', 'chunked'],
    ['has no usable key', 'useless'],
    ['redirects', 'redirect'],
  ];
  test.each(outages)(
    'stale keys serve while the endpoint %s; one warning per outage',
    async (_name, mode) => {
      const log = logs();
      const j = jwks({ cooldownMs: 0, cacheMaxAgeMs: 50, timeoutMs: 150 }, log);
      await j.resolve('rsa-1');
      const fail = async (): Promise<void> => (mode === 'down' ? idp.stop() : void (idp.mode = mode));
      const recover = async (): Promise<void> => (mode === 'down' ? idp.start() : void (idp.mode = 'ok'));
      await fail();
      await sleep(60);
      expect(j.get('rsa-1')).toBeDefined(); // starts a background refresh that fails
      for (let i = 0; i < 3; i++) {
        expect(await j.resolve('unknown')).toBeUndefined(); // each one fetches (cooldown 0) and fails
        expect((await j.resolve('ec-1'))?.alg).toBe('ES256');
      }
      await expect(j.refresh()).rejects.toThrow();
      expect(j.size).toBe(3);
      const warnings = () => log.lines().filter((l) => l.level === 'warn');
      expect(warnings()).toHaveLength(1);
      expect(warnings()[0]).toMatchObject({ stale_keys: 3, jwks_url: idp.url });
      await recover();
      await j.refresh();
      expect(log.lines().filter((l) => l.level === 'info')).toEqual([
        expect.objectContaining({ message: 'JWKS endpoint recovered', keys: 3 }),
      ]);
      await fail();
      await expect(j.refresh()).rejects.toThrow();
      await expect(j.refresh()).rejects.toThrow();
      expect(warnings()).toHaveLength(2); // a second outage, a second warning
      expect(log.raw()).not.toContain(String(RSA_JWK.n).slice(0, 32));
    },
  );

  test('the warning says why, without key material; skipped entries are counted at debug', async () => {
    idp.keys = [
      RSA_JWK,
      { kty: 'oct', kid: 'h', k: 'c2VjcmV0' },
      { ...EC_JWK, d: 'AAAA' },
      { ...ED_JWK, kid: 'rsa-1' },
    ];
    const log = logs();
    const j = jwks({}, log);
    await j.refresh();
    expect(j.size).toBe(1);
    expect(log.lines()).toContainEqual(expect.objectContaining({ level: 'debug', keys: 1, skipped: 3 }));
    idp.mode = 'error';
    await expect(j.refresh()).rejects.toThrow('HTTP 500');
    expect(log.lines().find((l) => l.level === 'warn')?.reason).toBe('HTTP 500');
    expect(log.raw()).not.toContain('c2VjcmV0');
  });

  test('before the first success failures are retried at most once a second; afterwards once per cooldown', async () => {
    idp.mode = 'error';
    const j = jwks({ cooldownMs: 10_000 });
    expect(await j.resolve('rsa-1')).toBeUndefined();
    expect(await j.resolve('garbage')).toBeUndefined(); // within the second: no fetch
    expect(idp.hits).toBe(1);
    idp.mode = 'ok';
    await new Promise((resolve) => setTimeout(resolve, 1_050));
    expect(await j.resolve('rsa-1')).toBeDefined(); // a second later: fetched again
    expect(idp.hits).toBe(2);
    idp.mode = 'error';
    expect(await j.resolve('unknown')).toBeUndefined(); // in the cooldown: no fetch
    expect(idp.hits).toBe(2);
  });

  test('a failing fetch function: resolve never rejects, get never throws', async () => {
    const failing = (() => Promise.reject(new TypeError('boom'))) as typeof fetch;
    const j = jwks({ fetch: failing });
    expect(j.get('rsa-1')).toBeUndefined();
    await expect(j.resolve('rsa-1')).resolves.toBeUndefined();
    await expect(j.refresh()).rejects.toThrow('boom');
  });

  test('kids that cannot exist are answered without fetching', async () => {
    const j = jwks();
    expect(await j.resolve('')).toBeUndefined();
    expect(await j.resolve('k'.repeat(257))).toBeUndefined();
    expect(await j.resolve(42 as unknown as string)).toBeUndefined();
    expect(idp.hits).toBe(0);
  });

  test('close() aborts a fetch in flight; later lookups answer undefined without fetching', async () => {
    const log = logs();
    const j = jwks({ timeoutMs: 5_000 }, log);
    await j.resolve('rsa-1');
    idp.mode = 'hang';
    const pending = j.refresh();
    await sleep(20);
    const started = Date.now();
    j.close();
    await expect(pending).rejects.toThrow('closed');
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(j.size).toBe(0);
    expect(j.get('rsa-1')).toBeUndefined();
    expect(await j.resolve('rsa-1')).toBeUndefined();
    await j.refresh();
    expect(idp.hits).toBe(2);
    expect(log.lines().filter((l) => l.level === 'warn')).toEqual([]);
  });

  test('defaults: a 30 s cooldown and a 10 min cache age', async () => {
    jest.useFakeTimers({ now: Date.now(), doNotFake: FAKEABLE.filter((api) => api !== 'performance') });
    try {
      const j = jwks();
      await j.resolve('rsa-1');
      jest.advanceTimersByTime(29_000);
      await j.resolve('unknown');
      expect(idp.hits).toBe(1);
      jest.advanceTimersByTime(1_000);
      await j.resolve('unknown');
      expect(idp.hits).toBe(2);
      jest.advanceTimersByTime(599_000);
      j.get('rsa-1');
      expect(idp.hits).toBe(2);
      jest.advanceTimersByTime(1_000);
      j.get('rsa-1');
      await j.refresh(); // joins the background refresh get() started
      expect(idp.hits).toBe(3);
    } finally {
      jest.useRealTimers();
    }
  });
});

const FAKEABLE = [
  'Date',
  'hrtime',
  'nextTick',
  'performance',
  'queueMicrotask',
  'requestAnimationFrame',
  'cancelAnimationFrame',
  'requestIdleCallback',
  'cancelIdleCallback',
  'setImmediate',
  'clearImmediate',
  'setInterval',
  'clearInterval',
  'setTimeout',
  'clearTimeout',
] as const;
