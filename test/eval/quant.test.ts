/**
 * `npm run eval -- --quant`: the evaluated sessions (masked graph, per-token sessions) read
 * quantised weights, while attribution, and so every neuron set, stays float32.
 */
import t from 'tap';
import { Evaluator, type PassageUnit, type UnitSettings } from '../../src/eval/evaluator.js';
import { loadModelDir } from '../../src/arch/load.js';
import type { QuantName } from '../../src/model/quant.js';
import { CALIBRATION_SET } from '../helpers/calibrated-model.js';
import { STORIES_DIR } from '../helpers/stories.js';

// A trained model: a random one's likelihoods hardly move with its weights.
const model = await loadModelDir(STORIES_DIR);
const TEXT =
  'Once upon a time, there was a little girl named Lily. She loved to play in the park with her dog. One day, she saw a big red ball under a tree. She ran to get it, but the ball rolled away. Lily laughed and ran after it.';

async function evaluate(quant?: QuantName) {
  const settings: UnitSettings = {
    metrics: ['cor_gxo'],
    modes: ['static', 'token'],
    sparsities: [0, 0.5],
    maxTokens: 4,
    passageTokens: 64,
    passageContext: 16,
    igSteps: 1,
    calibrationMaxLength: 16,
    tokenVariants: [{ selector: 'gate', block: 1 }],
    ...(quant && { quant }),
  };
  const evaluator = await Evaluator.create(model, settings, { intraOpThreads: 1 });
  try {
    const calibration = await evaluator.calibration(CALIBRATION_SET);
    return { calibration, passage: await evaluator.passage(0, TEXT, calibration) };
  } finally {
    await evaluator.release();
  }
}

const fp32 = await evaluate();
const int8 = await evaluate('int8');
const int4 = await evaluate('int4');

/** Per run of a passage (dense, each static and token run), its nats. */
const nats = (p: PassageUnit) => [p.denseNats, ...p.runs.map((r) => r.nats), ...p.tokenRuns.map((r) => r.nats)];

t.test('the calibration is attributed on the float32 weights, whatever is evaluated', async (t) => {
  t.same(int8.calibration, fp32.calibration);
  t.same(int4.calibration, fp32.calibration);
});

t.test('quantised weights reach the masked graph and the per-token session', async (t) => {
  const labels = ['dense', ...fp32.passage.runs.map((r) => `static ${r.sparsity}`), ...fp32.passage.tokenRuns.map((r) => `${r.variant} ${r.sparsity}`)];
  const [f, q8, q4] = [fp32, int8, int4].map((x) => nats(x.passage));
  labels.forEach((label, i) => {
    t.ok(Number.isFinite(q8[i]) && Number.isFinite(q4[i]), `${label}: finite (int8 ${q8[i]}, int4 ${q4[i]})`);
    const e8 = Math.abs(q8[i] / f[i] - 1);
    const e4 = Math.abs(q4[i] / f[i] - 1);
    // Blocks of 32: int8 rounds to 1/127 of a block's largest weight, int4 to 1/7.
    t.ok(e8 > 1e-6 && e8 < 0.05, `${label}: int8 differs from float32 by ${e8}`);
    t.ok(e4 > e8, `${label}: int4 more (${e4})`);
  });
  const perplexity = (p: PassageUnit) => Math.exp(p.denseNats / p.tokens);
  t.ok(Number.isFinite(perplexity(int8.passage)), `dense perplexity: float32 ${perplexity(fp32.passage)}, int8 ${perplexity(int8.passage)}`);
});
