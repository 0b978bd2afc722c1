/**
 * Child processes of a run: one server per variant and round, one load generator per recording.
 * Both go through the same `node --require tsx/cjs` loader, so TypeScript compilation costs every
 * variant the same (and only at start-up: tsx compiles a file once, when it is first required).
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { LoadResult, LoadSpec } from '../load.js';

const TSX_CJS = require.resolve('tsx/cjs');
const LOAD_SCRIPT = join(__dirname, '..', 'load.ts');

/** CPUs a child is pinned to with taskset, or undefined to leave scheduling to the kernel. */
export type Pin = string | undefined;

function command(pin: Pin, nodeArgs: readonly string[], script: string): [string, string[]] {
  const node = [process.execPath, '--require', TSX_CJS, ...nodeArgs, script];
  return pin === undefined ? [node[0]!, node.slice(1)] : ['taskset', ['-c', pin, ...node]];
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      probe.close(() => {
        resolve(port);
      });
    });
  });
}

export interface ServerInfo {
  port: number;
  pid: number;
  description: string;
}

export interface RunningServer {
  info: ServerInfo;
  url: string;
  child: ChildProcess;
  /** Lines the server printed on stdout after READY (PROFILING, STATS, …). */
  waitFor(prefix: string, timeoutMs: number): Promise<string>;
  /** SIGTERM, wait for the exit, return the server's STATS. */
  stop(): Promise<Record<string, unknown>>;
}

export interface ServerLaunch {
  script: string;
  pin: Pin;
  nodeArgs?: readonly string[];
  env?: Readonly<Record<string, string>>;
  /** Keep stdin open (profile mode sends commands on it). */
  stdin?: boolean;
}

export async function startServer(launch: ServerLaunch): Promise<RunningServer> {
  const port = await freePort();
  const [cmd, args] = command(launch.pin, launch.nodeArgs ?? [], launch.script);
  const child = spawn(cmd, args, {
    env: { ...process.env, ...launch.env, NODE_ENV: 'production', PORT: String(port) },
    stdio: [launch.stdin === true ? 'pipe' : 'ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-4000);
  });
  const seen: string[] = [];
  const waiters: { prefix: string; resolve: (line: string) => void }[] = [];
  createInterface({ input: child.stdout! }).on('line', (line) => {
    const index = waiters.findIndex((w) => line.startsWith(w.prefix));
    if (index === -1) {
      seen.push(line);
      return;
    }
    const [waiter] = waiters.splice(index, 1);
    waiter!.resolve(line);
  });
  // 'close', not 'exit': it comes after stdout is drained, so a last STATS line is never lost.
  const exited = new Promise<number | null>((resolve) => child.once('close', resolve));

  const waitFor = (prefix: string, timeoutMs: number): Promise<string> => {
    const earlier = seen.findIndex((l) => l.startsWith(prefix));
    if (earlier !== -1) return Promise.resolve(seen.splice(earlier, 1)[0]!);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`${launch.script}: no ${prefix} line within ${timeoutMs} ms\n${stderr}`));
      }, timeoutMs);
      void exited.then((code) => {
        clearTimeout(timer);
        reject(
          new Error(`${launch.script} exited (code ${String(code)}) before printing ${prefix}\n${stderr}`),
        );
      });
      waiters.push({
        prefix,
        resolve: (line) => {
          clearTimeout(timer);
          resolve(line);
        },
      });
    });
  };

  const ready = await waitFor('READY ', 30_000);
  const info = JSON.parse(ready.slice('READY '.length)) as ServerInfo;
  return {
    info,
    url: `http://127.0.0.1:${port}`,
    child,
    waitFor,
    async stop() {
      const stats = waitFor('STATS ', 30_000).catch(() => 'STATS {}');
      child.kill('SIGTERM');
      const kill = setTimeout(() => child.kill('SIGKILL'), 30_000);
      const line = await stats;
      await exited;
      clearTimeout(kill);
      return JSON.parse(line.slice('STATS '.length)) as Record<string, unknown>;
    },
  };
}

export interface LoadHooks {
  /** The recorded window starts (after the warm-up). */
  onMeasure?: () => void;
  /** The recorded window ended (the result line arrived). */
  onResult?: () => void;
}

/** Runs the load generator (bench/load.ts) in its own process and returns its result. */
export function runLoad(spec: LoadSpec, pin: Pin, hooks: LoadHooks = {}): Promise<LoadResult> {
  const [cmd, args] = command(pin, [], LOAD_SCRIPT);
  const child = spawn(cmd, args, {
    env: { ...process.env, NODE_ENV: 'production', BENCH_LOAD: JSON.stringify(spec) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let result: LoadResult | undefined;
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  createInterface({ input: child.stdout }).on('line', (line) => {
    if (line === 'MEASURE') hooks.onMeasure?.();
    else if (line.startsWith('{')) {
      hooks.onResult?.();
      result = JSON.parse(line) as LoadResult;
    } else stderr += `${line}\n`;
  });
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => {
      if (code !== 0 || result === undefined)
        reject(new Error(`load generator failed (exit ${String(code)}): ${stderr}`));
      else resolve(result);
    });
  });
}
