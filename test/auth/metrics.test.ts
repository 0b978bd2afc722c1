/** An Auth's counters reach the registry: successes, failures by reason, token lifecycle events. */
import request from 'supertest';
import * as core from '../../lib/index';
import { eachExpress } from '../support/express';
import { samples, testMetrics, valueOf } from '../support/metrics';
import { b64, SECRET, settings } from './support';

const logger = core.createLogger('auth', { console: false, settings });

describe.each(eachExpress)('createAuth() metrics (%s)', (_name, variant) => {
  test('successes, failures by reason (every reason from 0) and token events, without users or tokens', async () => {
    const metrics = testMetrics();
    const auth = core.createAuth({ secret: SECRET, settings, logger, metrics, redis: false });
    try {
      const app = variant.express();
      app.use(core.requestContext());
      app.get('/me', auth.authenticate(), (req, res) => {
        res.json({ id: (req.user as { id: string }).id });
      });
      app.use(core.errors({ settings, logger, metrics: false }));

      const reasons = (await samples(metrics, 'auth_failures_total')).map((s) => s.labels.reason);
      expect(reasons).toEqual(expect.arrayContaining(['missing', 'expired', 'bad_signature', 'revoked']));
      expect(await valueOf(metrics, 'auth_failures_total')).toBe(0);

      const pair = auth.createTokens({
        userId: 'user-078-05-1120',
        email: 'jane@example.org',
        roles: ['patient'],
      });
      await request(app).get('/me').set('Authorization', `Bearer ${pair.access_token}`).expect(200);
      await request(app).get('/me').set('Authorization', `Bearer ${pair.access_token}`).expect(200);
      await request(app).get('/me').expect(401);
      await request(app).get('/me').set('Authorization', 'Bearer not-a-token').expect(401);
      const [h, p] = pair.access_token.split('.');
      await request(app)
        .get('/me')
        .set('Authorization', `Bearer ${h}.${p}.${b64('forged-signature')}`)
        .expect(401);
      const next = await auth.refreshTokens(pair.refresh_token);
      expect(await auth.revokeToken(next.access_token)).toBe(true);
      await request(app).get('/me').set('Authorization', `Bearer ${next.access_token}`).expect(401);

      expect(await valueOf(metrics, 'auth_success_total')).toBe(2);
      expect(await valueOf(metrics, 'auth_failures_total', { reason: 'missing' })).toBe(1);
      expect(await valueOf(metrics, 'auth_failures_total', { reason: 'malformed' })).toBe(1);
      expect(await valueOf(metrics, 'auth_failures_total', { reason: 'bad_signature' })).toBe(1);
      expect(await valueOf(metrics, 'auth_failures_total', { reason: 'revoked' })).toBe(1);
      expect(await valueOf(metrics, 'auth_tokens_total', { event: 'issued' })).toBe(1);
      expect(await valueOf(metrics, 'auth_tokens_total', { event: 'refreshed' })).toBe(1);
      expect(await valueOf(metrics, 'auth_tokens_total', { event: 'revoked' })).toBe(1);

      const text = await metrics.render();
      for (const secret of ['078-05-1120', 'jane@example.org', pair.access_token.slice(0, 20), SECRET])
        expect(text).not.toContain(secret);
    } finally {
      await auth.close();
    }
    // close() takes its series away.
    expect(await samples(metrics, 'auth_success_total')).toEqual([]);
  });

  test('recordLoginFailure() counts a failed password login as invalid_credentials, and calls onEvent', async () => {
    const metrics = testMetrics();
    const events: core.AuthEvent[] = [];
    const auth = core.createAuth({
      secret: SECRET,
      settings,
      logger,
      metrics,
      redis: false,
      onEvent: (e) => events.push(e),
    });
    try {
      auth.recordLoginFailure();
      auth.recordLoginFailure();
      expect(await valueOf(metrics, 'auth_failures_total', { reason: 'invalid_credentials' })).toBe(2);
      expect(auth.counters().failure.invalid_credentials).toBe(2);
      expect(events).toEqual([
        { type: 'failure', reason: 'invalid_credentials' },
        { type: 'failure', reason: 'invalid_credentials' },
      ]);
    } finally {
      await auth.close();
    }
  });

  test('two Auths on one registry add up; metrics: false reports nothing', async () => {
    const metrics = testMetrics();
    const one = core.createAuth({ secret: SECRET, settings, logger, metrics, redis: false });
    const two = core.createAuth({ secret: SECRET, settings, logger, metrics, redis: false });
    const none = core.createAuth({ secret: SECRET, settings, logger, metrics: false, redis: false });
    try {
      one.createTokens({ userId: 'a' });
      two.createTokens({ userId: 'b' });
      none.createTokens({ userId: 'c' });
      expect(await valueOf(metrics, 'auth_tokens_total', { event: 'issued' })).toBe(2);
    } finally {
      await Promise.all([one.close(), two.close(), none.close()]);
    }
  });
});
