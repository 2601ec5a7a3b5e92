import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { parseConfig } from '../../src/arch/config.js';
import { hfConfigJson, initialValues, resolveShape } from '../../src/arch/testmodel.js';
import { assembleWeights, tensorSpecs } from '../../src/arch/checkpoints.js';
import { ADAMW_DEFAULTS, adamwUpdate, learningRate, newAdamState } from '../../src/train/adamw.js';
import { evaluationBatches, randomBatch, tokenStream } from '../../src/train/data.js';
import { Trainer, type TrainSettings } from '../../src/train/trainer.js';

const shape = resolveShape({ hidden: 32, intermediate: 64, layers: 2, heads: 4, kvHeads: 2, headDim: 8, vocab: 260, maxPositions: 64, tie: true });
const config = parseConfig(hfConfigJson(shape), 'config.json');
const specs = new Map(tensorSpecs(config).map((s) => [s.name, s.shape]));
const init = () => assembleWeights(config, (n) => ({ shape: specs.get(n)!, data: initialValues(n, specs.get(n)!, 3) }));
const settings: TrainSettings = { steps: 60, batch: 4, seq: 16, peakLr: 1e-2, warmup: 5, clip: 1, seed: 1, adamw: ADAMW_DEFAULTS };
// A tiny corpus the model can memorise: loss must fall far below its initial ~ln(260).
const stream = tokenStream(['abcabcabd '.repeat(6), 'the cat sat on the mat '.repeat(3)], (s) => [1, ...Array.from(Buffer.from(s), (b) => 3 + b)], 2);

t.test('AdamW: one step by hand', async (t) => {
  const w = Float32Array.of(1, -2);
  const state = newAdamState(2);
  adamwUpdate(w, Float32Array.of(0.5, -1), state, 0.1, 1, { beta1: 0.9, beta2: 0.95, eps: 0, weightDecay: 0.1 }, true);
  // Step 1: m_hat = g, v_hat = g^2, so the update is lr * (sign(g) + wd * w).
  t.ok(Math.abs(w[0] - (1 - 0.1 * (1 + 0.1))) < 1e-6 && Math.abs(w[1] - (-2 - 0.1 * (-1 - 0.2))) < 1e-6, `${w}`);
});

t.test('learning rate warms up linearly and decays by cosine to the floor', async (t) => {
  t.equal(learningRate(0, 1, 10, 100), 0.1);
  t.equal(learningRate(9, 1, 10, 100), 1);
  t.ok(Math.abs(learningRate(55, 1, 10, 100) - 0.55) < 1e-12, 'half way: mean of peak and floor');
  t.ok(Math.abs(learningRate(100, 1, 10, 100) - 0.1) < 1e-12);
});

t.test('batches are windows of the stream, the same for the same step', async (t) => {
  const b = randomBatch(stream, 3, 8, 5, 7);
  t.same(b, randomBatch(stream, 3, 8, 5, 7));
  t.notSame(b.inputs, randomBatch(stream, 3, 8, 5, 8).inputs);
  for (let i = 0; i < 7; i++) t.equal(b.targets[i], b.inputs[i + 1], 'targets are the next tokens');
  const evals = evaluationBatches(stream, 4, 8);
  const predicted = evals.reduce((n, e) => n + e.batch * e.seq, 0);
  t.equal(predicted, Math.floor((stream.length - 1) / 8) * 8, 'every token after the first predicted once');
});

t.test('training memorises a tiny corpus', async (t) => {
  const trainer = await Trainer.create(config, init(), settings, 1);
  t.teardown(() => trainer.release());
  const evals = evaluationBatches(stream, 4, 16);
  const before = await trainer.evaluateLoss(evals);
  for (let s = 0; s < settings.steps; s++) await trainer.trainStep(randomBatch(stream, settings.batch, settings.seq, settings.seed, s));
  const after = await trainer.evaluateLoss(evals);
  t.ok(before.nats / before.tokens > 4, `initial loss ${(before.nats / before.tokens).toFixed(2)} nats`);
  t.ok(after.nats / after.tokens < 1, `after ${settings.steps} steps: ${(after.nats / after.tokens).toFixed(3)} nats`);
  t.equal(trainer.history.length, settings.steps);
  t.equal(trainer.tokens, settings.steps * settings.batch * settings.seq);
});

t.test('a run resumed from a checkpoint continues exactly', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'trainer-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const steps = 6;
  const straight = await Trainer.create(config, init(), settings, 1);
  for (let s = 0; s < steps; s++) await straight.trainStep(randomBatch(stream, 4, 16, 1, s));

  const first = await Trainer.create(config, init(), settings, 1);
  for (let s = 0; s < steps / 2; s++) await first.trainStep(randomBatch(stream, 4, 16, 1, s));
  first.saveCheckpoint(dir);
  const resumed = await Trainer.create(config, init(), settings, 1);
  t.ok(resumed.loadCheckpoint(dir));
  t.equal(resumed.step, steps / 2);
  for (let s = resumed.step; s < steps; s++) await resumed.trainStep(randomBatch(stream, 4, 16, 1, s));

  const a = straight.exportTensors();
  const b = resumed.exportTensors();
  const worst = Math.max(...Object.keys(a).map((n) => Math.max(...a[n].data.map((v, i) => Math.abs(v - b[n].data[i])))));
  t.equal(worst, 0, 'identical weights (one thread: ORT is deterministic)');
  t.same(a['model.layers.0.mlp.down_proj.weight'].shape, [32, 64], 'exported in Hugging Face layout');
  for (const x of [straight, first, resumed]) await x.release();
});
