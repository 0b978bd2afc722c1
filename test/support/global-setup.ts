import { requireService } from './services';

/** Fail the whole run early, with the fix, when a service the suite needs is down. */
export default async function globalSetup(): Promise<void> {
  await requireService('PostgreSQL', '127.0.0.1', 5432);
  await requireService('Redis', '127.0.0.1', 6379);
  await requireService('MariaDB', '127.0.0.1', 3306);
}
