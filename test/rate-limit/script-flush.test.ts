/**
 * A Redis restart empties its script cache: the limiter's next EVALSHA gets NOSCRIPT, and
 * rate-limit-redis loads the script again — counting goes on, exactly, with no request failing.
 * SCRIPT FLUSH (what the restart does) affects the shared Redis other suites use; they reload their
 * scripts the same way. This is the only test that runs it.
 */
import request from 'supertest';
import { EXPRESS } from '../support/express';
import { limitedApp, limiterScope, tally, uniqueName } from './support';

const scope = limiterScope('script-flush');
const IP_KEY = 'ip:127.0.0.1';

it('keeps counting exactly after SCRIPT FLUSH, for parallel requests and for costed ones', async () => {
  const plain = uniqueName('flush');
  const costed = uniqueName('flush-cost');
  const limiter = scope.limiter({ name: plain, limit: 10 });
  const costly = scope.limiter({ name: costed, limit: 20, cost: 5 });
  const apps = EXPRESS.map((variant) => limitedApp(variant, limiter));
  const costApp = limitedApp(EXPRESS[1] as (typeof EXPRESS)[number], costly);

  for (const app of [...apps, apps[0]!]) expect((await request(app).get('/')).status).toBe(200);
  expect((await request(costApp).get('/')).status).toBe(200);
  expect(await scope.admin().get(scope.redisKey(plain, IP_KEY))).toBe('3');
  expect(await scope.admin().get(scope.redisKey(costed, IP_KEY))).toBe('5');

  expect(await scope.admin().script('FLUSH')).toBe('OK');

  // 20 at once on both Express versions: 7 left of 10, every one of them NOSCRIPT first.
  const burst = await Promise.all(Array.from({ length: 20 }, (_, i) => request(apps[i % 2]!).get('/')));
  expect(tally(burst)).toEqual({ 200: 7, 429: 13 });
  expect(await scope.admin().get(scope.redisKey(plain, IP_KEY))).toBe('23');
  expect(limiter.stats()).toMatchObject({ limited: 13, fallback: 0, refused: 0 });

  const costStatuses: number[] = [];
  for (let i = 0; i < 4; i++) costStatuses.push((await request(costApp).get('/')).status);
  expect(costStatuses).toEqual([200, 200, 200, 429]);
  expect(await scope.admin().get(scope.redisKey(costed, IP_KEY))).toBe('25');
  expect(costly.stats()).toMatchObject({ limited: 1, fallback: 0, refused: 0 });
});
