/**
 * A real, throwaway Redis Cluster for tests that must work with Redis Cluster: `masters` redis-server
 * processes on free loopback ports, each with its own config in a fresh temporary directory, joined
 * with CLUSTER MEET and given the 16384 slots evenly with CLUSTER ADDSLOTSRANGE (Redis 7). Every call
 * has its own ports and directory, so parallel jest workers do not meet. `stop()` kills the processes
 * and removes the directory; the processes are also killed when the worker exits.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Cluster, Redis } from 'ioredis';

export interface RedisClusterHandle {
  readonly nodes: readonly { host: string; port: number }[];
  stop(): Promise<void>;
}

const HOST = '127.0.0.1';
const SLOTS = 16384;
/** The cluster bus listens on the client port + 10000. */
const BUS_OFFSET = 10000;
const PING_TIMEOUT_MS = 10_000;
const FORM_TIMEOUT_MS = 15_000;
const KILL_GRACE_MS = 2000;
/** Tries per node when a port taken between the check and the bind (another worker) kills the server. */
const SPAWN_ATTEMPTS = 5;
/** The last bytes of a node's output kept for error messages. */
const OUTPUT_LIMIT = 4000;

/**
 * A watchdog per cluster: a shell reading node pids on its stdin. When the pipe closes without a
 * stop() — the worker exited, crashed or was killed, even with SIGKILL — it kills the nodes and
 * removes the directory. A process 'exit' listener cannot do that under jest: the `process` a test
 * module sees is a copy whose 'exit' event never fires.
 */
const WATCHDOG = `
dir=$1; pids=
while read -r pid; do pids="$pids $pid"; done
if [ -n "$pids" ]; then kill -KILL $pids 2>/dev/null; fi
rm -rf -- "$dir"
`;

interface Watchdog {
  watch(pid: number | undefined): void;
  /** Dismiss it (before a regular stop), so it never acts on pids that may be reused. */
  dismiss(): Promise<void>;
}

function startWatchdog(dir: string): Watchdog {
  const child = spawn('/bin/sh', ['-c', WATCHDOG, 'sh', dir], { stdio: ['pipe', 'ignore', 'ignore'] });
  // Best effort: without /bin/sh the process 'exit' hook (outside jest) and stop() remain.
  child.once('error', () => undefined);
  const { stdin } = child;
  stdin.on('error', () => undefined);
  // Neither the watchdog nor its pipe keeps the worker alive.
  child.unref();
  if (stdin instanceof Socket) stdin.unref();
  return {
    watch(pid) {
      if (pid !== undefined && stdin.writable) stdin.write(`${pid}\n`);
    },
    dismiss() {
      if (exited(child) || child.pid === undefined) return Promise.resolve();
      const gone = new Promise<void>((resolve) => {
        child.once('exit', () => {
          resolve();
        });
      });
      child.kill('SIGKILL');
      return gone;
    },
  };
}

/** Processes still running and directories still on disk, for the process 'exit' hook (outside jest). */
const liveChildren = new Set<ChildProcess>();
const liveDirs = new Set<string>();
/** Client and bus ports this process has handed to a node not stopped yet. */
const reservedPorts = new Set<number>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // 'exit' listeners must be synchronous: SIGKILL needs no wait, rmSync is allowed.
  process.on('exit', () => {
    for (const child of liveChildren) child.kill('SIGKILL');
    for (const dir of liveDirs) {
      try {
        rmSync(dir, { recursive: true, force: true });
      } catch {
        // Best effort while the process goes away.
      }
    }
  });
}

function findRedisServer(): string {
  const candidates = [
    '/usr/bin/redis-server',
    ...(process.env.PATH ?? '')
      .split(delimiter)
      .filter((dir) => dir !== '')
      .map((dir) => join(dir, 'redis-server')),
  ];
  for (const candidate of candidates) {
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // Not here; try the next one.
    }
  }
  throw new Error(
    'redis-server (Redis >= 7.0) was not found at /usr/bin/redis-server nor on PATH; the Redis Cluster ' +
      'tests start their own. Install it with: apt-get install -y redis-server',
  );
}

/** Whether `port` can be bound on the loopback address now; with port 0, the port the OS picked. */
function bindable(port: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once('error', () => {
      resolve(undefined);
    });
    server.listen({ port, host: HOST, exclusive: true }, () => {
      const address = server.address();
      const bound = address !== null && typeof address !== 'string' ? address.port : undefined;
      server.close(() => {
        resolve(bound);
      });
    });
  });
}

/** A free client port whose bus port (+10000) is free too, reserved in this process until released. */
async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 100; attempt += 1) {
    const port = await bindable(0);
    if (port === undefined || port + BUS_OFFSET > 65535) continue;
    if ((await bindable(port + BUS_OFFSET)) === undefined) continue;
    // Checked after the awaits: another node of this process may have taken it in the meantime.
    if (reservedPorts.has(port) || reservedPorts.has(port + BUS_OFFSET)) continue;
    reservedPorts.add(port);
    reservedPorts.add(port + BUS_OFFSET);
    return port;
  }
  throw new Error('no free loopback port with a free cluster bus port (+10000) after 100 tries');
}

function releasePort(port: number): void {
  reservedPorts.delete(port);
  reservedPorts.delete(port + BUS_OFFSET);
}

interface Node {
  readonly port: number;
  readonly child: ChildProcess;
  /** stdout and stderr (redis-server logs to stdout), the last OUTPUT_LIMIT characters. */
  output(): string;
}

function exited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

function spawnNode(bin: string, port: number, dir: string): Node {
  const child = spawn(
    bin,
    [
      '--port',
      String(port),
      '--bind',
      HOST,
      '--cluster-enabled',
      'yes',
      '--cluster-config-file',
      join(dir, `nodes-${port}.conf`),
      // Without it a node learns its own address only from a peer, and a lone master would list
      // itself with an empty host in CLUSTER SLOTS (which ioredis skips: its slots would have no node).
      '--cluster-announce-ip',
      HOST,
      '--dir',
      dir,
      '--save',
      '',
      '--appendonly',
      'no',
      '--protected-mode',
      'no',
      '--cluster-node-timeout',
      '2000',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  liveChildren.add(child);
  child.once('exit', () => liveChildren.delete(child));
  // A spawn failure arrives as 'error'; without a listener it would crash the worker.
  let spawnError = '';
  child.once('error', (error) => {
    liveChildren.delete(child);
    spawnError = `spawn failed: ${error.message}\n`;
  });
  let output = '';
  const collect = (chunk: Buffer): void => {
    output = (output + chunk.toString('utf8')).slice(-OUTPUT_LIMIT);
  };
  child.stdout.on('data', collect);
  child.stderr.on('data', collect);
  // A test that forgets stop() must not keep the worker alive: once it exits, the watchdog (or the
  // 'exit' hook) kills the process.
  child.unref();
  for (const stream of [child.stdout, child.stderr]) {
    if (stream instanceof Socket) stream.unref();
  }
  return { port, child, output: () => spawnError + output };
}

function client(port: number): Redis {
  return new Redis({
    host: HOST,
    port,
    lazyConnect: true,
    connectTimeout: 1000,
    commandTimeout: 2000,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    enableOfflineQueue: false,
  }).on('error', () => undefined);
}

async function closeClient(redis: Redis): Promise<void> {
  try {
    await redis.quit();
  } catch {
    redis.disconnect();
  }
}

/** Poll PING until the node answers; 'crashed' when the process is gone (e.g. a port already taken). */
async function waitForPing(node: Node, deadline: number): Promise<'ready' | 'crashed'> {
  let lastError = 'no attempt';
  while (Date.now() < deadline) {
    if (exited(node.child)) return 'crashed';
    const redis = client(node.port);
    try {
      await redis.connect();
      await redis.ping();
      return 'ready';
    } catch (error) {
      lastError = error instanceof Error ? error.message : String(error);
    } finally {
      redis.disconnect();
    }
    await sleep(50);
  }
  if (exited(node.child)) return 'crashed';
  throw new Error(
    `redis-server on ${HOST}:${node.port} did not answer PING within ${PING_TIMEOUT_MS} ms ` +
      `(last error: ${lastError}). Its output:\n${node.output()}`,
  );
}

function stopChild(child: ChildProcess): Promise<void> {
  if (exited(child) || child.pid === undefined) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
    }, KILL_GRACE_MS);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

/** Start a node on a free port, on another one when the port was taken in between (parallel workers). */
async function startNode(bin: string, dir: string, spawned: (node: Node) => void): Promise<Node> {
  const deadline = Date.now() + PING_TIMEOUT_MS;
  let output = '';
  for (let attempt = 1; attempt <= SPAWN_ATTEMPTS; attempt += 1) {
    const node = spawnNode(bin, await freePort(), dir);
    spawned(node);
    if ((await waitForPing(node, deadline)) === 'ready') return node;
    output = node.output();
    if (!output.includes('Address already in use')) break;
  }
  throw new Error(`redis-server exited before answering PING. Its output:\n${output}`);
}

function parseInfo(info: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const line of info.split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon > 0) fields.set(line.slice(0, colon), line.slice(colon + 1).trim());
  }
  return fields;
}

/** CLUSTER SLOTS as `port -> slots served`, for masters with a usable host only. */
function slotsByMaster(reply: unknown): Map<number, number> {
  const served = new Map<number, number>();
  if (!Array.isArray(reply)) return served;
  for (const range of reply as unknown[]) {
    if (!Array.isArray(range)) continue;
    const [start, end, master] = range as unknown[];
    if (typeof start !== 'number' || typeof end !== 'number' || !Array.isArray(master)) continue;
    const [host, port] = master as unknown[];
    if (host !== HOST || typeof port !== 'number') continue;
    served.set(port, (served.get(port) ?? 0) + end - start + 1);
  }
  return served;
}

/** What is not ready yet on one node, or undefined when it is. */
async function notReady(redis: Redis, ports: readonly number[]): Promise<string | undefined> {
  const info = parseInfo(String(await redis.call('CLUSTER', 'INFO')));
  if (info.get('cluster_state') !== 'ok') return `cluster_state:${info.get('cluster_state') ?? '?'}`;
  if (info.get('cluster_known_nodes') !== String(ports.length)) {
    return `cluster_known_nodes:${info.get('cluster_known_nodes') ?? '?'}`;
  }
  const served = slotsByMaster(await redis.call('CLUSTER', 'SLOTS'));
  const total = [...served.values()].reduce((sum, count) => sum + count, 0);
  if (total !== SLOTS || ports.some((port) => !served.has(port))) {
    return `CLUSTER SLOTS lists ${total} slots on masters ${[...served.keys()].join(', ')}`;
  }
  return undefined;
}

/** One key per master (found with CLUSTER KEYSLOT), so the check below crosses every node. */
async function keyPerMaster(redis: Redis, ranges: readonly (readonly [number, number])[]): Promise<string[]> {
  const keys: (string | undefined)[] = ranges.map(() => undefined);
  for (let i = 0; keys.includes(undefined); i += 1) {
    if (i > 100_000) throw new Error('no key found for every master');
    const key = `redis-cluster:probe:${i}`;
    const slot = Number(await redis.call('CLUSTER', 'KEYSLOT', key));
    const owner = ranges.findIndex(([start, end]) => slot >= start && slot <= end);
    if (owner >= 0 && keys[owner] === undefined) keys[owner] = key;
  }
  return keys.filter((key): key is string => key !== undefined);
}

/** The slots of master `i` of `count`: an even split of 0..16383, as one inclusive range. */
function slotRange(i: number, count: number): readonly [number, number] {
  return [Math.floor((i * SLOTS) / count), Math.floor(((i + 1) * SLOTS) / count) - 1];
}

async function form(nodes: readonly Node[]): Promise<void> {
  const ports = nodes.map((node) => node.port);
  const clients = ports.map(client);
  try {
    await Promise.all(clients.map((redis) => redis.connect()));
    const [first, ...others] = clients;
    if (first === undefined || ports[0] === undefined) throw new Error('a cluster needs a node');
    const firstPort = ports[0];
    await Promise.all(others.map((redis) => redis.call('CLUSTER', 'MEET', HOST, firstPort)));

    const ranges = clients.map((_, i) => slotRange(i, clients.length));
    await Promise.all(
      clients.map(async (redis, i) => {
        const [start, end] = slotRange(i, clients.length);
        try {
          await redis.call('CLUSTER', 'ADDSLOTSRANGE', start, end);
        } catch (error) {
          const message = error instanceof Error ? error.message : String(error);
          throw new Error(`CLUSTER ADDSLOTSRANGE ${start} ${end} failed (it needs Redis >= 7.0): ${message}`);
        }
      }),
    );

    const deadline = Date.now() + FORM_TIMEOUT_MS;
    for (;;) {
      const pending = (await Promise.all(clients.map((redis) => notReady(redis, ports))))
        .map((reason, i) => (reason === undefined ? undefined : `${HOST}:${ports[i] ?? '?'} ${reason}`))
        .filter((reason) => reason !== undefined);
      if (pending.length === 0) break;
      if (Date.now() > deadline) {
        throw new Error(`the Redis Cluster did not form within ${FORM_TIMEOUT_MS} ms: ${pending.join('; ')}`);
      }
      await sleep(100);
    }

    // The proof a test relies on: an ioredis Cluster client reaches every master through the slot map.
    const keys = await keyPerMaster(first, ranges);
    const cluster = new Cluster(
      ports.map((port) => ({ host: HOST, port })),
      { clusterRetryStrategy: () => null, redisOptions: { connectTimeout: 1000, commandTimeout: 2000 } },
    ).on('error', () => undefined);
    try {
      for (const key of keys) {
        await cluster.set(key, key);
        if ((await cluster.get(key)) !== key) throw new Error(`GET ${key} through the cluster client failed`);
      }
      // Each key must sit on the master that owns its slot, not wherever the client happened to write.
      await Promise.all(
        keys.map(async (key, i) => {
          if ((await clients[i]?.get(key)) !== key) {
            throw new Error(`${key} is not on ${HOST}:${ports[i] ?? '?'}`);
          }
        }),
      );
      for (const key of keys) await cluster.del(key);
    } finally {
      await cluster.quit().catch(() => {
        cluster.disconnect();
      });
    }
  } finally {
    await Promise.all(clients.map(closeClient));
  }
}

/**
 * Start a Redis Cluster of `masters` masters (no replicas) on loopback, ready for an ioredis
 * `new Cluster(handle.nodes)`. Call `stop()` when done (afterAll); it is idempotent.
 */
export async function startRedisCluster(options: { masters?: number } = {}): Promise<RedisClusterHandle> {
  const masters = options.masters ?? 3;
  if (!Number.isInteger(masters) || masters < 1 || masters > SLOTS) {
    throw new Error(`masters must be an integer from 1 to ${SLOTS}, not ${masters}`);
  }
  const bin = findRedisServer();
  installExitHook();
  const dir = await mkdtemp(join(tmpdir(), 'caduceus-redis-cluster-'));
  liveDirs.add(dir);
  const watchdog = startWatchdog(dir);
  // Every node spawned, including ones that crashed on a taken port, so stop() can clean them all.
  const spawned: Node[] = [];

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      await watchdog.dismiss();
      await Promise.all(spawned.map((node) => stopChild(node.child)));
      for (const node of spawned) releasePort(node.port);
      await rm(dir, { recursive: true, force: true });
      liveDirs.delete(dir);
    })();
    return stopping;
  };

  try {
    // allSettled, not all: a node still starting when another failed must be in `spawned` before stop().
    const started = await Promise.allSettled(
      Array.from({ length: masters }, () =>
        startNode(bin, dir, (node) => {
          spawned.push(node);
          watchdog.watch(node.child.pid);
        }),
      ),
    );
    const nodes: Node[] = [];
    for (const result of started) {
      if (result.status === 'rejected') throw result.reason;
      nodes.push(result.value);
    }
    await form(nodes);
    return {
      nodes: Object.freeze(nodes.map((node) => Object.freeze({ host: HOST, port: node.port }))),
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}
