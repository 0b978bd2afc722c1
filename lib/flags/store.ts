import type { StoredFlagDefinition } from './definition.js';
import type { CompiledFlag } from './evaluate.js';
import { compile } from './evaluate.js';

/** What the health check reads: `flags.status()`. */
export interface FlagsStatus {
  readonly store: 'memory' | 'redis';
  /** Memory: always. Redis: connected, subscribed and the last load succeeded. */
  readonly healthy: boolean;
  /** Flags this instance knows (and evaluates) now. */
  readonly flags: number;
  /** Epoch ms of the last successful load from Redis (Redis store only). */
  readonly lastSyncAt?: number;
}

/**
 * Where definitions live. Reads are synchronous, from this instance's cache: no evaluation
 * waits on I/O. Writes resolve once the store has them.
 */
export interface FlagStore {
  readonly kind: 'memory' | 'redis';
  get(name: string): CompiledFlag | undefined;
  all(): ReadonlyMap<string, CompiledFlag>;
  /** Resolves to true when the flag was created, false when it replaced one. */
  set(name: string, definition: StoredFlagDefinition): Promise<boolean>;
  /** Resolves to whether there was such a flag. */
  delete(name: string): Promise<boolean>;
  /** Resolves once the store has been read at least once (rejects when it cannot be). */
  ready(): Promise<void>;
  status(): FlagsStatus;
  close(): Promise<void>;
}

export function compileAll(
  definitions: ReadonlyMap<string, StoredFlagDefinition>,
): Map<string, CompiledFlag> {
  const out = new Map<string, CompiledFlag>();
  for (const [name, definition] of definitions) out.set(name, compile(name, definition));
  return out;
}

/** Flags of this instance only: the `flags` option seeds it. */
export class MemoryFlagStore implements FlagStore {
  readonly kind = 'memory';
  readonly #flags: Map<string, CompiledFlag>;

  constructor(seed: ReadonlyMap<string, StoredFlagDefinition>) {
    this.#flags = compileAll(seed);
  }

  get(name: string): CompiledFlag | undefined {
    return this.#flags.get(name);
  }

  all(): ReadonlyMap<string, CompiledFlag> {
    return this.#flags;
  }

  set(name: string, definition: StoredFlagDefinition): Promise<boolean> {
    const created = !this.#flags.has(name);
    this.#flags.set(name, compile(name, definition));
    return Promise.resolve(created);
  }

  delete(name: string): Promise<boolean> {
    return Promise.resolve(this.#flags.delete(name));
  }

  ready(): Promise<void> {
    return Promise.resolve();
  }

  status(): FlagsStatus {
    return { store: 'memory', healthy: true, flags: this.#flags.size };
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
