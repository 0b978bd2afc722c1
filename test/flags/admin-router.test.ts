/**
 * flags.adminRouter() on Express 4 and 5: 401 without a user, 403 without an allowed role (from
 * req.user or the request context), list / read / create (201) / replace (200) / delete (204),
 * 400 for invalid bodies, names and JSON, 404 for missing flags, 503 while Redis is down — every
 * error in the caduceus envelope through errors(), every change logged with who made it.
 */
import type { Express, NextFunction, Request, Response } from 'express';
import request from 'supertest';
import * as core from '../../lib/index';
import { eachExpress, type ExpressVariant } from '../support/express';
import { captureLogger, type CapturedLogger } from '../support/logs';
import { memoryFlags, redisScope, settings } from './support';

const scope = redisScope('admin');

/** `x-test-user: id:role1,role2` becomes req.user, as authenticate() would set it. */
function testUser(req: Request, _res: Response, next: NextFunction): void {
  const header = req.headers['x-test-user'];
  if (typeof header === 'string') {
    const [id = '', roles = ''] = header.split(':');
    const list = roles === '' ? [] : roles.split(',');
    req.user = { id, email: undefined, roles: list, scopes: [], claims: {}, via: 'token' };
    core.setUser(id, list, req);
  }
  next();
}

/** `x-context-user` sets only the request context (an authentication of the application's own). */
function contextUser(req: Request, _res: Response, next: NextFunction): void {
  const header = req.headers['x-context-user'];
  if (typeof header === 'string') {
    const [id = '', roles = ''] = header.split(':');
    core.setUser(id, roles === '' ? [] : roles.split(','), req);
  }
  next();
}

function adminApp(
  variant: ExpressVariant,
  flags: core.FeatureFlags,
  options?: core.AdminRouterOptions,
): Express {
  const app = variant.express();
  app.use(core.requestContext(), testUser, contextUser);
  app.use('/admin/flags', flags.adminRouter(options));
  app.use(core.notFound(), core.errors({ settings, logger: captureLogger('errors').logger, metrics: false }));
  return app;
}

const ADMIN = 'root:admin';

function expectEnvelope(res: request.Response, status: number, code: string): Record<string, unknown> {
  expect(res.status).toBe(status);
  const body = res.body as {
    success: boolean;
    error_code: string;
    error: string;
    details: Record<string, unknown>;
  };
  expect(body.success).toBe(false);
  expect(body.error_code).toBe(code);
  expect(typeof body.error).toBe('string');
  expect(body.details.request_id).toBe(res.headers['x-request-id']);
  return body.details;
}

describe.each(eachExpress)('%s', (_name, variant) => {
  let log: CapturedLogger;
  let flags: core.FeatureFlags;
  let app: Express;

  beforeEach(() => {
    log = captureLogger('flags');
    flags = memoryFlags({ logger: log.logger, flags: { beta: { enabled: true, roles: ['provider'] } } });
    app = adminApp(variant, flags);
  });

  it('401 without a user, 403 without the admin role', async () => {
    expectEnvelope(await request(app).get('/admin/flags'), 401, 'UNAUTHORIZED');
    expectEnvelope(await request(app).put('/admin/flags/beta').send({ enabled: false }), 401, 'UNAUTHORIZED');
    expectEnvelope(
      await request(app).get('/admin/flags').set('x-test-user', 'bob:provider'),
      403,
      'FORBIDDEN',
    );
    expectEnvelope(
      await request(app).delete('/admin/flags/beta').set('x-test-user', 'bob:provider'),
      403,
      'FORBIDDEN',
    );
    expect(flags.getFlag('beta')).toBeDefined();
  });

  it('reads the user from the request context when there is no req.user', async () => {
    const res = await request(app).get('/admin/flags').set('x-context-user', 'root:admin');
    expect(res.status).toBe(200);
    expectEnvelope(
      await request(app).get('/admin/flags').set('x-context-user', 'bob:provider'),
      403,
      'FORBIDDEN',
    );
  });

  it('lists and reads flags', async () => {
    await flags.setFlag('alpha', { enabled: false, description: 'first' });
    const list = await request(app).get('/admin/flags').set('x-test-user', ADMIN);
    expect(list.status).toBe(200);
    expect(list.body).toEqual({
      success: true,
      data: [
        { name: 'alpha', enabled: false, description: 'first' },
        { name: 'beta', enabled: true, roles: ['provider'] },
      ],
    });
    const one = await request(app).get('/admin/flags/beta').set('x-test-user', ADMIN);
    expect(one.status).toBe(200);
    expect(one.body).toEqual({ success: true, data: { name: 'beta', enabled: true, roles: ['provider'] } });
    const details = expectEnvelope(
      await request(app).get('/admin/flags/missing').set('x-test-user', ADMIN),
      404,
      'NOT_FOUND',
    );
    expect(details).toMatchObject({ resource_type: 'Feature flag', resource_id: 'missing' });
  });

  it('PUT creates (201) and replaces (200); the flag applies at once; changes are logged with the user', async () => {
    const created = await request(app)
      .put('/admin/flags/new-ui')
      .set('x-test-user', ADMIN)
      .send({ enabled: true, percentage: 100, startsAt: 0 });
    expect(created.status).toBe(201);
    expect(created.body).toEqual({
      success: true,
      data: { name: 'new-ui', enabled: true, percentage: 100, startsAt: '1970-01-01T00:00:00.000Z' },
    });
    expect(flags.isEnabled('new-ui', { userId: 'anyone' })).toBe(true);

    const replaced = await request(app)
      .put('/admin/flags/new-ui')
      .set('x-test-user', ADMIN)
      .send({ enabled: false });
    expect(replaced.status).toBe(200);
    expect(replaced.body).toEqual({ success: true, data: { name: 'new-ui', enabled: false } });
    expect(flags.isEnabled('new-ui', { userId: 'anyone' })).toBe(false);

    const changes = log.lines().filter((l) => l.message === 'feature flag changed');
    expect(changes.map((l) => [l.flag, l.action, l.user_id])).toEqual([
      ['new-ui', 'created', 'root'],
      ['new-ui', 'replaced', 'root'],
    ]);
  });

  it('DELETE answers 204, then 404', async () => {
    const res = await request(app).delete('/admin/flags/beta').set('x-test-user', ADMIN);
    expect(res.status).toBe(204);
    expect(flags.getFlag('beta')).toBeUndefined();
    expectEnvelope(
      await request(app).delete('/admin/flags/beta').set('x-test-user', ADMIN),
      404,
      'NOT_FOUND',
    );
    expect(log.lines().filter((l) => l.message === 'feature flag changed')).toHaveLength(1);
  });

  it('400 VALIDATION_ERROR for an invalid definition or name; 400 INVALID_JSON for a body that does not parse', async () => {
    const bad = await request(app)
      .put('/admin/flags/beta')
      .set('x-test-user', ADMIN)
      .send({ enabled: true, percentage: 101, users: 'alice', extra: 1 });
    const details = expectEnvelope(bad, 400, 'VALIDATION_ERROR');
    expect(details.field_errors).toEqual({
      percentage: 'must be a number from 0 to 100',
      users: 'must be a list of user ids',
      extra: 'is not a known field',
    });
    expect(flags.getFlag('beta')).toEqual({ enabled: true, roles: ['provider'] });

    const name = await request(app)
      .put('/admin/flags/bad%20name')
      .set('x-test-user', ADMIN)
      .send({ enabled: true });
    expect(expectEnvelope(name, 400, 'VALIDATION_ERROR').field_errors).toEqual({ name: expect.any(String) });

    const json = await request(app)
      .put('/admin/flags/beta')
      .set('x-test-user', ADMIN)
      .set('content-type', 'application/json')
      .send('{"enabled": tru');
    expectEnvelope(json, 400, 'INVALID_JSON');

    const empty = await request(app).put('/admin/flags/beta').set('x-test-user', ADMIN);
    expect(expectEnvelope(empty, 400, 'VALIDATION_ERROR').field_errors).toBeDefined();
  });

  it('other roles when asked: adminRouter({ roles })', async () => {
    const custom = adminApp(variant, flags, { roles: ['flag-admin', 'ops'] });
    expect((await request(custom).get('/admin/flags').set('x-test-user', 'o:ops')).status).toBe(200);
    expectEnvelope(await request(custom).get('/admin/flags').set('x-test-user', ADMIN), 403, 'FORBIDDEN');
  });

  it('503 SERVICE_UNAVAILABLE (dependency redis) for a write while Redis is down; reads still answer', async () => {
    const down = scope.open({
      prefix: scope.prefix(),
      redis: 'redis://127.0.0.1:1',
      flags: { beta: { enabled: true } },
    });
    const downApp = adminApp(variant, down);
    const res = await request(downApp)
      .put('/admin/flags/beta')
      .set('x-test-user', ADMIN)
      .send({ enabled: false });
    expect(expectEnvelope(res, 503, 'SERVICE_UNAVAILABLE').dependency).toBe('redis');
    expect((await request(downApp).get('/admin/flags/beta').set('x-test-user', ADMIN)).status).toBe(200);
  });
});

it('adminRouter() refuses bad options at creation', () => {
  const flags = memoryFlags();
  expect(() => flags.adminRouter({ roles: [] })).toThrow(core.ConfigError);
  expect(() => flags.adminRouter({ roles: [''] })).toThrow(/roles must be a non-empty array of role names/);
  expect(() => flags.adminRouter({ role: ['admin'] } as never)).toThrow(/Did you mean "roles"/);
});
