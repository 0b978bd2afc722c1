import type { NextFunction, Request, Response } from 'express';
import { json, Router } from 'express';
import {
  ConfigError,
  ForbiddenError,
  NotFoundError,
  readOptions,
  UnauthorizedError,
} from '../errors/index.js';
import type { Logger } from '../logging/index.js';
import type { StoredFlagDefinition } from './definition.js';
import { checkName } from './definition.js';
import { requestUser } from './request.js';
import type { AdminRouterOptions, FeatureFlags } from './types.js';

const KNOWN = ['roles'] as const satisfies readonly (keyof AdminRouterOptions)[];
/** Room for a definition with the largest allow-list (10 000 ids of up to 256 characters). */
const BODY_LIMIT = '3mb';

function readRoles(value: unknown): ReadonlySet<string> {
  if (
    !Array.isArray(value) ||
    value.length === 0 ||
    !value.every((r) => typeof r === 'string' && r.trim() !== '')
  )
    throw ConfigError.option('adminRouter', 'roles', 'a non-empty array of role names', value);
  return new Set(value as string[]);
}

type Handler = (req: Request, res: Response) => Promise<void> | void;

/** Errors (thrown or rejected) go to `next(err)`, on Express 4 as on 5. */
function handle(fn: Handler) {
  return (req: Request, res: Response, next: NextFunction): void => {
    try {
      const done = fn(req, res);
      if (done instanceof Promise) done.catch(next);
    } catch (err) {
      next(err);
    }
  };
}

const entry = (name: string, definition: StoredFlagDefinition) => ({ name, ...definition });

/**
 * The admin API over `flags`. Mount it behind `authenticate()`:
 * `app.use('/admin/flags', core.authenticate(), flags.adminRouter())`.
 */
export function adminRouter(
  flags: FeatureFlags,
  put: (name: string, definition: unknown) => Promise<{ definition: StoredFlagDefinition; created: boolean }>,
  logger: Logger,
  input: Readonly<AdminRouterOptions> = {},
): Router {
  const options = readOptions<AdminRouterOptions>('adminRouter', input, KNOWN);
  const allowed = readRoles(options.roles ?? ['admin']);
  const router = Router();

  router.use(function featureFlagsAdminGuard(req: Request, _res: Response, next: NextFunction) {
    const { userId, roles } = requestUser(req);
    if (userId === undefined) next(new UnauthorizedError());
    else if (roles?.some((r) => allowed.has(r)) === true) next();
    else next(new ForbiddenError());
  });

  router.get(
    '/',
    handle((_req, res) => {
      const all = flags.listFlags();
      res.json({
        success: true,
        data: Object.keys(all).map((name) => entry(name, all[name] as StoredFlagDefinition)),
      });
    }),
  );

  router.get(
    '/:name',
    handle((req, res) => {
      const name = checkName(req.params.name);
      const definition = flags.getFlag(name);
      if (definition === undefined) throw new NotFoundError('Feature flag', name);
      res.json({ success: true, data: entry(name, definition) });
    }),
  );

  router.put(
    '/:name',
    json({ limit: BODY_LIMIT }),
    handle(async (req, res) => {
      const name = checkName(req.params.name);
      const { definition, created } = await put(name, req.body);
      logger.info('feature flag changed', {
        flag: name,
        action: created ? 'created' : 'replaced',
        user_id: requestUser(req).userId,
      });
      res.status(created ? 201 : 200).json({ success: true, data: entry(name, definition) });
    }),
  );

  router.delete(
    '/:name',
    handle(async (req, res) => {
      const name = checkName(req.params.name);
      if (!(await flags.deleteFlag(name))) throw new NotFoundError('Feature flag', name);
      logger.info('feature flag changed', {
        flag: name,
        action: 'deleted',
        user_id: requestUser(req).userId,
      });
      res.status(204).end();
    }),
  );

  return router;
}
