/**
 * The variants of `npm run bench -- --suite metrics`: RED metrics on `GET /patients/:id`, with
 * express-prom-bundle wired as its README shows it against caduceus' `metrics()` (alone, and after
 * `requestContext()` as the recommended pipeline starts). Every app also serves its registry at
 * `/metrics` (not scraped while recording); on shutdown each scrapes it once and reports how many
 * requests the patient route's series counted, so the report can check that none went missing.
 */
import express from 'express';
import type { Express } from 'express';
import promBundle from 'express-prom-bundle';
import { createServer } from 'node:http';
import { Registry } from 'prom-client';
import { loadCaduceus } from '../support/caduceus.js';
import { getPatient, PATIENT_PATH } from '../support/patient.js';
import { serve } from '../support/serve.js';

/** The series that counts the patient route's 200s, in each library's names and labels. */
interface CountedSeries {
  name: string;
  labels: Readonly<Record<string, string>>;
}

/** Label pairs of one sample line of the Prometheus text format. */
function labelsOf(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of text.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) out.set(m[1]!, m[2]!);
  return out;
}

/** Sum of the samples of `series.name` whose labels include every pair of `series.labels`. */
export function countOf(exposition: string, series: CountedSeries): number | undefined {
  let total: number | undefined;
  for (const line of exposition.split('\n')) {
    if (!line.startsWith(`${series.name}{`)) continue;
    const close = line.lastIndexOf('}');
    const labels = labelsOf(line.slice(series.name.length + 1, close));
    if (Object.entries(series.labels).every(([k, v]) => labels.get(k) === v))
      total =
        (total ?? 0) +
        Number(
          line
            .slice(close + 1)
            .trim()
            .split(' ')[0],
        );
  }
  return total;
}

/**
 * Scrapes the app's `/metrics` once, through a listener of its own (the benchmark's server is
 * already closed when `shutdown` runs), and returns what goes into the variant's STATS.
 */
async function scrape(app: Express, series: CountedSeries): Promise<Record<string, unknown>> {
  const server = createServer(app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  try {
    const res = await fetch(`http://127.0.0.1:${port}/metrics`);
    const body = await res.text();
    if (res.status !== 200)
      return { metricsError: `GET /metrics answered ${res.status}: ${body.slice(0, 200)}` };
    const counted = countOf(body, series);
    return counted === undefined
      ? { metricsError: `no ${series.name} sample with ${JSON.stringify(series.labels)} in /metrics` }
      : { metricsCounted: counted, metricsSeries: `${series.name}${JSON.stringify(series.labels)}` };
  } catch (err) {
    return { metricsError: `GET /metrics failed: ${String(err)}` };
  } finally {
    await new Promise<void>((resolve) => {
      server.close(() => {
        resolve();
      });
      server.closeAllConnections();
    });
  }
}

/** express-prom-bundle as its README wires it for per-path metrics; its own registry; `/metrics` served by the bundle. */
export function servePromBundle(): void {
  const app = express();
  app.use(
    promBundle({
      includeMethod: true,
      includePath: true,
      includeStatusCode: true,
      promRegistry: new Registry(),
    }),
  );
  app.get(PATIENT_PATH, getPatient);
  serve(app, {
    description: 'Express 5 + express-prom-bundle (method, path, status code; own registry; /metrics)',
    shutdown: () =>
      scrape(app, {
        name: 'http_request_duration_seconds_count',
        // normalizePath (the default) turns /patients/4242 into /patients/#val.
        labels: { method: 'GET', path: '/patients/#val', status_code: '200' },
      }),
  });
}

/** caduceus' `metrics()` (optionally after `requestContext()`), and `metricsEndpoint()` at `/metrics`. */
export function serveCaduceus(withContext: boolean): void {
  const core = loadCaduceus();
  // Settings of their own: a METRICS_TOKEN or ENABLE_METRICS in the caller's environment changes nothing.
  const settings = core.loadSettings({});
  const metrics = core.createMetrics({ app: 'bench', settings });
  const app = express();
  if (withContext) app.use(core.requestContext());
  app.use(core.metrics({ metrics, settings }));
  app.get('/metrics', core.metricsEndpoint({ metrics, settings }));
  app.get(PATIENT_PATH, getPatient);
  serve(app, {
    description: `Express 5 + caduceus ${withContext ? 'requestContext() + ' : ''}metrics(), metricsEndpoint() at /metrics`,
    shutdown: () =>
      scrape(app, {
        name: 'http_requests_total',
        labels: { method: 'GET', route: PATIENT_PATH, status_code: '200' },
      }),
  });
}
