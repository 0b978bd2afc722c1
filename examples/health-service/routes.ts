import type { Request, Response, Router } from 'express';
import type { Logger } from '../../lib/index';
import { NotFoundError, asyncHandler } from '../../lib/index';
import type { LabClient } from './labs';
import type { PatientStore } from './patients';
import { parseListQuery, parseNewPatient } from './patients';

export interface PatientRoutesOptions {
  router: Router;
  store: PatientStore;
  labs: LabClient;
  logger: Logger;
  /** Where the router is mounted, for `Location` headers. */
  basePath: string;
}

/** `:id` as a string on Express 4 and 5 alike. */
const idOf = (req: Request): string => String(req.params.id);

/**
 * The patient routes. Handlers only throw: `errors()` turns what they throw into the response.
 * Every async handler goes through `asyncHandler`, so a rejection reaches `errors()` on Express 4 too.
 */
export function patientRoutes(options: PatientRoutesOptions): Router {
  const { router, store, labs, logger, basePath } = options;

  router.get(
    '/patients',
    asyncHandler(async (req: Request, res: Response) => {
      const filter = parseListQuery(req.query);
      const patients = await store.list(filter);
      res.json({ success: true, data: patients, meta: { count: patients.length, limit: filter.limit } });
    }),
  );

  router.post(
    '/patients',
    asyncHandler(async (req: Request, res: Response) => {
      const input = parseNewPatient(req.body);
      const patient = await store.create(input);
      // Identifiers only: the logger would redact mrn and names anyway, but not logging them is better.
      logger.info('patient created', { patient_id: patient.id });
      res.status(201).location(`${basePath}/patients/${patient.id}`).json({ success: true, data: patient });
    }),
  );

  router.get(
    '/patients/:id',
    asyncHandler(async (req: Request, res: Response) => {
      const patient = await store.get(idOf(req));
      if (patient === undefined) throw new NotFoundError('Patient', idOf(req));
      res.json({ success: true, data: patient });
    }),
  );

  router.get(
    '/patients/:id/lab-results',
    asyncHandler(async (req: Request, res: Response) => {
      const patient = await store.get(idOf(req));
      if (patient === undefined) throw new NotFoundError('Patient', idOf(req));
      // With the demo's disconnected lab client this rejects after an await: a 500 with a generic message.
      const results = await labs.resultsFor(patient.id);
      res.json({ success: true, data: results });
    }),
  );

  return router;
}
