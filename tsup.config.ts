import { defineConfig } from 'tsup';

// One entry, two formats: dist/index.mjs + index.d.mts (ESM) and dist/index.cjs + index.d.cts (CJS).
export default defineConfig({
  entry: { index: 'lib/index.ts' },
  format: ['esm', 'cjs'],
  dts: true,
  clean: true,
  sourcemap: true,
  target: 'node20',
  platform: 'node',
  splitting: false,
  treeshake: true,
  outExtension: ({ format }) => ({ js: format === 'esm' ? '.mjs' : '.cjs' }),
});
