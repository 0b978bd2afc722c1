/**
 * The check of `--suite metrics`: did each variant's registry count every request? Its shutdown
 * scraped `/metrics` once and reported the patient route's count (`metricsCounted`); here it is
 * set against the responses the load generator received (warm-up included).
 */
import type { RoundResult } from '../support/report.js';

const int = (n: number): string => Math.round(n).toLocaleString('en-US');

/**
 * @param inFlight requests the server may have answered after the load generator stopped counting
 *   (connections × pipelining, for the warm-up and for the recording).
 */
export function formatCounts(
  rounds: Readonly<Record<string, readonly RoundResult[]>>,
  inFlight: number,
): string {
  const lines = [
    'requests counted by each registry (scraped once at shutdown) / responses received, per round:',
  ];
  const warnings: string[] = [];
  for (const [name, results] of Object.entries(rounds)) {
    if (!results.some((r) => 'metricsCounted' in r.server || 'metricsError' in r.server)) continue;
    const cells = results.map((r, i) => {
      const received = r.load.requests + r.load.warmupRequests;
      const counted = r.server.metricsCounted;
      if (typeof counted !== 'number') {
        const error = r.server.metricsError;
        warnings.push(`⚠ ${name} round ${i + 1}: ${typeof error === 'string' ? error : 'no count reported'}`);
        return '–';
      }
      const extra = counted - received;
      if (extra < 0)
        warnings.push(`⚠ ${name} round ${i + 1}: ${int(-extra)} responses received were not counted`);
      else if (extra > inFlight)
        warnings.push(
          `⚠ ${name} round ${i + 1}: ${int(extra)} more counted than received (at most ${inFlight} expected)`,
        );
      return `${int(counted)}/${int(received)}`;
    });
    lines.push(`  ${name.padEnd(26)} ${cells.join('  ')}`);
  }
  if (lines.length === 1) return '';
  if (warnings.length === 0)
    lines.push(
      `  every response received was counted (a count may exceed it by up to ${inFlight}: answers in flight when the load generator stopped)`,
    );
  return [...lines, ...warnings].join('\n');
}
