import type { NextFunction, Request, Response, Router } from 'express';
import { Router as createRouter } from 'express';
import {
  ConfigError,
  ForbiddenError,
  NotFoundError,
  UnauthorizedError,
  readOptions,
} from '../errors/index.js';
import { badQuery } from '../repository/filters.js';
import type { AuditTrail } from './trail.js';
import type { AuditAction, AuditEvent, AuditQuery } from './types.js';
import { AUDIT_ACTIONS, AUDIT_OUTCOMES } from './types.js';

const DCM = 'http://dicom.nema.org/resources/ontology/DCM';
const EVENT_TYPE = 'http://terminology.hl7.org/CodeSystem/audit-event-type';
const RESTFUL = 'http://hl7.org/fhir/restful-interaction';
const ENTITY_TYPE = 'http://terminology.hl7.org/CodeSystem/audit-entity-type';
const OBJECT_ROLE = 'http://terminology.hl7.org/CodeSystem/object-role';
const AGENT_TYPE = 'http://terminology.hl7.org/CodeSystem/extra-security-role-type';
const SOURCE_TYPE = 'http://terminology.hl7.org/CodeSystem/security-source-type';
const ACT_REASON = 'http://terminology.hl7.org/CodeSystem/v3-ActReason';
const BALP_ENTITY = 'https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType';
const BALP = 'https://profiles.ihe.net/ITI/BALP/StructureDefinition';

/** FHIR `AuditEvent.action`: C R U D E. */
const ACTION_CODE: Readonly<Record<AuditAction, string>> = {
  create: 'C',
  read: 'R',
  search: 'E',
  update: 'U',
  delete: 'D',
  export: 'R',
  login: 'E',
  logout: 'E',
  'access-denied': 'E',
};
const INTERACTION: Partial<Readonly<Record<AuditAction, string>>> = {
  create: 'create',
  read: 'read',
  search: 'search-type',
  update: 'update',
  delete: 'delete',
};
/**
 * BALP profiles an event meets: the Patient* ones only with a patient entity; none for searches
 * (BALP's Query profiles need `entity.query`, which would carry the filter values we never keep).
 */
function profileOf(event: AuditEvent): string | undefined {
  const withPatient = event.patientId !== null || event.patientIds.length > 0;
  switch (event.action) {
    case 'create':
      return withPatient ? 'IHE.BasicAudit.PatientCreate' : 'IHE.BasicAudit.Create';
    case 'read':
      return withPatient ? 'IHE.BasicAudit.PatientRead' : 'IHE.BasicAudit.Read';
    case 'update':
      return withPatient ? 'IHE.BasicAudit.PatientUpdate' : 'IHE.BasicAudit.Update';
    case 'delete':
      return withPatient ? 'IHE.BasicAudit.PatientDelete' : 'IHE.BasicAudit.Delete';
    case 'login':
      return 'IHE.BasicAudit.Login';
    case 'logout':
      return 'IHE.BasicAudit.Logout';
    default:
      return undefined;
  }
}
/** FHIR outcome: 0 success, 4 minor failure (refused), 8 serious failure. */
const OUTCOME_CODE = { success: '0', denied: '4', error: '8' } as const;

function typeOf(event: AuditEvent): Record<string, unknown> {
  switch (event.action) {
    case 'login':
    case 'logout':
      return { system: DCM, code: '110114', display: 'User Authentication' };
    case 'export':
      return { system: DCM, code: '110106', display: 'Export' };
    case 'access-denied':
      return { system: DCM, code: '110113', display: 'Security Alert' };
    default:
      return { system: EVENT_TYPE, code: 'rest', display: 'RESTful Operation' };
  }
}

function subtypeOf(event: AuditEvent): Record<string, unknown>[] {
  const interaction = INTERACTION[event.action];
  if (interaction !== undefined) return [{ system: RESTFUL, code: interaction }];
  if (event.action === 'login') return [{ system: DCM, code: '110122', display: 'Login' }];
  if (event.action === 'logout') return [{ system: DCM, code: '110123', display: 'Logout' }];
  return [];
}

/** An audit event as a FHIR R4 `AuditEvent` resource, shaped after IHE BALP. */
export function toFhirAuditEvent(event: AuditEvent, source: string): Record<string, unknown> {
  const profile = profileOf(event);
  const agent: Record<string, unknown> = {
    type: {
      coding: [
        event.actorType === 'service'
          ? { system: AGENT_TYPE, code: 'dataprocessor', display: 'data processor' }
          : { system: AGENT_TYPE, code: 'humanuser', display: 'human user' },
      ],
    },
    who:
      event.actorId === null
        ? { display: event.actorType }
        : { identifier: { value: event.actorId }, display: `${event.actorType} ${event.actorId}` },
    requestor: true,
  };
  if (event.actorRoles.length > 0) agent.role = event.actorRoles.map((text) => ({ text }));
  if (event.clientIp !== null) agent.network = { address: event.clientIp, type: '2' };
  if (event.purposeOfUse !== null)
    agent.purposeOfUse = [{ coding: [{ system: ACT_REASON, code: event.purposeOfUse }] }];

  const entity: Record<string, unknown>[] = [];
  const patients = event.patientId !== null ? [event.patientId] : event.patientIds;
  for (const patient of patients) {
    entity.push({
      what: { reference: `Patient/${patient}` },
      type: { system: ENTITY_TYPE, code: '1', display: 'Person' },
      role: { system: OBJECT_ROLE, code: '1', display: 'Patient' },
    });
  }
  if (event.resourceType !== null && (event.resourceId !== null || event.action !== 'search')) {
    const isPatient = event.resourceType === 'Patient' && event.resourceId === event.patientId;
    if (!isPatient) {
      entity.push({
        what:
          event.resourceId === null
            ? { type: event.resourceType }
            : { reference: `${event.resourceType}/${event.resourceId}` },
        type: { system: ENTITY_TYPE, code: '2', display: 'System Object' },
        role: { system: OBJECT_ROLE, code: '4', display: 'Domain Resource' },
      });
    }
  }
  if (event.action === 'search') {
    const filterFields = event.details?.filter_fields;
    const detail: Record<string, unknown>[] = [];
    if (Array.isArray(filterFields))
      detail.push({ type: 'filter_fields', valueString: filterFields.join(',') });
    if (typeof event.details?.count === 'number')
      detail.push({ type: 'count', valueString: String(event.details.count) });
    entity.push({
      what: event.resourceType === null ? undefined : { type: event.resourceType },
      type: { system: ENTITY_TYPE, code: '2', display: 'System Object' },
      role: { system: OBJECT_ROLE, code: '24', display: 'Query' },
      ...(detail.length > 0 ? { detail } : {}),
    });
  }
  const transaction: Record<string, unknown>[] = [];
  if (event.traceId !== null) transaction.push({ type: 'trace_id', valueString: event.traceId });
  if (event.userAgent !== null) transaction.push({ type: 'user_agent', valueString: event.userAgent });
  if (event.requestId !== null) {
    entity.push({
      what: { identifier: { value: event.requestId } },
      type: { system: BALP_ENTITY, code: 'XrequestId', display: 'XRequestId' },
      ...(transaction.length > 0 ? { detail: transaction } : {}),
    });
  }
  const other =
    event.details === null
      ? []
      : Object.entries(event.details).filter(([k]) => k !== 'filter_fields' && k !== 'count');
  return {
    resourceType: 'AuditEvent',
    id: event.id,
    ...(profile === undefined ? {} : { meta: { profile: [`${BALP}/${profile}`] } }),
    type: typeOf(event),
    subtype: subtypeOf(event),
    action: ACTION_CODE[event.action],
    recorded: event.recordedAt,
    outcome: OUTCOME_CODE[event.outcome],
    ...(other.length > 0 ? { outcomeDesc: other.map(([k, v]) => `${k}=${String(v)}`).join('; ') } : {}),
    agent: [agent],
    source: {
      observer: { display: source },
      type: [{ system: SOURCE_TYPE, code: '4', display: 'Application Server' }],
    },
    entity,
  };
}

export interface AuditEventsRouterOptions {
  trail: AuditTrail;
  /** Roles allowed to read the trail. Default `['admin', 'auditor']`. */
  roles?: readonly string[];
}

const KNOWN = ['trail', 'roles'] as const;
const DATE_PARAM =
  /^(eq|ge|gt|le|lt)?(\d{4}(-\d{2}(-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,3})?)?(Z|[+-]\d{2}:\d{2})?)?)?)?)$/;

function one(req: Request, name: string): string | undefined {
  const value: unknown = (req.query as Record<string, unknown>)[name];
  if (value === undefined) return undefined;
  if (typeof value !== 'string') throw badQuery(name, 'must be given once');
  return value;
}

/** `2026-11` → [start, end) of that month, in UTC. Impossible dates (2026-02-30) are refused. */
function period(text: string): [Date, Date] {
  const [datePart = '', timePart] = text.split('T');
  const [y = 0, m, d] = datePart.split('-').map(Number);
  if (m !== undefined && (m < 1 || m > 12)) throw badQuery('date', 'is not a date');
  if (d !== undefined && (d < 1 || d > new Date(Date.UTC(y, m ?? 1, 0)).getUTCDate()))
    throw badQuery('date', 'is not a date');
  if (timePart !== undefined) {
    const [hh = 0, mm = 0, ss = 0] = timePart.slice(0, 8).split(':').map(Number);
    if (hh > 23 || mm > 59 || ss > 59) throw badQuery('date', 'is not a date');
    const at = new Date(/Z|[+-]\d{2}:\d{2}$/.test(timePart) ? text : `${text}Z`);
    // The window is the precision given: a minute, a second, or a millisecond.
    const clock = timePart.replace(/(Z|[+-]\d{2}:\d{2})$/, '');
    const width = clock.includes('.') ? 1 : clock.split(':').length === 3 ? 1000 : 60_000;
    return [at, new Date(at.getTime() + width)];
  }
  if (m === undefined) return [new Date(Date.UTC(y, 0, 1)), new Date(Date.UTC(y + 1, 0, 1))];
  if (d === undefined) return [new Date(Date.UTC(y, m - 1, 1)), new Date(Date.UTC(y, m, 1))];
  return [new Date(Date.UTC(y, m - 1, d)), new Date(Date.UTC(y, m - 1, d + 1))];
}

function dateFilters(req: Request, query: AuditQuery): void {
  const raw: unknown = (req.query as Record<string, unknown>).date;
  if (raw === undefined) return;
  const list = Array.isArray(raw) ? raw : [raw];
  if (list.length > 2) throw badQuery('date', 'at most two bounds');
  for (const value of list) {
    const match = typeof value === 'string' ? DATE_PARAM.exec(value) : null;
    const body = match?.[2];
    if (match === null || body === undefined)
      throw badQuery('date', 'must be a FHIR date with ge/gt/le/lt/eq');
    const [start, end] = period(body);
    if (Number.isNaN(start.getTime()) || Number.isNaN(end.getTime())) throw badQuery('date', 'is not a date');
    switch (match[1] ?? 'eq') {
      case 'ge':
        query.from = start;
        break;
      case 'gt':
        query.from = end;
        break;
      case 'lt':
        query.to = start;
        break;
      case 'le':
        query.to = end;
        break;
      default:
        query.from = start;
        query.to = end;
    }
  }
}

function searchQuery(req: Request): AuditQuery {
  const query: AuditQuery = {};
  const patient = one(req, 'patient');
  if (patient !== undefined) {
    const id = patient.startsWith('Patient/') ? patient.slice(8) : patient;
    if (id === '' || id.length > 255) throw badQuery('patient', 'must be a patient id');
    query.patientId = id;
  }
  const agent = one(req, 'agent');
  if (agent !== undefined) {
    if (agent === '' || agent.length > 255) throw badQuery('agent', 'must be a user id');
    query.actorId = agent;
  }
  const action = one(req, 'action');
  if (action !== undefined) {
    if (!(AUDIT_ACTIONS as readonly string[]).includes(action))
      throw badQuery('action', `must be one of ${AUDIT_ACTIONS.join(', ')}`);
    query.action = action as AuditAction;
  }
  const outcome = one(req, 'outcome');
  if (outcome !== undefined) {
    if (!(AUDIT_OUTCOMES as readonly string[]).includes(outcome))
      throw badQuery('outcome', `must be one of ${AUDIT_OUTCOMES.join(', ')}`);
    query.outcome = outcome as AuditQuery['outcome'];
  }
  const type = one(req, 'entity-type');
  if (type !== undefined) {
    if (!/^[A-Za-z][A-Za-z0-9_.-]{0,63}$/.test(type))
      throw badQuery('entity-type', 'must be a resource type');
    query.resourceType = type;
  }
  const count = one(req, '_count');
  if (count !== undefined) {
    if (!/^[0-9]{1,4}$/.test(count) || Number(count) < 1 || Number(count) > 1000)
      throw badQuery('_count', 'must be an integer from 1 to 1000');
    query.limit = Number(count);
  } else query.limit = 50;
  const cursor = one(req, '_cursor');
  if (cursor !== undefined) {
    if (!/^[1-9][0-9]{0,15}$/.test(cursor)) throw badQuery('_cursor', 'is not a cursor from a next link');
    query.cursor = cursor;
  }
  dateFilters(req, query);
  return query;
}

function nextLink(req: Request, cursor: string): string {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(req.query as Record<string, unknown>)) {
    if (key === '_cursor') continue;
    for (const v of Array.isArray(value) ? value : [value]) if (typeof v === 'string') params.append(key, v);
  }
  params.set('_cursor', cursor);
  return `${req.baseUrl}?${params.toString()}`;
}

type Handler = (req: Request, res: Response) => Promise<void>;
function handle(fn: Handler) {
  return (req: Request, res: Response, next: NextFunction): void => {
    fn(req, res).catch(next);
  };
}

/**
 * The trail as FHIR R4 `AuditEvent`s for auditors: `GET /` (a searchset Bundle; `patient`,
 * `agent`, `action`, `outcome`, `entity-type`, `date`, `_count`, `_cursor`) and `GET /:id`. Mount
 * after `authenticate()`. Reading the trail is itself recorded.
 */
export function auditEventsRouter(input: Readonly<AuditEventsRouterOptions>): Router {
  const options = readOptions<AuditEventsRouterOptions>('auditEventsRouter', input, KNOWN);
  const trail = options.trail as Partial<AuditTrail> | undefined;
  if (typeof trail !== 'object' || typeof trail.query !== 'function' || typeof trail.record !== 'function')
    throw ConfigError.option('auditEventsRouter', 'trail', 'an AuditTrail from core.audit()', options.trail);
  const t = trail as AuditTrail;
  const roles = options.roles ?? ['admin', 'auditor'];
  if (!Array.isArray(roles) || roles.length === 0 || !roles.every((r) => typeof r === 'string' && r !== ''))
    throw ConfigError.option('auditEventsRouter', 'roles', 'a non-empty array of role names', roles);
  const allowed = new Set(roles);
  const router = createRouter();
  const send = (res: Response, body: unknown): void => {
    res.status(200).type('application/fhir+json').send(JSON.stringify(body));
  };

  router.use(function auditEventsGuard(req: Request, res: Response, next: NextFunction) {
    const user = req.user;
    if (user === undefined) {
      next(new UnauthorizedError());
      return;
    }
    if (!user.roles.some((r) => allowed.has(r))) {
      // Recorded by middleware() when mounted; recorded here otherwise (never twice).
      if (typeof req.audit !== 'function')
        t.record({ action: 'access-denied', outcome: 'denied', resourceType: 'AuditEvent' }, req);
      next(new ForbiddenError());
      return;
    }
    next();
  });

  router.get(
    '/',
    handle(async (req, res) => {
      const query = searchQuery(req);
      t.admit();
      const page = await t.query(query);
      t.record({ action: 'search', resourceType: 'AuditEvent', details: { count: page.events.length } }, req);
      send(res, {
        resourceType: 'Bundle',
        type: 'searchset',
        timestamp: new Date().toISOString(),
        link: [
          { relation: 'self', url: req.originalUrl },
          ...(page.nextCursor === null ? [] : [{ relation: 'next', url: nextLink(req, page.nextCursor) }]),
        ],
        entry: page.events.map((event) => ({
          fullUrl: `AuditEvent/${event.id}`,
          resource: toFhirAuditEvent(event, t.source),
          search: { mode: 'match' },
        })),
      });
    }),
  );

  router.get(
    '/:id',
    handle(async (req, res) => {
      const id = String(req.params.id);
      if (!/^[0-9a-f-]{36}$/i.test(id)) throw new NotFoundError('AuditEvent', undefined);
      t.admit();
      const event = await t.find(id);
      t.record(
        {
          action: 'read',
          resourceType: 'AuditEvent',
          resourceId: id,
          ...(event === undefined ? { outcome: 'error', details: { reason: 'not_found' } } : {}),
        },
        req,
      );
      if (event === undefined) throw new NotFoundError('AuditEvent', undefined);
      send(res, toFhirAuditEvent(event, t.source));
    }),
  );
  return router;
}
