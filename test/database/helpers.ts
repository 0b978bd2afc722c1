/** Shared pieces of the database suites: per-worker URLs, silent and closed servers, waiting. */
import { createServer, type Server, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import * as core from '../../lib/index';
import { PG_URL } from '../support/services';

export const TEST_SETTINGS = core.loadSettings({ NODE_ENV: 'test' });

/** A PostgreSQL URL whose connections use `schema` (created beforehand by the fixture). */
export function pgUrl(schema: string, base = PG_URL): string {
  return `${base}?options=-c%20search_path%3D${schema}`;
}

/** A MariaDB URL for the worker's own database. */
export function mariaUrl(database: string, port = 3306): string {
  return `mysql://root@127.0.0.1:${port}/${database}`;
}

/** Every Database a test creates, closed after it. */
export function databases(): {
  create(options: core.DatabaseOptions): core.Database;
  closeAll(): Promise<void>;
} {
  const open: core.Database[] = [];
  return {
    create(options) {
      const db = core.createDatabase({ settings: TEST_SETTINGS, ...options });
      open.push(db);
      return db;
    },
    async closeAll() {
      await Promise.all(open.splice(0).map((db) => db.close()));
    },
  };
}

/** A TCP server that accepts connections and never says a word. */
export interface SilentServer {
  port: number;
  /** Connections it has accepted so far. */
  accepted(): number;
  close(): Promise<void>;
}

export async function silentServer(): Promise<SilentServer> {
  const sockets = new Set<Socket>();
  let accepted = 0;
  const server: Server = createServer((socket) => {
    accepted += 1;
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return {
    port: address.port,
    accepted: () => accepted,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => {
          resolve();
        });
      }),
  };
}

/** A port on 127.0.0.1 that nothing listens on (bound, then released). */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  await new Promise<void>((resolve) =>
    server.close(() => {
      resolve();
    }),
  );
  return address.port;
}

/** Poll `check` until it returns true or `timeoutMs` passes; returns the last answer. */
export async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs = 3000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() > deadline) return false;
    await sleep(20);
  }
}

/** A promise with its resolve function, to hold a transaction open until the test lets go. */
export function gate(): { promise: Promise<void>; open: () => void } {
  let open: () => void = () => undefined;
  const promise = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { promise, open };
}
