/** Acceptance test of examples/minimal on Express 4 and 5. */
import request from 'supertest';
import { loadSettings } from '../../lib/index';
import { createApp } from '../../examples/minimal/app';
import { EXPRESS } from '../support/express';
import { captureLogs, waitFor } from './support';

const settings = loadSettings({ NODE_ENV: 'test' });

describe.each(EXPRESS)('examples/minimal on $name', ({ express }) => {
  const setup = () => {
    const logs = captureLogs(settings);
    return { logs, app: createApp({ express, logger: logs.createLogger('minimal') }) };
  };

  test('GET / answers with the request id it echoes', async () => {
    const { app } = setup();
    const res = await request(app).get('/').set('X-Request-Id', 'min-1').expect(200);
    expect(res.headers['x-request-id']).toBe('min-1');
    expect(res.body).toEqual({ message: 'Hello from caduceus', request_id: 'min-1' });
  });

  test('an unknown route is a 404 envelope carrying the request id', async () => {
    const { app } = setup();
    const res = await request(app).get('/nowhere').expect(404);
    expect(res.body).toEqual({
      success: false,
      error: 'Route not found',
      error_code: 'NOT_FOUND',
      details: { request_id: res.headers['x-request-id'], method: 'GET' },
    });
  });

  test('the 404 is negotiated to problem+json when asked', async () => {
    const { app } = setup();
    const res = await request(app).get('/nowhere').set('Accept', 'application/problem+json').expect(404);
    expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(JSON.parse(res.text)).toMatchObject({ status: 404, code: 'NOT_FOUND' });
  });

  test('every request gets an access line with its request id', async () => {
    const { app, logs } = setup();
    const res = await request(app).get('/').expect(200);
    const line = await waitFor(() => logs.lines.find((l) => l.message === 'request completed'));
    expect(line).toMatchObject({
      method: 'GET',
      route: '/',
      status: 200,
      request_id: res.headers['x-request-id'],
    });
  });
});

test('the module exports a ready app (Express 5 by default)', async () => {
  // The exported app reads its settings from the environment when the module loads: keep it quiet.
  const level = process.env.LOG_LEVEL;
  process.env.LOG_LEVEL = 'error';
  try {
    let exported: unknown;
    jest.isolateModules(() => {
      exported = (require('../../examples/minimal/app') as typeof import('../../examples/minimal/app')).app;
    });
    const res = await request(exported as Parameters<typeof request>[0])
      .get('/')
      .expect(200);
    expect(res.body.message).toBe('Hello from caduceus');
  } finally {
    if (level === undefined) delete process.env.LOG_LEVEL;
    else process.env.LOG_LEVEL = level;
  }
});
