/**
 * The model the load test's concurrency sweep serves when none is given: a random model at
 * SmolLM2-135M's shape (generated once into .cache/, as `npm run bench` generates its own),
 * with static tiers s50 and s80 cut from random neuron scores.
 *
 * Static tiers come only from a model's sparsity/masks.json (src/sparsity/tiers.ts), and
 * calibrating them by attribution takes far too long at this shape on a small machine. A tier's
 * speed depends on how many neurons it keeps, not on which, so random scores time it as a
 * calibrated one would (scripts/bench.ts does the same); the mask file says where it came from.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadModelDir } from '../../src/arch/load.js';
import { SMOLLM2_135M_SHAPE, writeTestModel } from '../../src/arch/testmodel.js';
import { createRng } from '../../src/random.js';
import { MASKS_FILE, tierMask, writeMaskFile } from '../../src/sparsity/masks.js';
import { ROOT } from './server-process.js';

export const SWEEP_MODEL_DIR = '.cache/loadtest-smollm2-135m';
export const SWEEP_MODEL_TIERS = [0.5, 0.8];
/** What the mask file names as its calibration set. */
export const RANDOM_SCORES = 'random scores (scripts/lib/sweep-model.ts)';

/** The directory of the sweep's default model (relative to the repository root), generated on first use. */
export async function ensureSweepModel(log: (line: string) => void = () => {}): Promise<string> {
  const dir = resolve(ROOT, SWEEP_MODEL_DIR);
  if (!existsSync(join(dir, 'model.safetensors'))) {
    log(`generating a random model at SmolLM2-135M's shape in ${SWEEP_MODEL_DIR} ...`);
    // The same model as scripts/bench.ts's .cache/bench-smollm2-135m (same shape, seed and dtype).
    await writeTestModel(dir, { ...SMOLLM2_135M_SHAPE, seed: 1, dtype: 'BF16' });
  }
  if (!existsSync(join(dir, MASKS_FILE))) {
    log(`writing static tiers ${SWEEP_MODEL_TIERS.join(', ')} from random neuron scores into ${SWEEP_MODEL_DIR}/${MASKS_FILE} ...`);
    const model = await loadModelDir(dir);
    const c = model.config;
    const rand = createRng(7);
    const scores = Array.from({ length: c.numLayers }, () => ({
      mlp: Array.from({ length: c.intermediateSize }, rand),
      heads: Array.from({ length: c.numHeads }, () => 1),
    }));
    writeMaskFile(dir, {
      format: 1,
      metric: 'cor_gxo',
      weightsSha256: model.weightsHash,
      calibration: { file: RANDOM_SCORES, sha256: '0'.repeat(64), samples: 0, tokens: 0 },
      created: new Date().toISOString(),
      pruneHeads: false,
      scores,
      tiers: SWEEP_MODEL_TIERS.map((s) => tierMask(c, scores, s, false)),
    });
  }
  return SWEEP_MODEL_DIR;
}
