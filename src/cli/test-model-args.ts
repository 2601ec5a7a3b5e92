/**
 * Command-line arguments of make-test-model, parsed into writeTestModel's options. Kept apart
 * from the CLI's entry point so it can be tested without spawning a process.
 */
import { parseArgs } from 'node:util';
import type { SafetensorsDtype } from '../model/safetensors.js';
import { PRESETS, type TestModelOptions, type TestModelShape } from '../arch/testmodel.js';
import { ARCHITECTURES } from '../arch/families.js';

const INT_FIELDS = ['hidden', 'intermediate', 'layers', 'heads', 'kvHeads', 'headDim', 'vocab', 'maxPositions'] as const;
const NUMBER_FIELDS = ['ropeTheta', 'normEps', 'partialRotary'] as const;
const BOOL_FIELDS = ['tie', 'attentionBias'] as const;
const DTYPES: readonly SafetensorsDtype[] = ['F32', 'F16', 'BF16'];

/** A mistake in the arguments (as opposed to a failure while writing). */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** --kv-heads for kvHeads and so on. */
const flag = (field: string): string => field.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

export const USAGE = `Usage: make-test-model --out DIR [--preset ${Object.keys(PRESETS).join('|')}] [--seed N] [--dtype ${DTYPES.join('|')}]
  [--architecture ${ARCHITECTURES.join('|')}]
  ${INT_FIELDS.map((f) => `[--${flag(f)} N]`).join(' ')}
  ${NUMBER_FIELDS.map((f) => `[--${flag(f)} X]`).join(' ')} ${BOOL_FIELDS.map((f) => `[--${flag(f)} true|false]`).join(' ')}`;

export interface MakeTestModelArgs {
  out: string;
  options: TestModelOptions;
  help: boolean;
}

function parseNumber(name: string, text: string, integer: boolean): number {
  const value = Number(text);
  if (text.trim() === '' || !Number.isFinite(value) || (integer && !Number.isInteger(value))) {
    throw new UsageError(`--${name} must be ${integer ? 'an integer' : 'a number'}, got "${text}"`);
  }
  return value;
}

function parseBoolean(name: string, text: string): boolean {
  if (text === 'true') return true;
  if (text === 'false') return false;
  throw new UsageError(`--${name} must be true or false, got "${text}"`);
}

function pick<T extends string>(name: string, text: string, allowed: readonly T[]): T {
  const found = allowed.find((a) => a === text);
  if (found === undefined) throw new UsageError(`--${name} must be one of ${allowed.join(', ')}, got "${text}"`);
  return found;
}

export function parseMakeTestModelArgs(argv: string[]): MakeTestModelArgs {
  const fieldOptions = Object.fromEntries([...INT_FIELDS, ...NUMBER_FIELDS, ...BOOL_FIELDS, 'architecture'].map((f) => [flag(f), { type: 'string' as const }]));
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        out: { type: 'string' },
        preset: { type: 'string' },
        seed: { type: 'string' },
        dtype: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
        ...fieldOptions,
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const str = (name: string): string | undefined => {
    const v = values[name];
    return typeof v === 'string' ? v : undefined;
  };
  const help = values.help === true;
  const out = str('out');
  if (out === undefined && !help) throw new UsageError('--out DIR is required');
  const presetName = str('preset') ?? 'tiny';
  const preset = PRESETS[presetName];
  if (preset === undefined) throw new UsageError(`unknown preset "${presetName}" (known: ${Object.keys(PRESETS).join(', ')})`);

  const shape: Partial<TestModelShape> = { ...preset };
  for (const f of INT_FIELDS) {
    const text = str(flag(f));
    if (text !== undefined) shape[f] = parseNumber(flag(f), text, true);
  }
  for (const f of NUMBER_FIELDS) {
    const text = str(flag(f));
    if (text !== undefined) shape[f] = parseNumber(flag(f), text, false);
  }
  for (const f of BOOL_FIELDS) {
    const text = str(flag(f));
    if (text !== undefined) shape[f] = parseBoolean(flag(f), text);
  }
  const architecture = str('architecture');
  if (architecture !== undefined) {
    shape.architecture = pick('architecture', architecture, ARCHITECTURES);
    // The bias follows the architecture (Qwen2 has one) unless it was set explicitly.
    if (str('attention-bias') === undefined) delete shape.attentionBias;
  }
  const options: TestModelOptions = {
    ...shape,
    seed: parseNumber('seed', str('seed') ?? '0', true),
    dtype: pick('dtype', str('dtype') ?? 'F32', DTYPES),
  };
  return { out: out ?? '', options, help };
}
