import { randomFillSync, randomUUID } from 'node:crypto';

/**
 * Random hex ids for traces and spans, drawn from one pooled buffer so a request costs no
 * per-id syscall. The pool lives in the factory that needs it, not at module level.
 */
export interface IdSource {
  traceId(): string;
  spanId(): string;
  requestId(): string;
}

export function createIdSource(poolSize = 4096): IdSource {
  const pool = Buffer.allocUnsafe(poolSize);
  let offset = poolSize;
  const hex = (bytes: number): string => {
    if (offset + bytes > poolSize) {
      randomFillSync(pool);
      offset = 0;
    }
    const s = pool.toString('hex', offset, offset + bytes);
    offset += bytes;
    return s;
  };
  return {
    traceId: () => hex(16),
    spanId: () => hex(8),
    requestId: () => randomUUID(),
  };
}

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(?:-.*)?$/;
const ZERO_TRACE = '00000000000000000000000000000000';
const ZERO_SPAN = '0000000000000000';

export interface TraceParent {
  readonly traceId: string;
  readonly parentId: string;
  readonly flags: string;
}

/** Parse a W3C `traceparent` header; undefined for anything invalid (then a new trace starts). */
export function parseTraceparent(header: string | undefined): TraceParent | undefined {
  if (header === undefined || header.length < 55 || header.length > 512) return undefined;
  const m = TRACEPARENT.exec(header);
  if (m === null) return undefined;
  const [, version, traceId, parentId, flags] = m as unknown as [string, string, string, string, string];
  // Version ff is invalid; version 00 has exactly four fields.
  if (version === 'ff' || (version === '00' && header.length !== 55)) return undefined;
  if (traceId === ZERO_TRACE || parentId === ZERO_SPAN) return undefined;
  return { traceId, parentId, flags };
}
