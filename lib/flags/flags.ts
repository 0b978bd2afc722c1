import type { RequestHandler, Router } from 'express';
import { getContext } from '../context/index.js';
import type { Logger } from '../logging/index.js';
import { adminRouter } from './admin-router.js';
import type { EvaluationCounts } from './counts.js';
import type { FlagDefinition, StoredFlagDefinition } from './definition.js';
import { checkName, invalidFlag, isFlagName, parseDefinition } from './definition.js';
import type { FlagContext, FlagEvaluation } from './evaluate.js';
import { BucketCache, evaluate } from './evaluate.js';
import { openFeatureProvider } from './openfeature.js';
import { flagsMiddleware } from './request.js';
import type { FlagsStatus, FlagStore } from './store.js';
import type { AdminRouterOptions, FeatureFlags, FlagContextInput, FlagsProvider } from './types.js';

/** The context to evaluate for: the one given (a context or a user), else the request's. */
function contextOf(input: FlagContextInput | undefined): FlagContext {
  if (input === undefined) {
    const ctx = getContext();
    return { userId: ctx?.userId, roles: ctx?.roles };
  }
  if ('id' in input && !('userId' in input)) return { userId: input.id, roles: input.roles };
  return input as FlagContext;
}

function timeOf(now: number | Date | undefined): number {
  if (now === undefined) return Date.now();
  return typeof now === 'number' ? now : now.getTime();
}

/** What `featureFlags()` returns; see {@link FeatureFlags}. */
export class Flags implements FeatureFlags {
  readonly #store: FlagStore;
  readonly #environment: string;
  readonly #counts: EvaluationCounts | undefined;
  readonly #logger: Logger;
  readonly #stopReporting: () => void;
  readonly #buckets = new BucketCache();

  constructor(
    store: FlagStore,
    environment: string,
    logger: Logger,
    counts: EvaluationCounts | undefined,
    stopReporting: () => void,
  ) {
    this.#store = store;
    this.#environment = environment;
    this.#logger = logger;
    this.#counts = counts;
    this.#stopReporting = stopReporting;
  }

  evaluate(name: string, ctx?: FlagContextInput): FlagEvaluation {
    const context = contextOf(ctx);
    const flag = typeof name === 'string' ? this.#store.get(name) : undefined;
    const result = evaluate(
      this.#buckets,
      flag,
      context.userId,
      context.roles,
      context.environment ?? this.#environment,
      timeOf(context.now),
    );
    this.#counts?.count(
      flag === undefined ? 'unknown' : name,
      result.variant ?? (result.enabled ? 'on' : 'off'),
    );
    return result;
  }

  isEnabled(name: string, ctx?: FlagContextInput): boolean {
    return this.evaluate(name, ctx).enabled;
  }

  variant(name: string, ctx?: FlagContextInput): string | undefined {
    return this.evaluate(name, ctx).variant;
  }

  async setFlag(name: string, definition: FlagDefinition): Promise<StoredFlagDefinition> {
    return (await this.put(name, definition)).definition;
  }

  /** @internal `setFlag()`, also saying whether the flag is new (the admin router answers 201). */
  async put(name: string, input: unknown): Promise<{ definition: StoredFlagDefinition; created: boolean }> {
    checkName(name);
    const parsed = parseDefinition(input);
    if (!parsed.ok) throw invalidFlag(parsed.errors);
    const created = await this.#store.set(name, parsed.definition);
    return { definition: parsed.definition, created };
  }

  getFlag(name: string): StoredFlagDefinition | undefined {
    return isFlagName(name) ? this.#store.get(name)?.definition : undefined;
  }

  async deleteFlag(name: string): Promise<boolean> {
    if (!isFlagName(name)) return false;
    return this.#store.delete(name);
  }

  listFlags(): Record<string, StoredFlagDefinition> {
    const out: Record<string, StoredFlagDefinition> = {};
    const names = [...this.#store.all().keys()].sort();
    for (const name of names) {
      const flag = this.#store.get(name);
      if (flag !== undefined) out[name] = flag.definition;
    }
    return out;
  }

  middleware(): RequestHandler {
    return flagsMiddleware(this);
  }

  adminRouter(options?: Readonly<AdminRouterOptions>): Router {
    return adminRouter(this, (name, definition) => this.put(name, definition), this.#logger, options);
  }

  openFeatureProvider(): FlagsProvider {
    return openFeatureProvider(this);
  }

  ready(): Promise<void> {
    return this.#store.ready();
  }

  status(): FlagsStatus {
    return this.#store.status();
  }

  async close(): Promise<void> {
    this.#stopReporting();
    await this.#store.close();
  }
}
