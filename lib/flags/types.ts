import type { RequestHandler, Router } from 'express';
import type { FlagDefinition, JsonValue, StoredFlagDefinition } from './definition.js';
import type { FlagContext, FlagEvaluation } from './evaluate.js';
import type { FlagsStatus } from './store.js';

/** An evaluation context, or a user as `authenticate()` puts it on `req.user` (`id`, `roles`). */
export type FlagContextInput =
  FlagContext | { readonly id: string; readonly roles?: readonly string[] | undefined };

/** Options of `flags.adminRouter()`. */
export interface AdminRouterOptions {
  /** Roles allowed to read and change flags (any one of them). Default `['admin']`. */
  roles?: readonly string[];
}

/** `req.flags`, set by `flags.middleware()`: evaluations for the request's user. */
export interface RequestFlags {
  isEnabled(name: string): boolean;
  variant(name: string): string | undefined;
  evaluate(name: string): FlagEvaluation;
}

/**
 * An OpenFeature evaluation context: `targetingKey` is the user id, `roles` a list of roles,
 * `environment` overrides the flags' environment.
 */
export type OpenFeatureContext = Readonly<Record<string, unknown>> & { readonly targetingKey?: string };

/**
 * What an OpenFeature provider returns (`ResolutionDetails`). On an error `errorCode`
 * (`FLAG_NOT_FOUND`, `TYPE_MISMATCH`) is set too; it is not declared here because OpenFeature
 * types it as an enum, which no structural type can match.
 */
export interface FlagResolution<T> {
  readonly value: T;
  readonly variant?: string;
  /** `STATIC`, `TARGETING_MATCH`, `DEFAULT`, `DISABLED` or `ERROR`. */
  readonly reason?: string;
  readonly errorMessage?: string;
}

/**
 * An OpenFeature server provider (`@openfeature/server-sdk`'s `Provider`), described
 * structurally so caduceus does not depend on the SDK.
 *
 * @example
 * await OpenFeature.setProviderAndWait(flags.openFeatureProvider());
 * const on = await OpenFeature.getClient().getBooleanValue('new-dashboard', false, { targetingKey: userId });
 */
export interface FlagsProvider {
  readonly metadata: { readonly name: 'caduceus' };
  readonly runsOn: 'server';
  resolveBooleanEvaluation(
    flagKey: string,
    defaultValue: boolean,
    context: OpenFeatureContext,
  ): Promise<FlagResolution<boolean>>;
  resolveStringEvaluation(
    flagKey: string,
    defaultValue: string,
    context: OpenFeatureContext,
  ): Promise<FlagResolution<string>>;
  resolveNumberEvaluation(
    flagKey: string,
    defaultValue: number,
    context: OpenFeatureContext,
  ): Promise<FlagResolution<number>>;
  resolveObjectEvaluation<T extends JsonValue>(
    flagKey: string,
    defaultValue: T,
    context: OpenFeatureContext,
  ): Promise<FlagResolution<T>>;
}

/**
 * Feature flags: evaluated from this instance's cache (no evaluation waits on I/O), changed
 * through the store (memory, or Redis shared by every instance).
 */
export interface FeatureFlags {
  /**
   * Whether the flag is on for `ctx` — default: the current request's user and roles. Unknown
   * flags are off.
   */
  isEnabled(name: string, ctx?: FlagContextInput): boolean;
  /** The flag's variant for `ctx`, or undefined when it is off for them or has no variants. */
  variant(name: string, ctx?: FlagContextInput): string | undefined;
  /** The whole outcome: on or off, why, and the variant. */
  evaluate(name: string, ctx?: FlagContextInput): FlagEvaluation;
  /**
   * Create or replace a flag, on every instance. Rejects with a 400 `VALIDATION_ERROR` for an
   * invalid name or definition, and with a 503 `SERVICE_UNAVAILABLE` while Redis is down.
   * Resolves to the definition as stored.
   */
  setFlag(name: string, definition: FlagDefinition): Promise<StoredFlagDefinition>;
  /** The definition as this instance knows it. */
  getFlag(name: string): StoredFlagDefinition | undefined;
  /** Delete a flag everywhere; resolves to whether it existed. 503 while Redis is down. */
  deleteFlag(name: string): Promise<boolean>;
  /** Every flag this instance knows, by name (sorted). */
  listFlags(): Record<string, StoredFlagDefinition>;
  /** Middleware that sets `req.flags`, bound to the request's user. */
  middleware(): RequestHandler;
  /**
   * An Express router to list (`GET /`), read (`GET /:name`), create or replace (`PUT /:name`, 201
   * or 200) and delete (`DELETE /:name`, 204) flags; 401 without a user, 403 without a role.
   */
  adminRouter(options?: Readonly<AdminRouterOptions>): Router;
  /** An OpenFeature server provider over these flags. */
  openFeatureProvider(): FlagsProvider;
  /** Resolves once the store has been read (Redis: rejects with 503 when it cannot be at start-up). */
  ready(): Promise<void>;
  /** For health checks. */
  status(): FlagsStatus;
  /** Close the Redis connections the flags opened (an application's client stays open). */
  close(): Promise<void>;
}
