/**
 * Loads caduceus for a variant. bench/run.ts decides which build is measured and passes its path in
 * BENCH_CADUCEUS_ENTRY: the built `dist/index.cjs` (what users install) when it is up to date, or
 * the TypeScript source `lib/index.ts` (compiled on load by tsx, like every file of bench/).
 */
import { join } from 'node:path';

export type Caduceus = typeof import('../../lib/index.js');

export function loadCaduceus(): Caduceus {
  const entry = process.env.BENCH_CADUCEUS_ENTRY ?? join(__dirname, '..', '..', 'lib', 'index.ts');
  return require(entry) as Caduceus;
}
