/**
 * Bans shared through an application's ioredis Cluster client, on a throwaway 3-master Redis
 * Cluster (test/support/redis-cluster.ts): the violation script touches two keys, which share a
 * hash tag, so it runs on a cluster; the ban is published to the other instance and loaded by one
 * started later.
 */
import { Cluster } from 'ioredis';
import request from 'supertest';
import * as core from '../../lib/index';
import { EXPRESS } from '../support/express';
import { startRedisCluster, type RedisClusterHandle } from '../support/redis-cluster';
import { banPrefix, expectBanned, PROBE_PATH, secureApp, settings, silent } from './support';

let handle: RedisClusterHandle | undefined;
const clients: Cluster[] = [];
const guards: core.SecurityMiddleware[] = [];

function cluster(): Cluster {
  if (handle === undefined) throw new Error('the Redis Cluster did not start (see beforeAll)');
  const client = new Cluster(handle.nodes.map((n) => ({ host: n.host, port: n.port })));
  client.on('error', () => undefined);
  clients.push(client);
  return client;
}

beforeAll(async () => {
  handle = await startRedisCluster({ masters: 3 });
}, 30_000);

afterAll(async () => {
  await Promise.all(guards.map((g) => g.close()));
  for (const c of clients) c.disconnect();
  await handle?.stop();
}, 15_000);

test.each(EXPRESS.map((v) => [v.name, v] as const))(
  '%s: a ban made on one instance reaches the other and one started later',
  async (_name, variant) => {
    const prefix = banPrefix('cluster');
    const guard = () => {
      const g = core.security({
        settings,
        logger: silent,
        cors: false,
        threats: { redis: cluster(), prefix, ban: { threshold: 3, windowMs: 60_000, durationMs: 60_000 } },
      });
      guards.push(g);
      return g;
    };
    const a = secureApp(variant, guard(), { trustProxy: true });
    const b = secureApp(variant, guard(), { trustProxy: true });
    // Let both subscribers connect before the ban is published.
    await new Promise((resolve) => setTimeout(resolve, 500));
    const ip = '198.51.100.77';
    for (let i = 0; i < 3; i++)
      expect((await request(a).get(PROBE_PATH).set('X-Forwarded-For', ip)).status).toBe(403);
    await expectBanned(a, ip, 2_000);
    await expectBanned(b, ip, 2_000);
    const late = secureApp(variant, guard(), { trustProxy: true });
    await expectBanned(late, ip, 3_000);
    // Another client is not affected anywhere.
    expect((await request(b).get('/api/v1/patients').set('X-Forwarded-For', '198.51.100.78')).status).toBe(
      200,
    );
  },
  20_000,
);
