import type { NextFunction, Request, Response, Router } from 'express';
import type { AuthUser, Database, FeatureFlags, FieldFilter, ListOptions, Logger } from '../../lib/index';
import {
  AppError,
  asyncHandler,
  ForbiddenError,
  parseListQuery,
  requireRoles,
  ValidationError,
} from '../../lib/index';
import { ADMIN, hasRole, PATIENT, patientScope, PROVIDER, userOf } from './access';
import type { LabClient } from './labs';
import type { PatientRepository } from './patients';
import { isIsoDate } from './patients';
import type { UserRepository } from './users';

export interface PatientRoutesOptions {
  router: Router;
  db: Database;
  patients: PatientRepository;
  /** To check that a patient is assigned to a provider's login. */
  users: UserRepository;
  labs: LabClient;
  /** `patient-summary` gates `GET /patients/:id/summary` (off: the route does not exist for the caller). */
  flags: FeatureFlags;
  logger: Logger;
  /** Where the router is mounted, for `Location` headers. */
  basePath: string;
}

/** `:id` as a string on Express 4 and 5 alike. */
const idOf = (req: Request): string => String(req.params.id);

/** 400 VALIDATION_ERROR naming the query parameter, like the ones `parseListQuery` throws. */
function badQuery(field: string, problem: string): AppError {
  return new AppError(`Invalid query: ${field} ${problem}`, {
    status: 400,
    code: 'VALIDATION_ERROR',
    details: { field_errors: { [field]: problem } },
  });
}

const DATE_OPS = new Set(['eq', 'ne', 'gt', 'gte', 'lt', 'lte', 'in', 'nin', 'between', 'is_null']);

/**
 * `birth_date` is a DATE column: text operators make no sense on it (PostgreSQL would refuse
 * `date ILIKE text`), and its values must be real dates. `parseListQuery` checks names and
 * operators; this checks what only the service knows.
 */
function checkDateFilters(options: ListOptions): ListOptions {
  for (const f of (options.filters ?? []) as readonly FieldFilter[]) {
    if (f.field !== 'birth_date') continue;
    const label = `birth_date[${f.op}]`;
    if (!DATE_OPS.has(f.op)) throw badQuery(label, 'is not supported on a date');
    if (f.op === 'is_null') continue;
    const values = Array.isArray(f.value) ? f.value : [f.value];
    if (!values.every((v) => typeof v === 'string' && isIsoDate(v)))
      throw badQuery(label, 'must be a date as YYYY-MM-DD');
  }
  return options;
}

/**
 * The version the client last saw: `If-Match: 3` (or the ETag `"3"`), else `version` in the body.
 * Both present and different is a 400; neither is a 428 — an update without one could overwrite a
 * change the client never saw.
 */
function expectedVersion(req: Request): number {
  const header = req.get('if-match');
  const body: unknown = req.body;
  const inBody =
    typeof body === 'object' && body !== null && !Array.isArray(body)
      ? (body as Record<string, unknown>).version
      : undefined;
  let fromHeader: number | undefined;
  if (header !== undefined) {
    const m = /^\s*(?:W\/)?"?(\d{1,9})"?\s*$/.exec(header);
    if (m === null) throw badQuery('If-Match', 'must be the version number (or ETag) of the patient');
    fromHeader = Number(m[1]);
  }
  if (inBody !== undefined && (typeof inBody !== 'number' || !Number.isInteger(inBody) || inBody < 1))
    throw badQuery('version', 'must be a positive integer');
  if (fromHeader !== undefined && inBody !== undefined && fromHeader !== inBody)
    throw badQuery('version', 'differs from If-Match');
  const version = fromHeader ?? inBody;
  if (version === undefined) {
    throw new AppError('Send the version you are updating: If-Match: <version> or "version" in the body', {
      status: 428,
      code: 'PRECONDITION_REQUIRED',
      details: { field_errors: { version: 'is required (If-Match header or body)' } },
    });
  }
  return version;
}

/** The body minus `version`, which travels as the precondition, not as a change. */
function patchOf(req: Request): unknown {
  const body: unknown = req.body;
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return body;
  const { version: _version, ...patch } = body as Record<string, unknown>;
  return patch;
}

/** Fields a patient may not change on their own record: they are the clinic's to set. */
const CLINIC_FIELDS = ['mrn', 'status', 'ssn', 'provider_id'];

/**
 * Who may set `provider_id`, and to what. Administrators assign any provider (or none); a provider
 * creates patients for themselves only (their new patients are theirs without asking); nobody else
 * reassigns one. Returns the body to write.
 */
async function checkAssignment(
  user: AuthUser,
  body: unknown,
  users: UserRepository,
  creating: boolean,
): Promise<unknown> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return body;
  const fields = body as Record<string, unknown>;
  const wanted = fields.provider_id;
  if (hasRole(user, ADMIN)) {
    // Longer strings are left for the schema's 422; an id that is not a provider's login is one too.
    if (typeof wanted === 'string' && wanted.length <= 36 && !(await users.isProvider(wanted))) {
      throw new ValidationError('Invalid assignment', { provider_id: 'must be the id of a provider' });
    }
    return body;
  }
  if (!creating) {
    if (Object.hasOwn(fields, 'provider_id'))
      throw new ForbiddenError('Only administrators reassign patients');
    return body;
  }
  if (wanted !== undefined && wanted !== user.id) {
    throw new ForbiddenError('Providers create patients for themselves only');
  }
  return { ...fields, provider_id: user.id };
}

/**
 * The patient routes, behind `authenticate()`. Handlers only throw: `errors()` turns what they
 * throw into the response.
 * Every async handler goes through `asyncHandler`, so a rejection reaches `errors()` on Express 4 too.
 * Writes run in one request transaction (`db.withRequestTransaction()`), committed before the
 * response is sent and rolled back on any 4xx/5xx.
 */
export function patientRoutes(options: PatientRoutesOptions): Router {
  const { router, db, patients, users, labs, flags, logger, basePath } = options;
  const inTransaction = db.withRequestTransaction();
  const location = (id: string) => `${basePath}/patients/${encodeURIComponent(id)}`;
  // Every query goes through the caller's scope: a patient outside it is a 404, exactly like one
  // that does not exist, so ids cannot be probed. Only actions a role can never take are 403s.
  const visible = (req: Request) => patients.visibleTo(patientScope(userOf(req)));
  const staffOnly = requireRoles(ADMIN, PROVIDER);

  router.use('/patients', requireRoles(ADMIN, PROVIDER, PATIENT));

  // ?status=active&family_name[ilike]=ok&sort=-birth_date&page=2&size=10, or ?limit=10&cursor=…
  router.get(
    '/patients',
    asyncHandler(async (req: Request, res: Response) => {
      const query = checkDateFilters(parseListQuery(req.query, patients));
      const page = await visible(req).list(query);
      if ('next_cursor' in page) {
        res.json({
          success: true,
          data: page.items,
          meta: { limit: query.limit, next_cursor: page.next_cursor },
        });
        return;
      }
      res.json({
        success: true,
        data: page.items,
        meta: { page: page.page, size: page.size, total: page.total, pages: page.pages },
      });
    }),
  );

  router.post(
    '/patients',
    staffOnly,
    inTransaction,
    asyncHandler(async (req: Request, res: Response) => {
      const body = await checkAssignment(userOf(req), req.body, users, true);
      const patient = await patients.create(body as never);
      // Identifiers only: the logger would redact mrn and names anyway, but not logging them is better.
      logger.info('patient created', { patient_id: patient.id });
      res
        .status(201)
        .location(location(patient.id))
        .set('ETag', `"${patient.version}"`)
        .json({ success: true, data: patient });
    }),
  );

  router.get(
    '/patients/:id',
    asyncHandler(async (req: Request, res: Response) => {
      const patient = await visible(req).getById(idOf(req));
      res.set('ETag', `"${patient.version}"`).json({ success: true, data: patient });
    }),
  );

  router.patch(
    '/patients/:id',
    inTransaction,
    asyncHandler(async (req: Request, res: Response) => {
      const user = userOf(req);
      const locked = hasRole(user, ADMIN) || hasRole(user, PROVIDER) ? [] : CLINIC_FIELDS;
      const body: unknown = req.body;
      const denied = locked.filter(
        (f) => typeof body === 'object' && body !== null && Object.hasOwn(body, f),
      );
      if (denied.length > 0) {
        throw new ForbiddenError('Patients may change only their names, birth date and sex', {
          details: { fields: denied },
        });
      }
      const version = expectedVersion(req);
      const patch = await checkAssignment(user, patchOf(req), users, false);
      const patient = await visible(req).update(idOf(req), patch as never, { expectedVersion: version });
      logger.info('patient updated', { patient_id: patient.id, version: patient.version });
      res.set('ETag', `"${patient.version}"`).json({ success: true, data: patient });
    }),
  );

  router.delete(
    '/patients/:id',
    staffOnly,
    inTransaction,
    asyncHandler(async (req: Request, res: Response) => {
      await visible(req).delete(idOf(req));
      logger.info('patient deleted', { patient_id: idOf(req) });
      res.status(204).end();
    }),
  );

  // A feature being rolled out: where the flag is off for the caller, the route is a plain 404.
  router.get(
    '/patients/:id/summary',
    asyncHandler(async (req: Request, res: Response, next: NextFunction) => {
      if (!flags.isEnabled('patient-summary')) {
        next();
        return;
      }
      const patient = await visible(req).getById(idOf(req));
      const born = new Date(`${patient.birth_date}T00:00:00Z`);
      const age = Math.floor((Date.now() - born.getTime()) / (365.25 * 86_400_000));
      res.json({ success: true, data: { id: patient.id, status: patient.status, age_years: age } });
    }),
  );

  router.get(
    '/patients/:id/lab-results',
    asyncHandler(async (req: Request, res: Response) => {
      const patient = await visible(req).getById(idOf(req));
      // With the demo's disconnected lab client this rejects after an await: a 500 with a generic message.
      const results = await labs.resultsFor(patient.id);
      // The results come from the lab system, not a repository: the route records their disclosure.
      req.audit({
        action: 'search',
        resourceType: 'Observation',
        patientId: patient.id,
        details: { count: results.length, source: 'labs' },
      });
      res.json({ success: true, data: results });
    }),
  );

  return router;
}
