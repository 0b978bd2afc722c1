import { loadSettings } from '../config/index.js';
import { ConfigError, readOptions } from '../errors/index.js';
import type { Logger } from '../logging/index.js';
import { createLogger } from '../logging/index.js';
import type { Metrics } from '../metrics/index.js';
import { metricsFor } from '../metrics/index.js';
import { MAX_TIMER_MS } from './abort.js';
import type { CircuitBreakerEvent, CircuitBreakerMode, CircuitBreakerOptions } from './breaker-types.js';
import { isDependencyFailure } from './classify.js';

/** The options, checked and with their defaults. */
export interface BreakerConfig<F> {
  name: string;
  mode: CircuitBreakerMode;
  failureThreshold: number;
  failureRate: number;
  windowMs: number;
  minimumRequests: number;
  recoveryTimeout: number;
  expectedException: (err: unknown) => boolean;
  fallback: ((err: unknown) => F | Promise<F>) | undefined;
  onEvent: ((event: CircuitBreakerEvent) => void) | undefined;
  metrics: Metrics | undefined;
  logger: Logger;
}

const KNOWN = [
  'name',
  'mode',
  'failureThreshold',
  'failureRate',
  'windowMs',
  'minimumRequests',
  'recoveryTimeout',
  'expectedException',
  'fallback',
  'onEvent',
  'metrics',
  'logger',
  'settings',
] as const satisfies readonly (keyof CircuitBreakerOptions)[];

const RATE_ONLY = ['failureRate', 'windowMs', 'minimumRequests'] as const;
const NAME = /^[\w.-]{1,64}$/;
const FACTORY = 'circuitBreaker';

function integer(option: string, value: unknown, min: number, max = MAX_TIMER_MS): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max)
    throw ConfigError.option(FACTORY, option, `an integer from ${min} to ${max}`, value);
  return value;
}

function optionalFunction<T>(option: string, value: T | undefined): T | undefined {
  if (value !== undefined && typeof value !== 'function')
    throw ConfigError.option(FACTORY, option, 'a function', value);
  return value;
}

function readMode(options: Partial<CircuitBreakerOptions<unknown>>): CircuitBreakerMode {
  const mode: unknown = options.mode ?? 'consecutive';
  if (mode !== 'consecutive' && mode !== 'rate')
    throw ConfigError.option(FACTORY, 'mode', "'consecutive' or 'rate'", mode);
  const misplaced =
    mode === 'rate'
      ? options.failureThreshold === undefined
        ? undefined
        : 'failureThreshold'
      : RATE_ONLY.find((key) => options[key] !== undefined);
  if (misplaced !== undefined)
    throw new ConfigError(
      `${FACTORY}: ${misplaced} does not apply to mode '${mode}' (failureThreshold is for 'consecutive'; failureRate, windowMs and minimumRequests for 'rate')`,
      [{ name: misplaced, expected: `an option of mode '${mode}'`, received: 'an option of the other mode' }],
    );
  return mode;
}

export function readBreakerOptions<F>(input: Readonly<CircuitBreakerOptions<F>>): BreakerConfig<F> {
  if ((input as unknown) === undefined)
    throw new ConfigError(
      `${FACTORY}: options with a name are required — core.circuitBreaker({ name: 'labs' })`,
    );
  const options = readOptions<CircuitBreakerOptions<F>>(FACTORY, input, KNOWN);
  const { name } = options;
  if (typeof name !== 'string' || !NAME.test(name))
    throw ConfigError.option(FACTORY, 'name', '1–64 characters of A–Z a–z 0–9 _ . -', name);
  const mode = readMode(options);
  const failureRate = options.failureRate ?? 0.5;
  if (typeof failureRate !== 'number' || !(failureRate > 0 && failureRate < 1))
    throw ConfigError.option(FACTORY, 'failureRate', 'a number between 0 and 1 (exclusive)', failureRate);
  const { logger } = options;
  if (logger !== undefined && (typeof logger !== 'object' || typeof logger.warn !== 'function'))
    throw ConfigError.option(FACTORY, 'logger', 'a Logger from core.createLogger()', logger);
  const settings =
    options.settings ??
    (logger === undefined || options.metrics === undefined ? loadSettings(process.env) : undefined);
  return {
    name,
    mode,
    failureThreshold: integer('failureThreshold', options.failureThreshold ?? 5, 1, 1_000_000),
    failureRate,
    windowMs: integer('windowMs', options.windowMs ?? 60_000, 100),
    minimumRequests: integer('minimumRequests', options.minimumRequests ?? 10, 1, 1_000_000),
    recoveryTimeout: integer('recoveryTimeout', options.recoveryTimeout ?? 30_000, 1),
    expectedException:
      optionalFunction('expectedException', options.expectedException) ?? isDependencyFailure,
    fallback: optionalFunction('fallback', options.fallback),
    onEvent: optionalFunction('onEvent', options.onEvent),
    metrics: metricsFor(FACTORY, options.metrics, settings),
    logger: logger ?? createLogger('circuit-breaker', { settings }),
  };
}
