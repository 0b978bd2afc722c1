import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { loadSettings } from '../../lib/index';
import { createApp } from './app';

export interface Started {
  server: Server;
  url: string;
  apiPrefix: string;
}

/** Parse `PORT`: an integer from 0 (any free port) to 65535. Default 3000. */
export function portFrom(value: string | undefined): number {
  if (value === undefined || value === '') return 3000;
  const port = Number(value);
  if (!/^\d{1,5}$/.test(value) || port > 65535)
    throw new Error(`PORT must be an integer from 0 to 65535, got "${value}"`);
  return port;
}

/** Build the app from `env` and listen; resolves with the server and its URL once it accepts connections. */
export function start(env: Readonly<Record<string, string | undefined>> = process.env): Promise<Started> {
  const port = portFrom(env.PORT);
  const settings = loadSettings(env);
  const app = createApp({ settings });
  return new Promise((resolve, reject) => {
    const server = app.listen(port);
    server.once('error', reject);
    server.once('listening', () => {
      const { port: actual } = server.address() as AddressInfo;
      resolve({ server, url: `http://localhost:${actual}`, apiPrefix: settings.apiPrefix });
    });
  });
}

export function walkthrough(url: string, apiPrefix: string): string {
  const api = `${url}${apiPrefix}`;
  const json = "-H 'content-type: application/json'";
  return [
    `caduceus demo: patient-records service listening on ${url}`,
    '',
    'Try:',
    `  curl -i ${url}/health`,
    `  curl -i ${api}/patients?family_name=Okafor`,
    `  curl -i ${api}/patients/pat-1001`,
    `  curl -i ${api}/patients/pat-9999                  # 404 NOT_FOUND envelope`,
    `  curl -i ${api}/patients ${json} -d '{"mrn":"MRN-2001","given_name":"Lena","family_name":"Ortiz","birth_date":"1990-05-17"}'`,
    `  curl -i ${api}/patients ${json} -d '{"mrn":"MRN-1001","given_name":"Lena","family_name":"Ortiz","birth_date":"1990-05-17"}'   # 409 DUPLICATE`,
    `  curl -i ${api}/patients ${json} -d '{"mrn":"x","birth_date":"1990-02-31"}'   # 422 with field_errors`,
    `  curl -i ${api}/patients ${json} -d '{"mrn":'          # 400 INVALID_JSON`,
    `  curl -i ${api}/patients/pat-1001/lab-results       # 500 after an await; the log has the cause`,
    `  curl -i -H 'accept: application/problem+json' ${api}/patients/pat-9999`,
    `  curl -i -H 'accept: application/fhir+json' ${api}/patients/pat-9999`,
    '',
    'Send -H "x-request-id: my-id-1" to see your id echoed and in every log line. Ctrl-C stops.',
    '',
  ].join('\n');
}

async function main(): Promise<void> {
  let started: Started;
  try {
    started = await start(process.env);
  } catch (err) {
    // ConfigError lists every bad variable at once; print it without a stack.
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  }
  const { server, url, apiPrefix } = started;
  process.stdout.write(walkthrough(url, apiPrefix));

  const stop = (): void => {
    server.close(() => process.exit(0));
    server.closeIdleConnections();
    // In-flight requests get a few seconds; then leave anyway.
    setTimeout(() => process.exit(0), 5000).unref();
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

// Listen only when run directly (`npm run demo`); importing this file starts nothing.
if (require.main === module) void main();
