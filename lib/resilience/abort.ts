/** Longest timer Node keeps: a longer delay fires at once (with a warning). */
export const MAX_TIMER_MS = 2_147_483_647;

/**
 * Why a signal aborted: its reason (typed as an Error; a reason of another kind is passed on as
 * given, as `signal.throwIfAborted()` does), or an `AbortError` when it has none.
 */
export function abortReason(signal: AbortSignal): Error {
  return (signal.reason ?? new DOMException('This operation was aborted', 'AbortError')) as Error;
}

/** Whether a signal has aborted (a call, so TypeScript does not narrow it across awaits). */
export function aborted(signal: AbortSignal | undefined): boolean {
  return signal?.aborted === true;
}

/**
 * Wait `ms`, or reject with the signal's reason as soon as it aborts. Either way nothing is left
 * behind: the timer is cleared and the listener removed.
 */
export function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  if (signal?.aborted === true) return Promise.reject(abortReason(signal));
  return new Promise<void>((resolve, reject) => {
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(abortReason(signal as AbortSignal));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * A signal for one call: the caller's, or a fresh one that never aborts — never a signal shared
 * between calls, which would collect every call's abort listeners.
 */
export function callSignal(signal: AbortSignal | undefined): AbortSignal {
  return signal ?? new AbortController().signal;
}

/** The `signal` argument of a call: undefined or an AbortSignal. */
export function isSignal(value: unknown): value is AbortSignal | undefined {
  return value === undefined || value instanceof AbortSignal;
}
