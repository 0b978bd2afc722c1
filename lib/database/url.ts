import type { Knex } from 'knex';
import { ConfigError } from '../errors/index.js';

export type Dialect = 'postgres' | 'mysql' | 'sqlite';

export interface Timeouts {
  connectTimeoutMs: number;
  statementTimeoutMs: number;
}

/** `sqlite:./data.db`, `sqlite:///abs/path.db`, `sqlite::memory:` → a better-sqlite3 filename. */
function sqliteFilename(url: string): string {
  const rest = url.slice('sqlite:'.length);
  if (rest === ':memory:' || rest === '//:memory:') return ':memory:';
  if (rest.startsWith('///')) return rest.slice(2);
  if (rest.startsWith('//')) return rest.slice(2);
  return rest;
}

export function dialectOf(url: string): Dialect {
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(url)?.[1]?.toLowerCase();
  switch (scheme) {
    case 'postgres':
    case 'postgresql':
      return 'postgres';
    case 'mysql':
    case 'mariadb':
      return 'mysql';
    case 'sqlite':
      return 'sqlite';
    default:
      throw ConfigError.option(
        'createDatabase',
        'url',
        'a postgres://, postgresql://, mysql://, mariadb:// or sqlite: URL',
        url,
      );
  }
}

/** Knex client + connection for a URL; the URL scheme picks the driver. */
export function connectionFor(
  url: string,
  t: Timeouts,
): { client: string; connection: Knex.StaticConnectionConfig | Record<string, unknown> } {
  const dialect = dialectOf(url);
  if (dialect === 'sqlite') {
    const filename = sqliteFilename(url);
    if (filename.length === 0)
      throw ConfigError.option('createDatabase', 'url', 'sqlite:<path> or sqlite::memory:', url);
    return { client: 'better-sqlite3', connection: { filename } };
  }
  if (!URL.canParse(url)) throw ConfigError.option('createDatabase', 'url', 'a parseable database URL', url);
  if (dialect === 'postgres') {
    return {
      client: 'pg',
      connection: {
        connectionString: url,
        connectionTimeoutMillis: t.connectTimeoutMs,
        statement_timeout: t.statementTimeoutMs,
        // The server-side timeout cannot help when the server is unreachable (a silent partition):
        // the client gives up shortly after it, and TCP keepalive notices dead peers in seconds.
        query_timeout: t.statementTimeoutMs > 0 ? t.statementTimeoutMs + 1000 : undefined,
        keepAlive: true,
        keepAliveInitialDelayMillis: 10_000,
        application_name: 'caduceus',
      },
    };
  }
  const u = new URL(url);
  return {
    client: 'mysql2',
    connection: {
      host: u.hostname,
      port: u.port === '' ? 3306 : Number(u.port),
      user: decodeURIComponent(u.username),
      password: decodeURIComponent(u.password),
      database: u.pathname.replace(/^\//, ''),
      connectTimeout: t.connectTimeoutMs,
      enableKeepAlive: true,
      supportBigNumbers: true,
      dateStrings: false,
    },
  };
}
