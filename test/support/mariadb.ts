/** A MariaDB database of this jest worker's own, dropped at the end. */
import mysql from 'mysql2/promise';
import { requireService, workerSchema } from './services';

export interface MariaFixture {
  conn: mysql.Connection;
  database: string;
  close(): Promise<void>;
}

export async function mariaFixture(prefix: string): Promise<MariaFixture> {
  await requireService('MariaDB', '127.0.0.1', 3306);
  const database = workerSchema(prefix);
  const admin = await mysql.createConnection({ host: '127.0.0.1', port: 3306, user: 'root' });
  await admin.query(`DROP DATABASE IF EXISTS ${database}`);
  await admin.query(`CREATE DATABASE ${database}`);
  await admin.end();
  const conn = await mysql.createConnection({ host: '127.0.0.1', port: 3306, user: 'root', database });
  return {
    conn,
    database,
    async close() {
      await conn.query(`DROP DATABASE IF EXISTS ${database}`);
      await conn.end();
    },
  };
}
