/** A generated model with tier masks calibrated by attribution, for sparse-serving tests. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadModelDir } from '../../src/arch/load.js';
import { writeTestModel, type TestModelOptions } from '../../src/arch/testmodel.js';
import { Attributor } from '../../src/sparsity/attribution.js';
import { calibrate } from '../../src/sparsity/calibration.js';
import { tierMask, writeMaskFile } from '../../src/sparsity/masks.js';

export const CALIBRATED_SHAPE: TestModelOptions = {
  hidden: 32,
  intermediate: 100,
  layers: 2,
  heads: 4,
  kvHeads: 2,
  headDim: 8,
  vocab: 300,
  maxPositions: 128,
  seed: 21,
};

const TEXTS = ['the cat sat on the mat', 'a dog ran in the park and barked', 'she said that it would rain today', 'one two three four five six'];

/** The calibration set the tiers are cut from (also what an evaluation's static mode reads). */
export const CALIBRATION_SET = { file: 'inline', sha256: '0'.repeat(64), samples: TEXTS.map((prompt) => ({ prompt })) };
/** Tokens per calibration sample at most. */
export const CALIBRATION_MAX_LENGTH = 64;

/** Writes the model (`shape` over CALIBRATED_SHAPE) into a fresh temporary directory and calibrates `tiers` into it. */
export async function calibratedModelDir(tiers = [0.5, 0.8], shape: TestModelOptions = {}): Promise<string> {
  const dir = join(mkdtempSync(join(tmpdir(), 'calibrated-')), 'calibrated-llama');
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  await writeTestModel(dir, { ...CALIBRATED_SHAPE, ...shape });
  const model = await loadModelDir(dir);
  const attributor = await Attributor.create(model.config, model.weights, { intraOpThreads: 1 });
  const set = CALIBRATION_SET;
  const { scores, tokens } = await calibrate(attributor, model.tokenizer, set, 'cor_gxo', { maxLength: CALIBRATION_MAX_LENGTH });
  await attributor.release();
  writeMaskFile(dir, {
    format: 1,
    metric: 'cor_gxo',
    weightsSha256: model.weightsHash,
    calibration: { file: 'inline', sha256: set.sha256, samples: TEXTS.length, tokens },
    created: new Date().toISOString(),
    pruneHeads: false,
    scores: scores.map((l) => ({ mlp: Array.from(l.mlp), heads: Array.from(l.heads) })),
    tiers: tiers.map((s) => tierMask(model.config, scores, s, false)),
  });
  return dir;
}
