import { AsyncLocalStorage, AsyncResource } from 'node:async_hooks';
import type { IncomingMessage } from 'node:http';

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
  /** `traceparent` value to send on outgoing calls so the trace continues. */
  readonly traceparent: string;
  /**
   * The matched route template with its mount path (`/api/v1/patients/:id`), recorded when Express
   * matches the route — still right after the error left the router and Express reset `baseUrl`.
   */
  readonly route: string | undefined;
}

interface RequestLike extends IncomingMessage {
  ip?: string;
}

/** Concrete context: a class so every request's object has the same shape (fast property access). */
export class Context implements RequestContext {
  userId: string | undefined = undefined;
  roles: readonly string[] | undefined = undefined;
  /** @internal Set through the `req.route` accessor. */
  matchedRoute: { path?: unknown } | undefined = undefined;
  /** @internal `req.baseUrl` when the route matched. */
  mountPath = '';
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

  get route(): string | undefined {
    const path = this.matchedRoute?.path;
    return typeof path === 'string' ? `${this.mountPath}${path}` : undefined;
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

const ROUTE_FALLBACK = Symbol('caduceus.route');

interface RouteHolder {
  baseUrl?: string;
  [CONTEXT_KEY]?: Context;
  [ROUTE_FALLBACK]?: { path?: unknown };
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
    const ctx = this[CONTEXT_KEY];
    return ctx === undefined ? this[ROUTE_FALLBACK] : ctx.matchedRoute;
  },
  set(this: RouteHolder, route: { path?: unknown } | undefined) {
    const ctx = this[CONTEXT_KEY];
    if (ctx === undefined) {
      // A request of this app that did not pass requestContext(): behave like a plain property.
      this[ROUTE_FALLBACK] = route;
      return;
    }
    ctx.matchedRoute = route;
    ctx.mountPath = this.baseUrl ?? '';
  },
};

/**
 * The current request's context, or undefined outside a request. Pass `req` to read it from the
 * request object instead (works in event handlers that lost the async context).
 */
export function getContext(req?: object): RequestContext | undefined {
  if (req !== undefined) {
    const pinned = (req as Record<symbol, RequestContext | undefined>)[CONTEXT_KEY];
    if (pinned !== undefined) return pinned;
  }
  return storage().getStore();
}

/** The current request id, or undefined outside a request. */
export function getRequestId(req?: object): string | undefined {
  return getContext(req)?.requestId;
}

/** Record who the caller is; `authenticate()` calls this. Ignored outside a request. */
export function setUser(userId: string | undefined, roles?: readonly string[], req?: object): void {
  const ctx = getContext(req);
  if (ctx === undefined) return;
  ctx.userId = userId;
  ctx.roles = roles;
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
