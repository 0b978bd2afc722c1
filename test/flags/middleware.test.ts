/**
 * flags.middleware() on Express 4 and 5: req.flags evaluates for the request's user — req.user
 * once authentication has run (the middleware may come before it), else the request context,
 * else an anonymous caller.
 */
import type { NextFunction, Request, Response } from 'express';
import request from 'supertest';
import * as core from '../../lib/index';
import { eachExpress, type ExpressVariant } from '../support/express';
import { memoryFlags } from './support';

const flags = memoryFlags({
  flags: {
    beta: { enabled: true, users: ['alice'], roles: ['provider'] },
    layout: {
      enabled: true,
      variants: [
        { name: 'list', weight: 1 },
        { name: 'grid', weight: 1 },
      ],
    },
  },
});

function auth(req: Request, _res: Response, next: NextFunction): void {
  const header = req.headers['x-test-user'];
  if (typeof header === 'string') {
    const [id = '', roles = ''] = header.split(':');
    req.user = {
      id,
      email: undefined,
      roles: roles === '' ? [] : roles.split(','),
      scopes: [],
      claims: {},
      via: 'token',
    };
  }
  next();
}

function app(variant: ExpressVariant, withContext: boolean) {
  const a = variant.express();
  if (withContext) a.use(core.requestContext());
  // Before authentication on purpose: req.flags reads the user when asked, not when set.
  a.use(flags.middleware(), auth);
  a.get('/', (req, res) => {
    res.json({
      beta: req.flags?.isEnabled('beta'),
      layout: req.flags?.variant('layout') ?? null,
      why: req.flags?.evaluate('beta').reason,
    });
  });
  a.get('/as/:user', (req, res) => {
    // A context of the application's own: setUser() without req.user.
    core.setUser(req.params.user, ['provider'], req);
    res.json({ beta: req.flags?.isEnabled('beta') });
  });
  return a;
}

describe.each(eachExpress)('%s', (_name, variant) => {
  it('evaluates for req.user', async () => {
    const res = await request(app(variant, true)).get('/').set('x-test-user', 'alice:patient');
    expect(res.body).toEqual({
      beta: true,
      layout: flags.variant('layout', { userId: 'alice' }),
      why: 'user',
    });
    const bob = await request(app(variant, true)).get('/').set('x-test-user', 'bob:provider');
    expect(bob.body).toMatchObject({ beta: true, why: 'role' });
    const eve = await request(app(variant, true)).get('/').set('x-test-user', 'eve:patient');
    expect(eve.body).toMatchObject({ beta: false, why: 'no_match' });
  });

  it('gives each user the same variant on every request', async () => {
    const a = app(variant, true);
    for (const user of ['u1', 'u2', 'u3', 'u4']) {
      const first = await request(a).get('/').set('x-test-user', `${user}:`);
      const second = await request(a).get('/').set('x-test-user', `${user}:`);
      expect(second.body.layout).toBe(first.body.layout);
      expect(first.body.layout).toBe(flags.variant('layout', { userId: user }));
    }
  });

  it('falls back to the request context (setUser) without req.user', async () => {
    expect((await request(app(variant, true)).get('/as/zed')).body).toEqual({ beta: true });
  });

  it('treats a request with neither as anonymous', async () => {
    const res = await request(app(variant, false)).get('/');
    expect(res.body).toEqual({ beta: false, layout: 'list', why: 'no_match' });
  });
});
