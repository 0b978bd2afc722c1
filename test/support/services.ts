/**
 * Real services for integration tests. Each jest worker gets its own PostgreSQL schema, Redis key
 * prefix and MariaDB database so suites run in parallel and can repeat. When a service is down the
 * test fails with how to start it — it never skips.
 */
import { Socket } from 'node:net';

export const PG_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

const START: Record<string, string> = {
  PostgreSQL: 'pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start',
  Redis: 'redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no',
  MariaDB: 'start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd',
};

function reachable(host: string, port: number, timeoutMs = 1500): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = new Socket();
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => {
      done(false);
    });
    socket.once('error', () => {
      done(false);
    });
    socket.connect(port, host, () => {
      done(true);
    });
  });
}

/** Throws a clear "start X at host:port with …" error when the service is not listening. */
export async function requireService(
  name: 'PostgreSQL' | 'Redis' | 'MariaDB',
  host: string,
  port: number,
): Promise<void> {
  if (!(await reachable(host, port))) {
    throw new Error(
      `${name} is not reachable at ${host}:${port}. Start it with: ${START[name] ?? `your ${name} service`}`,
    );
  }
}

/** A schema name unique to this jest worker (and run), e.g. `t_3_kq2x`. */
export function workerSchema(prefix = 't'): string {
  const worker = process.env.JEST_WORKER_ID ?? '0';
  return `${prefix}_${worker}_${process.pid.toString(36)}`;
}
