/**
 * Small helpers for reading JSON files (checkpoint configs, JSON-lines data sets) with errors
 * that say where and what: `<file>: field "<name>" must be <expected>, got <value>`,
 * `<file>:<line>: ...`.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';

export function readJsonFile(file: string): unknown {
  if (!existsSync(file)) throw new Error(`${file}: file not found`);
  const text = readFileSync(file, 'utf8');
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new Error(`${file}: invalid JSON (${(err as Error).message})`);
  }
}

/**
 * A JSON-lines file: each non-blank line parsed and handed to `row`, which returns it typed or
 * throws saying what is wrong; errors name the file and line. With the file's sha256, so that
 * results can record exactly what they read.
 */
export function readJsonLines<T>(file: string, row: (value: unknown) => T): { rows: T[]; sha256: string } {
  const bytes = readFileSync(file);
  const rows = bytes
    .toString('utf8')
    .split('\n')
    .map((line, i) => ({ line: line.trim(), n: i + 1 }))
    .filter(({ line }) => line !== '')
    .map(({ line, n }) => {
      let value: unknown;
      try {
        value = JSON.parse(line);
      } catch {
        throw new Error(`${file}:${n}: not valid JSON`);
      }
      try {
        return row(value);
      } catch (err) {
        throw new Error(`${file}:${n}: ${(err as Error).message}`);
      }
    });
  return { rows, sha256: createHash('sha256').update(bytes).digest('hex') };
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Renders a value for an error message, short enough to read. */
export function describe(value: unknown): string {
  if (value === undefined) return 'nothing (the field is missing)';
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

export class FieldReader {
  private readonly obj: Record<string, unknown>;

  /** `prefix` qualifies field names of a nested object in messages, e.g. `rope_parameters.`. */
  constructor(
    json: unknown,
    readonly file: string,
    private readonly prefix = '',
  ) {
    if (!isRecord(json)) {
      throw new Error(`${file}: ${prefix === '' ? 'expected a JSON object' : `field "${prefix.slice(0, -1)}" must be an object`}, got ${describe(json)}`);
    }
    this.obj = json;
  }

  raw(field: string): unknown {
    return this.obj[field];
  }

  /** Present and not null: HF writes null for "use the default" (e.g. `head_dim: null`). */
  has(field: string): boolean {
    const value = this.obj[field];
    return value !== undefined && value !== null;
  }

  optional<T>(field: string, read: () => T): T | undefined {
    return this.has(field) ? read() : undefined;
  }

  error(field: string, expected: string, got: unknown): Error {
    return new Error(`${this.file}: field "${this.prefix}${field}" must be ${expected}, got ${describe(got)}`);
  }

  number(field: string, expected: string, ok: (x: number) => boolean = () => true): number {
    const value = this.obj[field];
    if (typeof value !== 'number' || !Number.isFinite(value) || !ok(value)) throw this.error(field, expected, value);
    return value;
  }

  int(field: string, expected: string, ok: (x: number) => boolean = () => true): number {
    return this.number(field, expected, (x) => Number.isInteger(x) && ok(x));
  }

  positiveInt(field: string): number {
    return this.int(field, 'a positive integer', (x) => x > 0);
  }

  nonNegativeInt(field: string): number {
    return this.int(field, 'an integer >= 0', (x) => x >= 0);
  }

  positiveNumber(field: string): number {
    return this.number(field, 'a positive number', (x) => x > 0);
  }

  boolean(field: string): boolean {
    const value = this.obj[field];
    if (typeof value !== 'boolean') throw this.error(field, 'true or false', value);
    return value;
  }

  string(field: string): string {
    const value = this.obj[field];
    if (typeof value !== 'string') throw this.error(field, 'a string', value);
    return value;
  }
}
