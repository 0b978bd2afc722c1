import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { performance } from 'node:perf_hooks';
import { ConfigError, readOptions } from '../errors/index.js';
import { createIdSource, parseTraceparent } from './ids.js';
import { activeSpan } from './otel.js';
import {
  adoptClosers,
  CONTEXT_KEY,
  Context,
  patchRequestPrototype,
  pinnedContext,
  REQUEST_ID_HEADER,
  storage,
} from './store.js';
import type { RequestContext } from './store.js';

export type { RequestContext } from './store.js';
export { getContext, getRequestId, setUser, runWithContext, bindContext, traceHeaders } from './store.js';
export { parseTraceparent } from './ids.js';
export { activeSpan, SPAN_STATUS_ERROR } from './otel.js';
export type { OtelSpan } from './otel.js';
export type { TraceParent } from './ids.js';

export interface RequestContextOptions {
  /** Header carrying the request id, in and out. Default `x-request-id`. */
  header?: string;
  /** Accept a caller's request id when it passes `validate`. Default `true`. */
  trustIncoming?: boolean;
  /** Longest incoming id accepted, with or without a custom `validate`. Default 128. */
  maxLength?: number;
  /**
   * Check for incoming ids. Default: 1–`maxLength` characters of `A–Z a–z 0–9 . _ : -`
   * (no spaces, quotes, slashes or control characters, so ids are safe in logs and headers).
   */
  validate?: (id: string) => boolean;
  /**
   * Id generator. Default `crypto.randomUUID()`. An id it returns that is not 1–1024 characters of
   * `A–Z a–z 0–9 . _ : -` (or a throw) is replaced by a UUID.
   */
  generate?: () => string;
  /** Echo the id on the response. Default `true`. */
  setResponseHeader?: boolean;
  /** Continue the caller's W3C trace from `traceparent`. Default `true`. */
  trustTraceparent?: boolean;
}

const SAFE_ID = /^[A-Za-z0-9._:-]+$/;
const KNOWN = [
  'header',
  'trustIncoming',
  'maxLength',
  'validate',
  'generate',
  'setResponseHeader',
  'trustTraceparent',
] as const;

function checkOptions(options: Readonly<RequestContextOptions>): void {
  const { header, maxLength, validate, generate } = options;
  if (header !== undefined && (typeof header !== 'string' || !/^[A-Za-z0-9-]+$/.test(header)))
    throw ConfigError.option('requestContext', 'header', 'a header name', header);
  if (maxLength !== undefined && (!Number.isInteger(maxLength) || maxLength < 1 || maxLength > 1024))
    throw ConfigError.option('requestContext', 'maxLength', 'an integer from 1 to 1024', maxLength);
  if (validate !== undefined && typeof validate !== 'function')
    throw ConfigError.option('requestContext', 'validate', 'a function', validate);
  if (generate !== undefined && typeof generate !== 'function')
    throw ConfigError.option('requestContext', 'generate', 'a function', generate);
  for (const flag of ['trustIncoming', 'setResponseHeader', 'trustTraceparent'] as const) {
    const value: unknown = options[flag];
    if (value !== undefined && typeof value !== 'boolean')
      throw ConfigError.option('requestContext', flag, 'true or false', value);
  }
}

/**
 * First middleware of the pipeline: opens the request's context (request id, trace, start time,
 * client IP, user once known) in AsyncLocalStorage so `getContext()` works anywhere below.
 *
 * @example
 * app.use(core.requestContext());
 * app.get('/x', (req, res) => res.json({ id: core.getRequestId() }));
 */
export function requestContext(input: Readonly<RequestContextOptions> = {}): RequestHandler {
  const options = readOptions<RequestContextOptions>('requestContext', input, KNOWN);
  checkOptions(options);
  const header = (options.header ?? REQUEST_ID_HEADER).toLowerCase();
  const ownHeader = header !== REQUEST_ID_HEADER;
  const trustIncoming = options.trustIncoming ?? true;
  const maxLength = options.maxLength ?? 128;
  // `maxLength` holds whatever the check: a custom `validate` narrows what is accepted, never widens it.
  const check = options.validate;
  const validate =
    check === undefined
      ? (id: string) => id.length <= maxLength && SAFE_ID.test(id)
      : (id: string) => id.length <= maxLength && check(id);
  const ids = createIdSource();
  const own = ids.requestId.bind(ids);
  const custom = options.generate;
  // A custom generator's id goes into a response header and every log line: one that is not a
  // safe id (or throws) is replaced by our own, never sent.
  const generate =
    custom === undefined
      ? own
      : () => {
          let id: unknown;
          try {
            id = custom();
          } catch {
            return own();
          }
          return typeof id === 'string' && id.length > 0 && id.length <= 1024 && SAFE_ID.test(id)
            ? id
            : own();
        };
  // Only our own UUIDs are known safe to log without redaction; a custom generator is checked like input.
  const ownIds = options.generate === undefined;
  const setHeader = options.setResponseHeader ?? true;
  const trustTraceparent = options.trustTraceparent ?? true;
  const als = storage();

  return function requestContextMiddleware(req: Request, res: Response, next: NextFunction): void {
    const incoming = trustIncoming ? req.headers[header] : undefined;
    const accepted = typeof incoming === 'string' && incoming.length > 0 && validate(incoming);
    const requestId = accepted ? incoming : generate();
    const parent = trustTraceparent
      ? parseTraceparent(typeof req.headers.traceparent === 'string' ? req.headers.traceparent : undefined)
      : undefined;
    // With an OpenTelemetry SDK, its server span is the request's span: logs, exemplars and
    // outgoing `traceparent` then name the trace the SDK exports.
    const span = activeSpan()?.spanContext();
    const ctx =
      span === undefined
        ? new Context(
            req,
            requestId,
            ownIds && !accepted,
            parent === undefined ? ids.traceId() : parent.traceId,
            ids.spanId(),
            parent?.parentId,
            parent === undefined ? '01' : parent.flags,
            Date.now(),
            performance.now(),
          )
        : new Context(
            req,
            requestId,
            ownIds && !accepted,
            span.traceId,
            span.spanId,
            parent?.parentId,
            (span.traceFlags & 1) === 1 ? '01' : '00',
            Date.now(),
            performance.now(),
          );
    const holder = req as unknown as Record<symbol, RequestContext | undefined>;
    const previous = pinnedContext(req);
    if (ownHeader) ctx.requestIdHeader = header;
    if (previous !== undefined) adoptClosers(ctx, previous);
    holder[CONTEXT_KEY] = ctx;
    // Used inside a sub-app or router: the path above already holds the mount's values.
    if (req.baseUrl) ctx.seedMount(req.baseUrl, req.app);
    patchRequestPrototype(req);
    if (setHeader) res.setHeader(header, requestId);
    als.run(ctx, next);
  };
}

/** A context for work outside HTTP (jobs, consumers, tests), for `runWithContext`. */
export function createContext(
  init: { requestId?: string; traceId?: string; userId?: string } = {},
): RequestContext {
  const ids = createIdSource(64);
  const ctx = new Context(
    undefined,
    init.requestId ?? ids.requestId(),
    init.requestId === undefined,
    init.traceId ?? ids.traceId(),
    ids.spanId(),
    undefined,
    '01',
    Date.now(),
    performance.now(),
  );
  ctx.userId = init.userId;
  return ctx;
}
