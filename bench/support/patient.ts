import type { Request, Response } from 'express';

/** The path every variant serves and the load generator requests. */
export const PATIENT_PATH = '/patients/:id';
export const REQUEST_PATH = '/patients/4242';

/** The small JSON document every variant returns, so response bodies are identical. */
export function patient(id: string): Record<string, unknown> {
  return { resourceType: 'Patient', id, active: true, gender: 'unknown', meta: { versionId: '1' } };
}

/** `GET /patients/:id` for the Express variants. */
export function getPatient(req: Request<{ id: string }>, res: Response): void {
  res.json(patient(req.params.id));
}
