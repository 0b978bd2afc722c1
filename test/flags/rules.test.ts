/**
 * The rules of a flag, one by one and in their order (docs/flags.md#rules), on the memory store:
 * unknown and disabled flags are off, environment and time window must match, users and roles
 * grant, a percentage grants a sticky share, variants are picked for those it is on for; the
 * context comes from the request by default; definitions are validated and read back as stored.
 */
import * as core from '../../lib/index';
import { memoryFlags } from './support';

const ALICE = { userId: 'alice', roles: ['patient'] };
const BOB = { userId: 'bob', roles: ['provider'] };
const NOBODY = {};

function flagsWith(definition: core.FlagDefinition, options: core.FeatureFlagsOptions = {}) {
  return memoryFlags({ flags: { f: definition }, ...options });
}

describe('rules', () => {
  it('an unknown flag is off, for everyone', () => {
    const flags = memoryFlags();
    expect(flags.isEnabled('nope', ALICE)).toBe(false);
    expect(flags.evaluate('nope', ALICE)).toEqual({ enabled: false, reason: 'unknown' });
    expect(flags.isEnabled('not a valid name!', ALICE)).toBe(false);
  });

  it('enabled with no other rule is on for everyone, anonymous callers too', () => {
    const flags = flagsWith({ enabled: true });
    for (const ctx of [ALICE, BOB, NOBODY])
      expect(flags.evaluate('f', ctx)).toEqual({ enabled: true, reason: 'all' });
  });

  it('enabled: false is off for everyone, whatever else the flag says', () => {
    const flags = flagsWith({ enabled: false, users: ['alice'], roles: ['patient'], percentage: 100 });
    expect(flags.evaluate('f', ALICE)).toEqual({ enabled: false, reason: 'disabled' });
    expect(flags.isEnabled('f', NOBODY)).toBe(false);
  });

  it('the user allow-list grants listed users only', () => {
    const flags = flagsWith({ enabled: true, users: ['alice'] });
    expect(flags.evaluate('f', ALICE)).toEqual({ enabled: true, reason: 'user' });
    expect(flags.evaluate('f', BOB)).toEqual({ enabled: false, reason: 'no_match' });
    expect(flags.isEnabled('f', NOBODY)).toBe(false);
  });

  it('roles grant users with any one of them', () => {
    const flags = flagsWith({ enabled: true, roles: ['provider', 'admin'] });
    expect(flags.evaluate('f', BOB)).toEqual({ enabled: true, reason: 'role' });
    expect(flags.isEnabled('f', { userId: 'carol', roles: ['patient', 'admin'] })).toBe(true);
    expect(flags.isEnabled('f', ALICE)).toBe(false);
    expect(flags.isEnabled('f', { roles: ['provider'] })).toBe(true);
  });

  it('users and roles add up: either grants', () => {
    const flags = flagsWith({ enabled: true, users: ['alice'], roles: ['provider'] });
    expect(flags.isEnabled('f', ALICE)).toBe(true);
    expect(flags.isEnabled('f', BOB)).toBe(true);
    expect(flags.isEnabled('f', { userId: 'carol', roles: ['patient'] })).toBe(false);
  });

  it('an empty allow-list grants nobody (removing the last user does not turn it on for all)', () => {
    const flags = flagsWith({ enabled: true, users: [] });
    expect(flags.evaluate('f', ALICE)).toEqual({ enabled: false, reason: 'no_match' });
  });

  it('environments: on only where listed; default NODE_ENV, the option and the context override it', () => {
    const def: core.FlagDefinition = { enabled: true, environments: ['staging', 'production'] };
    // The suite's settings say NODE_ENV=test.
    expect(flagsWith(def).evaluate('f', ALICE)).toEqual({ enabled: false, reason: 'environment' });
    expect(flagsWith(def, { environment: 'staging' }).isEnabled('f', ALICE)).toBe(true);
    const flags = flagsWith(def);
    expect(flags.isEnabled('f', { ...ALICE, environment: 'production' })).toBe(true);
    // The environment applies before the allow-list: a listed user is still off elsewhere.
    const listed = flagsWith({ ...def, users: ['alice'] });
    expect(listed.evaluate('f', ALICE)).toEqual({ enabled: false, reason: 'environment' });
    expect(flagsWith({ enabled: true, environments: ['test'] }).isEnabled('f', ALICE)).toBe(true);
  });

  it('startsAt and endsAt: on from the start, off from the end (exclusive)', () => {
    const start = Date.parse('2030-01-01T00:00:00Z');
    const end = Date.parse('2030-02-01T00:00:00Z');
    const flags = flagsWith({ enabled: true, startsAt: '2030-01-01T01:00:00+01:00', endsAt: end });
    expect(flags.evaluate('f', { ...ALICE, now: start - 1 })).toEqual({ enabled: false, reason: 'schedule' });
    expect(flags.isEnabled('f', { ...ALICE, now: start })).toBe(true);
    expect(flags.isEnabled('f', { ...ALICE, now: new Date(end - 1) })).toBe(true);
    expect(flags.evaluate('f', { ...ALICE, now: end })).toEqual({ enabled: false, reason: 'schedule' });
    // Default: now. 2030 has not started.
    expect(flags.isEnabled('f', ALICE)).toBe(false);
    expect(flagsWith({ enabled: true, endsAt: '2001-01-01T00:00:00Z' }).isEnabled('f', ALICE)).toBe(false);
    expect(flagsWith({ enabled: true, startsAt: new Date(0) }).isEnabled('f', ALICE)).toBe(true);
  });

  it('percentage 0 grants nobody, 100 everybody (anonymous callers too), and needs a user otherwise', () => {
    expect(flagsWith({ enabled: true, percentage: 0 }).evaluate('f', ALICE)).toEqual({
      enabled: false,
      reason: 'no_match',
    });
    const all = flagsWith({ enabled: true, percentage: 100 });
    expect(all.evaluate('f', ALICE)).toEqual({ enabled: true, reason: 'percentage' });
    expect(all.isEnabled('f', NOBODY)).toBe(true);
    // Without a user there is no stable key to bucket on: a partial rollout leaves them out.
    expect(flagsWith({ enabled: true, percentage: 99.99 }).isEnabled('f', NOBODY)).toBe(false);
  });

  it('a listed user is on whatever their bucket; others go by the rollout', () => {
    const flags = flagsWith({ enabled: true, users: ['alice'], percentage: 0.01 });
    expect(flags.evaluate('f', ALICE)).toEqual({ enabled: true, reason: 'user' });
    const others = Array.from({ length: 200 }, (_, i) => flags.isEnabled('f', { userId: `u${i}` }));
    expect(others.filter(Boolean).length).toBeLessThan(5);
  });

  it('variants: none when off; sticky per user when on; anonymous callers get the first weighted one', () => {
    const flags = flagsWith({
      enabled: true,
      roles: ['provider'],
      variants: [
        { name: 'never', weight: 0 },
        { name: 'control', weight: 1 },
        { name: 'treatment', weight: 1, value: { layout: 'grid' } },
      ],
    });
    expect(flags.variant('f', ALICE)).toBeUndefined();
    const seen = new Set<string | undefined>();
    for (let i = 0; i < 200; i++) {
      const ctx = { userId: `p${i}`, roles: ['provider'] };
      const variant = flags.variant('f', ctx);
      expect(flags.variant('f', ctx)).toBe(variant);
      seen.add(variant);
    }
    expect([...seen].sort()).toEqual(['control', 'treatment']);
    expect(flags.variant('f', { roles: ['provider'] })).toBe('control');
    const treated = Array.from({ length: 50 }, (_, i) => ({ userId: `p${i}`, roles: ['provider'] })).find(
      (ctx) => flags.variant('f', ctx) === 'treatment',
    );
    expect(flags.evaluate('f', treated)).toEqual({
      enabled: true,
      reason: 'role',
      variant: 'treatment',
      value: { layout: 'grid' },
    });
    expect(flagsWith({ enabled: true }).variant('f', ALICE)).toBeUndefined();
  });
});

describe('the evaluation context', () => {
  const flags = flagsWith({ enabled: true, users: ['alice'], roles: ['provider'] });

  it('defaults to the request context: user id and roles', () => {
    expect(flags.isEnabled('f')).toBe(false);
    const ctx = core.createContext({ userId: 'alice' });
    expect(core.runWithContext(ctx, () => flags.isEnabled('f'))).toBe(true);
    const other = core.createContext();
    expect(
      core.runWithContext(other, () => {
        core.setUser('bob', ['provider']);
        return flags.evaluate('f');
      }),
    ).toEqual({ enabled: true, reason: 'role' });
  });

  it('accepts a user as authenticate() sets it on req.user ({ id, roles })', () => {
    expect(flags.isEnabled('f', { id: 'alice' })).toBe(true);
    expect(flags.isEnabled('f', { id: 'dave', roles: ['provider'] })).toBe(true);
    expect(flags.isEnabled('f', { id: 'dave', roles: [] })).toBe(false);
  });

  it('an explicit context replaces the request one entirely', () => {
    const ctx = core.createContext({ userId: 'alice' });
    expect(core.runWithContext(ctx, () => flags.isEnabled('f', { userId: 'eve' }))).toBe(false);
  });
});

describe('reading and changing flags', () => {
  it('setFlag() validates, normalises (dates as ISO) and stores; getFlag() and listFlags() read it back', async () => {
    const flags = memoryFlags({ flags: { b: { enabled: false } } });
    const stored = await flags.setFlag('a', {
      enabled: true,
      startsAt: Date.parse('2030-01-01T00:00:00Z'),
      percentage: 12.5,
      description: 'new dashboard',
    });
    expect(stored).toEqual({
      enabled: true,
      startsAt: '2030-01-01T00:00:00.000Z',
      percentage: 12.5,
      description: 'new dashboard',
    });
    expect(flags.getFlag('a')).toEqual(stored);
    expect(Object.isFrozen(flags.getFlag('a'))).toBe(true);
    expect(Object.keys(flags.listFlags())).toEqual(['a', 'b']);
    expect(flags.listFlags().b).toEqual({ enabled: false });
    expect(flags.getFlag('missing')).toBeUndefined();
    expect(flags.status()).toEqual({ store: 'memory', healthy: true, flags: 2 });
  });

  it('setFlag() replaces: the new definition applies to the next evaluation', async () => {
    const flags = flagsWith({ enabled: false });
    expect(flags.isEnabled('f', ALICE)).toBe(false);
    await flags.setFlag('f', { enabled: true });
    expect(flags.isEnabled('f', ALICE)).toBe(true);
  });

  it('deleteFlag() removes (the flag is then off) and says whether it existed', async () => {
    const flags = flagsWith({ enabled: true });
    await expect(flags.deleteFlag('f')).resolves.toBe(true);
    await expect(flags.deleteFlag('f')).resolves.toBe(false);
    await expect(flags.deleteFlag('../etc')).resolves.toBe(false);
    expect(flags.isEnabled('f', ALICE)).toBe(false);
  });

  it('an invalid definition is a 400 VALIDATION_ERROR naming each field, never echoing a value', async () => {
    const flags = memoryFlags();
    const err = await flags
      .setFlag('f', {
        enabled: 'yes',
        percentage: 150,
        users: ['secret-user', 7],
        endsAt: 'tomorrow',
        colour: 'red',
      } as unknown as core.FlagDefinition)
      .catch((e: unknown) => e);
    expect(core.isAppError(err)).toBe(true);
    const appError = err as core.AppError;
    expect(appError.status).toBe(400);
    expect(appError.code).toBe('VALIDATION_ERROR');
    expect(appError.details.field_errors).toEqual({
      enabled: 'must be true or false',
      percentage: 'must be a number from 0 to 100',
      'users.1': 'must be a user id',
      endsAt: 'must be an ISO 8601 date-time with an offset (2025-01-31T09:00:00Z) or epoch milliseconds',
      colour: 'is not a known field',
    });
    expect(JSON.stringify(appError.details)).not.toContain('secret-user');
    expect(flags.getFlag('f')).toBeUndefined();
  });

  it.each([
    [{ enabled: true, percentage: 12.345 }, { percentage: 'must have at most two decimals' }],
    [{ enabled: true, startsAt: 2e12, endsAt: 1e12 }, { endsAt: 'must be later than startsAt' }],
    [
      { enabled: true, startsAt: '2030-01-01T00:00:00' },
      { startsAt: expect.stringContaining('with an offset') },
    ],
    [{ enabled: true, variants: [] }, { variants: 'must list at least one variant' }],
    [
      { enabled: true, variants: [{ name: 'a', weight: 0 }] },
      { variants: 'must give at least one variant a weight above 0' },
    ],
    [
      {
        enabled: true,
        variants: [
          { name: 'a', weight: 1 },
          { name: 'a', weight: 1 },
        ],
      },
      { 'variants.1.name': 'is already used by another variant' },
    ],
    [
      { enabled: true, variants: [{ name: 'has space', weight: 1 }] },
      { 'variants.0.name': expect.any(String) },
    ],
    [
      {
        enabled: true,
        variants: [
          { name: 'a', weight: 1 },
          { name: 'b', weight: -1 },
        ],
      },
      { 'variants.1.weight': 'must be 0 or more' },
    ],
    [{ enabled: true, roles: 'admin' }, { roles: 'must be a list of roles' }],
    [null, { definition: 'must be an object' }],
    [[], { definition: 'must be an object' }],
    [{}, { enabled: 'must be true or false' }],
  ])('refuses %j', async (definition, fieldErrors) => {
    const err = (await memoryFlags()
      .setFlag('f', definition as unknown as core.FlagDefinition)
      .catch((e: unknown) => e)) as core.AppError;
    expect(err.status).toBe(400);
    expect(err.details.field_errors).toEqual(fieldErrors);
  });

  it.each(['', 'has space', '-leading', 'a/b', '__proto__', 'x'.repeat(101)])(
    'refuses the flag name %j',
    async (name) => {
      const err = (await memoryFlags()
        .setFlag(name, { enabled: true })
        .catch((e: unknown) => e)) as core.AppError;
      expect(err.status).toBe(400);
      expect(Object.keys(err.details.field_errors as object)).toEqual(['name']);
    },
  );
});

describe('the process default: configureFlags() and isFeatureEnabled()', () => {
  afterEach(() => {
    core.configureFlags(memoryFlags());
  });

  it('isFeatureEnabled() without configureFlags() uses an empty memory store: every flag is off', () => {
    expect(core.isFeatureEnabled('anything', ALICE)).toBe(false);
    expect(core.getFeatureFlags().status().store).toBe('memory');
  });

  it('uses the flags configureFlags() was given (or made), with a user as in the seed', async () => {
    const mine = flagsWith({ enabled: true, users: ['alice'] });
    expect(core.configureFlags(mine)).toBe(mine);
    expect(core.isFeatureEnabled('f', { id: 'alice', roles: [] })).toBe(true);
    expect(core.isFeatureEnabled('f', BOB)).toBe(false);
    const made = core.configureFlags({ store: 'memory', metrics: false, flags: { g: { enabled: true } } });
    expect(core.getFeatureFlags()).toBe(made);
    expect(core.isFeatureEnabled('g')).toBe(true);
    expect(core.isFeatureEnabled('f', ALICE)).toBe(false);
    // An instance the application made is still its own: replacing it did not close it.
    await mine.setFlag('h', { enabled: true });
    expect(mine.isEnabled('h')).toBe(true);
  });
});
