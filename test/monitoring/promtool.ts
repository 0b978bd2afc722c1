/**
 * promtool and prometheus (Debian's `prometheus` package) for the monitoring tests, and a way to
 * run them. When one is missing the test fails with the command that installs it: it never skips.
 */
import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join, resolve } from 'node:path';

export const ROOT = resolve(__dirname, '../..');
export const MONITORING = join(ROOT, 'monitoring');

const INSTALL = "install Debian's prometheus package: apt-get install -y prometheus";

/** The absolute path of `name` on PATH (then /usr/bin), or an error that says how to install it. */
function findExecutable(name: 'promtool' | 'prometheus'): string {
  const dirs = [...(process.env.PATH ?? '').split(delimiter).filter((d) => d !== ''), '/usr/bin'];
  for (const dir of dirs) {
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here; next directory
    }
  }
  throw new Error(`${name} was not found on PATH or in /usr/bin: ${INSTALL}`);
}

export const promtool = (): string => findExecutable('promtool');
export const prometheus = (): string => findExecutable('prometheus');

export interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Run a command to its end (killed after `timeoutMs`), with `input` on its stdin. */
export function run(command: string, args: readonly string[], input = '', timeoutMs = 15_000): Promise<Ran> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, args, { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'], timeout: timeoutMs });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.once('error', reject);
    child.once('close', (code) => {
      resolvePromise({ code, stdout, stderr });
    });
    child.stdin.end(input);
  });
}

/** `promtool <args>`; the output of both streams is in the error when it does not exit 0. */
export async function promtoolOk(args: readonly string[]): Promise<string> {
  const ran = await run(promtool(), args);
  if (ran.code !== 0) {
    throw new Error(`promtool ${args.join(' ')} exited with ${ran.code}:\n${ran.stdout}${ran.stderr}`);
  }
  return ran.stdout + ran.stderr;
}
