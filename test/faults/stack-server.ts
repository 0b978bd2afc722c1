/**
 * The example service's full stack (stack.ts) listening on a free loopback port in its own process,
 * for the fault and soak suites: a real process, so its 'uncaughtException' and
 * 'unhandledRejection' listeners are real (jest's process object is a copy), and its heap is the
 * server's alone. Started with `node --expose-gc --import tsx` and an IPC channel; env:
 * STACK_DATABASE_URL, STACK_REDIS_URL, STACK_REDIS_PREFIX.
 *
 * Messages (each answered with the same `id`): `flush` (the audit trail writes what it buffers),
 * `verify` (the audit chain), `heap` (heapUsed after a forced GC), `stop` (everything closed in
 * server.ts's order; answers with every uncaught exception and unhandled rejection seen, then the
 * process must exit by itself — a handle left open keeps it alive and fails the suite).
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { LogLevel } from '../../lib/index';
import { buildStack } from './stack';

const uncaught: string[] = [];
process.on('uncaughtException', (err) => {
  uncaught.push(`uncaughtException: ${err.stack ?? String(err)}`);
});
process.on('unhandledRejection', (reason) => {
  uncaught.push(
    `unhandledRejection: ${reason instanceof Error ? (reason.stack ?? reason.message) : String(reason)}`,
  );
});

export interface StackRequest {
  id: number;
  type: 'flush' | 'verify' | 'heap' | 'stop';
}

function env(name: string): string {
  const value = process.env[name];
  if (value === undefined || value === '') throw new Error(`${name} is required`);
  return value;
}

function send(message: unknown): void {
  process.send?.(message);
}

async function main(): Promise<void> {
  const stack = await buildStack({
    databaseUrl: env('STACK_DATABASE_URL'),
    redisUrl: env('STACK_REDIS_URL'),
    redisPrefix: env('STACK_REDIS_PREFIX'),
    logLevel: process.env.STACK_LOG_LEVEL as LogLevel | undefined,
  });
  const server = await new Promise<Server>((resolve, reject) => {
    const s = stack.app.listen(0, '127.0.0.1');
    s.once('error', reject);
    s.once('listening', () => {
      resolve(s);
    });
  });
  // Keep-alive connections of the load client stay open between its requests.
  server.keepAliveTimeout = 30_000;
  const gc = (globalThis as { gc?: () => void }).gc;

  const answer = async (msg: StackRequest): Promise<unknown> => {
    switch (msg.type) {
      case 'flush':
        await stack.trail.flush();
        return stack.trail.stats();
      case 'verify':
        return stack.trail.verify();
      case 'heap':
        if (gc === undefined) throw new Error('run with --expose-gc');
        gc();
        gc();
        return process.memoryUsage().heapUsed;
      case 'stop': {
        await new Promise<void>((resolve) => {
          server.close(() => {
            resolve();
          });
          server.closeAllConnections();
        });
        await stack.close();
        return { uncaught };
      }
    }
  };

  process.on('message', (msg: StackRequest) => {
    answer(msg).then(
      (value) => {
        send({ id: msg.id, ok: true, value });
        if (msg.type === 'stop') process.disconnect();
      },
      (err: unknown) => {
        send({ id: msg.id, ok: false, error: err instanceof Error ? err.message : String(err) });
      },
    );
  });
  send({
    id: 0,
    ok: true,
    value: {
      port: (server.address() as AddressInfo).port,
      bearer: stack.bearer,
      providerPatientId: stack.providerPatientId,
      login: stack.login,
      apiPrefix: stack.settings.apiPrefix,
    },
  });
}

main().catch((err: unknown) => {
  process.stderr.write(
    `stack server failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
  );
  process.exitCode = 1;
  process.disconnect();
});
