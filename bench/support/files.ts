import { existsSync, readFileSync } from 'node:fs';

/** Newline count of a log file and its rotated copies (`<file>.1` … `<file>.<backups>`). */
export function countLines(file: string, backups = 5): number {
  let lines = 0;
  for (const path of [file, ...Array.from({ length: backups }, (_, i) => `${file}.${i + 1}`)]) {
    if (!existsSync(path)) continue;
    const data = readFileSync(path);
    for (let at = data.indexOf(10); at !== -1; at = data.indexOf(10, at + 1)) lines++;
  }
  return lines;
}
