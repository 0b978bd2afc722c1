/**
 * An application's ioredis Cluster client as `redis`: a throwaway 3-master Redis Cluster
 * (test/support/redis-cluster.ts). Each client's counter is one key, in whatever slot it hashes to,
 * so the limit stays exact with keys spread over every master, and survives every master's script
 * cache being emptied (the scripts are loaded on all masters again).
 */
import type { Express } from 'express';
import { Cluster } from 'ioredis';
import request from 'supertest';
import { EXPRESS } from '../support/express';
import { startRedisCluster, type RedisClusterHandle } from '../support/redis-cluster';
import { limitedApp, limiterScope, redisPrefix, settings, tally, uniqueName } from './support';
import * as core from '../../lib/index';

// The suite's own prefix on the cluster (limiterScope's clean-up is for the standalone Redis).
const scope = limiterScope('cluster');
const prefix = redisPrefix('rl-cluster');

let handle: RedisClusterHandle | undefined;
let cluster: Cluster | undefined;

/** The suite's Cluster client (fails clearly when beforeAll could not start the cluster). */
function client(): Cluster {
  if (cluster === undefined) throw new Error('the Redis Cluster did not start (see beforeAll)');
  return cluster;
}

beforeAll(async () => {
  handle = await startRedisCluster({ masters: 3 });
  // ioredis' defaults (offline queue on), as an application would create it.
  cluster = new Cluster(handle.nodes.map((n) => ({ host: n.host, port: n.port })));
  cluster.on('error', () => undefined);
}, 30_000);

afterAll(async () => {
  const c = cluster;
  await c?.quit().catch(() => {
    c.disconnect();
  });
  await handle?.stop();
}, 15_000);

function clusterLimiter(name: string, limit: number): core.RateLimiter {
  return scope.track(core.rateLimit({ name, limit, redis: client(), prefix, settings, windowMs: 60_000 }));
}

/** Our keys on each master (SCAN per node): keys are spread over slots, so over masters. */
async function keysPerMaster(match: string): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  for (const node of client().nodes('master')) {
    const found: string[] = [];
    let cursor = '0';
    do {
      const [next, batch] = await node.scan(cursor, 'MATCH', `${match}*`, 'COUNT', 500);
      cursor = next;
      found.push(...batch);
    } while (cursor !== '0');
    out.set(`${node.options.host ?? ''}:${node.options.port ?? 0}`, found);
  }
  return out;
}

/** `perClient` parallel requests from each of `clients` addresses, alternating Express 4 and 5. */
async function fromClients(apps: readonly Express[], clients: number, perClient: number, base: number) {
  const sends = [];
  for (let c = 0; c < clients; c++) {
    for (let r = 0; r < perClient; r++) {
      const xff = `198.18.${Math.floor((base + c) / 250)}.${((base + c) % 250) + 1}`;
      sends.push(
        request(apps[(c + r) % apps.length] as Express)
          .get('/')
          .set('X-Forwarded-For', xff),
      );
    }
  }
  return Promise.all(sends);
}

it('is exact for one client under concurrency', async () => {
  const name = uniqueName('one');
  const limiter = clusterLimiter(name, 10);
  expect(limiter.stats().store).toBe('redis');
  const apps = EXPRESS.map((variant) => limitedApp(variant, limiter, true));
  const responses = await fromClients(apps, 1, 30, 0);
  expect(tally(responses)).toEqual({ 200: 10, 429: 20 });
  expect(limiter.stats()).toMatchObject({ limited: 20, fallback: 0, refused: 0 });
  expect(await client().get(`${prefix}${name}:ip:198.18.0.1`)).toBe('30');
});

it('is exact per client with keys spread over every master, and after SCRIPT FLUSH on all of them', async () => {
  const name = uniqueName('many');
  const limiter = clusterLimiter(name, 2);
  const apps = EXPRESS.map((variant) => limitedApp(variant, limiter, true));

  // 60 clients, 3 requests each, at once: 2 pass for each.
  const first = await fromClients(apps, 60, 3, 0);
  expect(tally(first)).toEqual({ 200: 120, 429: 60 });
  const spread = await keysPerMaster(`${prefix}${name}:`);
  expect([...spread.values()].reduce((sum, keys) => sum + keys.length, 0)).toBe(60);
  for (const [node, keys] of spread) expect({ node, some: keys.length > 0 }).toEqual({ node, some: true });

  // What a restart of every master does to the scripts.
  const flushed = await Promise.all(
    client()
      .nodes('master')
      .map((node) => node.script('FLUSH')),
  );
  expect(flushed).toEqual(['OK', 'OK', 'OK']);

  // The same 60 clients are over their budget; 60 new ones get exactly 2 each.
  const again = await fromClients(apps, 60, 1, 0);
  expect(tally(again)).toEqual({ 429: 60 });
  const fresh = await fromClients(apps, 60, 3, 1000);
  expect(tally(fresh)).toEqual({ 200: 120, 429: 60 });
  expect(limiter.stats()).toMatchObject({ limited: 180, fallback: 0, refused: 0 });
  const after = await keysPerMaster(`${prefix}${name}:`);
  expect([...after.values()].reduce((sum, keys) => sum + keys.length, 0)).toBe(120);
  expect(await client().get(`${prefix}${name}:ip:198.18.0.1`)).toBe('4');
});

it('leaves the application’s Cluster client open on close()', async () => {
  const limiter = clusterLimiter(uniqueName('close'), 5);
  expect((await request(limitedApp(EXPRESS[0]!, limiter)).get('/')).status).toBe(200);
  await limiter.close();
  expect(client().status).toBe('ready');
  expect(await client().set(`${prefix}probe`, '1')).toBe('OK');
});
