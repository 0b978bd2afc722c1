/**
 * Which caduceus the benchmark apps load, and what to record about the code measured.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';

const ROOT = join(__dirname, '..', '..');

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(path) : statSync(path).mtimeMs);
  }
  return newest;
}

export interface CaduceusBuild {
  /** File the apps require. */
  entry: string;
  /** Built JavaScript with a source map beside it (profiles map positions back to lib/), or undefined for source. */
  built: string | undefined;
  note: string;
}

/**
 * Which caduceus the apps load. Default: a fresh build of lib/ made the way `npm run build` makes
 * dist/ (tsup → one CommonJS file, node20 target), so the figures are those of the published code,
 * never of a stale dist/, and profiles map back to lib/ lines.
 */
export function resolveCaduceus(mode: string): CaduceusBuild {
  if (mode === 'source')
    return {
      entry: join(ROOT, 'lib', 'index.ts'),
      built: undefined,
      note: 'lib/ through tsx (--caduceus=source)',
    };
  if (mode !== 'dist' && mode !== 'build') {
    // A path: compare a patched or older build against the same baseline.
    const file = resolve(mode);
    if (!existsSync(file))
      throw new Error(
        `bench: --caduceus must be build, dist, source or an existing file; ${file} does not exist`,
      );
    return { entry: file, built: file, note: relative(ROOT, file) };
  }
  if (mode === 'dist') {
    const dist = join(ROOT, 'dist', 'index.cjs');
    if (!existsSync(dist))
      throw new Error('bench: --caduceus=dist but dist/index.cjs is missing; run `npm run build` first');
    const stale = statSync(dist).mtimeMs < newestMtime(join(ROOT, 'lib'));
    return {
      entry: dist,
      built: dist,
      note: `dist/index.cjs${stale ? ' (OLDER than lib/: run `npm run build`)' : ''}`,
    };
  }
  // Under node_modules/.cache: ignored by git and every linter, and `winston` etc. still resolve from there.
  const out = join(ROOT, 'node_modules', '.cache', 'caduceus-bench');
  const started = performance.now();
  const tsup = join(ROOT, 'node_modules', 'tsup', 'dist', 'cli-default.js');
  const args = [
    tsup,
    'lib/index.ts',
    '--no-config',
    '--format',
    'cjs',
    '--target',
    'node20',
    '--platform',
    'node',
    '--sourcemap',
    '--treeshake',
    '--clean',
    '--silent',
    '--out-dir',
    out,
  ];
  try {
    execFileSync(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const detail = (err as { stderr?: Buffer }).stderr?.toString() ?? String(err);
    throw new Error(
      `bench: building lib/ failed (use --caduceus=dist or --caduceus=source to skip the build):\n${detail}`,
    );
  }
  const entry = join(out, 'index.js');
  return {
    entry,
    built: entry,
    note: `a fresh build of lib/ (tsup, ${((performance.now() - started) / 1000).toFixed(1)}s)`,
  };
}

/** A short digest of every file under lib/, so a result names the exact code it measured (lib/ changes often). */
export function libDigest(dir = join(ROOT, 'lib'), hash = createHash('sha256')): string {
  for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) =>
    a.name.localeCompare(b.name),
  )) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) libDigest(path, hash);
    else hash.update(relative(ROOT, path)).update(readFileSync(path));
  }
  return dir === join(ROOT, 'lib') ? hash.digest('hex').slice(0, 16) : '';
}

export function git(args: readonly string[]): string | undefined {
  try {
    return execFileSync('git', args, {
      cwd: ROOT,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
  } catch {
    return undefined;
  }
}
