/** The shapes of the status page: what `status.json` serves and both renderers draw. */
export type Tone = 'ok' | 'warn' | 'bad' | 'idle';

export interface Tile {
  label: string;
  value: string;
  tone: Tone;
}

export interface Row {
  cells: string[];
  tone: Tone;
  /** A fill level (0 … 1) drawn as a `<meter>` after the cells, e.g. a pool's used / max. */
  meter?: number;
}

export interface Section {
  id: string;
  title: string;
  columns: string[];
  rows: Row[];
  /** Shown instead of the table when there are no rows. */
  empty: string;
}

export interface StatusView {
  title: string;
  generatedAt: string;
  refreshSeconds: number;
  tiles: Tile[];
  sections: Section[];
}

/** A family as prom-client's `getMetricsAsJSON()` returns it. */
export interface FamilyJson {
  name: string;
  values: readonly { labels: Record<string, string | number>; value: number; metricName?: string }[];
}

export type Families = ReadonlyMap<string, FamilyJson>;
