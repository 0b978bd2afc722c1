/**
 * security() input hardening on Express 4 (qs, `req.query` a plain property) and Express 5 (a
 * getter that parses again on every access, with the simple or the extended parser):
 * prototype-polluting names in the query and the JSON body, HTTP parameter pollution, the URL,
 * header, query and body limits, and the JSON parser it brings.
 */
import type { Express } from 'express';
import request from 'supertest';
import { EXPRESS, type ExpressVariant } from '../support/express';
import { expectRefusal, secure, secureApp, type AppSetup, type Echo } from './support';
import type * as core from '../../lib/index';

/** Each Express major with its default query parser, and Express 5 with qs as well. */
const PARSERS: [string, ExpressVariant, AppSetup['queryParser']][] = EXPRESS.flatMap((variant) =>
  variant.major === 4
    ? [[`${variant.name} (extended/qs)`, variant, undefined] as [string, ExpressVariant, undefined]]
    : [
        [`${variant.name} (simple)`, variant, undefined] as [string, ExpressVariant, undefined],
        [`${variant.name} (extended/qs)`, variant, 'extended'] as [string, ExpressVariant, 'extended'],
      ],
);

const PROTOTYPE_NAMES = Object.getOwnPropertyNames(Object.prototype).sort();

/** Object.prototype as it was: no new property, nothing inherited by a fresh object. */
function expectPrototypeClean(): void {
  expect(Object.getOwnPropertyNames(Object.prototype).sort()).toEqual(PROTOTYPE_NAMES);
  const fresh = {} as Record<string, unknown>;
  for (const name of ['admin', 'x', 'isAdmin', 'polluted']) expect(fresh[name]).toBeUndefined();
}

function app(
  variant: ExpressVariant,
  parser: AppSetup['queryParser'],
  options: core.SecurityOptions = {},
  setup: AppSetup = {},
): Express {
  return secureApp(variant, secure({ threats: { ban: false }, ...options }), {
    queryParser: parser,
    ...setup,
  });
}

describe.each(PARSERS)('%s: prototype-polluting names', (_label, variant, parser) => {
  const target = app(variant, parser);
  afterEach(expectPrototypeClean);

  it.each([
    '/api/v1/patients?__proto__[admin]=1',
    '/api/v1/patients?constructor[prototype][admin]=1',
    '/api/v1/patients?a[__proto__]=1',
    '/api/v1/patients?a[__proto__][admin]=1',
    '/api/v1/patients?a[constructor][prototype][admin]=1',
    '/api/v1/patients?%5F_proto__[admin]=1',
    '/api/v1/patients?%5F%5Fproto%5F%5F%5Badmin%5D=1',
    '/api/v1/patients?a%5B__proto__%5D=1',
    '/api/v1/patients?__proto__.admin=1',
    '/api/v1/patients?__proto__=1',
    '/api/v1/patients?family=Smith&prototype[admin]=1',
  ])('refuses %s with 400 INVALID_INPUT, before the route', async (path) => {
    const res = await request(target).get(path);
    expectRefusal(res, 400, 'INVALID_INPUT');
    expect(res.body.error).toBe('Query parameter name is not allowed');
  });

  it.each(['constructor_id=7', 'proto=1', 'prototype_version=2', 'a[constructors]=1', 'x=__proto__'])(
    'lets the look-alike %s through',
    async (query) => {
      const res = await request(target).get(`/api/v1/patients?${query}`);
      expect(res.status).toBe(200);
    },
  );

  it.each([
    ['at the top', '{"__proto__":{"admin":true}}'],
    ['nested', '{"a":{"constructor":{"prototype":{"admin":true}}}}'],
    ['in an array', '{"entries":[{"resource":{"__proto__":{"admin":true}}}]}'],
    ['as prototype', '{"prototype":{"admin":true}}'],
  ])('refuses a JSON body with a polluting key %s with 400 INVALID_INPUT', async (_where, json) => {
    const res = await request(target)
      .post('/api/v1/patients')
      .set('Content-Type', 'application/json')
      .send(json);
    expectRefusal(res, 400, 'INVALID_INPUT');
    expect(res.body.error).toBe('JSON body has a key that is not allowed');
  });

  it('lets a JSON body with look-alike keys through, parsed', async () => {
    const body = { constructor_name: 'x', proto: 1, meta: { prototype_id: 'p' } };
    const res = await request(target).post('/api/v1/patients').send(body);
    expect(res.status).toBe(200);
    expect((res.body as Echo).body).toEqual(body);
  });
});

describe.each(PARSERS)('%s: parameter pollution', (_label, variant, parser) => {
  const get = async (target: Express, query: string) => {
    const res = await request(target).get(`/api/v1/patients?${query}`);
    expect(res.status).toBe(200);
    return res.body as Echo;
  };

  it("'last' (default): the route sees the last value, on every read of req.query, and the list in req.queryPolluted", async () => {
    const echo = await get(app(variant, parser), 'role=user&role=admin');
    expect(echo.query).toEqual({ role: 'admin' });
    expect(echo.query_again).toEqual({ role: 'admin' });
    expect(echo.polluted).toEqual({ role: ['user', 'admin'] });
  });

  it("'last' keeps the other parameters as they are", async () => {
    const echo = await get(app(variant, parser), 'family=Smith&role=user&_count=10&role=admin&role=auditor');
    expect(echo.query).toEqual({ family: 'Smith', role: 'auditor', _count: '10' });
    expect(echo.query_again).toEqual(echo.query);
    expect(echo.polluted).toEqual({ role: ['user', 'admin', 'auditor'] });
  });

  it("'first': the first value", async () => {
    const echo = await get(app(variant, parser, { parameterPollution: 'first' }), 'role=user&role=admin');
    expect(echo.query).toEqual({ role: 'user' });
    expect(echo.query_again).toEqual({ role: 'user' });
    expect(echo.polluted).toEqual({ role: ['user', 'admin'] });
  });

  it("'reject': 400 INVALID_INPUT", async () => {
    const res = await request(app(variant, parser, { parameterPollution: 'reject' })).get(
      '/api/v1/patients?role=user&role=admin',
    );
    expectRefusal(res, 400, 'INVALID_INPUT');
    expect(res.body.error).toBe('A query parameter is repeated');
  });

  it("'reject' still lets allowArrays repeat", async () => {
    const echo = await get(
      app(variant, parser, { parameterPollution: 'reject', allowArrays: ['id'] }),
      'id=1&id=2&family=Smith',
    );
    expect(echo.query).toEqual({ id: ['1', '2'], family: 'Smith' });
    expect(echo.polluted).toBeNull();
  });

  it('false: arrays as the parser made them', async () => {
    const echo = await get(app(variant, parser, { parameterPollution: false }), 'role=user&role=admin');
    expect(echo.query).toEqual({ role: ['user', 'admin'] });
    expect(echo.polluted).toBeNull();
  });

  it('allowArrays keeps id an array while role is still reduced', async () => {
    const echo = await get(
      app(variant, parser, { allowArrays: ['id'] }),
      'id=1&id=2&id=3&role=user&role=admin',
    );
    expect(echo.query).toEqual({ id: ['1', '2', '3'], role: 'admin' });
    expect(echo.query_again).toEqual(echo.query);
    expect(echo.polluted).toEqual({ role: ['user', 'admin'] });
  });

  it('FHIR date ranges: birthdate=ge1990&birthdate=lt2000 stays a range with allowArrays', async () => {
    const echo = await get(
      app(variant, parser, { allowArrays: ['birthdate'] }),
      'birthdate=ge1990-01-01&birthdate=lt2000-01-01&_sort=-birthdate',
    );
    expect(echo.query).toEqual({ birthdate: ['ge1990-01-01', 'lt2000-01-01'], _sort: '-birthdate' });
    expect(echo.polluted).toBeNull();
  });

  it('FHIR date ranges without allowArrays: only the last bound', async () => {
    const echo = await get(app(variant, parser), 'birthdate=ge1990-01-01&birthdate=lt2000-01-01');
    expect(echo.query).toEqual({ birthdate: 'lt2000-01-01' });
  });

  // On Express 5's simple parser the value sits under the name as sent (`filter[status]`), not
  // under `filter`: the policy must reduce it there too, or the array reaches the route.
  it('a repeated bracketed name (filter[status]) reaches the route as one value, whatever the parser', async () => {
    const echo = await get(app(variant, parser), 'filter[status]=active&filter[status]=inactive');
    const query = echo.query as Record<string, unknown>;
    // qs nests it; the simple parser keeps the name as sent.
    const value =
      parser === 'extended' || variant.major === 4
        ? (query.filter as Record<string, unknown>).status
        : query['filter[status]'];
    expect(value).toBe('inactive');
  });
});

describe.each(PARSERS)('%s: limits', (_label, variant, parser) => {
  const limits = {
    urlLength: 100,
    headerCount: 10,
    headerLength: 100,
    queryParameters: 5,
    bodySize: '1kb',
    jsonDepth: 3,
  };
  const target = app(variant, parser, { limits });

  it('URL: limits.urlLength characters pass, one more is 414 URI_TOO_LONG', async () => {
    const base = '/api/v1/patients?family=';
    const fits = base + 'a'.repeat(100 - base.length);
    expect(fits).toHaveLength(100);
    expect((await request(target).get(fits)).status).toBe(200);
    expectRefusal(await request(target).get(`${fits}a`), 414, 'URI_TOO_LONG');
  });

  it('headers: limits.headerCount pass, one more is 431 HEADERS_TOO_LARGE', async () => {
    const baseline = ((await request(target).get('/x')).body as Echo).headers;
    const extra = (n: number) => {
      let req = request(target).get('/x');
      for (let i = 0; i < n; i++) req = req.set(`X-Extra-${i}`, String(i));
      return req;
    };
    const fits = await extra(10 - baseline);
    expect(fits.status).toBe(200);
    expect((fits.body as Echo).headers).toBe(10);
    expectRefusal(await extra(11 - baseline), 431, 'HEADERS_TOO_LARGE');
  });

  it('headers: a value of limits.headerLength passes, one longer is 431', async () => {
    expect((await request(target).get('/x').set('X-Note', 'n'.repeat(100))).status).toBe(200);
    const res = await request(target).get('/x').set('X-Note', 'n'.repeat(101));
    expectRefusal(res, 431, 'HEADERS_TOO_LARGE');
    expect(res.body.error).toBe('A request header is too large');
  });

  it('query: limits.queryParameters pass, one more is 400 INVALID_INPUT', async () => {
    expect((await request(target).get('/x?a=1&b=2&c=3&d=4&e=5')).status).toBe(200);
    const res = await request(target).get('/x?a=1&b=2&c=3&d=4&e=5&f=6');
    expectRefusal(res, 400, 'INVALID_INPUT');
    expect(res.body.error).toBe('Too many query parameters');
  });

  it('JSON body: limits.bodySize bytes pass, one more is 413 PAYLOAD_TOO_LARGE', async () => {
    const body = (size: number) => JSON.stringify({ note: 'x'.repeat(size - '{"note":""}'.length) });
    expect(Buffer.byteLength(body(1024))).toBe(1024);
    const fits = await request(target).post('/x').set('Content-Type', 'application/json').send(body(1024));
    expect(fits.status).toBe(200);
    const res = await request(target).post('/x').set('Content-Type', 'application/json').send(body(1025));
    expectRefusal(res, 413, 'PAYLOAD_TOO_LARGE');
  });

  it('JSON body: limits.jsonDepth levels pass, one more is 400 INVALID_INPUT', async () => {
    const fits = await request(target)
      .post('/x')
      .send({ a: { b: { c: 1 } } });
    expect(fits.status).toBe(200);
    const res = await request(target)
      .post('/x')
      .send({ a: { b: { c: {} } } });
    expectRefusal(res, 400, 'INVALID_INPUT');
    expect(res.body).toMatchObject({ error: 'JSON body is nested too deeply', details: { max_depth: 3 } });
    const arrays = await request(target)
      .post('/x')
      .send([[[[1]]]]);
    expectRefusal(arrays, 400, 'INVALID_INPUT');
  });

  it('a 100 000-deep array within a bigger bodySize is 400 INVALID_INPUT, never a crash', async () => {
    const deep = app(variant, parser, { limits: { bodySize: '1mb' } });
    const json = '['.repeat(100_000) + ']'.repeat(100_000);
    const res = await request(deep).post('/x').set('Content-Type', 'application/json').send(json);
    expectRefusal(res, 400, 'INVALID_INPUT');
    expect(res.body.details).toMatchObject({ max_depth: 32 });
    // And a 100 000-deep object.
    const objects = '{"a":'.repeat(100_000) + '1' + '}'.repeat(100_000);
    const res2 = await request(deep).post('/x').set('Content-Type', 'application/json').send(objects);
    expectRefusal(res2, 400, 'INVALID_INPUT');
    expect((await request(deep).get('/x')).status).toBe(200);
  });
});

describe.each(PARSERS)('%s: JSON parsing', (_label, variant, parser) => {
  it('parses application/fhir+json bodies and checks them', async () => {
    const target = app(variant, parser);
    const patient = { resourceType: 'Patient', name: [{ family: "O'Brien", given: ['Siobhán'] }] };
    const res = await request(target)
      .post('/fhir/Patient')
      .set('Content-Type', 'application/fhir+json')
      .send(JSON.stringify(patient));
    expect(res.status).toBe(200);
    expect((res.body as Echo).body).toEqual(patient);
    const polluted = await request(target)
      .post('/fhir/Patient')
      .set('Content-Type', 'application/fhir+json; charset=utf-8')
      .send('{"resourceType":"Patient","__proto__":{"admin":true}}');
    expectRefusal(polluted, 400, 'INVALID_INPUT');
  });

  it('leaves other content types unparsed', async () => {
    const res = await request(app(variant, parser))
      .post('/x')
      .set('Content-Type', 'text/plain')
      .send('{"a":1}');
    expect(res.status).toBe(200);
    expect((res.body as Echo).body).toBeNull();
  });

  it('json: false does not parse, and still checks a body the app parsed first', async () => {
    const unparsed = app(variant, parser, { json: false });
    const res = await request(unparsed).post('/x').send({ a: 1 });
    expect(res.status).toBe(200);
    expect((res.body as Echo).body).toBeNull();

    const parsedByApp = app(
      variant,
      parser,
      { json: false, limits: { jsonDepth: 3 } },
      { before: (a) => a.use(variant.express.json()) },
    );
    const ok = await request(parsedByApp)
      .post('/x')
      .send({ a: { b: 1 } });
    expect(ok.status).toBe(200);
    expect((ok.body as Echo).body).toEqual({ a: { b: 1 } });
    expectRefusal(
      await request(parsedByApp)
        .post('/x')
        .set('Content-Type', 'application/json')
        .send('{"__proto__":{"admin":true}}'),
      400,
      'INVALID_INPUT',
    );
    expectRefusal(
      await request(parsedByApp)
        .post('/x')
        .send({ a: { b: { c: {} } } }),
      400,
      'INVALID_INPUT',
    );
    expectRefusal(
      await request(parsedByApp).post('/x').send({ note: "x' OR '1'='1" }),
      403,
      'THREAT_DETECTED',
    );
    expectPrototypeClean();
  });
});
