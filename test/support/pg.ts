/** A pg Pool on a schema of this jest worker's own, dropped at the end. */
import { Pool } from 'pg';
import { PG_URL, requireService, workerSchema } from './services';

export interface PgFixture {
  pool: Pool;
  schema: string;
  close(): Promise<void>;
}

export async function pgFixture(prefix: string): Promise<PgFixture> {
  await requireService('PostgreSQL', '127.0.0.1', 5432);
  const schema = workerSchema(prefix);
  const admin = new Pool({ connectionString: PG_URL, max: 1 });
  await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE; CREATE SCHEMA ${schema}`);
  await admin.end();
  const pool = new Pool({ connectionString: PG_URL, max: 4, options: `-c search_path=${schema}` });
  return {
    pool,
    schema,
    async close() {
      await pool.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      await pool.end();
    },
  };
}
