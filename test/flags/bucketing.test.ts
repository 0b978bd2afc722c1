/**
 * Sticky bucketing over 10,000 user ids: the same user always gets the same answer (from any
 * instance, with no per-process salt), each rollout lands within ±2 percentage points of its
 * target, buckets spread uniformly, ramping up only adds users, flags bucket independently, and
 * variant weights hold too — also inside a partial rollout. The hash is the documented one.
 */
import { createHash } from 'node:crypto';
import * as core from '../../lib/index';
import { memoryFlags } from './support';

const USERS = Array.from({ length: 10_000 }, (_, i) => `user-${i}`);

function share(flags: core.FeatureFlags, name: string, users: readonly string[] = USERS): number {
  return users.filter((userId) => flags.isEnabled(name, { userId })).length / users.length;
}

function rollout(percentage: number, name = 'f'): core.FeatureFlags {
  return memoryFlags({ flags: { [name]: { enabled: true, percentage } } });
}

describe('percentage rollout', () => {
  it.each([1, 5, 10, 25, 33.33, 50, 75, 90, 99])(
    '%d %% lands within ±2 points over 10,000 users',
    (percentage) => {
      expect(Math.abs(share(rollout(percentage), 'f') * 100 - percentage)).toBeLessThanOrEqual(2);
    },
  );

  it('is sticky: the same user gets the same answer every time and from another instance', () => {
    const one = rollout(50);
    const two = rollout(50);
    const first = USERS.map((userId) => one.isEnabled('f', { userId }));
    expect(USERS.map((userId) => one.isEnabled('f', { userId }))).toEqual(first);
    expect(USERS.map((userId) => two.isEnabled('f', { userId }))).toEqual(first);
  });

  it('buckets users by the documented hash: SHA-256 of "<flag>:<userId>", first 4 bytes mod 10,000', () => {
    const flags = rollout(37.5, 'new-dashboard');
    for (const userId of USERS.slice(0, 2_000)) {
      const bucket = createHash('sha256').update(`new-dashboard:${userId}`).digest().readUInt32BE(0) % 10_000;
      expect(flags.isEnabled('new-dashboard', { userId })).toBe(bucket < 3_750);
    }
  });

  it('spreads buckets uniformly (chi-square over 20 equal slices)', () => {
    // 5 % steps: the users newly on at each step are one slice of the bucket range.
    const counts: number[] = [];
    let previous = 0;
    for (let step = 1; step <= 20; step++) {
      const on = Math.round(share(rollout(step * 5), 'f') * USERS.length);
      counts.push(on - previous);
      previous = on;
    }
    const expected = USERS.length / 20;
    const chi2 = counts.reduce((sum, n) => sum + (n - expected) ** 2 / expected, 0);
    // 19 degrees of freedom: 43.8 is the p = 0.001 critical value.
    expect(chi2).toBeLessThan(43.8);
  });

  it('ramping up only adds users: everyone on at 10 % is still on at 20 %', async () => {
    const flags = rollout(10);
    const at10 = USERS.filter((userId) => flags.isEnabled('f', { userId }));
    await flags.setFlag('f', { enabled: true, percentage: 20 });
    expect(at10.every((userId) => flags.isEnabled('f', { userId }))).toBe(true);
  });

  it('flags bucket independently: two 50 % rollouts overlap on about a quarter of users', () => {
    const flags = memoryFlags({
      flags: { a: { enabled: true, percentage: 50 }, b: { enabled: true, percentage: 50 } },
    });
    const both = USERS.filter(
      (userId) => flags.isEnabled('a', { userId }) && flags.isEnabled('b', { userId }),
    );
    expect(Math.abs(both.length / USERS.length - 0.25)).toBeLessThanOrEqual(0.02);
  });
});

describe('variants', () => {
  const WEIGHTS = { control: 70, blue: 20, green: 10 };
  const variants = Object.entries(WEIGHTS).map(([name, weight]) => ({ name, weight }));

  function shares(flags: core.FeatureFlags, users: readonly string[]): Record<string, number> {
    const tally: Record<string, number> = {};
    for (const userId of users) {
      const v = flags.variant('f', { userId }) ?? 'off';
      tally[v] = (tally[v] ?? 0) + 1;
    }
    return Object.fromEntries(Object.entries(tally).map(([k, n]) => [k, (n / users.length) * 100]));
  }

  it('weights hold within ±2 points over 10,000 users, and stick', () => {
    const flags = memoryFlags({ flags: { f: { enabled: true, variants } } });
    const got = shares(flags, USERS);
    for (const [name, weight] of Object.entries(WEIGHTS))
      expect(Math.abs((got[name] ?? 0) - weight)).toBeLessThanOrEqual(2);
    const again = memoryFlags({ flags: { f: { enabled: true, variants } } });
    for (const userId of USERS.slice(0, 1_000))
      expect(again.variant('f', { userId })).toBe(flags.variant('f', { userId }));
  });

  it('inside a 50 % rollout the weights still hold among those it is on for (independent of the rollout bucket)', () => {
    const flags = memoryFlags({ flags: { f: { enabled: true, percentage: 50, variants } } });
    const on = USERS.filter((userId) => flags.isEnabled('f', { userId }));
    expect(Math.abs(on.length / USERS.length - 0.5)).toBeLessThanOrEqual(0.02);
    const got = shares(flags, on);
    for (const [name, weight] of Object.entries(WEIGHTS))
      expect(Math.abs((got[name] ?? 0) - weight)).toBeLessThanOrEqual(2);
  });

  it('relative weights: 1 and 3 are 25 % and 75 %', () => {
    const flags = memoryFlags({
      flags: {
        f: {
          enabled: true,
          variants: [
            { name: 'a', weight: 1 },
            { name: 'b', weight: 3 },
          ],
        },
      },
    });
    const got = shares(flags, USERS);
    expect(Math.abs((got.a ?? 0) - 25)).toBeLessThanOrEqual(2);
    expect(Math.abs((got.b ?? 0) - 75)).toBeLessThanOrEqual(2);
  });
});
