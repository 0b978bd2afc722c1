/**
 * flags.openFeatureProvider() through the real OpenFeature server SDK: booleans, strings, numbers
 * and objects from variants, reasons (TARGETING_MATCH, STATIC, DEFAULT, DISABLED, ERROR) and error
 * codes (FLAG_NOT_FOUND, TYPE_MISMATCH) as the specification has them; targetingKey is the user,
 * roles come from the context, and without either the request's user is used.
 */
import { OpenFeature, type Client } from '@openfeature/server-sdk';
import * as core from '../../lib/index';
import { memoryFlags } from './support';

const flags = memoryFlags({
  flags: {
    beta: { enabled: true, users: ['alice'], roles: ['provider'] },
    everyone: { enabled: true },
    off: { enabled: false, users: ['alice'] },
    layout: {
      enabled: true,
      roles: ['provider'],
      variants: [
        { name: 'list', weight: 1 },
        { name: 'grid', weight: 1, value: 'grid-v2' },
      ],
    },
    limits: { enabled: true, variants: [{ name: 'small', weight: 1, value: 10 }] },
    theme: {
      enabled: true,
      variants: [{ name: 'dark', weight: 1, value: { background: '#000', accent: ['#f0f'] } }],
    },
  },
});
let client: Client;

beforeAll(async () => {
  await OpenFeature.setProviderAndWait(flags.openFeatureProvider());
  client = OpenFeature.getClient();
});
afterAll(async () => {
  await OpenFeature.close();
});

it('names itself caduceus and runs on the server', () => {
  const provider = flags.openFeatureProvider();
  expect(provider.metadata.name).toBe('caduceus');
  expect(provider.runsOn).toBe('server');
  expect(OpenFeature.providerMetadata.name).toBe('caduceus');
});

describe('booleans', () => {
  it('TARGETING_MATCH when a rule turns the flag on for the targeting key or roles', async () => {
    expect(await client.getBooleanValue('beta', false, { targetingKey: 'alice' })).toBe(true);
    const details = await client.getBooleanDetails('beta', false, {
      targetingKey: 'bob',
      roles: ['provider'],
    });
    expect(details).toMatchObject({ value: true, reason: 'TARGETING_MATCH' });
    expect(details.errorCode).toBeUndefined();
    expect(await client.getBooleanValue('beta', true, { roles: 'provider' })).toBe(true);
  });

  it('DEFAULT (false) when no rule matches; STATIC when on for everyone', async () => {
    expect(await client.getBooleanDetails('beta', true, { targetingKey: 'eve' })).toMatchObject({
      value: false,
      reason: 'DEFAULT',
    });
    expect(await client.getBooleanDetails('everyone', false, {})).toMatchObject({
      value: true,
      reason: 'STATIC',
    });
  });

  it("DISABLED: the caller's default", async () => {
    expect(await client.getBooleanDetails('off', true, { targetingKey: 'alice' })).toMatchObject({
      value: true,
      reason: 'DISABLED',
    });
    expect(await client.getBooleanValue('off', false, { targetingKey: 'alice' })).toBe(false);
  });

  it("ERROR FLAG_NOT_FOUND for an unknown flag: the caller's default", async () => {
    const details = await client.getBooleanDetails('nope', true, { targetingKey: 'alice' });
    expect(details).toMatchObject({ value: true, reason: 'ERROR', errorCode: 'FLAG_NOT_FOUND' });
    expect(details.errorMessage).toContain('nope');
  });

  it("uses the request's user when the context names none", async () => {
    const ctx = core.createContext({ userId: 'alice' });
    expect(await core.runWithContext(ctx, () => client.getBooleanValue('beta', false))).toBe(true);
    expect(await client.getBooleanValue('beta', false)).toBe(false);
  });

  it('honours an environment in the context', async () => {
    const staged = memoryFlags({
      flags: { s: { enabled: true, environments: ['staging'] } },
    }).openFeatureProvider();
    expect((await staged.resolveBooleanEvaluation('s', false, { environment: 'staging' })).value).toBe(true);
    expect((await staged.resolveBooleanEvaluation('s', false, {})).value).toBe(false);
  });
});

describe('strings, numbers and objects: the variant', () => {
  it('strings: the variant value, or its name when it has none; sticky per targeting key', async () => {
    const seen = new Set<string>();
    for (let i = 0; i < 40; i++) {
      const ctx = { targetingKey: `p${i}`, roles: ['provider'] };
      const details = await client.getStringDetails('layout', 'none', ctx);
      expect(details.reason).toBe('TARGETING_MATCH');
      expect(details.value).toBe(details.variant === 'grid' ? 'grid-v2' : 'list');
      expect(details.variant).toBe(flags.variant('layout', { userId: `p${i}`, roles: ['provider'] }));
      seen.add(details.value);
    }
    expect([...seen].sort()).toEqual(['grid-v2', 'list']);
  });

  it("DEFAULT with the caller's default when the flag is off for the context", async () => {
    expect(await client.getStringDetails('layout', 'none', { targetingKey: 'eve' })).toMatchObject({
      value: 'none',
      reason: 'DEFAULT',
    });
  });

  it('numbers and objects', async () => {
    expect(await client.getNumberDetails('limits', 5, { targetingKey: 'a' })).toMatchObject({
      value: 10,
      variant: 'small',
      reason: 'TARGETING_MATCH',
    });
    expect(await client.getObjectValue('theme', {}, { targetingKey: 'a' })).toEqual({
      background: '#000',
      accent: ['#f0f'],
    });
  });

  it('ERROR TYPE_MISMATCH when the flag has no variants or the variant value is of another type', async () => {
    for (const details of [
      await client.getStringDetails('beta', 'x', { targetingKey: 'alice' }),
      await client.getNumberDetails('layout', 1, { targetingKey: 'p1', roles: ['provider'] }),
      await client.getObjectDetails('limits', { a: 1 }, { targetingKey: 'a' }),
      await client.getStringDetails('limits', 'x', { targetingKey: 'a' }),
    ])
      expect(details).toMatchObject({ reason: 'ERROR', errorCode: 'TYPE_MISMATCH' });
    expect(await client.getNumberValue('layout', 7, { targetingKey: 'p1', roles: ['provider'] })).toBe(7);
  });

  it('ERROR FLAG_NOT_FOUND for unknown flags of every type', async () => {
    expect(await client.getStringDetails('nope', 'd', {})).toMatchObject({
      value: 'd',
      errorCode: 'FLAG_NOT_FOUND',
    });
    expect(await client.getNumberDetails('nope', 3, {})).toMatchObject({
      value: 3,
      errorCode: 'FLAG_NOT_FOUND',
    });
  });
});
