import { AsyncLocalStorage, AsyncResource } from 'node:async_hooks';
import { IncomingMessage } from 'node:http';
import type { ServerResponse } from 'node:http';
import { activeSpan, otelRegistered } from './otel.js';

/**
 * What caduceus knows about the request being served. One object per request, read by logging,
 * errors, metrics and repositories through `getContext()`; never through globals.
 */
export interface RequestContext {
  /** Accepted from `X-Request-Id` when safe, else generated (UUID v4). */
  readonly requestId: string;
  /** True when caduceus generated the id (a UUID, safe to log as is); false when a caller sent it. */
  readonly requestIdGenerated: boolean;
  /** W3C trace id (32 hex), from `traceparent` or generated. */
  readonly traceId: string;
  /** This request's span id (16 hex). */
  readonly spanId: string;
  /** The caller's span id when a valid `traceparent` arrived. */
  readonly parentSpanId: string | undefined;
  readonly traceFlags: string;
  /** `Date.now()` when the request entered `requestContext()`. */
  readonly startTime: number;
  /** High-resolution start (`performance.now()`), for durations. */
  readonly startHr: number;
  /** Client IP, honouring Express `trust proxy`; computed on first read. */
  readonly ip: string | undefined;
  /** Set by `authenticate()` (or `setUser()`) once the caller is known. */
  userId: string | undefined;
  roles: readonly string[] | undefined;
  /** How the caller was identified: `user` (a token), `service` (a client certificate). */
  actorType?: 'user' | 'service' | undefined;
  /** The `User-Agent` header. */
  readonly userAgent?: string | undefined;
  /** The request method. */
  readonly method?: string | undefined;
  /** A request header's (first) value: for parts that record facts about the request (the audit trail). */
  header?(name: string): string | undefined;
  /** `traceparent` value to send on outgoing calls so the trace continues. */
  readonly traceparent: string;
  /** The header the request id travels in (`requestContext({ header })`); `x-request-id` by default. */
  readonly requestIdHeader?: string;
  /**
   * The matched route template with its mount path (`/api/v1/patients/:id`), recorded when Express
   * matches the route — still right after the error left the router and Express reset `baseUrl`.
   */
  readonly route: string | undefined;
}

interface RequestLike extends IncomingMessage {
  ip?: string;
}

/**
 * What Express matched for a request: the route and each router's mount path, as templates. Part
 * of every request context; `metrics()` keeps one on requests that have no context.
 */
export class RouteTracker {
  /** @internal Set through the `req.route` accessor. */
  matchedRoute: { path?: unknown } | undefined = undefined;
  /** @internal The mount path, as a template, when the route matched. */
  mountPath = '';
  /** @internal Routers entered so far: [actual baseUrl, its template, …] (see `noteMount`). */
  mounts: string[] | undefined = undefined;
  /** @internal The route template, built on first read. */
  routeText: string | undefined = undefined;

  get route(): string | undefined {
    if (this.routeText !== undefined) return this.routeText;
    const route = this.matchedRoute;
    if (route === undefined) return undefined;
    // Express accepts arrays and regular expressions as paths: written in code, so bounded.
    this.routeText = `${this.mountPath}${pathText(route.path)}`;
    return this.routeText;
  }

  /**
   * @internal Express just set `req.baseUrl` to `actual` with `params` the params of the mount
   * path that matched (Express assigns `req.params` before `req.baseUrl`). Keeps the template of
   * each router's mount path — `/api/patients/:pid/notes` rather than `/api/patients/42/notes` —
   * so route labels never carry a value. Requests through routers without params do no work here.
   * `pattern` is the path the matching layer was mounted with, when the router says (Express 5).
   */
  noteMount(actual: string, params: Readonly<Record<string, unknown>> | undefined, pattern?: unknown): void {
    let mounts = this.mounts;
    if (mounts === undefined) {
      if (params === undefined || !hasKeys(params)) return;
      mounts = this.mounts = [];
    }
    // Leave the routers this path is not inside of (Express restores baseUrl on the way out).
    while (mounts.length > 0) {
      const top = mounts[mounts.length - 2] ?? '';
      if (actual === top) return;
      if (actual.startsWith(top) && actual.charCodeAt(top.length) === 47 /* / */) break;
      mounts.length -= 2;
    }
    const base = mounts.length > 0 ? (mounts[mounts.length - 2] ?? '') : '';
    const baseTemplate = mounts.length > 0 ? (mounts[mounts.length - 1] ?? '') : '';
    const removed = actual.slice(base.length);
    mounts.push(actual, baseTemplate + mountedAs(removed, params, pattern));
  }

  /**
   * @internal The context starts below a mount (requestContext() or metrics() used inside a
   * sub-app or router): the mount's values are already in `req.baseUrl`. A sub-app's mount
   * path (`app.mountpath` up the `parent` chain) gives its template; a router's cannot be known,
   * so its part becomes `/{mount}` — a constant, never a value.
   */
  seedMount(actual: string, app: unknown): void {
    let template = '';
    for (let a = app as MountedApp | undefined; a?.parent !== undefined; a = a.parent) {
      if (typeof a.mountpath !== 'string') {
        template = '';
        break;
      }
      template = (a.mountpath === '/' ? '' : a.mountpath) + template;
    }
    const explained =
      template !== '' && template.split('/').length === actual.split('/').length && !/[*{(?+]/.test(template);
    if (!explained && !warnedMount) {
      warnedMount = true;
      process.emitWarning(
        'caduceus: requestContext()/metrics() run below a router mount; its path appears as /{mount} in route labels. Mount them on the app itself.',
        { code: 'CADUCEUS_MOUNTED_CONTEXT' },
      );
    }
    this.mounts = [actual, explained ? template : '/{mount}'];
  }

  /** @internal Express left routers, back to `actual`: forget the deeper ones (never their stale params). */
  leaveMount(actual: string): void {
    const mounts = this.mounts;
    if (mounts === undefined) return;
    while (mounts.length > 0) {
      const top = mounts[mounts.length - 2] ?? '';
      if (actual === top || (actual.startsWith(top) && actual.charCodeAt(top.length) === 47)) return;
      mounts.length -= 2;
    }
  }

  /** @internal The template of the mount path `actual` (itself when no router along it had params). */
  mountTemplate(actual: string): string {
    const mounts = this.mounts;
    if (mounts === undefined) return actual;
    for (let i = mounts.length - 2; i >= 0; i -= 2) {
      const seen = mounts[i] ?? '';
      if (actual === seen) return mounts[i + 1] ?? actual;
      if (actual.startsWith(seen) && actual.charCodeAt(seen.length) === 47)
        return (mounts[i + 1] ?? '') + actual.slice(seen.length);
    }
    return actual;
  }
}

interface MountedApp {
  mountpath?: unknown;
  parent?: MountedApp;
}

let warnedMount = false;

/**
 * Where a context keeps the functions to run when its response closes (see `onResponseClose`): a
 * global symbol, so two copies of caduceus on one request share one list and one listener.
 */
const CLOSERS = Symbol.for('caduceus.context.closers');
type Closer = (this: ServerResponse) => void;

/**
 * @internal The start (`performance.now()`) of an access line still to be written for this
 * request, kept on the context rather than added to the response: Express gives every response
 * a map of its own (it swaps the prototype per request), so each property added to one builds a
 * new map — about 1.8 kB and a microsecond per request.
 */
export const ACCESS_LOG_START = Symbol.for('caduceus.context.accessLogStart');

/** The request id's header unless `requestContext({ header })` names another. */
export const REQUEST_ID_HEADER = 'x-request-id';

/** Concrete context: a class so every request's object has the same shape (fast property access). */
export class Context extends RouteTracker implements RequestContext {
  [CLOSERS]: Closer[] | undefined = undefined;
  [ACCESS_LOG_START]: number | undefined = undefined;
  userId: string | undefined = undefined;
  roles: readonly string[] | undefined = undefined;
  actorType: 'user' | 'service' | undefined = undefined;
  requestIdHeader = REQUEST_ID_HEADER;
  #ip: string | undefined | null = null;
  readonly #req: RequestLike | undefined;

  constructor(
    req: RequestLike | undefined,
    readonly requestId: string,
    /** True when we generated the id (then it is safe to log as is); false when a caller sent it. */
    readonly requestIdGenerated: boolean,
    readonly traceId: string,
    readonly spanId: string,
    readonly parentSpanId: string | undefined,
    readonly traceFlags: string,
    readonly startTime: number,
    readonly startHr: number,
  ) {
    super();
    this.#req = req;
  }

  get ip(): string | undefined {
    if (this.#ip === null) {
      const req = this.#req;
      // Without X-Forwarded-For, Express's req.ip is the socket address whatever `trust proxy` says.
      this.#ip =
        req === undefined
          ? undefined
          : req.headers['x-forwarded-for'] === undefined
            ? req.socket.remoteAddress
            : (req.ip ?? req.socket.remoteAddress);
    }
    return this.#ip;
  }

  get userAgent(): string | undefined {
    return this.#req?.headers['user-agent'];
  }

  get method(): string | undefined {
    return this.#req?.method;
  }

  header(name: string): string | undefined {
    const value = this.#req?.headers[name];
    return Array.isArray(value) ? value[0] : value;
  }

  get traceparent(): string {
    return `00-${this.traceId}-${this.spanId}-${this.traceFlags}`;
  }

  toJSON(): Record<string, unknown> {
    return { requestId: this.requestId, traceId: this.traceId, spanId: this.spanId, userId: this.userId };
  }
}

/**
 * One AsyncLocalStorage for the process, shared through a global symbol so the ESM and CJS builds
 * (or two installed copies) see the same store. It holds no request data itself.
 */
const KEY = Symbol.for('caduceus.context.storage');
type Holder = Record<symbol, AsyncLocalStorage<RequestContext> | undefined>;

export function storage(): AsyncLocalStorage<RequestContext> {
  const holder = globalThis as unknown as Holder;
  let als = holder[KEY];
  if (als === undefined) {
    als = new AsyncLocalStorage<RequestContext>();
    holder[KEY] = als;
  }
  return als;
}

/** Property under which the context is also pinned to `req`, for code that runs outside the async tree. */
export const CONTEXT_KEY = Symbol.for('caduceus.context');

// The accessors below may be installed by one copy of caduceus (the ESM and the CJS build, two
// versions, a test runner's module registries) and used by another, one on IncomingMessage and
// one on Express's request: their storage keys are global symbols so every copy sees one value.
const ROUTE_FALLBACK = Symbol.for('caduceus.route');

/** Set on `req` by `notFound()`: no route took the request, whatever matched on the way. */
export const UNMATCHED = Symbol.for('caduceus.unmatched');
const BASE_URL = Symbol.for('caduceus.baseUrl');

/**
 * On requests without a context, `metrics()` sets this to `true`: "track routes". The `baseUrl`
 * accessor replaces it with a RouteTracker when a router with params is entered — until then the
 * route's template is `baseUrl` + its path, no tracker needed (no allocation per request).
 */
export const ROUTE_TRACKER = Symbol.for('caduceus.routeTracker');

/** With `ROUTE_TRACKER` still `true`: the (literal) mount path when the route matched. */
const ROUTE_MOUNT = Symbol.for('caduceus.routeMount');

function pathText(path: unknown): string {
  return typeof path === 'string' ? path : Array.isArray(path) ? path.join('|') : String(path);
}

/**
 * The matched route's template with its mount path (`/api/patients/:id`), or undefined when no
 * route matched: from the request context or the tracker `metrics()` keeps, else from what
 * Express left on the request.
 */
export function routeTemplateOf(req: object): string | undefined {
  const holder = req as RouteHolder & { route?: { path?: unknown } };
  const tracked = holder[CONTEXT_KEY] ?? holder[ROUTE_TRACKER];
  if (tracked !== undefined && tracked !== true) return tracked.route;
  const route = holder.route;
  if (route === undefined) return undefined;
  const mount = tracked === true ? (holder[ROUTE_MOUNT] ?? '') : (holder.baseUrl ?? '');
  return `${mount}${pathText(route.path)}`;
}

function trackerOf(holder: RouteHolder): RouteTracker | undefined {
  const tracker = holder[ROUTE_TRACKER];
  return tracker === true ? undefined : tracker;
}

interface RouteHolder {
  method?: string;
  baseUrl?: string;
  params?: Record<string, unknown>;
  [CONTEXT_KEY]?: Context;
  [ROUTE_TRACKER]?: RouteTracker | true;
  [ROUTE_FALLBACK]?: { path?: unknown };
  [BASE_URL]?: string;
  [ROUTE_MOUNT]?: string;
}

function hasKeys(object: object): boolean {
  for (const key in object) if (Object.hasOwn(object, key)) return true;
  return false;
}

function decode(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    // A malformed escape cannot equal a decoded param value; compare it as is.
    return segment;
  }
}

/**
 * The template of the part of the path one router's mount matched (`removed`, e.g. `/patients/42/notes`).
 *
 * Express 5's router records the pattern it matched (`/patients/:pid/notes`): used as written
 * when it has a fixed number of segments. Otherwise (Express 4, wildcards, optional parts) only
 * the values are known, so they are put back as `:name`: each param once, in the order
 * of its mount path (the order of `req.params`' keys), each to the first segment — or run of
 * segments, for wildcards — at or after the previous one that decodes to its value. A value equal
 * to a literal segment before it can still take that segment's place; the label is then wrong but
 * still bounded (the value is one of the literals). When a value is found nowhere, the whole part
 * becomes `/:name…` so that no value can reach a label.
 */
function mountedAs(
  removed: string,
  params: Readonly<Record<string, unknown>> | undefined,
  pattern: unknown,
): string {
  if (params === undefined || !hasKeys(params)) return removed;
  if (typeof pattern === 'string' && !/[*{(?+]/.test(pattern)) {
    // `removed` may start with the literal mount paths of routers without params (they are not
    // recorded): the pattern covers its last segments, one per segment of the pattern.
    const own = pattern.length > 1 && pattern.endsWith('/') ? pattern.slice(0, -1) : pattern;
    const ownSegments = own.split('/').length - 1;
    const segments = removed.split('/');
    if (segments.length - 1 >= ownSegments)
      return segments.slice(0, segments.length - ownSegments).join('/') + own;
  }
  const segments = removed.split('/');
  const names: string[] = [];
  let from = 1;
  let lost = false;
  for (const name in params) {
    if (!Object.hasOwn(params, name)) continue;
    names.push(name);
    const raw = params[name];
    const value = Array.isArray(raw) ? raw.join('/') : raw;
    if (typeof value !== 'string' || value === '') continue;
    let start = -1;
    let end = -1;
    search: for (let i = from; i < segments.length; i++) {
      let joined = '';
      for (let j = i; j < segments.length; j++) {
        joined = j === i ? decode(segments[j] ?? '') : `${joined}/${decode(segments[j] ?? '')}`;
        if (joined === value) {
          start = i;
          end = j;
          break search;
        }
        if (joined.length >= value.length) break;
      }
    }
    if (start < 0) {
      // A parent router's param (mergeParams) is not in this part at all: nothing to replace.
      // Found inside a segment (`/files/:name.:ext`, `/v:version`), it cannot be cut out safely.
      if (removed.includes(value) || decode(removed).includes(value)) lost = true;
      continue;
    }
    segments.splice(start, end - start + 1, `:${name}`);
    from = start + 1;
  }
  return lost ? `/:${names.join('/:')}` : segments.join('/');
}

/** The key under which Express 5's router records the pattern a layer matched (found on first use). */
let matchedKey: symbol | undefined;

function matchedPattern(req: object): unknown {
  if (matchedKey !== undefined) {
    const value = (req as Record<symbol, unknown>)[matchedKey];
    if (value !== undefined) return value;
  }
  for (const key of Object.getOwnPropertySymbols(req)) {
    if (key.description === 'router.tracing.matchedRoute') {
      matchedKey = key;
      return (req as Record<symbol, unknown>)[key];
    }
  }
  return undefined;
}

/**
 * Accessor installed as `route` on the app's request prototype (once per app): Express assigns the matched route there while `req.baseUrl`
 * still holds the mount path, so the mount path is recorded on the context at that moment (the
 * template string is built only if someone reads it). One shared descriptor: no closure per request.
 */
export const ROUTE_DESCRIPTOR: PropertyDescriptor = {
  configurable: true,
  enumerable: true,
  get(this: RouteHolder) {
    const ctx = this[CONTEXT_KEY] ?? trackerOf(this);
    return ctx === undefined ? this[ROUTE_FALLBACK] : ctx.matchedRoute;
  },
  set(this: RouteHolder, route: { path?: unknown } | undefined) {
    const ctx = this[CONTEXT_KEY] ?? trackerOf(this);
    if (ctx === undefined) {
      // No context: behave like a plain property. metrics() without a context ("track routes",
      // no router with params entered) needs only the mount path, which is literal here.
      this[ROUTE_FALLBACK] = route;
      if (this[ROUTE_TRACKER] === true) this[ROUTE_MOUNT] = this.baseUrl ?? '';
      return;
    }
    ctx.matchedRoute = route;
    ctx.mountPath = ctx.mountTemplate(this.baseUrl ?? '');
    ctx.routeText = undefined;
    // OpenTelemetry's HTTP server span knows the URL, not the route: name it by the template
    // (`GET /api/patients/:id`), as the semantic conventions ask.
    if (route !== undefined && otelRegistered()) {
      const span = activeSpan();
      const template = ctx.route;
      if (span !== undefined && template !== undefined) {
        span.setAttribute('http.route', template);
        span.updateName(`${this.method ?? 'GET'} ${template}`);
      }
    }
  },
};

/**
 * Accessor installed as `baseUrl` beside `route`: a plain property for Express, and the moment
 * caduceus learns each router's mount path with the params it matched (see `Context.noteMount`).
 */
export const BASE_URL_DESCRIPTOR: PropertyDescriptor = {
  configurable: true,
  enumerable: true,
  get(this: RouteHolder) {
    return this[BASE_URL];
  },
  set(this: RouteHolder, value: string | undefined) {
    const previous = this[BASE_URL];
    this[BASE_URL] = value;
    if (value === undefined || value === '') return;
    let ctx = this[CONTEXT_KEY] ?? this[ROUTE_TRACKER];
    if (ctx === undefined) return;
    // Only entering a router lengthens baseUrl. On the way out Express restores baseUrl before
    // params and the matched pattern, so what they hold then belongs to the router just left.
    if (previous !== undefined && previous.length >= value.length) {
      if (ctx !== true) ctx.leaveMount(value);
      return;
    }
    const params = this.params;
    // Only a mount with params needs its pattern (the common case: none, no work).
    if (params === undefined || (!hasKeys(params) && (ctx === true || ctx.mounts === undefined))) return;
    if (ctx === true) {
      ctx = this[ROUTE_TRACKER] = new RouteTracker();
      ctx.matchedRoute = this[ROUTE_FALLBACK];
    }
    ctx.noteMount(value, params, matchedPattern(this));
  },
};

const patched = new WeakSet<object>();

/**
 * Install the `route` and `baseUrl` accessors (see store.ts) once per request prototype: on
 * Express's shared request object — the prototype of every app's and sub-app's `app.request` —
 * so routes matched inside mounted sub-apps are seen too; they behave as plain properties for
 * requests without a context.
 */
export function patchRequestPrototype(req: object): void {
  let proto = Object.getPrototypeOf(req) as object | null;
  if (proto !== null && !patched.has(proto)) {
    const first = proto;
    for (let p: object | null = proto; p !== null; p = Object.getPrototypeOf(p) as object | null) {
      if (Object.getPrototypeOf(p) === IncomingMessage.prototype) {
        proto = p;
        break;
      }
    }
    if (!patched.has(proto)) {
      if (Object.getOwnPropertyDescriptor(proto, 'route') === undefined)
        Object.defineProperty(proto, 'route', ROUTE_DESCRIPTOR);
      if (Object.getOwnPropertyDescriptor(proto, 'baseUrl') === undefined)
        Object.defineProperty(proto, 'baseUrl', BASE_URL_DESCRIPTOR);
      patched.add(proto);
    }
    patched.add(first);
  }
  if (Object.hasOwn(req, 'baseUrl')) {
    // Express 4 assigns `req.baseUrl` before it gives the request the app's prototype (and Express
    // 5 did on this app's first request): the accessor must sit lower, on IncomingMessage itself,
    // where it behaves as a plain property for every request without a context. Then this
    // request's value moves behind it; later requests assign through it from the start.
    if (Object.getOwnPropertyDescriptor(IncomingMessage.prototype, 'baseUrl') === undefined)
      Object.defineProperty(IncomingMessage.prototype, 'baseUrl', BASE_URL_DESCRIPTOR);
    const holder = req as { baseUrl?: string };
    const value = holder.baseUrl;
    delete holder.baseUrl;
    holder.baseUrl = value;
  }
}

/**
 * @internal The context `requestContext()` pinned to this request (never the async one), or
 * undefined. It may come from another copy of caduceus: only the fields under global symbols are
 * shared between copies.
 */
export function pinnedContext(req: object): Context | undefined {
  return (req as { [CONTEXT_KEY]?: Context })[CONTEXT_KEY];
}

/**
 * The current request's context, or undefined outside a request. Pass `req` to read it from the
 * request object instead (works in event handlers that lost the async context).
 */
export function getContext(req?: object): RequestContext | undefined {
  if (req !== undefined) {
    const pinned = pinnedContext(req);
    if (pinned !== undefined) return pinned;
  }
  return storage().getStore();
}

/** The current request id, or undefined outside a request. */
export function getRequestId(req?: object): string | undefined {
  return getContext(req)?.requestId;
}

/**
 * Headers that continue this request's trace on an outgoing call: `traceparent` (W3C) and the
 * request id, in the header `requestContext()` reads it from (`x-request-id` by default). Empty
 * outside a request. (With an OpenTelemetry SDK, its HTTP instrumentation injects `traceparent`
 * itself; the values agree.)
 *
 * @example
 * await fetch(labUrl, { headers: { ...core.traceHeaders(), accept: 'application/json' } });
 */
export function traceHeaders(req?: object): Record<string, string> {
  const ctx = getContext(req);
  if (ctx === undefined) return {};
  return { traceparent: ctx.traceparent, [ctx.requestIdHeader ?? REQUEST_ID_HEADER]: ctx.requestId };
}

/** Record who the caller is; `authenticate()` calls this. Ignored outside a request. */
export function setUser(
  userId: string | undefined,
  roles?: readonly string[],
  req?: object,
  actorType: 'user' | 'service' = 'user',
): void {
  const ctx = getContext(req);
  if (ctx === undefined) return;
  ctx.userId = userId;
  ctx.roles = roles;
  ctx.actorType = userId === undefined ? undefined : actorType;
}

/** Run `fn` inside a context (background jobs, tests, queue consumers). */
export function runWithContext<T>(context: RequestContext, fn: () => T): T {
  return storage().run(context, fn);
}

/**
 * Bind a callback to the current request's context. Callback APIs that queue work on shared
 * connections (pg's `query(sql, cb)`, some Redis clients) call back in the context of whoever
 * opened the connection; promises do not have this problem.
 *
 * @example
 * pool.query(sql, core.bindContext((err, result) => log.info('done'))); // logged with this request's id
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- any callback shape is accepted and returned as is
export function bindContext<F extends (this: unknown, ...args: any[]) => any>(fn: F): F {
  return AsyncResource.bind<F, unknown>(fn);
}

/**
 * Run `fn` (with `this` the response) when the response closes — after 'finish', or when the
 * client went away. Parts that act then (metrics, the access log) share one 'close' listener per
 * request through the request's context, in the order they asked; without a context each gets its
 * own listener.
 */
export function onResponseClose<R extends ServerResponse>(req: object, res: R, fn: (this: R) => void): void {
  const ctx = pinnedContext(req);
  if (ctx === undefined) {
    res.on('close', fn);
    return;
  }
  const closer = fn as Closer;
  const closers = ctx[CLOSERS];
  if (closers !== undefined) {
    closers.push(closer);
    return;
  }
  ctx[CLOSERS] = [closer];
  res.on('close', runClosers);
}

/**
 * @internal Take back what `onResponseClose` registered and `matches` picks, from the shared list
 * and from the response's own listeners; returns how many went.
 */
export function dropOnResponseClose(
  req: object,
  res: ServerResponse,
  matches: (fn: (...args: never[]) => unknown) => boolean,
): number {
  let dropped = 0;
  for (const listener of res.listeners('close')) {
    if (!matches(listener as (...args: never[]) => unknown)) continue;
    res.removeListener('close', listener as (...args: unknown[]) => void);
    dropped++;
  }
  const closers = pinnedContext(req)?.[CLOSERS];
  if (closers !== undefined)
    for (let i = closers.length - 1; i >= 0; i--) {
      if (!matches(closers[i] as Closer)) continue;
      closers.splice(i, 1);
      dropped++;
    }
  return dropped;
}

/**
 * @internal A second `requestContext()` on the same request (a sub-app's own chain) replaces the
 * context: what the first one's parts asked to run at close moves to the new one, so the one
 * listener already on the response still finds it.
 */
export function adoptClosers(ctx: Context, previous: Context): void {
  ctx[CLOSERS] = previous[CLOSERS];
  ctx[ACCESS_LOG_START] = previous[ACCESS_LOG_START];
}

function runClosers(this: ServerResponse): void {
  const closers = pinnedContext(this.req)?.[CLOSERS];
  if (closers === undefined) return;
  for (const fn of closers) fn.call(this);
}
