/**
 * A route that calls a dependency through a breaker, on Express 4 and 5: while the dependency fails
 * the clients get its errors; after the threshold they get 503 CIRCUIT_OPEN with Retry-After in the
 * error envelope, without the dependency being called; after recoveryTimeout one probe goes through
 * and the route recovers.
 */
import type { Express } from 'express';
import request from 'supertest';
import * as core from '../../lib/index';
import { eachExpress, type ExpressVariant } from '../support/express';
import { breakers, settings, silent, slowServer, type SlowServer } from './support';

const make = breakers();
let dependency: SlowServer | undefined;
let healthy = false;

afterEach(async () => {
  await make.closeAll();
  await dependency?.close();
  dependency = undefined;
});

function appWith(
  { express }: ExpressVariant,
  breaker: core.CircuitBreaker,
  url: string,
  format: core.ErrorsOptions['format'] = 'envelope',
): Express {
  const app = express();
  app.use(core.requestContext());
  app.get(
    '/patients/:id/labs',
    core.asyncHandler(async (req, res) => {
      const labs = await breaker.execute(async (signal) => {
        const answer = await fetch(`${url}?patient=${String(req.params.id)}`, { signal });
        if (!answer.ok)
          throw new core.ServiceUnavailableError('Lab results are unavailable', undefined, {
            details: { dependency: 'labs' },
          });
        return answer.json();
      });
      res.json(labs);
    }),
  );
  app.use(core.notFound());
  app.use(core.errors({ settings, logger: silent, format }));
  return app;
}

describe.each(eachExpress)('%s', (_label, variant) => {
  it('opens after the threshold: 503 CIRCUIT_OPEN with Retry-After; recovers after recoveryTimeout', async () => {
    healthy = false;
    dependency = await slowServer((_req, res) => {
      if (healthy)
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"results":["HbA1c 5.4%"]}');
      else res.writeHead(500).end();
    });
    const { breaker } = make({ name: 'labs', failureThreshold: 3, recoveryTimeout: 1000 });
    const app = appWith(variant, breaker, dependency.url);

    for (let i = 0; i < 3; i++) {
      const res = await request(app).get('/patients/p1/labs');
      expect(res.status).toBe(503);
      expect(res.body).toMatchObject({ error_code: 'SERVICE_UNAVAILABLE', details: { dependency: 'labs' } });
    }
    expect(dependency.received).toBe(3);

    const open = await request(app).get('/patients/p1/labs');
    expect(open.status).toBe(503);
    expect(open.headers['retry-after']).toBe('1');
    expect(open.headers['content-type']).toMatch(/^application\/json/);
    expect(open.body).toEqual({
      success: false,
      error: 'Service temporarily unavailable',
      error_code: 'CIRCUIT_OPEN',
      details: { service: 'labs', request_id: expect.any(String) },
    });
    expect(JSON.stringify(open.body)).not.toMatch(/stack|at .*\.ts/);
    expect(dependency.received).toBe(3); // refused without calling it

    healthy = true;
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect(breaker.state).toBe('half_open');
    const recovered = await request(app).get('/patients/p1/labs');
    expect(recovered.status).toBe(200);
    expect(recovered.body).toEqual({ results: ['HbA1c 5.4%'] });
    expect(breaker.state).toBe('closed');
    expect((await request(app).get('/patients/p2/labs')).status).toBe(200);
    expect(dependency.received).toBe(5);
  });

  it('problem+json clients get the same 503 as application/problem+json', async () => {
    dependency = await slowServer((_req, res) => {
      res.writeHead(500).end();
    });
    const { breaker } = make({ name: 'labs', failureThreshold: 1 });
    const app = appWith(variant, breaker, dependency.url, 'negotiate');
    await request(app).get('/patients/p1/labs');
    const res = await request(app).get('/patients/p1/labs').set('Accept', 'application/problem+json');
    expect(res.status).toBe(503);
    expect(res.headers['retry-after']).toBe('30');
    expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(res.body).toMatchObject({ status: 503, code: 'CIRCUIT_OPEN', service: 'labs' });
  });
});
