/**
 * Whatever a client sends, security() answers with a 4xx in the envelope or lets the request
 * through — never a 500, never a crash, never a stall: malformed percent-encoding, NUL bytes, a
 * 10 kB user agent, bodies that are not JSON objects, thousands of repeated parameters, random
 * paths and queries, and long strings built to make the signatures backtrack.
 */
import type { Server } from 'node:http';
import { request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import fc from 'fast-check';
import request from 'supertest';
import { EXPRESS, eachExpress, type ExpressVariant } from '../support/express';
import { close, expectRefusal, listen, secure, secureApp, type Echo } from './support';

const EXPRESS_5 = EXPRESS[1] as ExpressVariant;

describe.each(eachExpress)('%s: bad input', (_name, variant) => {
  const app = secureApp(variant, secure({ threats: { ban: false, redis: false } }));

  it.each([
    ['malformed percent-encoding in the path', '/%E0%A4%A', 400, 'BAD_REQUEST'],
    ['a lone % in the path', '/api/v1/patients/%', 400, 'BAD_REQUEST'],
    ['a truncated escape in the path', '/a%2', 400, 'BAD_REQUEST'],
    ['an invalid UTF-8 byte in the path', '/%FF', 400, 'BAD_REQUEST'],
    ['an overlong UTF-8 slash in the path', '/%C0%AF', 403, 'THREAT_DETECTED'],
    ['an encoded NUL in the path', '/files/report%00.pdf', 403, 'THREAT_DETECTED'],
    ['an encoded NUL in a query value', '/files?name=report%00.pdf', 403, 'THREAT_DETECTED'],
  ])('%s (%s) → %i %s', async (_what, path, status, code) => {
    expectRefusal(await request(app).get(path), status, code);
  });

  it.each([
    ['a lone % as a query value', '/api/v1/patients?a=%'],
    ['a lone % as a query name', '/api/v1/patients?%=1'],
    ['malformed percent-encoding in a query value', '/api/v1/patients?a=%E0%A4%A'],
    ['malformed percent-encoding in a query name', '/api/v1/patients?%E0%A4%A=1'],
    ['an invalid UTF-8 byte in a query value', '/api/v1/patients?x=%FF'],
    ['unbalanced brackets', '/api/v1/patients?a[=1&b]]]=2&[]=3'],
    ['deep brackets', '/api/v1/patients?a[b][c][d][e][f][g][h]=1'],
    ['empty names and values', '/api/v1/patients?&&&&=&='],
  ])('%s (%s) is served', async (_what, path) => {
    const res = await request(app).get(path);
    expect(res.status).toBe(200);
    expect((res.body as Echo).ok).toBe(true);
  });

  it('a 10 kB user agent is 431 HEADERS_TOO_LARGE (the default headerLength is 8192)', async () => {
    expectRefusal(
      await request(app)
        .get('/x')
        .set('User-Agent', `Mozilla/5.0 ${'x'.repeat(10_240)}`),
      431,
      'HEADERS_TOO_LARGE',
    );
    const roomy = secureApp(
      variant,
      secure({ threats: { ban: false, redis: false }, limits: { headerLength: 16_384 } }),
    );
    const res = await request(roomy)
      .get('/x')
      .set('User-Agent', `Mozilla/5.0 ${'x'.repeat(10_240)}`);
    expect(res.status).toBe(200);
  });

  it.each([
    ['invalid JSON', '{"a":', 400, 'INVALID_JSON'],
    ['a JSON string (strict parser)', '"just a string"', 400, 'INVALID_JSON'],
    ['a JSON number', '42', 400, 'INVALID_JSON'],
    ['JSON null', 'null', 400, 'INVALID_JSON'],
    ['JSON true', 'true', 400, 'INVALID_JSON'],
    ['trailing garbage', '{"a":1}x', 400, 'INVALID_JSON'],
  ])('%s (%j) → %i %s', async (_what, body, status, code) => {
    const res = await request(app).post('/x').set('Content-Type', 'application/json').send(body);
    expectRefusal(res, status, code);
  });

  it.each([
    ['an empty body', '', {}],
    ['a byte-order mark', '\uFEFF{"a":1}', { a: 1 }],
    ['a lone surrogate escape', '{"a":"\\ud800"}', { a: '\ud800' }],
    // A NUL truncates file names in URLs; in a JSON string it is a character (a password may hold one).
    ['a NUL inside a JSON string', '{"note":"a\\u0000b"}', { note: 'a\u0000b' }],
  ])('%s with a JSON content type is parsed', async (_what, body, parsed) => {
    const res = await request(app).post('/x').set('Content-Type', 'application/json').send(body);
    expect(res.status).toBe(200);
    expect((res.body as Echo).body).toEqual(parsed);
  });

  it.each([
    ['a body that is not gzip under Content-Encoding: gzip', 'gzip', 'application/json', 400, 'BAD_REQUEST'],
    ['an unknown Content-Encoding', 'xyz', 'application/json', 415, 'UNSUPPORTED_MEDIA_TYPE'],
    [
      'a charset body-parser does not decode',
      'identity',
      'application/json; charset=utf-16',
      400,
      'INVALID_JSON',
    ],
  ])('%s (%s, %s) → %i %s', async (_what, encoding, type, status, code) => {
    const res = await request(app)
      .post('/x')
      .set('Content-Type', type)
      .set('Content-Encoding', encoding)
      .send('{"a":1}');
    expectRefusal(res, status, code);
  });

  it('a wide array and a body of 20 000 keys are served', async () => {
    const wide = await request(app)
      .post('/x')
      .set('Content-Type', 'application/json')
      .send(`[${'1,'.repeat(200_000)}1]`);
    expect(wide.status).toBe(200);
    const keys = await request(app)
      .post('/x')
      .send(Object.fromEntries(Array.from({ length: 20_000 }, (_, i) => [`k${i}`, i])));
    expect(keys.status).toBe(200);
  });

  it('2 000 repeated parameters: 400 over queryParameters, one value under a raised limit', async () => {
    const query = Array.from({ length: 2_000 }, (_, i) => `a=${i}`).join('&');
    expect(query.length).toBe(12_889);
    expectRefusal(
      await request(app).get(`/x?${query.slice(0, 8_000).replace(/&[^&]*$/, '')}`),
      400,
      'INVALID_INPUT',
    );
    const raised = secureApp(
      variant,
      secure({
        threats: { ban: false, redis: false },
        limits: { queryParameters: 5_000, urlLength: 16_384 },
      }),
    );
    const res = await request(raised).get(`/x?${query}`);
    expect(res.status).toBe(200);
    expect(typeof (res.body as { query: { a: unknown } }).query.a).toBe('string');
  });
});

describe.each(eachExpress)('%s: random paths and queries', (_name, variant) => {
  let server: Server;
  beforeAll(async () => {
    server = await listen(secureApp(variant, secure({ threats: { ban: false, redis: false } })));
  });
  afterAll(async () => {
    await close(server);
  });

  /** GET exactly `path` (no client-side normalisation or encoding); resolves to the status. */
  const get = (path: string) =>
    new Promise<number>((resolve, reject) => {
      const { port } = server.address() as AddressInfo;
      const req = httpRequest({ host: '127.0.0.1', port, path, method: 'GET' }, (res) => {
        res.resume();
        res.on('end', () => {
          resolve(res.statusCode ?? 0);
        });
      });
      req.on('error', reject);
      req.end();
    });

  // Printable ASCII without space and '#': what an HTTP client may put in a request target.
  const unit = fc.constantFrom(
    ...Array.from(
      '%%%%25E0A4FFc0af2e2f5c00/..[]]__proto__constructor=&&?;\'"<>`{}|\\^~!$()*+,:@-_abcXYZ0189',
    ),
  );

  it('are answered with 200, 400, 403, 404 or 414 — never a 5xx', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.string({ unit, maxLength: 60 }),
        fc.string({ unit, maxLength: 60 }),
        async (path, query) => {
          const status = await get(`/${path}?${query}`);
          expect([200, 400, 403, 404, 414]).toContain(status);
        },
      ),
      { numRuns: 300 },
    );
    // And the server still answers.
    expect(await get('/api/v1/patients?family=Smith')).toBe(200);
  });
});

// The signatures do not depend on Express: once, on Express 5, to keep the file short.
describe(`${EXPRESS_5.name}: strings built to make the signatures backtrack`, () => {
  const app = secureApp(EXPRESS_5, secure({ threats: { ban: false, redis: false } }));

  // Each is 40 000 characters, well within the default 1 MB body: a linear scan takes a few
  // milliseconds. A pattern that backtracks quadratically takes seconds on such a string, and
  // blocks the event loop for every other request meanwhile; at 1 MB it is many minutes.
  it.each([
    ["'<' and spaces (xss-tag)", `<${' '.repeat(40_000)}`],
    ['a quote and spaces (sql-comment-after-quote)', `'${' '.repeat(40_000)}x`],
    ['a backtick and spaces (sql-comment-after-quote)', `\`${' '.repeat(40_000)}`],
    ["repeated '{{' (template-injection)", '{{'.repeat(20_000)],
    ["'/*!' and digits (the versioned-comment strip)", `/*!${'1'.repeat(40_000)}`],
  ])('a JSON string of %s is answered within 250 ms', async (_what, text) => {
    const started = performance.now();
    const res = await request(app).post('/api/v1/notes').send({ text });
    const ms = performance.now() - started;
    expect(res.status).toBe(200);
    expect(ms).toBeLessThan(250);
  });
});
