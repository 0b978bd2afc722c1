import type { Knex } from 'knex';
import { badQuery } from './filters.js';
import type { SortSpec } from './types.js';

type CursorValue = string | number | null;

/**
 * Cursor = base64url(JSON of [sort signature, values of the last row's sort columns]). The
 * signature ties a cursor to the sort it was made for; values go back into SQL only as bindings.
 */
export function encodeCursor(sort: readonly SortSpec[], row: Record<string, unknown>): string {
  const values = sort.map((s) => {
    const v = row[s.field];
    if (v instanceof Date) return v.toISOString();
    if (v === undefined || v === null) return null;
    if (typeof v === 'number' || typeof v === 'string') return v;
    return typeof v === 'boolean' || typeof v === 'bigint' ? v.toString() : null;
  });
  return Buffer.from(JSON.stringify([signature(sort), values])).toString('base64url');
}

function signature(sort: readonly SortSpec[]): string {
  return sort.map((s) => `${s.direction === 'desc' ? '-' : ''}${s.field}`).join(',');
}

export function decodeCursor(cursor: string, sort: readonly SortSpec[]): CursorValue[] {
  if (cursor.length > 2048 || !/^[A-Za-z0-9_-]+$/.test(cursor))
    throw badQuery('cursor', 'is not a valid cursor');
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    throw badQuery('cursor', 'is not a valid cursor');
  }
  if (!Array.isArray(parsed) || parsed.length !== 2 || parsed[0] !== signature(sort))
    throw badQuery('cursor', 'does not belong to this sort order');
  const values = parsed[1] as unknown;
  if (
    !Array.isArray(values) ||
    values.length !== sort.length ||
    !values.every((v) => v === null || typeof v === 'string' || typeof v === 'number')
  ) {
    throw badQuery('cursor', 'is not a valid cursor');
  }
  return values as CursorValue[];
}

/**
 * Rows strictly after the cursor in the database's own sort order — (a > va) OR (a = va AND b > vb)
 * OR … — in the expanded form that works for mixed directions on every dialect and lets the index
 * on the sort columns do the work. NULLs sort where each database puts them natively (PostgreSQL:
 * above every value; SQLite and MySQL: below), so keyset pages follow exactly the offset order.
 */
export function applyCursor(
  qb: Knex.QueryBuilder,
  sort: readonly SortSpec[],
  values: readonly CursorValue[],
  nullsHigh: boolean,
  nullable: (field: string) => boolean,
  toDb: (field: string, v: CursorValue) => Knex.Value,
): void {
  // A redundant bound on the leading column gives the database a place to start in the index
  // (`created_at <= v AND (created_at < v OR (created_at = v AND id < w))`): without it a
  // multi-column keyset page scans from the start of the index and its cost grows with depth.
  const first = sort[0];
  const v0 = values[0] ?? null;
  if (sort.length > 1 && first !== undefined && v0 !== null && !nullable(first.field)) {
    qb.where(first.field, first.direction === 'desc' ? '<=' : '>=', toDb(first.field, v0));
  }
  qb.where((outer) => {
    sort.forEach((s, i) => {
      outer.orWhere((inner) => {
        for (let j = 0; j < i; j++) {
          const prev = sort[j] as SortSpec;
          const v = values[j] ?? null;
          if (v === null) inner.whereNull(prev.field);
          else inner.where(prev.field, toDb(prev.field, v));
        }
        const v = values[i] ?? null;
        // Do NULLs come after the cursor's position in this direction?
        const nullsAfter = (s.direction === 'asc') === nullsHigh;
        if (v === null) {
          // After a NULL come the non-NULL values when NULLs sort first, nothing when they sort last.
          if (nullsAfter) inner.whereRaw('1 = 0');
          else inner.whereNotNull(s.field);
        } else {
          const op = s.direction === 'desc' ? '<' : '>';
          // `OR col IS NULL` only where NULLs can exist: on a key it would cost the index its order.
          if (nullsAfter && nullable(s.field)) {
            inner.where((b) => {
              b.where(s.field, op, toDb(s.field, v)).orWhereNull(s.field);
            });
          } else {
            inner.where(s.field, op, toDb(s.field, v));
          }
        }
      });
    });
  });
}
