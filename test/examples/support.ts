/** Helpers for the example acceptance tests: quiet loggers whose lines the test can read. */
import TransportStream from 'winston-transport';
import type { Logger, Settings } from '../../lib/index';
import { createLogger } from '../../lib/index';

const MESSAGE = Symbol.for('message');

export type LogLine = Record<string, unknown>;

/** A winston transport keeping each final (redacted, serialised) line, as a file would receive it. */
class CaptureTransport extends TransportStream {
  readonly #lines: LogLine[];

  constructor(lines: LogLine[]) {
    super();
    this.#lines = lines;
  }

  override log(info: Record<string | symbol, unknown>, callback: () => void): void {
    this.#lines.push(JSON.parse(String(info[MESSAGE])) as LogLine);
    callback();
  }
}

export interface CapturedLogs {
  lines: LogLine[];
  /** Pass as `createLogger` to the example's `createApp()`. */
  createLogger: (name: string) => Logger;
  /** Every captured line joined, for "appears nowhere" checks. */
  text: () => string;
}

/** No console output; every line of every logger lands in `lines`. */
export function captureLogs(settings: Settings): CapturedLogs {
  const lines: LogLine[] = [];
  return {
    lines,
    createLogger: (name) =>
      createLogger(name, {
        settings,
        console: false,
        format: 'json',
        transports: [new CaptureTransport(lines)],
      }),
    text: () => lines.map((l) => JSON.stringify(l)).join('\n'),
  };
}

/** Access lines are written on `finish`, which can land just after the client has the response. */
export async function waitFor<T>(probe: () => T | undefined, timeoutMs = 2000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`waitFor: nothing after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
