/** A logger whose output is captured from a real winston Stream transport, for assertions on log lines. */
import { Writable } from 'node:stream';
import winston from 'winston';
import * as core from '../../lib/index';

export interface CapturedLogger {
  logger: core.Logger;
  /** Everything written, as the transport wrote it. */
  raw(): string;
  /** Each line parsed as JSON. */
  lines(): Record<string, unknown>[];
}

export function captureLogger(name = 'test', options: core.LoggerOptions = {}): CapturedLogger {
  const chunks: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer | string, _enc, cb) {
      chunks.push(chunk.toString());
      cb();
    },
  });
  const logger = core.createLogger(name, {
    console: false,
    format: 'json',
    level: 'silly',
    settings: core.loadSettings({ NODE_ENV: 'test' }),
    transports: [new winston.transports.Stream({ stream: sink })],
    ...options,
  });
  const raw = (): string => chunks.join('');
  return {
    logger,
    raw,
    lines: () =>
      raw()
        .split('\n')
        .filter((l) => l.length > 0)
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}
