/**
 * A whole evaluation run: the calibration, every prompt of every set, every held-out passage,
 * each appended to a progress file as it finishes, so that an interrupted run resumes where it
 * stopped when started again with the same settings.
 */
import { createHash } from 'node:crypto';
import { basename, extname } from 'node:path';
import { readJsonLines } from '../model/json.js';
import type { LoadedModel } from '../arch/load.js';
import type { OrtOptions } from '../runtime/session.js';
import { readCalibrationFile, type CalibrationSet } from '../sparsity/calibration.js';
import { Evaluator, type CalibrationUnit, type PassageUnit, type PromptUnit, type Unit, type UnitSettings } from './evaluator.js';
import type { ProgressFile } from './progress.js';
import { predictorHashes } from './token.js';

export interface InputFile {
  file: string;
  sha256: string;
}

export interface PromptSet extends InputFile {
  name: string;
  prompts: string[];
}

export interface Passages extends InputFile {
  texts: string[];
}

export interface EvalInputs {
  promptSets: PromptSet[];
  passages: Passages;
  calibration: CalibrationSet;
}

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

/** A prompt set: JSON lines with a "prompt" each (a calibration file's format), named after its file. */
export function readPromptSet(file: string, limit: number | null): PromptSet {
  const set = readCalibrationFile(file);
  return { name: basename(file, extname(file)), file, sha256: set.sha256, prompts: set.samples.map((s) => s.prompt).slice(0, limit ?? undefined) };
}

/** Held-out passages: JSON lines with a non-empty "text" each. */
export function readPassages(file: string, limit: number | null): Passages {
  const { rows: texts, sha256 } = readJsonLines(file, (value) => {
    const text = (value as { text?: unknown } | null)?.text;
    if (typeof text !== 'string' || text === '') throw new Error('"text" must be a non-empty string');
    return text;
  });
  if (texts.length === 0) throw new Error(`${file}: no passages`);
  return { file, sha256, texts: texts.slice(0, limit ?? undefined) };
}

/** What the results depend on: a progress file written for another key is not resumed. */
export function settingsKey(model: LoadedModel, settings: UnitSettings, inputs: EvalInputs): string {
  return sha256(
    Buffer.from(
      JSON.stringify({
        model: model.weightsHash,
        settings,
        ...(settings.modes.includes('token') && { predictors: predictorHashes(model, settings.tokenVariants) }),
        prompts: inputs.promptSets.map((s) => [s.sha256, s.prompts.length]),
        passages: [inputs.passages.sha256, inputs.passages.texts.length],
        calibration: inputs.calibration.sha256,
      }),
    ),
  );
}

export interface RunHooks {
  /** Called once with the number of units, and how many a resumed run already has. */
  onStart?(total: number, done: number): void;
  onUnit?(label: string): void;
}

export interface EvalUnits {
  calibration: CalibrationUnit;
  prompts: PromptUnit[];
  passages: PassageUnit[];
}

export async function runEvaluation(
  model: LoadedModel,
  settings: UnitSettings,
  inputs: EvalInputs,
  progress: ProgressFile<Unit>,
  options: OrtOptions & RunHooks = {},
): Promise<EvalUnits> {
  const done = new Map(progress.units.map((u) => [unitId(u), u]));
  const wanted: string[] = [
    'calibration',
    ...inputs.promptSets.flatMap((s) => s.prompts.map((_, i) => `prompt:${s.name}:${i}`)),
    ...inputs.passages.texts.map((_, i) => `passage:${i}`),
  ];
  options.onStart?.(wanted.length, wanted.filter((id) => done.has(id)).length);
  if (wanted.every((id) => done.has(id))) return collect(done, wanted);

  const evaluator = await Evaluator.create(model, settings, options);
  try {
    const finish = (unit: Unit) => {
      progress.append(unit);
      done.set(unitId(unit), unit);
      options.onUnit?.(unitId(unit));
    };
    if (!done.has('calibration')) finish(await evaluator.calibration(inputs.calibration));
    const calibration = done.get('calibration') as CalibrationUnit;
    for (const set of inputs.promptSets) {
      for (const [i, prompt] of set.prompts.entries()) {
        if (!done.has(`prompt:${set.name}:${i}`)) finish(await evaluator.prompt(set.name, i, prompt, calibration));
      }
    }
    for (const [i, text] of inputs.passages.texts.entries()) {
      if (!done.has(`passage:${i}`)) finish(await evaluator.passage(i, text, calibration));
    }
  } finally {
    await evaluator.release();
  }
  return collect(done, wanted);
}

function unitId(unit: Unit): string {
  if (unit.kind === 'calibration') return 'calibration';
  if (unit.kind === 'prompt') return `prompt:${unit.set}:${unit.index}`;
  return `passage:${unit.index}`;
}

function collect(done: Map<string, Unit>, wanted: string[]): EvalUnits {
  const units = wanted.map((id) => done.get(id)!);
  return {
    calibration: units.find((u): u is CalibrationUnit => u.kind === 'calibration')!,
    prompts: units.filter((u): u is PromptUnit => u.kind === 'prompt'),
    passages: units.filter((u): u is PassageUnit => u.kind === 'passage'),
  };
}
