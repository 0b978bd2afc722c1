/**
 * A PostgreSQL schema or a MariaDB database of this jest worker's own, so suites run in parallel and
 * can repeat. Each fails with how to start the service when it is down.
 */
import mysql from 'mysql2/promise';
import { Pool } from 'pg';
import { PG_URL, requireService, workerSchema } from './services';

/** A PostgreSQL schema of this worker's own; `url` sets it as the search_path. */
export async function pgSchema(
  prefix: string,
): Promise<{ url: string; schema: string; drop(): Promise<void> }> {
  await requireService('PostgreSQL', '127.0.0.1', 5432);
  const schema = workerSchema(prefix);
  const admin = new Pool({ connectionString: PG_URL, max: 1 });
  try {
    await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE; CREATE SCHEMA ${schema}`);
  } finally {
    await admin.end();
  }
  return {
    schema,
    url: `${PG_URL}?options=-c%20search_path%3D${schema}`,
    async drop() {
      const pool = new Pool({ connectionString: PG_URL, max: 1 });
      try {
        await pool.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      } finally {
        await pool.end();
      }
    },
  };
}

/** A MariaDB database of this worker's own. */
export async function mariaDatabase(prefix: string): Promise<{ url: string; drop(): Promise<void> }> {
  await requireService('MariaDB', '127.0.0.1', 3306);
  const name = workerSchema(prefix);
  const admin = await mysql.createConnection({ host: '127.0.0.1', port: 3306, user: 'root' });
  try {
    await admin.query(`DROP DATABASE IF EXISTS ${name}`);
    await admin.query(`CREATE DATABASE ${name} CHARACTER SET utf8mb4`);
  } finally {
    await admin.end();
  }
  return {
    url: `mysql://root@127.0.0.1:3306/${name}`,
    async drop() {
      const conn = await mysql.createConnection({ host: '127.0.0.1', port: 3306, user: 'root' });
      try {
        await conn.query(`DROP DATABASE IF EXISTS ${name}`);
      } finally {
        await conn.end();
      }
    },
  };
}
