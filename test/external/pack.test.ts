/**
 * The package as users get it: build, `npm pack`, install the tarball into throwaway projects and
 * use it from CommonJS, from ESM (alone and mixed with the CJS build) and from TypeScript.
 * The projects live in test/external/fixtures/ and are copied to a temp dir, so they resolve
 * `caduceus` from their own node_modules, never from this repository.
 */
import { execFile } from 'node:child_process';
import { cp, mkdtemp, readFile, realpath, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve, sep } from 'node:path';
import { pathToFileURL } from 'node:url';

const REPO = resolve(__dirname, '../..');
const FIXTURES = join(__dirname, 'fixtures');
/** The repository's own compiler: the TS project is checked with it instead of installing another. */
const TSC = join(REPO, 'node_modules', 'typescript', 'bin', 'tsc');

interface Result {
  /** Exit code; null when the process could not start or was killed. */
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command without a shell; resolves (never rejects) with its exit code and output. */
function run(command: string, args: readonly string[], cwd: string, env = childEnv()): Promise<Result> {
  return new Promise((done) => {
    execFile(
      command,
      args,
      { cwd, env, timeout: 60_000, maxBuffer: 16 * 1024 * 1024, shell: process.platform === 'win32' },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === 'number' ? error.code : null;
        done({
          code,
          stdout,
          stderr: error === null || code !== null ? stderr : `${stderr}${error.message}`,
        });
      },
    );
  });
}

async function mustRun(command: string, args: readonly string[], cwd: string): Promise<string> {
  const { code, stdout, stderr } = await run(command, args, cwd);
  if (code !== 0) throw new Error(`${command} ${args.join(' ')} failed in ${cwd}:\n${stdout}\n${stderr}`);
  return stdout;
}

/**
 * The environment minus what `npm test` adds about *this* package (npm_package_*, npm_lifecycle_*,
 * npm_config_local_prefix, …), so the throwaway projects' npm sees only the user's npm settings.
 */
function childEnv(): NodeJS.ProcessEnv {
  const keep =
    /^npm_config_(cache|offline|prefer_offline|registry|userconfig|globalconfig|cafile|ca|strict_ssl|proxy|https_proxy|noproxy)$/i;
  return Object.fromEntries(
    Object.entries(process.env).filter(([key]) => !/^npm_/i.test(key) || keep.test(key)),
  );
}

/** The version of a dependency installed in this repository, so the projects install it from the cache. */
async function installedVersion(name: string): Promise<string> {
  const manifest = JSON.parse(await readFile(join(REPO, 'node_modules', name, 'package.json'), 'utf8')) as {
    version: string;
  };
  return `${name}@${manifest.version}`;
}

interface PackedFile {
  path: string;
}

let work = '';
let tarball = '';
let packed: string[] = [];
const project = (name: 'cjs' | 'esm' | 'ts'): string => join(work, name);
/** Both type checks start as soon as the TS project is installed and run beside the runtime tests. */
let typecheck: Promise<Record<'node16' | 'bundler', Result>> | undefined;

beforeAll(async () => {
  // realpath: Node reports resolved paths, and the temp dir may sit behind a symlink (macOS).
  work = await realpath(await mkdtemp(join(tmpdir(), 'caduceus-pack-')));
  await mustRun('npm', ['run', 'build'], REPO);
  const packJson = await mustRun('npm', ['pack', '--json', '--pack-destination', work], REPO);
  const [info] = JSON.parse(packJson) as [{ filename: string; files: PackedFile[] }];
  tarball = join(work, info.filename);
  packed = info.files.map((f) => f.path);

  const express = await installedVersion('express');
  const types = await Promise.all(['@types/express', '@types/node'].map(installedVersion));
  const install = async (name: 'cjs' | 'esm' | 'ts', extra: readonly string[]): Promise<void> => {
    await cp(join(FIXTURES, name), project(name), { recursive: true });
    const flags = ['--prefer-offline', '--no-audit', '--no-fund', '--no-package-lock', '--loglevel=error'];
    // express is a peer dependency: installed explicitly, as an application would have it.
    await mustRun('npm', ['install', ...flags, tarball, express, ...extra], project(name));
  };
  const ts = install('ts', types).then(() => {
    const check = (config: string): Promise<Result> =>
      run(process.execPath, [TSC, '-p', config, '--pretty', 'false'], project('ts'));
    // node16 checks the declaration files themselves (skipLibCheck: false), both .d.mts and .d.cts;
    // the bundler run skips lib checking, as most applications do, to keep the suite fast.
    typecheck = Promise.all([check('tsconfig.node16.json'), check('tsconfig.bundler.json')]).then(
      ([node16, bundler]) => ({ node16, bundler }),
    );
  });
  await Promise.all([install('cjs', []), install('esm', []), ts]);
}, 90_000);

afterAll(async () => {
  await typecheck; // never rejects: do not delete the project under a running tsc
  if (work !== '') await rm(work, { recursive: true, force: true });
});

const nodeIn = (name: 'cjs' | 'esm', script: string): Promise<Result> =>
  run(process.execPath, [script], project(name));

/** The JSON line a fixture prints last, after all its assertions passed. */
function report(result: Result): Record<string, string> {
  expect(result).toMatchObject({ code: 0 });
  const last = result.stdout.trim().split('\n').at(-1) ?? '';
  return JSON.parse(last) as Record<string, string>;
}

const installed = (file: string): string => ['node_modules', 'caduceus', 'dist', file].join(sep);

describe('the packed tarball', () => {
  test('holds every file the exports map names, and only the build', async () => {
    const manifest = JSON.parse(await readFile(join(REPO, 'package.json'), 'utf8')) as {
      main: string;
      module: string;
      types: string;
      exports: Record<string, Record<string, Record<string, string>> | string>;
    };
    const targets = new Set<string>([manifest.main, manifest.module, manifest.types]);
    const root = manifest.exports['.'];
    if (root === undefined || typeof root === 'string') throw new Error('exports["."] must be conditional');
    for (const [condition, target] of Object.entries(root)) {
      // TypeScript takes the first matching condition: `types` must come before `default`.
      expect([condition, Object.keys(target)]).toEqual([condition, ['types', 'default']]);
      targets.add(target.types!).add(target.default!);
    }
    expect(targets).toEqual(
      new Set(['./dist/index.cjs', './dist/index.mjs', './dist/index.d.cts', './dist/index.d.mts']),
    );
    for (const target of targets) expect(packed).toContain(target.slice(2));
    expect(
      packed.filter(
        (f) => !/^(dist\/|migrations\/[^/]+\.cjs$|package\.json$|README\.md$|CHANGELOG\.md$|docs\/)/.test(f),
      ),
    ).toEqual([]);
  });

  test('CommonJS: require("caduceus") loads dist/index.cjs and works', async () => {
    const { entry } = report(await nodeIn('cjs', 'index.js'));
    expect(entry).toBe(join(project('cjs'), installed('index.cjs')));
  }, 30_000);

  test('the shipped Knex migration loads from the installed package (as `knex migrate` loads it)', async () => {
    const files = packed.filter((f) => f.startsWith('migrations/'));
    expect(files).toEqual([expect.stringMatching(/^migrations\/\d{14}_caduceus_audit_events\.cjs$/)]);
    const file = join(project('cjs'), 'node_modules', 'caduceus', files[0]!);
    const script = `const m = require(${JSON.stringify(file)}); console.log(JSON.stringify({ up: typeof m.up, down: typeof m.down }));`;
    const result = await run(process.execPath, ['-e', script], project('cjs'));
    expect(result).toMatchObject({ code: 0 });
    expect(JSON.parse(result.stdout.trim())).toEqual({ up: 'function', down: 'function' });
  }, 30_000);

  test('ESM: import from "caduceus" loads dist/index.mjs and works', async () => {
    const { entry } = report(await nodeIn('esm', 'index.js'));
    expect(entry).toBe(pathToFileURL(join(project('esm'), installed('index.mjs'))).href);
  }, 30_000);

  test('ESM and CJS builds loaded together share one context store and one AppError brand', async () => {
    const paths = report(await nodeIn('esm', 'dual.js'));
    expect(paths).toEqual({
      esm: pathToFileURL(join(project('esm'), installed('index.mjs'))).href,
      cjs: join(project('esm'), installed('index.cjs')),
    });
  }, 30_000);

  test.each(['node16', 'bundler'] as const)(
    'TypeScript (%s resolution) compiles against the declarations',
    async (mode) => {
      expect(typecheck).toBeDefined();
      const result = (await typecheck!)[mode];
      expect(result).toEqual({ code: 0, stdout: '', stderr: '' });
    },
    60_000,
  );
});
