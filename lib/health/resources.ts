/** The resource half of a graceful shutdown: closing what the application opened, one at a time, each bounded. */
import type { Logger } from '../logging/index.js';
import { errorOutput } from './report.js';

/**
 * Something to release after the server stopped: an object with `close()` (a Database, a rate
 * limiter, an Auth, the flag service, the health router…), with `shutdown()` (the Tracing of
 * `startTracing()`), or a function. A string `name` is used in the logs.
 */
export type Closable =
  | { readonly name?: unknown; close(): unknown }
  | { readonly name?: unknown; shutdown(): unknown }
  | (() => unknown);

/** Close each resource in order, each given `timeoutMs`; one that fails or hangs is logged and passed. True when all closed. */
export async function release(
  resources: readonly Closable[],
  timeoutMs: number,
  logger: Logger,
): Promise<boolean> {
  let clean = true;
  for (const [index, resource] of resources.entries()) {
    const name = nameOf(resource, index);
    try {
      if ((await bounded(() => closeOne(resource), timeoutMs)) === 'timeout') {
        clean = false;
        logger.error('resource did not close in time', { resource: name, timeout_ms: timeoutMs });
      } else logger.info('resource closed', { resource: name });
    } catch (err) {
      clean = false;
      logger.error('resource failed to close', { resource: name, error: errorOutput(err) });
    }
  }
  return clean;
}

/** A copy of `value` when every entry can be closed, else the index of the first that cannot. */
export function readClosables(value: readonly unknown[]): Closable[] | number {
  const index = value.findIndex(
    (r) =>
      typeof r !== 'function' &&
      (typeof r !== 'object' ||
        r === null ||
        (typeof (r as { close?: unknown }).close !== 'function' &&
          typeof (r as { shutdown?: unknown }).shutdown !== 'function')),
  );
  return index === -1 ? [...(value as Closable[])] : index;
}

async function bounded(fn: () => unknown, ms: number): Promise<'done' | 'timeout'> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => {
      resolve('timeout');
    }, ms);
  });
  try {
    return await Promise.race([
      Promise.resolve()
        .then(fn)
        .then(() => 'done' as const),
      timeout,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

function closeOne(resource: Closable): unknown {
  // A function with close() (a rate limiter) is closed, not called.
  if (typeof (resource as { close?: unknown }).close === 'function')
    return (resource as { close(): unknown }).close();
  if (typeof (resource as { shutdown?: unknown }).shutdown === 'function')
    return (resource as { shutdown(): unknown }).shutdown();
  return (resource as () => unknown)();
}

function nameOf(resource: Closable, index: number): string {
  const { name } = resource as { name?: unknown };
  return typeof resource !== 'function' && typeof name === 'string' && name !== ''
    ? name
    : `resources[${index}]`;
}
