/**
 * Per-second rates of counters, taken between the current reading and the oldest one kept from
 * the last `windowMs`: readings are kept at most once a second, so memory stays bounded by the
 * window and the (bounded) number of series.
 */
export class RateWindow {
  readonly #readings: { at: number; totals: ReadonlyMap<string, number> }[] = [];

  constructor(readonly windowMs: number) {}

  /** Rates since the oldest reading in the window (`undefined` before there is one a second old). */
  observe(now: number, totals: ReadonlyMap<string, number>): Map<string, number | undefined> {
    const readings = this.#readings;
    while (readings.length > 0 && now - (readings[0]?.at ?? now) > this.windowMs) readings.shift();
    const base = readings[0];
    const last = readings[readings.length - 1];
    if (last === undefined || now - last.at >= 1000) readings.push({ at: now, totals });
    const out = new Map<string, number | undefined>();
    const seconds = base === undefined ? 0 : (now - base.at) / 1000;
    for (const [key, value] of totals) {
      const before = base?.totals.get(key) ?? 0;
      // A counter that went down was reset (a new registry): no rate rather than a negative one.
      out.set(key, seconds < 1 || value < before ? undefined : (value - before) / seconds);
    }
    return out;
  }
}
