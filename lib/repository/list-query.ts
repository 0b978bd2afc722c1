import { badQuery } from './filters.js';
import type { ColumnType, FieldFilter, FilterOp, ListOptions, Scalar, SortSpec } from './types.js';
import { FILTER_OPS } from './types.js';

export interface ListQuerySchema {
  filterable: ReadonlySet<string>;
  sortable: ReadonlySet<string>;
  types: ReadonlyMap<string, ColumnType>;
  defaultPageSize: number;
  maxPageSize: number;
}

const OPS = new Set<string>(FILTER_OPS);
const LIST_OPS = new Set<FilterOp>(['in', 'nin', 'between']);
const RESERVED = new Set(['page', 'size', 'sort', 'cursor', 'limit']);
const FLAT_KEY = /^([A-Za-z_][A-Za-z0-9_]{0,62})\[([a-z_]{1,10})\]$/;
const MAX_KEYS = 50;
const MAX_VALUE = 1000;
const INT = /^(0|[1-9]\d{0,8})$/;

function text(field: string, value: unknown): string {
  if (typeof value !== 'string') throw badQuery(field, 'must be a single value');
  if (value.length > MAX_VALUE) throw badQuery(field, `must be at most ${MAX_VALUE} characters`);
  // PostgreSQL cannot store NUL in text; no legitimate query value contains one.
  if (value.includes('\u0000')) throw badQuery(field, 'must not contain NUL characters');
  return value;
}

function boundedInt(field: string, value: unknown, min: number, max: number): number {
  const s = text(field, value);
  if (!INT.test(s)) throw badQuery(field, `must be an integer from ${min} to ${max}`);
  const n = Number(s);
  if (n < min || n > max) throw badQuery(field, `must be an integer from ${min} to ${max}`);
  return n;
}

function coerce(field: string, raw: string, type: ColumnType): Scalar {
  switch (type) {
    case 'number': {
      const n = Number(raw);
      if (raw.trim() === '' || !Number.isFinite(n)) throw badQuery(field, 'must be a number');
      return n;
    }
    case 'integer': {
      if (!/^-?\d{1,15}$/.test(raw)) throw badQuery(field, 'must be an integer');
      return Number(raw);
    }
    case 'boolean':
      if (raw === 'true' || raw === '1') return true;
      if (raw === 'false' || raw === '0') return false;
      throw badQuery(field, 'must be true or false');
    case 'date': {
      const d = new Date(raw);
      if (!/^\d{4}-\d{2}-\d{2}/.test(raw) || Number.isNaN(d.getTime()))
        throw badQuery(field, 'must be an ISO 8601 date');
      return d;
    }
    default:
      return raw;
  }
}

function parseSort(value: unknown, schema: ListQuerySchema): SortSpec[] {
  const s = text('sort', value);
  const parts = s.split(',');
  if (parts.length > 5) throw badQuery('sort', 'accepts at most 5 fields');
  const out: SortSpec[] = [];
  for (const part of parts) {
    const desc = part.startsWith('-');
    const field = desc || part.startsWith('+') ? part.slice(1) : part;
    if (!schema.sortable.has(field))
      throw badQuery('sort', `cannot sort by ${field.slice(0, 64) || '(empty)'}`);
    if (out.some((o) => o.field === field)) throw badQuery('sort', `names ${field} twice`);
    out.push({ field, direction: desc ? 'desc' : 'asc' });
  }
  return out;
}

function filterFor(field: string, op: string, raw: unknown, schema: ListQuerySchema): FieldFilter {
  if (!schema.filterable.has(field)) throw badQuery(field.slice(0, 64), 'is not a filterable field');
  if (!OPS.has(op)) throw badQuery(field, `has an unknown operator ${op.slice(0, 16)}`);
  const type = schema.types.get(field) ?? 'string';
  const o = op as FilterOp;
  const label = `${field}[${o}]`;
  if (o === 'is_null') {
    const v = text(label, raw);
    if (v !== 'true' && v !== 'false') throw badQuery(label, 'must be true or false');
    return { field, op: o, value: v === 'true' };
  }
  if (LIST_OPS.has(o)) {
    // `a,b` or a repeated key (an array from either parser).
    const items = Array.isArray(raw) ? raw.map((x) => text(label, x)) : text(label, raw).split(',');
    if (items.length === 0 || items.length > 100) throw badQuery(label, 'needs 1 to 100 values');
    if (o === 'between' && items.length !== 2) throw badQuery(label, 'needs two values: low,high');
    return { field, op: o, value: items.map((x) => coerce(label, x, type)) };
  }
  const v = text(label, raw);
  if ((o === 'like' || o === 'ilike') && (type !== 'string' || v.length === 0))
    throw badQuery(label, 'needs text on a text field');
  return { field, op: o, value: o === 'like' || o === 'ilike' ? v : coerce(label, v, type) };
}

/**
 * Turn `req.query` into typed list options for `repository.list()`. Works with Express 5's simple
 * parser (flat `age[gte]` keys) and with qs (nested `{age: {gte}}`). Only declared columns and
 * operators are accepted; everything else is a 400 VALIDATION_ERROR naming the field.
 *
 * `?page=2&size=20&sort=-created_at,name&status=active&age[gte]=18` → offset page;
 * `?cursor=…&limit=…` → keyset page.
 */
export function parseListQuery(query: unknown, repository: { listSchema: ListQuerySchema }): ListOptions {
  const schema = repository.listSchema;
  if (query === undefined || query === null) return {};
  if (typeof query !== 'object' || Array.isArray(query)) throw badQuery('query', 'must be a query string');
  const keys = Object.keys(query);
  if (keys.length > MAX_KEYS) throw badQuery('query', `has more than ${MAX_KEYS} parameters`);
  const q = query as Record<string, unknown>;
  const filters: FieldFilter[] = [];
  const out: ListOptions = {};
  for (const key of keys) {
    const value = q[key];
    if (RESERVED.has(key)) continue;
    const flat = FLAT_KEY.exec(key);
    if (flat !== null) {
      filters.push(filterFor(flat[1] as string, flat[2] as string, value, schema));
      continue;
    }
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
      // qs: { age: { gte: '18' } } — one level of operators, nothing deeper.
      for (const op of Object.keys(value)) {
        const inner = (value as Record<string, unknown>)[op];
        if (typeof inner === 'object' && inner !== null && !Array.isArray(inner))
          throw badQuery(key.slice(0, 64), 'is nested too deeply');
        filters.push(filterFor(key, op, inner, schema));
      }
      continue;
    }
    filters.push(filterFor(key, 'eq', value, schema));
  }
  if (filters.length > 0) out.filters = filters;
  if (q.sort !== undefined) out.sort = parseSort(q.sort, schema);
  const keyset = q.cursor !== undefined || q.limit !== undefined;
  if (keyset) {
    if (q.page !== undefined || q.size !== undefined)
      throw badQuery('page', 'cannot be combined with cursor/limit');
    out.limit =
      q.limit === undefined ? schema.defaultPageSize : boundedInt('limit', q.limit, 1, schema.maxPageSize);
    out.cursor = q.cursor === undefined ? null : text('cursor', q.cursor);
  } else {
    if (q.page !== undefined) out.page = boundedInt('page', q.page, 1, 1_000_000);
    out.size =
      q.size === undefined ? schema.defaultPageSize : boundedInt('size', q.size, 1, schema.maxPageSize);
  }
  return out;
}
