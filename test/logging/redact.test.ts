import fc from 'fast-check';
import * as core from '../../lib/index';

// Property tests run the same cases on every run: a failure is reproducible, never flaky.
fc.configureGlobal({ seed: 2026 });

const R = '[REDACTED]';
const SSN = '078-05-1120';
const JWT =
  'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJjYW5hcnktcGF0aWVudCJ9.c2lnbmF0dXJlLWNhbmFyeS0wMQ';
const PASSWORD = 'Pa55w0rd-CANARY-81f3';
const TOKEN = 'tok_CANARY_d41d8cd98f00b204';

const redact = core.createRedactor();
const json = (value: unknown): string => JSON.stringify(redact(value));

describe('createRedactor: keys', () => {
  it.each([
    'authorization',
    'Authorization',
    'proxy-authorization',
    'cookie',
    'Set-Cookie',
    'password',
    'newPassword',
    'passwd',
    'token',
    'access_token',
    'refreshToken',
    'id_token',
    'client_secret',
    'secret',
    'ssn',
    'SSN',
    'apiKey',
    'api_key',
    'X-Api-Key',
    'private_key',
    'credentials',
    'session_id',
    'cvv',
    'pin',
  ])('redacts the key %s', (key) => {
    expect(redact({ [key]: 'value-CANARY', id: 7 })).toEqual({ [key]: R, id: 7 });
  });

  it('redacts whatever the value is, including objects and arrays', () => {
    expect(redact({ password: { hash: 'x' }, token: ['a', 'b'], cookie: 42, secret: null })).toEqual({
      password: R,
      token: R,
      cookie: R,
      secret: R,
    });
  });

  it('redacts at any depth, inside arrays too', () => {
    const input = {
      req: {
        headers: { authorization: `Bearer ${TOKEN}`, 'set-cookie': ['sid=1'], accept: 'application/json' },
      },
      users: [
        { id: 1, credentials: { password: PASSWORD } },
        { id: 2, ssn: SSN },
      ],
      a: { b: { c: { d: { e: { refresh_token: TOKEN } } } } },
    };
    expect(redact(input)).toEqual({
      req: { headers: { authorization: R, 'set-cookie': R, accept: 'application/json' } },
      users: [
        { id: 1, credentials: R },
        { id: 2, ssn: R },
      ],
      a: { b: { c: { d: { e: { refresh_token: R } } } } },
    });
  });

  it('leaves ordinary keys and values alone', () => {
    const input = { id: 42, status: 'active', tags: ['a', 'b'], ok: true, nothing: null, ratio: 0.5 };
    expect(redact(input)).toEqual(input);
  });

  it('adds configured keys, matched regardless of case and separators, and keeps the defaults', () => {
    const r = core.createRedactor({ keys: ['internal_note', 'MRN-Local'] });
    expect(r({ internalNote: 'x', 'INTERNAL-NOTE': 'y', mrnLocal: 'z', password: 'p', note: 'n' })).toEqual({
      internalNote: R,
      'INTERNAL-NOTE': R,
      mrnLocal: R,
      password: R,
      note: 'n',
    });
  });

  it('uses the configured censor', () => {
    const r = core.createRedactor({ censor: '***' });
    expect(r({ password: 'x', note: `ssn ${SSN}` })).toEqual({ password: '***', note: 'ssn ***' });
  });

  it('redacts identifying keys in PHI mode (the default) only', () => {
    const record = { name: 'Jane Doe', dob: '1980-01-01', mrn: 'MRN-1', diagnosis: 'J45', id: 9 };
    expect(redact(record)).toEqual({ name: R, dob: R, mrn: R, diagnosis: R, id: 9 });
    expect(core.createRedactor({ phi: false })(record)).toEqual(record);
    expect(core.createRedactor({ phi: false })({ password: 'x' })).toEqual({ password: R });
  });

  it('exposes the key test it uses', () => {
    expect(redact.isSensitiveKey('Authorization')).toBe(true);
    expect(redact.isSensitiveKey('patient_id')).toBe(false);
  });
});

describe('createRedactor: values', () => {
  it.each([
    ['an SSN with dashes', `patient ${SSN} admitted`, `patient ${R} admitted`],
    ['an SSN with spaces', 'ssn 078 05 1120.', `ssn ${R}.`],
    ['a Luhn-valid card with spaces', 'card 4111 1111 1111 1111 ok', `card ${R} ok`],
    ['a Luhn-valid card with dashes', 'card 4111-1111-1111-1111', `card ${R}`],
    ['a Luhn-valid card without separators', 'card 5500005555555559', `card ${R}`],
    ['a JWT', `token ${JWT} end`, `token ${R} end`],
    ['a Bearer token', `Authorization: Bearer ${TOKEN}`, `Authorization: Bearer ${R}`],
    ['a Basic credential', 'Authorization: Basic dXNlcjpwYXNz', `Authorization: Basic ${R}`],
    ['URL credentials', `postgres://app:${PASSWORD}@db:5432/health`, `postgres://app:${R}@db:5432/health`],
    [
      'query-string values',
      `GET /patients?ssn=123456789&q=${PASSWORD}#top`,
      `GET /patients?ssn=${R}&q=${R}#top`,
    ],
    ['an email (PHI mode)', 'sent to jane.doe+x@example.co.uk.', `sent to ${R}.`],
    ['a US phone (PHI mode)', 'call (555) 123-4567 now', `call ${R} now`],
    ['an E.164 phone (PHI mode)', 'sms +14155552671', `sms ${R}`],
  ])('redacts %s', (_label, input, expected) => {
    expect(redact(input)).toBe(expected);
  });

  it.each([
    ['a card number that fails the Luhn check', 'card 4111 1111 1111 1112'],
    ['a short number', 'order 12345'],
    ['a date', 'on 2024-01-31'],
    ['an ISO timestamp', '2024-01-31T10:20:30.000Z'],
    ['a UUID', 'id 3f2504e0-4f89-41d3-9a0c-0305e82c3301'],
    // 7197-5393-4882-8 is 13 Luhn-valid digits: a card pattern that ignored word edges took it.
    ['a UUID holding a Luhn-valid run of digits', 'id 586e7197-5393-4882-8cf6-c622c906f193'],
    ['a path without a query', '/patients/42/observations'],
    ['plain text', 'Patient record updated'],
  ])('keeps %s', (_label, input) => {
    expect(redact(input)).toBe(input);
  });

  it('a scheme word just before the credential does not shield it', () => {
    expect(redact(`token_type=bearer Bearer ${TOKEN}`)).not.toContain(TOKEN);
  });

  it('keeps emails and phone numbers when PHI mode is off, but still redacts secrets', () => {
    const r = core.createRedactor({ phi: false });
    expect(r('mail jane@example.com, call 555-123-4567')).toBe('mail jane@example.com, call 555-123-4567');
    expect(r(`ssn ${SSN}, ${JWT}`)).toBe(`ssn ${R}, ${R}`);
  });

  it('applies configured patterns', () => {
    const r = core.createRedactor({ patterns: [/CASE-\d+/g] });
    expect(r('patient CASE-00123 seen')).toBe(`patient ${R} seen`);
  });

  it('escapes newlines and control characters (log injection)', () => {
    expect(redact('a\nb\rc\td\u0000e\u001bf\u007fg\u2028h\u2029i')).toBe(
      'a\\nb\\rc\\td\\u0000e\\u001bf\\u007fg\\u2028h\\u2029i',
    );
    expect(redact({ msg: 'ok\nFAKE LINE' })).toEqual({ msg: 'ok\\nFAKE LINE' });
  });

  it('never leaves a raw control character in any string', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), (s) => {
        // eslint-disable-next-line no-control-regex -- looking for control characters is the point
        expect(redact(s)).not.toMatch(/[\u0000-\u001f\u007f\u2028\u2029]/);
      }),
      { numRuns: 300 },
    );
  });

  it('redacts values used as object or Map keys', () => {
    const out = json({ bySsn: { [SSN]: 1 }, byEmail: new Map([['jane.doe@example.com', 2]]) });
    expect(out).not.toContain(SSN);
    expect(out).not.toContain('jane.doe@example.com');
  });
});

describe('createRedactor: structures', () => {
  it('never mutates its input', () => {
    const input = {
      password: PASSWORD,
      note: `ssn ${SSN}\nnext`,
      nested: { headers: { authorization: `Bearer ${TOKEN}` }, list: [{ token: TOKEN }, `jwt ${JWT}`] },
      when: new Date('2024-01-01T00:00:00Z'),
      map: new Map<string, unknown>([['secret', 'x']]),
    };
    const before = structuredClone(input);
    redact(input);
    expect(input).toEqual(before);
    expect(input.nested.headers.authorization).toBe(`Bearer ${TOKEN}`);
  });

  it('works on deeply frozen input', () => {
    const input = Object.freeze({ a: Object.freeze({ password: 'x', list: Object.freeze(['y']) }) });
    expect(redact(input)).toEqual({ a: { password: R, list: ['y'] } });
  });

  it('marks cycles instead of recursing forever', () => {
    const a: Record<string, unknown> = { id: 1 };
    a.self = a;
    a.list = [a];
    expect(redact(a)).toEqual({ id: 1, self: '[Circular]', list: ['[Circular]'] });
  });

  it('renders a shared (non-cyclic) object each time it appears', () => {
    const shared = { password: 'x', id: 2 };
    expect(redact({ a: shared, b: shared })).toEqual({
      a: { password: R, id: 2 },
      b: { password: R, id: 2 },
    });
  });

  it('renders Errors with a redacted message, stack, code and cause', () => {
    const cause = new TypeError(`bad token ${JWT}`);
    const err = new Error(`lookup failed for ${SSN}`, { cause });
    (err as Error & { code: string }).code = 'E_LOOKUP';
    const out = redact(err) as Record<string, unknown>;
    expect(out).toMatchObject({ type: 'Error', message: `lookup failed for ${R}`, code: 'E_LOOKUP' });
    expect(out.stack).toEqual(expect.stringContaining(`Error: lookup failed for ${R}`));
    expect(out.cause).toMatchObject({ type: 'TypeError', message: `bad token ${R}` });
    expect(JSON.stringify(out)).not.toContain(SSN);
    expect(JSON.stringify(out)).not.toContain(JWT);
  });

  it('names an AppError by its class', () => {
    expect(redact(new core.NotFoundError('Patient', 1))).toMatchObject({
      type: 'NotFoundError',
      message: 'Patient not found',
    });
  });

  it('renders Dates as ISO strings', () => {
    expect(redact({ at: new Date('2024-05-06T07:08:09.010Z'), bad: new Date(Number.NaN) })).toEqual({
      at: '2024-05-06T07:08:09.010Z',
      bad: 'Invalid Date',
    });
  });

  it('renders BigInt as a string, so the result is JSON-serialisable', () => {
    const out = redact({ n: 12345678901234567890n });
    expect(out).toEqual({ n: '12345678901234567890' });
    expect(() => JSON.stringify(out)).not.toThrow();
  });

  it('renders Maps as objects with their keys checked, and Sets as arrays', () => {
    expect(
      redact(
        new Map<unknown, unknown>([
          ['password', 'x'],
          ['id', 1],
          [2, `ssn ${SSN}`],
        ]),
      ),
    ).toEqual({
      password: R,
      id: 1,
      '2': `ssn ${R}`,
    });
    expect(redact(new Set(['a', SSN]))).toEqual(['a', R]);
  });

  it('never prints the bytes of a Buffer', () => {
    const out = json({ body: Buffer.from(`password=${PASSWORD}`) });
    expect(out).not.toContain(PASSWORD);
    expect(out).toContain('Buffer');
  });

  it('does not throw on a Map keyed by a null-prototype object', () => {
    expect(() => redact(new Map([[Object.create(null) as object, 'x']]))).not.toThrow();
  });

  it('drops functions, symbols and undefined values', () => {
    expect(redact({ f: () => 1, s: Symbol('x'), u: undefined, k: 1 })).toEqual({ k: 1 });
  });

  it('uses toJSON, so masked settings stay masked', () => {
    const settings = core.loadSettings({ JWT_SECRET_KEY: 'CANARY-settings-secret-0123456789abcdef' });
    expect(json({ settings })).not.toContain('CANARY-settings-secret');
  });

  it('truncates beyond maxDepth', () => {
    const r = core.createRedactor({ maxDepth: 2 });
    expect(r({ a: { b: { c: 1 } }, x: 1 })).toEqual({ a: { b: '[Truncated]' }, x: 1 });
    let deep: unknown = { password: PASSWORD };
    for (let i = 0; i < 50; i++) deep = { next: deep };
    const out = JSON.stringify(redact(deep));
    expect(out).toContain('[Truncated]');
    expect(out).not.toContain(PASSWORD);
  });

  it('does not throw on a hostile object (throwing getter or toJSON)', () => {
    const hostile = {
      id: 1,
      get boom(): never {
        throw new Error('getter');
      },
    };
    const badJson = {
      toJSON: (): never => {
        throw new Error('toJSON');
      },
    };
    expect(() => redact({ hostile, badJson })).not.toThrow();
  });
});

describe('createRedactor: options', () => {
  it.each([
    ['keys that are not an array', { keys: 'password' }],
    ['keys that are not strings', { keys: [1] }],
    ['a non-global pattern', { patterns: [/x/] }],
    ['a pattern that is not a RegExp', { patterns: ['x'] }],
    ['maxDepth 0', { maxDepth: 0 }],
    ['a fractional maxDepth', { maxDepth: 1.5 }],
    ['an unknown option', { kees: ['mrn'] }],
  ])('rejects %s with a ConfigError', (_label, options) => {
    expect(() => core.createRedactor(options as core.RedactOptions)).toThrow(core.ConfigError);
    try {
      core.createRedactor(options as core.RedactOptions);
    } catch (error) {
      expect((error as core.ConfigError).code).toBe('CONFIG_INVALID');
    }
  });

  it('does not mutate its options', () => {
    const options = Object.freeze({ keys: Object.freeze(['a']), censor: 'x' });
    expect(() => core.createRedactor(options)).not.toThrow();
    expect(options).toEqual({ keys: ['a'], censor: 'x' });
  });
});

describe('createRedactor: properties', () => {
  const anything = fc.anything({
    maxDepth: 12,
    withBigInt: true,
    withBoxedValues: true,
    withDate: true,
    withMap: true,
    withSet: true,
    withNullPrototype: true,
    withObjectString: true,
    withSparseArray: true,
    withTypedArray: true,
  });

  it('never throws, and its result always serialises to JSON', () => {
    fc.assert(
      fc.property(anything, (value) => {
        expect(() => JSON.stringify(redact(value))).not.toThrow();
      }),
      { numRuns: 300 },
    );
  });

  it('never mutates arbitrary input', () => {
    fc.assert(
      fc.property(anything, (value) => {
        const before = structuredClone(value);
        try {
          redact(value);
        } catch {
          // throwing is the other property's concern; this one is only about the input
        }
        expect(value).toEqual(before);
      }),
      { numRuns: 200 },
    );
  });

  /** Wraps `leaf` in a random path of objects, arrays and Maps beside random siblings. */
  const planted = (leaf: fc.Arbitrary<unknown>): fc.Arbitrary<unknown> =>
    fc
      .tuple(
        leaf,
        fc.array(
          fc.tuple(
            fc.constantFrom('object', 'array', 'map'),
            fc.string({ maxLength: 8 }),
            fc.jsonValue({ maxDepth: 2 }),
          ),
          {
            maxLength: 6,
          },
        ),
      )
      .map(([inner, path]) =>
        path.reduceRight<unknown>((acc, [kind, key, sibling]) => {
          if (kind === 'array') return [sibling, acc];
          if (kind === 'map')
            return new Map([
              ['sibling', sibling],
              [key, acc],
            ]);
          return { sibling, [key]: acc };
        }, inner),
      );

  const text = fc.string({ unit: 'binary', maxLength: 20 });
  const around = (canary: string) => fc.tuple(text, text).map(([a, b]) => `${a} ${canary} ${b}`);
  const leaves = fc.oneof(
    around(SSN),
    around(JWT),
    around(`Bearer ${TOKEN}`),
    around(`https://svc:${PASSWORD}@api.example/x`),
    fc.constant({ password: PASSWORD }),
    fc.constant({ user: { Password: PASSWORD, token: TOKEN } }),
    fc.constant({ headers: { authorization: `Bearer ${TOKEN}`, cookie: `sid=${TOKEN}` } }),
    around(SSN).map((m) => new Error(m)),
    around(JWT).map((m) => new Error('outer', { cause: new Error(m) })),
  );

  it('never lets a planted SSN, JWT, token or password through, at any depth', () => {
    fc.assert(
      fc.property(planted(leaves), (value) => {
        const out = JSON.stringify(redact(value));
        for (const canary of [SSN, JWT, PASSWORD, TOKEN]) expect(out).not.toContain(canary);
      }),
      { numRuns: 300 },
    );
  });

  const fragments = fc
    .array(
      fc.constantFrom(
        '123',
        '-',
        '45',
        ' ',
        '6789',
        '4111',
        '1111',
        '0',
        '9',
        '\u2028',
        '\n',
        '\u0001',
        'eyJ',
        'abc',
        '.',
        '@',
        'example.com',
        'Bearer ',
        '?',
        '=',
        '&',
        '://',
        ':',
        '+1',
        '(555)',
        '+44 20 7946 0958',
        'name: ',
        '"name":',
        '[',
        ']',
        '{',
        '"',
        "'",
        ',',
        'DOB ',
        '1980-02-03',
        'MRN#',
        'Mrs. ',
        'Jane ',
        '742 Evergreen Terrace',
        'SW1A 1AA',
        'Key (email)=(',
        ')',
        'Failing row contains (',
        ': "x"',
        '\\n',
        SSN,
        JWT,
      ),
      { maxLength: 12 },
    )
    .map((parts) => parts.join(''));

  it('is idempotent on strings: redacting twice equals redacting once', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ unit: 'binary' }), fragments), (s) => {
        const once = redact(s);
        expect(redact(once)).toBe(once);
      }),
      { numRuns: 1000 },
    );
  });

  it.each([
    ['an escaped line separator followed by digits', '\u2028 4111 1111 1111'],
    ['an escaped newline inside a query key', '/x?a\n=b'],
  ])('is idempotent on %s', (_label, s) => {
    const once = redact(s);
    expect(redact(once)).toBe(once);
  });
});

describe('createRedactor: custom patterns', () => {
  it('applies a custom pattern even to a string nothing else finds suspicious', () => {
    const redact = core.createRedactor({ patterns: [/MRN-[A-Z]+/g] });
    expect(redact('patient MRN-ABCDEF admitted')).toBe('patient [REDACTED] admitted');
  });
});

describe('createRedactor: PHI mode options', () => {
  it('takes phi as the old name of phiMode', () => {
    const record = { name: 'Jane Doe', email: 'jane@example.org' };
    expect(core.createRedactor({ phiMode: false })(record)).toEqual(record);
    expect(core.createRedactor({ phi: false })(record)).toEqual(record);
    expect(core.createRedactor({ phiMode: true, phi: true })(record)).toEqual({ name: R, email: R });
  });

  it.each([
    ['phi and phiMode that disagree', { phi: true, phiMode: false }],
    ['phiFields with PHI mode off', { phiMode: false, phiFields: ['mrn_local'] }],
    ['phiPatterns with PHI mode off', { phi: false, phiPatterns: [/H\d{7}/g] }],
    ['a non-boolean phiMode', { phiMode: 'yes' }],
    ['phiFields that are not strings', { phiFields: [1] }],
    ['a non-global phiPattern', { phiPatterns: [/H\d{7}/] }],
    ['phiPatterns that are not an array', { phiPatterns: /H\d{7}/g }],
    ['a censor that is not a string', { censor: 0 }],
  ])('rejects %s with a ConfigError', (_label, options) => {
    expect(() => core.createRedactor(options as core.RedactOptions)).toThrow(core.ConfigError);
  });

  it('adds phiFields as keys and as labels in text, and phiPatterns as values', () => {
    const r = core.createRedactor({ phiFields: ['insurance_id'], phiPatterns: [/\bH\d{7}\b/g] });
    expect(r({ insuranceId: 'QX-1', primary_insurance_id: 'kept: not an exact match' })).toEqual({
      insuranceId: R,
      primary_insurance_id: 'kept: not an exact match',
    });
    expect(r('check insurance_id=QX-1 for H1234567 ok')).toBe(`check insurance_id=${R} for ${R} ok`);
  });

  it('leaves a caller-supplied RegExp untouched (no shared lastIndex)', () => {
    const pattern = /H\d{7}/g;
    pattern.lastIndex = 3;
    core.createRedactor({ phiPatterns: [pattern] })('H1234567');
    expect(pattern.lastIndex).toBe(3);
  });

  it('redacts keys that end with a PHI name, but not ordinary keys ending in name or address', () => {
    expect(
      redact({
        patient_email: 'a',
        homePhone: 'b',
        guardianDob: 'c',
        billing_address: 'd',
        file_name: 'e',
        service_name: 'f',
        ip_address: '10.0.0.1',
        remoteAddress: '::1',
      }),
    ).toEqual({
      patient_email: R,
      homePhone: R,
      guardianDob: R,
      billing_address: R,
      file_name: 'e',
      service_name: 'f',
      ip_address: '10.0.0.1',
      remoteAddress: '::1',
    });
  });

  it.each([
    ['a labelled value to the end of its clause', 'name: Jane Doe, ward 3', `name: ${R}, ward 3`],
    ['quoted JSON values, keeping the quotes', '{"name":"Jane","id":7}', `{"name":"${R}","id":7}`],
    ['a bracketed value whole', 'name: [{"family":"Doe"}] ok', `name: ${R} ok`],
    [
      'logfmt pairs one by one',
      'first_name=Jane last_name=Doe ward=3',
      `first_name=${R} last_name=${R} ward=3`,
    ],
    ['an address past its commas', 'address: 1 High St, Leeds; next', `address: ${R}; next`],
    [
      'a pg key detail with no digit or @ in it',
      'Key (family)=(Doe) already exists.',
      `Key (family)=(${R}) already exists.`,
    ],
    ['a pg failing row', 'Failing row contains (Jane, Doe).', `Failing row contains (${R}).`],
    [
      'SQL literals',
      "insert into patients (name) values ('Jane Doe')",
      `insert into patients (name) values ('${R}')`,
    ],
    ['a label on the next line of a message', 'bad\nname: Jane', `bad\\nname: ${R}`],
  ])('redacts %s', (_label, input, expected) => {
    expect(redact(input)).toBe(expected);
  });

  it.each([
    ['a thing named by name', 'service name: patients-api'],
    ['a column named email', 'column "email" of relation "patients" does not exist'],
    ['an event date', 'appointment on 2026-03-14 at 09:30'],
    ['a status with a colon', 'status: 503, retry after 30 s'],
    ['a route template', '/api/v1/patients/:id'],
    ['a timezone offset', '2024-01-31T10:20:30+01:00'],
    ['an IPv4 address', 'client 192.168.100.200'],
  ])('keeps %s', (_label, input) => {
    expect(redact(input)).toBe(input);
  });

  it('stays linear on long hostile input (no catastrophic backtracking)', () => {
    const inputs = [
      'A'.repeat(50_000) + ',',
      'a.'.repeat(25_000),
      `name: ${'x '.repeat(25_000)}`,
      `+1${' 1'.repeat(20_000)}`,
      `Key (${'('.repeat(20_000)}`,
    ];
    const start = performance.now();
    for (const s of inputs) redact(s);
    expect(performance.now() - start).toBeLessThan(1_000);
  });
});
