/**
 * Issue 9's fuzz proof: fast-check over headers, query strings, JSON bodies and tokens against the
 * example service's full stack (test/faults/stack.ts: PostgreSQL and Redis, NODE_ENV=production),
 * in-process with supertest, on Express 4 and 5. The only outcomes are 2xx, or 4xx in the error
 * envelope (problem details or a FHIR OperationOutcome when the client asks for them); never a 5xx,
 * never a stack trace or a file path in a body, and Object.prototype stays clean.
 *
 * Header values a client library refuses to send (CR, LF, NUL) are sent on a raw socket instead:
 * there Node's HTTP parser answers 400 before the app runs, and no injected header ever comes back.
 */
import type { Express } from 'express';
import fc from 'fast-check';
import { connect } from 'node:net';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { validateHeaderName, validateHeaderValue } from 'node:http';
import { createHmac } from 'node:crypto';
import { Redis } from 'ioredis';
import request from 'supertest';
import * as core from '../../lib/index';
import { deleteKeys, redisPrefix, REDIS_URL } from '../auth/redis-support';
import { EXPRESS } from '../support/express';
import { pgSchema } from '../support/isolated';
import { buildStack, type Stack, STACK_SECRET } from '../faults/stack';

/** Runs per property and Express version: the file stays well under 30 s. */
const RUNS = Number(process.env.FUZZ_RUNS ?? 60);
const API = '/api/v1';
/** What a body must never hold: a stack frame, a source or installed file path. */
const LEAK = /\bat [\w.<>]+ \(|\bat \/|\.[cm]?[jt]s:\d+|node_modules|\/work\/|\/home\/|\/usr\/|[A-Z]:\\\\/;

let target: Awaited<ReturnType<typeof pgSchema>>;
const prefixes: string[] = [];

beforeAll(async () => {
  target = await pgSchema('fuzz');
}, 30_000);

afterAll(async () => {
  await target.drop();
  const admin = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  for (const p of prefixes) await deleteKeys(admin, p);
  await admin.quit();
});

/** The body of any answer the suite accepts; throws (fast-check shrinks) on anything else. */
function checkAnswer(res: request.Response, what: string): void {
  const text = res.text;
  const where = `${what} → ${res.status} ${text.slice(0, 300)}`;
  // Node's HTTP parser answers a request line or headers over its 16 kB limit (431) or malformed
  // (400) itself, with no body, before the app runs: no request id proves the app never saw it.
  if ((res.status === 431 || res.status === 400) && res.headers['x-request-id'] === undefined && text === '')
    return;
  if (res.status >= 500 || res.status < 200 || (res.status >= 300 && res.status < 400))
    throw new Error(`unexpected status: ${where}`);
  if (LEAK.test(text)) throw new Error(`leak in body: ${where}`);
  if (res.status === 204 || res.status === 304 || text === '') {
    if (res.status >= 400) throw new Error(`an error without a body: ${where}`);
    return;
  }
  const type = res.headers['content-type'] ?? '';
  const body = res.body as Record<string, unknown>;
  if (res.status < 300) {
    if (type.startsWith('application/json') && body.success !== true)
      throw new Error(`a success outside the envelope: ${where}`);
    return;
  }
  if (type.startsWith('application/problem+json')) {
    if (body.status !== res.status || typeof body.code !== 'string') throw new Error(`bad problem: ${where}`);
  } else if (type.startsWith('application/fhir+json')) {
    if (body.resourceType !== 'OperationOutcome') throw new Error(`bad OperationOutcome: ${where}`);
  } else if (
    !type.startsWith('application/json') ||
    body.success !== false ||
    typeof body.error_code !== 'string' ||
    typeof body.error !== 'string'
  ) {
    throw new Error(`an error outside the envelope: ${where}`);
  }
}

function unpolluted(): void {
  for (const key of ['polluted', 'isAdmin', 'roles', 'x'])
    if ((Object.prototype as Record<string, unknown>)[key] !== undefined)
      throw new Error(`Object.prototype.${key} was set`);
}

// ----- arbitraries ---------------------------------------------------------------------------------

const nasty = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 20 }),
  fc.string({ unit: 'binary', maxLength: 20 }),
  fc.constantFrom(
    "' OR 1=1 --",
    '<script>alert(1)</script>',
    '../../etc/passwd',
    '%00',
    '%',
    '%zz',
    '__proto__',
    'constructor',
    '\u202e',
    '🩺',
    'null',
    '[]',
    '{}',
    '-1',
    '1e309',
    '99999999999999999999',
    '1980-02-30',
    '0000-00-00',
  ),
  fc.integer().map(String),
  fc.nat({ max: 20_000 }).map((n) => 'a'.repeat(n)),
);

const FIELDS = [
  'status',
  'family_name',
  'given_name',
  'birth_date',
  'mrn',
  'sex',
  'provider_id',
  'ssn',
  'created_at',
];
/** Every operator the list query knows, and two it does not. */
const OPS = [...core.FILTER_OPS, 'regex', ''];

/** One `key=value` pair of a patient-list query, encoded or raw (raw may hold a bad % escape). */
const queryPair = fc
  .tuple(
    fc.oneof(
      fc.constantFrom(
        'sort',
        'page',
        'size',
        'limit',
        'cursor',
        'fields',
        'q',
        '__proto__[x]',
        'constructor[prototype][x]',
      ),
      fc.constantFrom(...FIELDS),
      fc.tuple(fc.constantFrom(...FIELDS), fc.constantFrom(...OPS)).map(([f, op]) => `${f}[${op}]`),
      fc.string({ maxLength: 12 }),
    ),
    fc.oneof(
      nasty,
      fc.constantFrom(
        '-birth_date,family_name',
        'mrn',
        '-',
        ',,',
        'ssn',
        '2',
        '0',
        '-5',
        '1.5',
        '1970-01-01,1990-12-31',
        'true',
      ),
    ),
    fc.boolean(),
  )
  .map(([k, v, encode]) => (encode ? `${encodeURIComponent(k)}=${encodeURIComponent(v)}` : `${k}=${v}`));

const queryString = fc.array(queryPair, { minLength: 1, maxLength: 6 }).map((pairs) => pairs.join('&'));

/** A JSON value nested `depth` levels deep, as text (JSON.stringify would recurse as deep). */
const deepJson = fc
  .tuple(fc.nat({ max: 5000 }), fc.boolean())
  .map(([depth, arrays]) =>
    arrays ? '['.repeat(depth) + ']'.repeat(depth) : '{"a":'.repeat(depth) + '1' + '}'.repeat(depth),
  );

const patientLike = fc.record(
  {
    mrn: fc.oneof(nasty, fc.stringMatching(/^[A-Z0-9-]{4,20}$/)),
    given_name: fc.oneof(nasty, fc.anything()),
    family_name: fc.oneof(nasty, fc.integer(), fc.constant(null)),
    birth_date: fc.oneof(
      nasty,
      fc.date({ noInvalidDate: true }).map((d) => d.toISOString().slice(0, 10)),
    ),
    sex: fc.oneof(fc.constantFrom('female', 'male', 'other', 'unknown'), nasty),
    status: fc.oneof(fc.constantFrom('active', 'inactive'), nasty, fc.array(nasty)),
    ssn: fc.oneof(nasty, fc.constant(null), fc.constant('900-70-0001')),
    provider_id: fc.oneof(nasty, fc.constant(null), fc.uuid()),
    version: fc.oneof(fc.integer(), nasty),
  },
  { requiredKeys: [] },
);

/** Body text: a patient-ish object (with prototype-pollution keys spliced in), any JSON, deep nesting, or broken JSON. */
const bodyText = fc.oneof(
  fc
    .tuple(patientLike, fc.subarray(['__proto__', 'constructor', 'prototype']), fc.jsonValue())
    .map(([fields, keys, v]) => {
      let text = JSON.stringify(fields);
      for (const k of keys) {
        const inner =
          k === 'constructor'
            ? `{"prototype":{"polluted":true,"isAdmin":true}}`
            : `{"polluted":true,"roles":["admin"]}`;
        text = text === '{}' ? `{"${k}":${inner}}` : `{"${k}":${inner},${text.slice(1)}`;
      }
      return text.replace('}', `,"extra":${JSON.stringify(v)}}`).replace('{,', '{');
    }),
  fc.jsonValue().map((v) => JSON.stringify(v)),
  deepJson,
  fc.nat({ max: 200_000 }).map((n) => `{"given_name":"${'x'.repeat(n)}"}`),
  fc.string({ maxLength: 60 }),
  fc.constantFrom('{"mrn":', '{"a":1,}', "{'a':1}", 'NaN', '\u0000', '{"a":1}{"b":2}', '\ufeff{}'),
);

const b64url = (v: string | object) =>
  Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

/** Tokens that must all be refused: garbage, alg none, wrong key, wrong claims, expired, truncated. */
const badToken = fc.oneof(
  fc.string({ maxLength: 200 }),
  fc
    .array(fc.base64String({ maxLength: 60 }), { minLength: 1, maxLength: 5 })
    .map((parts) => parts.join('.')),
  fc
    .tuple(
      fc.constantFrom('none', 'None', 'NONE', 'HS256', 'RS256', 'ES256', 'HS512', ''),
      fc.record(
        {
          sub: fc.string(),
          userId: fc.string(),
          roles: fc.array(fc.constantFrom('admin', 'provider')),
          exp: fc.integer(),
        },
        { requiredKeys: [] },
      ),
      fc.constantFrom('', 'sig', 'wrong-secret', 'the-secret-on-other-claims'),
      fc.option(fc.constantFrom('../../etc/passwd', 'x', '', '\u0000'), { nil: undefined }),
    )
    .map(([alg, claims, sig, kid]) => {
      const header = b64url({ alg, typ: 'JWT', ...(kid === undefined ? {} : { kid }) });
      const payload = b64url({ iat: Math.floor(Date.now() / 1000), ...claims });
      if (sig === '') return `${header}.${payload}.`;
      if (sig === 'sig') return `${header}.${payload}.${b64url('signature')}`;
      // HMAC with a wrong secret, or with the right one over a header that names another alg.
      const secret = sig === 'wrong-secret' ? 'another-secret-that-is-long-enough-012345678' : STACK_SECRET;
      const mac = createHmac('sha256', secret).update(`${header}.${payload}`).digest('base64url');
      return `${header}.${payload}.${mac}`;
    }),
);

const scheme = fc.constantFrom('Bearer ', 'bearer ', 'Basic ', 'Bearer  ', '', 'Token ');

const ACCEPTS = [
  'application/json',
  'application/problem+json',
  'application/fhir+json',
  '*/*',
  'text/html',
  'application/xml;q=0.9, */*;q=0.1',
  '',
];
const HEADER_NAMES = [
  'authorization',
  'x-request-id',
  'accept',
  'content-type',
  'if-match',
  'x-forwarded-for',
  'traceparent',
  'tracestate',
  'origin',
  'cookie',
  'accept-encoding',
  'x-http-method-override',
  'range',
  'content-length',
];

// ----- the properties, on Express 4 and 5 ----------------------------------------------------------

describe.each(EXPRESS)('fuzzing the full stack on $name', (variant) => {
  let stack: Stack;
  let app: Express;
  let server: Server;
  const prefix = redisPrefix(`fuzz${variant.major}`);
  prefixes.push(prefix);

  beforeAll(async () => {
    stack = await buildStack({
      databaseUrl: target.url,
      redisUrl: REDIS_URL,
      redisPrefix: prefix,
      express: variant.express,
      nodeEnv: 'production',
    });
    app = stack.app;
    server = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
  }, 30_000);
  afterAll(async () => {
    await new Promise((resolve) => {
      server.close(resolve);
      server.closeAllConnections();
    });
    await stack.close();
  });
  // Threat detection bans an address after repeated probes: lift it so every run reaches the routes.
  afterEach(async () => {
    await stack.protection.security.unban('127.0.0.1');
    await stack.protection.security.unban('::ffff:127.0.0.1');
  });

  const run = <T>(property: fc.IAsyncProperty<T>) => fc.assert(property, { numRuns: RUNS });
  const unban = () =>
    stack.protection.security
      .unban('::ffff:127.0.0.1')
      .then(() => stack.protection.security.unban('127.0.0.1'));

  it('headers: any name and value a client can send, on reads, writes and the public routes', async () => {
    await run(
      fc.asyncProperty(
        fc.array(
          fc.tuple(
            fc.oneof(fc.constantFrom(...HEADER_NAMES), fc.stringMatching(/^[a-z0-9!#$%&'*+.^_`|~-]{1,30}$/)),
            fc.oneof(
              nasty,
              fc.constantFrom(...ACCEPTS),
              fc.nat({ max: 12_000 }).map((n) => 'h'.repeat(n)),
            ),
          ),
          { maxLength: 6 },
        ),
        fc.constantFrom('list', 'read', 'create', 'login', 'health', 'unknown'),
        async (headers, route) => {
          await unban();
          let req: request.Test;
          if (route === 'list') req = request(server).get(`${API}/patients`);
          else if (route === 'read') req = request(server).get(`${API}/patients/${stack.providerPatientId}`);
          else if (route === 'create') req = request(server).post(`${API}/patients`).type('json');
          else if (route === 'login') req = request(server).post(`${API}/auth/login`).type('json');
          else if (route === 'health') req = request(server).get('/health');
          else req = request(server).get(`${API}/nope`);
          req.set('authorization', stack.bearer.admin);
          for (const [name, value] of headers) {
            try {
              validateHeaderName(name);
              validateHeaderValue(name, value);
            } catch {
              continue; // sent on a raw socket by the next property
            }
            if (name === 'content-length') continue; // would desynchronise the client, not test the server
            req.set(name, value);
          }
          // The body as text, so a fuzzed content-type cannot make the client re-serialise it.
          if (route === 'create') req.send('{"mrn":"x"}');
          if (route === 'login') req.send('{"email":"a@b.c","password":"x"}');
          checkAnswer(await req, `${route} ${JSON.stringify(headers).slice(0, 300)}`);
          unpolluted();
        },
      ),
    );
  }, 60_000);

  it('raw header lines with CR, LF, NUL, obs-fold or huge values: a 4xx, and nothing injected comes back', async () => {
    const { port } = server.address() as AddressInfo;
    await run(
      fc.asyncProperty(
        fc.constantFrom('x-request-id', 'authorization', 'accept', 'x-custom', 'if-match'),
        fc.oneof(
          fc.constantFrom(
            'a\r\nSet-Cookie: injected=1',
            'a\nX-Injected: 1',
            'a\rX-Injected: 1',
            'a\u0000b',
            '\r\n\r\nGET / HTTP/1.1',
            'Bearer x\r\n x-folded: 1',
          ),
          fc.string({ maxLength: 30 }).map((s) => `${s}\r\nX-Injected: ${s}`),
          fc.nat({ max: 40_000 }).map((n) => 'v'.repeat(n)),
        ),
        async (name, value) => {
          await unban();
          const raw = await new Promise<string>((resolve, reject) => {
            const socket = connect(port, '127.0.0.1');
            let data = '';
            socket.setEncoding('latin1');
            socket.on('data', (c: string) => (data += c));
            socket.on('error', () => {
              resolve(data); // a reset after the server's 400 is fine
            });
            socket.on('close', () => {
              resolve(data);
            });
            socket.setTimeout(5000, () => {
              socket.destroy();
              reject(new Error('no answer in 5 s'));
            });
            socket.write(
              `GET ${API}/patients HTTP/1.1\r\nHost: localhost\r\nAuthorization: ${stack.bearer.admin}\r\n` +
                `${name}: ${value}\r\nConnection: close\r\n\r\n`,
              'latin1',
            );
          });
          const [head = '', ...rest] = raw.split('\r\n\r\n');
          const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1]);
          if (!(status >= 200 && status < 500)) throw new Error(`status ${status}: ${raw.slice(0, 300)}`);
          if (/^(set-cookie: injected|x-injected|x-folded)/im.test(head))
            throw new Error(`injected header came back: ${head}`);
          if (LEAK.test(rest.join('\r\n\r\n'))) throw new Error(`leak: ${raw.slice(0, 500)}`);
        },
      ),
    );
  }, 60_000);

  it('query strings on the patient list: filters, operators, sort and pagination', async () => {
    await run(
      fc.asyncProperty(queryString, fc.constantFrom('admin', 'provider', 'patient'), async (qs, who) => {
        await unban();
        const res = await request(server)
          .get(`${API}/patients?${qs}`)
          .set('authorization', stack.bearer[who]);
        checkAnswer(res, `GET ?${qs.slice(0, 300)}`);
        unpolluted();
      }),
    );
  }, 60_000);

  it('JSON bodies on create and update: wrong types, deep nesting, huge strings, prototype-pollution keys', async () => {
    await run(
      fc.asyncProperty(
        bodyText,
        fc.constantFrom('create', 'update', 'login', 'refresh'),
        fc.constantFrom(
          'application/json',
          'application/fhir+json',
          'application/json; charset=latin1',
          'text/plain',
        ),
        async (text, route, type) => {
          await unban();
          let req: request.Test;
          if (route === 'create')
            req = request(server).post(`${API}/patients`).set('authorization', stack.bearer.provider);
          else if (route === 'update')
            req = request(server)
              .patch(`${API}/patients/${stack.providerPatientId}`)
              .set('authorization', stack.bearer.admin)
              .set('if-match', '1');
          else req = request(server).post(`${API}/auth/${route}`);
          const res = await req.set('content-type', type).send(text);
          checkAnswer(res, `${route} ${type} ${text.slice(0, 300)}`);
          unpolluted();
        },
      ),
    );
  }, 60_000);

  it('tokens: malformed, alg none, wrong signature, forged claims — always a 401 in the envelope', async () => {
    await run(
      fc.asyncProperty(scheme, badToken, fc.constantFrom(...ACCEPTS), async (prefixWord, token, accept) => {
        await unban();
        const req = request(server).get(`${API}/patients`).set('authorization', `${prefixWord}${token}`);
        if (accept !== '') req.set('accept', accept);
        let res: request.Response;
        try {
          res = await req;
        } catch (err) {
          // Only a header the client itself refuses to send (a control character in the token).
          if (/Invalid character in header/.test((err as Error).message)) return;
          throw err;
        }
        checkAnswer(res, `${prefixWord}${token.slice(0, 200)}`);
        if (res.status !== 401 && res.status !== 403 && res.status !== 400)
          throw new Error(`a bad token got ${res.status}: ${prefixWord}${token.slice(0, 200)}`);
      }),
    );
  }, 60_000);
});
