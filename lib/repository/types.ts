export const FILTER_OPS = [
  'eq',
  'ne',
  'gt',
  'gte',
  'lt',
  'lte',
  'in',
  'nin',
  'like',
  'ilike',
  'is_null',
  'between',
] as const;
export type FilterOp = (typeof FILTER_OPS)[number];

export type Scalar = string | number | boolean | Date | null;

/** One condition on a declared column. `like`/`ilike` match a substring; the user's `%` and `_` are literal. */
export interface FieldFilter {
  field: string;
  op: FilterOp;
  value: Scalar | readonly Scalar[];
}

/** Any one of the groups matches; the conditions inside a group all match. */
export interface OrFilter {
  or: readonly (readonly Filter[])[];
}

export type Filter = FieldFilter | OrFilter;

/**
 * Filters in object form, for code: `{ status: 'active', age: { gte: 18 }, deleted_at: { is_null: true } }`,
 * or a list of `Filter`s (which can hold `or` groups).
 */
export type Filters =
  | Readonly<Record<string, Scalar | Partial<Record<FilterOp, Scalar | readonly Scalar[]>>>>
  | readonly Filter[];

export interface SortSpec {
  field: string;
  direction: 'asc' | 'desc';
}

export interface ListOptions {
  filters?: Filters;
  sort?: readonly SortSpec[];
  /** Offset pagination: 1-based page. */
  page?: number;
  /** Offset pagination: rows per page. */
  size?: number;
  /** Compute `total` (one COUNT, run in parallel). Default true for offset pages. */
  withTotal?: boolean;
  /** Keyset pagination: the `next_cursor` of the previous page; `null`/'' for the first page. */
  cursor?: string | null;
  /** Keyset pagination: rows per page. Setting `limit` or `cursor` selects keyset mode. */
  limit?: number;
}

export interface OffsetPage<T> {
  items: T[];
  total: number | undefined;
  page: number;
  size: number;
  pages: number | undefined;
}

export interface KeysetPage<T> {
  items: T[];
  next_cursor: string | null;
}

/** Declared value types for columns, used to coerce and check query-string values. */
export type ColumnType = 'string' | 'number' | 'integer' | 'boolean' | 'date';

export type RepositoryAction = 'read' | 'search' | 'create' | 'update' | 'delete' | 'restore';

/** Emitted on every read and write; an audit trail subscribes with `repository.events.on('access', …)`. */
export interface RepositoryEvent {
  resource: string;
  action: RepositoryAction;
  /** Ids touched (one for reads/writes by id; the page's ids for searches). */
  ids: readonly string[];
  /** For searches: the filtered field names, never their values. */
  filterFields?: readonly string[];
  /** From the request context. */
  actor: string | undefined;
  requestId: string | undefined;
  outcome: 'success' | 'not_found' | 'error';
}
