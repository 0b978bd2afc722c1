/**
 * Threat detection against the corpora (test/security/corpus.ts): in 'block' mode every attack
 * probe is refused with 403 THREAT_DETECTED and no benign health-API request is; in 'monitor'
 * mode the same probes reach the route, each one logged once (signature, category, location,
 * request id, client address — never the matched text) and counted.
 */
import type { Server } from 'node:http';
import * as core from '../../lib/index';
import { EXPRESS, eachExpress } from '../support/express';
import { captureLogger } from '../support/logs';
import { ATTACK_PROBES, BENIGN_REQUESTS, type CorpusRequest } from './corpus';
import { close, eventLines, listen, secure, secureApp, send, type Echo } from './support';

describe('block mode: the corpora on Express 4 and 5', () => {
  it('refuses every attack probe with 403 THREAT_DETECTED and lets every benign request reach the route', async () => {
    const figures: string[] = [];
    for (const variant of EXPRESS) {
      const security = secure({ threats: { mode: 'block', ban: false, redis: false } });
      const server = await listen(secureApp(variant, security));
      try {
        let flagged = 0;
        const missed: string[] = [];
        for (const probe of ATTACK_PROBES) {
          const res = await send(server, probe);
          const code = (res.body as { error_code?: string }).error_code;
          if (res.status === 403 && code === 'THREAT_DETECTED') flagged++;
          else missed.push(`${probe.name}: ${res.status} ${code ?? ''}`);
        }
        const blockedBenign: string[] = [];
        for (const benign of BENIGN_REQUESTS) {
          const res = await send(server, benign);
          // 200 from the catch-all route, with what the route saw: the request reached it.
          if (res.status !== 200 || !(res.body as Echo).ok || (res.body as Echo).method !== benign.method)
            blockedBenign.push(
              `${benign.name}: ${res.status} ${(res.body as { error_code?: string }).error_code ?? ''}`,
            );
        }
        expect(missed).toEqual([]);
        expect(flagged).toBe(ATTACK_PROBES.length);
        expect(blockedBenign).toEqual([]);

        // Counted once each, all as blocked, by category; nothing else decided.
        const stats = security.stats();
        const counted = Object.entries(stats);
        expect(counted.every(([name]) => name.endsWith(':blocked'))).toBe(true);
        expect(counted.reduce((sum, [, n]) => sum + n, 0)).toBe(ATTACK_PROBES.length);
        figures.push(
          `${variant.name}: ${flagged}/${ATTACK_PROBES.length} attack probes flagged, ` +
            `${blockedBenign.length}/${BENIGN_REQUESTS.length} benign requests blocked`,
        );
      } finally {
        await close(server);
      }
    }
    // The figures for the closing note.
    console.log(`security() corpus — ${figures.join('; ')}`);
  });
});

/** Strings of a probe's payload (decoded) long enough to be recognisable in a log line. */
function payloadStrings(probe: CorpusRequest): string[] {
  const out = new Set<string>();
  const decode = (text: string) => {
    try {
      return decodeURIComponent(text.replaceAll('+', ' '));
    } catch {
      return text;
    }
  };
  const add = (text: string) => {
    for (const t of [text, decode(text)]) if (t.length >= 5) out.add(t);
  };
  const [path = '', query] = probe.path.split(/\?(.*)/s);
  for (const segment of path.split('/')) add(segment);
  for (const pair of (query ?? '').split('&')) {
    const [name = '', value = ''] = pair.split(/=(.*)/s);
    add(name);
    add(value);
  }
  const walk = (value: unknown): void => {
    if (typeof value === 'string') add(value);
    else if (Array.isArray(value)) value.forEach(walk);
    else if (typeof value === 'object' && value !== null)
      for (const [key, item] of Object.entries(value)) {
        add(key);
        walk(item);
      }
  };
  walk(probe.body);
  const agent = probe.headers?.['user-agent'];
  if (agent !== undefined) add(agent);
  return [...out];
}

/** Fields whose values the monitor writes itself (not the signature: that one is checked). */
const OWN_FIELDS = [
  'timestamp',
  'level',
  'logger',
  'message',
  'request_id',
  'trace_id',
  'span_id',
  'reason',
  'action',
  'location',
  'ip',
  'method',
  'category',
  'security_event',
  'rule',
  'severity',
];

interface Observed {
  probe: CorpusRequest;
  status: number;
  requestId: string;
  echo: Echo;
  events: core.SecurityEvent[];
  lines: Record<string, unknown>[];
}

describe.each(eachExpress)('%s: monitor mode over the attack probes', (_name, variant) => {
  const log = captureLogger('security');
  const events: core.SecurityEvent[] = [];
  const security = secure({
    logger: log.logger,
    threats: { mode: 'monitor', redis: false },
    onEvent: (event) => events.push(event),
  });
  const observed: Observed[] = [];
  let server: Server;

  beforeAll(async () => {
    // A terminal app.use, not an app.all route: Express itself answers 400 when it cannot decode
    // a route parameter (the overlong-UTF-8 probes), and here every probe must reach the handler.
    server = await listen(secureApp(variant, security, { catchAll: 'use' }));
    for (const probe of ATTACK_PROBES) {
      const before = events.length;
      const res = await send(server, probe);
      const requestId = res.headers['x-request-id'] as string;
      observed.push({
        probe,
        status: res.status,
        requestId,
        echo: res.body as Echo,
        events: events.slice(before),
        lines: eventLines(log.lines(), requestId),
      });
    }
  });
  afterAll(async () => {
    await close(server);
  });

  it('answers every probe from the route (200)', () => {
    const refused = observed.filter((o) => o.status !== 200 || !o.echo.ok).map((o) => o.probe.name);
    expect(refused).toEqual([]);
    expect(observed).toHaveLength(ATTACK_PROBES.length);
  });

  it('logs each probe once: threat_detected with category, location, request id and address', () => {
    const wrong = observed.filter((o) => {
      const [event] = o.events;
      const [line] = o.lines;
      return !(
        o.events.length === 1 &&
        o.lines.length === 1 &&
        event !== undefined &&
        line !== undefined &&
        event.action === 'logged' &&
        event.requestId === o.requestId &&
        line.message === 'security event: threat_detected' &&
        line.security_event === 'threat_detected' &&
        line.level === 'warn' &&
        line.action === 'logged' &&
        line.reason === event.reason &&
        line.location === event.location &&
        line.request_id === o.requestId &&
        line.ip === '127.0.0.1' &&
        line.ip === event.ip &&
        line.method === o.probe.method
      );
    });
    expect(wrong.map((o) => ({ name: o.probe.name, events: o.events, lines: o.lines }))).toEqual([]);
  });

  // The signature id is what an operator searches the logs for ("which rule fired?").
  it('names the signature that matched in the log line (as `rule`), as onEvent gets it', () => {
    const sample = observed[0]!;
    expect(sample.events[0]?.signature).toMatch(/^[a-z0-9-]+$/);
    const wrong = new Set(
      observed
        .filter((o) => o.lines[0]?.rule !== o.events[0]?.signature)
        .map((o) => `${String(o.events[0]?.signature)} logged as ${String(o.lines[0]?.rule)}`),
    );
    expect([...wrong]).toEqual([]);
  });

  it('never logs the matched text, a query value or a body value', () => {
    const raw = log.raw();
    for (const marker of [
      'passwd',
      'UNION',
      '<script',
      'SELECT',
      'win.ini',
      'sqlmap',
      'alert(',
      "' OR ",
      'jndi:',
    ]) {
      expect(raw).not.toContain(marker);
    }
    const leaks: string[] = [];
    for (const o of observed) {
      for (const line of o.lines) {
        const serialized = JSON.stringify(line);
        // Words the line writes itself (its field names, the client address, the category…):
        // a probe's JSON key `location` or value `command` is no leak.
        const own = [...Object.keys(line), ...OWN_FIELDS.map((f) => String(line[f]))].join(' ');
        for (const text of payloadStrings(o.probe))
          if (serialized.includes(text) && !own.includes(text)) leaks.push(`${o.probe.name}: ${text}`);
      }
    }
    expect(leaks).toEqual([]);
  });

  it('counts every probe as logged, by category, and blocks or bans nothing', () => {
    const tally: Record<string, number> = {};
    for (const o of observed)
      for (const e of o.events) tally[`${e.reason}:logged`] = (tally[`${e.reason}:logged`] ?? 0) + 1;
    expect(security.stats()).toEqual(tally);
    expect(Object.values(tally).reduce((a, b) => a + b, 0)).toBe(ATTACK_PROBES.length);
  });
});
