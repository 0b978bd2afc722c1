import { rename } from 'node:fs/promises';
import { join } from 'node:path';
import { build, defineConfig } from 'tsup';

// One entry, two formats: dist/index.mjs + index.d.mts (ESM) and dist/index.cjs + index.d.cts (CJS),
// the files the `exports` map in package.json points at.
const entry = { index: 'lib/index.ts' };
const outDir = 'dist';

/**
 * Emits the declarations after the JavaScript, as a second tsup pass.
 *
 * tsup builds declarations in a worker thread and drops `outExtension` on the way there (functions
 * cannot be cloned), so for a `"type": "commonjs"` package its CJS declarations always come out as
 * `index.d.ts`. Node and TypeScript read a `.d.ts` beside `"type": "commonjs"` as CJS too, but the
 * exports map names `index.d.cts`, so the file is renamed once the pass has finished.
 */
async function emitDeclarations(): Promise<void> {
  await build({
    config: false,
    entry,
    outDir,
    format: ['esm', 'cjs'],
    // tsup's declaration build always sets `baseUrl`, which TypeScript 6 rejects as deprecated
    // (TS5101) unless told otherwise; the project itself never uses baseUrl.
    dts: { only: true, compilerOptions: { ignoreDeprecations: '6.0' } },
    clean: false,
  });
  await rename(join(outDir, 'index.d.ts'), join(outDir, 'index.d.cts'));
}

export default defineConfig({
  entry,
  outDir,
  format: ['esm', 'cjs'],
  dts: false,
  onSuccess: emitDeclarations,
  clean: true,
  sourcemap: true,
  target: 'node20',
  platform: 'node',
  splitting: false,
  treeshake: true,
  outExtension: ({ format }) => ({ js: format === 'esm' ? '.mjs' : '.cjs' }),
});
