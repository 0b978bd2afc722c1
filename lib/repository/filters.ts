import type { Knex } from 'knex';
import { AppError } from '../errors/index.js';
import type { Filter, FieldFilter, FilterOp, Filters, Scalar } from './types.js';
import { FILTER_OPS } from './types.js';

const OPS = new Set<string>(FILTER_OPS);
const MAX_LIST = 100;
const MAX_DEPTH = 4;

export function badQuery(field: string, problem: string): AppError {
  return new AppError(`Invalid query: ${field} ${problem}`, {
    status: 400,
    code: 'VALIDATION_ERROR',
    details: { field_errors: { [field]: problem } },
  });
}

const isScalar = (v: unknown): v is Scalar =>
  v === null || typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' || v instanceof Date;

/** Object-form filters → a list of FieldFilters. Own keys only; nothing inherited is read. */
export function normaliseFilters(filters: Filters | undefined): Filter[] {
  if (filters === undefined) return [];
  if (Array.isArray(filters)) {
    // Filters can come from parsed JSON: check the shape before anything reads it.
    checkFilterList(filters as unknown[], 0);
    return filters as Filter[];
  }
  if (typeof filters !== 'object' || (filters as unknown) === null)
    throw badQuery('filters', 'must be an object or a list');
  const out: Filter[] = [];
  for (const [field, spec] of Object.entries(filters as Record<string, unknown>)) {
    if (isScalar(spec)) {
      out.push(spec === null ? { field, op: 'is_null', value: true } : { field, op: 'eq', value: spec });
      continue;
    }
    if (typeof spec !== 'object' || Array.isArray(spec))
      throw badQuery(field, 'must be a value or an {operator: value} object');
    for (const [op, value] of Object.entries(spec as Record<string, unknown>)) {
      out.push({ field, op: op as FilterOp, value: value as Scalar });
    }
  }
  return out;
}

function checkFilterList(list: unknown[], depth: number): void {
  if (depth > MAX_DEPTH) throw badQuery('or', 'is nested too deeply');
  for (const f of list) {
    if (typeof f !== 'object' || f === null || Array.isArray(f))
      throw badQuery('filters', 'must be filter objects');
    if ('or' in f) {
      const groups: unknown = f.or;
      if (!Array.isArray(groups) || groups.length === 0 || groups.length > 20)
        throw badQuery('or', 'needs 1 to 20 groups');
      for (const g of groups) {
        if (!Array.isArray(g)) throw badQuery('or', 'groups must be lists of filters');
        checkFilterList(g, depth + 1);
      }
    }
  }
}

/** `%`, `_` and the escape character itself are literal in the user's text. */
function likePattern(value: string): string {
  return `%${value.replace(/[!%_]/g, (c) => `!${c}`)}%`;
}

export interface FilterContext {
  dialect: 'postgres' | 'mysql' | 'sqlite';
  filterable: ReadonlySet<string>;
}

function checkField(f: FieldFilter, ctx: FilterContext): void {
  // Filters can come from parsed JSON: check the types, not just the names.
  const field: unknown = f.field;
  if (typeof field !== 'string' || !ctx.filterable.has(field))
    throw badQuery(typeof field === 'string' ? field.slice(0, 64) : 'filter', 'is not a filterable field');
  if (typeof (f.op as unknown) !== 'string' || !OPS.has(f.op))
    throw badQuery(f.field, `has an unknown operator (use one of ${FILTER_OPS.join(', ')})`);
}

function listValue(f: FieldFilter, min: number, max: number): readonly Scalar[] {
  const v = f.value;
  if (!Array.isArray(v) || v.length < min || v.length > max || !v.every(isScalar)) {
    throw badQuery(
      f.field,
      min === max
        ? `[${f.op}] needs exactly ${min} values`
        : `[${f.op}] needs a list of ${min} to ${max} values`,
    );
  }
  return v;
}

function scalarValue(f: FieldFilter): Scalar {
  if (!isScalar(f.value)) throw badQuery(f.field, `[${f.op}] needs a single value`);
  return f.value;
}

function applyField(qb: Knex.QueryBuilder, f: FieldFilter, ctx: FilterContext): void {
  checkField(f, ctx);
  const col = f.field;
  switch (f.op) {
    case 'eq': {
      const v = scalarValue(f);
      if (v === null) qb.whereNull(col);
      else qb.where(col, v);
      return;
    }
    case 'ne': {
      const v = scalarValue(f);
      if (v === null) qb.whereNotNull(col);
      else
        qb.where((b) => {
          b.whereNot(col, v).orWhereNull(col);
        });
      return;
    }
    case 'gt':
      qb.where(col, '>', notNull(f));
      return;
    case 'gte':
      qb.where(col, '>=', notNull(f));
      return;
    case 'lt':
      qb.where(col, '<', notNull(f));
      return;
    case 'lte':
      qb.where(col, '<=', notNull(f));
      return;
    case 'in':
      qb.whereIn(col, listValue(f, 1, MAX_LIST) as Knex.Value[]);
      return;
    case 'nin':
      qb.whereNotIn(col, listValue(f, 1, MAX_LIST) as Knex.Value[]);
      return;
    case 'between': {
      const [a, b] = listValue(f, 2, 2) as [Knex.Value, Knex.Value];
      qb.whereBetween(col, [a, b]);
      return;
    }
    case 'is_null': {
      const v = f.value;
      const yes = v === true || v === 'true' || v === '1';
      const no = v === false || v === 'false' || v === '0';
      if (!yes && !no) throw badQuery(f.field, '[is_null] needs true or false');
      if (yes) qb.whereNull(col);
      else qb.whereNotNull(col);
      return;
    }
    case 'like':
    case 'ilike': {
      const v = scalarValue(f);
      if (typeof v !== 'string' || v.length === 0 || v.length > 200)
        throw badQuery(f.field, `[${f.op}] needs text of 1 to 200 characters`);
      const pattern = likePattern(v);
      // Identifiers go through Knex's ?? binding (quoted); the pattern is a bound value.
      if (f.op === 'like') qb.whereRaw(`?? LIKE ? ESCAPE '!'`, [col, pattern]);
      else if (ctx.dialect === 'postgres') qb.whereRaw(`?? ILIKE ? ESCAPE '!'`, [col, pattern]);
      else qb.whereRaw(`LOWER(??) LIKE LOWER(?) ESCAPE '!'`, [col, pattern]);
      return;
    }
  }
}

function notNull(f: FieldFilter): Knex.Value {
  const v = scalarValue(f);
  if (v === null) throw badQuery(f.field, `[${f.op}] needs a value`);
  return v;
}

/** Add filters to a query. Every field is checked against the declared filterable columns. */
export function applyFilters(
  qb: Knex.QueryBuilder,
  filters: readonly Filter[],
  ctx: FilterContext,
  depth = 0,
): void {
  if (depth > MAX_DEPTH) throw badQuery('or', 'is nested too deeply');
  for (const f of filters) {
    if ('or' in f) {
      const raw: unknown = f.or;
      if (!Array.isArray(raw) || raw.length === 0 || raw.length > 20)
        throw badQuery('or', 'needs 1 to 20 groups');
      const groups = raw as readonly (readonly Filter[])[];
      qb.where((outer) => {
        for (const group of groups) {
          outer.orWhere((inner) => {
            applyFilters(inner, group, ctx, depth + 1);
          });
        }
      });
    } else {
      applyField(qb, f, ctx);
    }
  }
}

/** The filtered field names (for audit events: names, never values). */
export function filterFields(filters: readonly Filter[]): string[] {
  const out = new Set<string>();
  const walk = (list: readonly Filter[]): void => {
    for (const f of list) {
      if ('or' in f) for (const g of f.or) walk(g);
      else out.add(f.field);
    }
  };
  walk(filters);
  return [...out];
}
