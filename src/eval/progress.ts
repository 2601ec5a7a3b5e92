/**
 * A run's finished units, one JSON line each after a header naming the settings and the code
 * that started computing them. A unit is appended only once complete, so a run killed at any
 * point loses at most the unit in flight; a torn last line (killed mid-write) is dropped on
 * reading. Started again with the same settings, a run takes the units from here: resuming an
 * interrupted run, or re-rendering a finished one without recomputing it.
 */
import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';

/** Where the units were computed: the commit (null outside git) and whether the tree had changes. */
export interface Origin {
  commit: string | null;
  dirty: boolean;
  started: string;
}

interface Header extends Origin {
  key: string;
}

export class ProgressFile<Unit> {
  private constructor(
    readonly file: string,
    readonly origin: Origin,
    readonly units: Unit[],
  ) {}

  /**
   * Opens `file` for settings `key`: its units and origin when it was written for the same key;
   * else a new file, started by `origin`. A file for other settings is an error unless `fresh`
   * discards it.
   */
  static open<Unit>(file: string, key: string, origin: Origin, fresh = false): ProgressFile<Unit> {
    if (existsSync(file) && !fresh) {
      const lines = readFileSync(file, 'utf8').split('\n');
      const header = JSON.parse(lines[0]) as Partial<Header>;
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
      const kept: Origin = { commit: header.commit ?? null, dirty: header.dirty ?? true, started: header.started ?? 'unknown' };
      // Rewrite without the torn line, so that appends start on a clean line.
      writeFileSync(file, `${[JSON.stringify({ key, ...kept }), ...units.map((u) => JSON.stringify(u))].join('\n')}\n`);
      return new ProgressFile(file, kept, units);
    }
    writeFileSync(file, `${JSON.stringify({ key, ...origin })}\n`);
    return new ProgressFile(file, origin, []);
  }

  append(unit: Unit): void {
    appendFileSync(this.file, `${JSON.stringify(unit)}\n`);
    this.units.push(unit);
  }
}
