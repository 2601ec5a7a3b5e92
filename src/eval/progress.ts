/**
 * A resumable run's finished units, one JSON line each after a header naming the settings.
 * A unit is appended only once complete, so a run killed at any point loses at most the unit
 * in flight; a torn last line (killed mid-write) is dropped on reading.
 */
import { appendFileSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';

export class ProgressFile<Unit> {
  private constructor(
    readonly file: string,
    readonly units: Unit[],
  ) {}

  /**
   * Opens `file` for settings `key`: its units when it was written for the same key, none
   * when it does not exist. A file for other settings is an error unless `fresh` discards it.
   */
  static open<Unit>(file: string, key: string, fresh = false): ProgressFile<Unit> {
    if (existsSync(file) && !fresh) {
      const lines = readFileSync(file, 'utf8').split('\n');
      const header = JSON.parse(lines[0]) as { key?: string };
      if (header.key !== key) throw new Error(`${file} was written for other settings (or another model); rerun with --fresh to discard it`);
      const units: Unit[] = [];
      for (const line of lines.slice(1)) {
        if (line === '') continue;
        try {
          units.push(JSON.parse(line) as Unit);
        } catch {
          break; // the torn line of an interrupted write, always the last
        }
      }
      // Rewrite without the torn line, so that appends start on a clean line.
      writeFileSync(file, [JSON.stringify({ key }), ...units.map((u) => JSON.stringify(u))].join('\n') + '\n');
      return new ProgressFile(file, units);
    }
    writeFileSync(file, JSON.stringify({ key }) + '\n');
    return new ProgressFile(file, []);
  }

  append(unit: Unit): void {
    appendFileSync(this.file, JSON.stringify(unit) + '\n');
    this.units.push(unit);
  }

  remove(): void {
    rmSync(this.file, { force: true });
  }
}
