/** The tables of the parts that report into the registry besides the routes. */
import { count, label, MAX_ROWS, sum } from './format.js';
import type { Families, Row, Section } from './types.js';

export function errorsSection(families: Families): Section {
  const byCode = sum(
    families,
    'http_errors_total',
    (l) => `${label(l, 'error_code')}\u0000${label(l, 'status_code')}`,
  );
  const rows = [...byCode.entries()]
    .filter(([, n]) => n > 0)
    .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
    .slice(0, MAX_ROWS)
    .map(([key, n]): Row => {
      const [code = '', status = ''] = key.split('\u0000');
      return { cells: [code, status, count(n)], tone: Number(status) >= 500 ? 'bad' : 'warn' };
    });
  return {
    id: 'errors',
    title: 'Errors by code',
    columns: ['Error code', 'Status', 'Count'],
    rows,
    empty: 'No errors answered by core.errors().',
  };
}

export function poolsSection(families: Families): Section {
  const states = sum(families, 'db_pool_connections', (l) => `${label(l, 'pool')}\u0000${label(l, 'state')}`);
  const max = sum(families, 'db_pool_max_connections', (l) => label(l, 'pool'));
  const pools = new Set([...max.keys(), ...[...states.keys()].map((k) => k.split('\u0000')[0] ?? '')]);
  const rows = [...pools].sort().map((pool): Row => {
    const get = (state: string): number => states.get(`${pool}\u0000${state}`) ?? 0;
    const limit = max.get(pool);
    const used = get('used');
    const fill = limit === undefined || limit <= 0 ? undefined : Math.min(1, used / limit);
    const pending = get('pending');
    return {
      cells: [
        pool,
        count(used),
        count(get('free')),
        count(pending),
        limit === undefined ? '—' : count(limit),
      ],
      tone: pending > 0 ? 'bad' : fill !== undefined && fill >= 0.8 ? 'warn' : 'ok',
      ...(fill === undefined ? {} : { meter: fill }),
    };
  });
  return {
    id: 'pools',
    title: 'Database pools',
    columns: ['Pool', 'Used', 'Free', 'Waiting', 'Max', 'In use'],
    rows,
    empty: 'No database pool reports here.',
  };
}

const STATE_NAMES = ['closed', 'half-open', 'open'];

export function breakersSection(families: Families): Section {
  const state = sum(families, 'circuit_breaker_state', (l) => label(l, 'service_name'));
  const calls = sum(
    families,
    'circuit_breaker_calls_total',
    (l) => `${label(l, 'service_name')}\u0000${label(l, 'result')}`,
  );
  const rows = [...state.entries()]
    .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
    .map(([name, value]): Row => {
      const get = (result: string): string => count(calls.get(`${name}\u0000${result}`) ?? 0);
      return {
        cells: [name, STATE_NAMES[value] ?? String(value), get('success'), get('failure'), get('rejected')],
        tone: value >= 2 ? 'bad' : value >= 1 ? 'warn' : 'ok',
      };
    });
  return {
    id: 'breakers',
    title: 'Circuit breakers',
    columns: ['Breaker', 'State', 'Succeeded', 'Failed', 'Rejected'],
    rows,
    empty: 'No circuit breaker reports here.',
  };
}

export function limitsSection(families: Families): Section {
  const hits = sum(families, 'rate_limit_hits_total', (l) => label(l, 'limiter'));
  const fallback = sum(families, 'rate_limit_fallback_total', (l) => label(l, 'limiter'));
  const refused = sum(families, 'rate_limit_refused_total', (l) => label(l, 'limiter'));
  const rows = [...hits.keys()].sort().map((name): Row => {
    const hit = hits.get(name) ?? 0;
    const down = (refused.get(name) ?? 0) + (fallback.get(name) ?? 0);
    return {
      cells: [name, count(hit), count(fallback.get(name) ?? 0), count(refused.get(name) ?? 0)],
      tone: down > 0 ? 'bad' : hit > 0 ? 'warn' : 'ok',
    };
  });
  return {
    id: 'limits',
    title: 'Rate limits',
    columns: ['Limiter', 'Limited (429)', 'Counted in memory', 'Refused (503)'],
    rows,
    empty: 'No rate limiter reports here.',
  };
}

export function flagsSection(families: Families): Section {
  const byFlag = new Map<string, Map<string, number>>();
  for (const v of families.get('feature_flag_evaluations_total')?.values ?? []) {
    const flag = label(v.labels, 'flag');
    const results = byFlag.get(flag) ?? new Map<string, number>();
    results.set(label(v.labels, 'result'), (results.get(label(v.labels, 'result')) ?? 0) + v.value);
    byFlag.set(flag, results);
  }
  const rows = [...byFlag.entries()]
    .sort((a, b) => a[0].localeCompare(b[0]))
    .slice(0, MAX_ROWS)
    .map(([flag, results]): Row => {
      const seen = [...results.entries()].filter(([, n]) => n > 0).sort((a, b) => b[1] - a[1]);
      const total = seen.reduce((n, [, c]) => n + c, 0);
      const state = seen.length === 0 ? 'not evaluated' : seen.length === 1 ? (seen[0]?.[0] ?? '') : 'mixed';
      return {
        cells: [flag, state, count(total), seen.map(([r, n]) => `${r} ${count(n)}`).join(' · ')],
        tone: state === 'on' ? 'ok' : 'idle',
      };
    });
  return {
    id: 'flags',
    title: 'Feature flags',
    columns: ['Flag', 'Served', 'Evaluations', 'By result'],
    rows,
    empty: 'No feature flag evaluations reported here.',
  };
}

export function securitySection(families: Families): Section {
  const events = sum(
    families,
    'security_events_total',
    (l) => `${label(l, 'reason')}\u0000${label(l, 'action')}`,
  );
  const rows = [...events.entries()]
    .filter(([, n]) => n > 0)
    .sort((a, b) => b[1] - a[1])
    .slice(0, MAX_ROWS)
    .map(([key, n]): Row => {
      const [reason = '', action = ''] = key.split('\u0000');
      return { cells: [reason, action, count(n)], tone: 'warn' };
    });
  return {
    id: 'security',
    title: 'Security events',
    columns: ['Reason', 'Action', 'Count'],
    rows,
    empty: 'No security events reported here.',
  };
}
