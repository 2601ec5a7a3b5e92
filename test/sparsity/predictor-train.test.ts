/**
 * The predictor's training: the loss's gradients against central finite differences in
 * float64 (as test/graph/autodiff.test.ts checks every VJP), the oracle labels of a few
 * positions of stories260K, and a short resumable training run on them.
 */
import t from 'tap';
import { loadModelDir } from '../../src/arch/load.js';
import { Attributor } from '../../src/sparsity/attribution.js';
import { keptCount, rankUnits } from '../../src/sparsity/masks.js';
import { unitScores } from '../../src/sparsity/metrics.js';
import { defaultRank } from '../../src/sparsity/predictor.js';
import { keepCounts, labelPassages, selectPassages, setAt } from '../../src/sparsity/predictor-data.js';
import { buildPredictorLossGraph, measureRecall, predictorScoreFn, trainPredictor } from '../../src/sparsity/predictor-train.js';
import { DecoderSession } from '../../src/runtime/session.js';
import { argmax } from '../../src/runtime/sampling.js';
import { f64, session, uniform } from '../helpers/ort.js';

const H = 1e-5;

for (const posWeight of [1, 3]) {
  t.test(`the BCE loss's gradients w.r.t. A, B and bias match finite differences (positive weight ${posWeight})`, async (t) => {
    const [hidden, rank, F, n] = [3, 2, 4, 5];
    const { graph } = buildPredictorLossGraph(hidden, rank, F, { dtype: 'float64', posWeight });
    const s = await session(graph);
    const params = { a: uniform(hidden * rank, 1, -2, 2), b: uniform(rank * F, 2, -2, 2), bias: uniform(F, 3, -1, 1) };
    const shapes = { a: [hidden, rank], b: [rank, F], bias: [F] };
    // Inputs of this scale give logits of both signs: both branches of softplus are checked.
    const x = f64(uniform(n * hidden, 4, -2, 2), [n, hidden]);
    // Soft targets in [0, 1], some exactly 0 or 1.
    const y = f64(
      uniform(n * F, 5).map((v) => Math.min(1, Math.max(0, v + 0.5))),
      [n, F],
    );
    const feeds = () => ({ ...Object.fromEntries(Object.entries(params).map(([k, v]) => [k, f64(v, shapes[k as keyof typeof shapes])])), x, y });
    const out = await s.run(feeds());
    const loss = async () => ((await s.run(feeds())).loss.data as Float64Array)[0];

    t.ok((out.loss.data as Float64Array)[0] > 0);
    let worst = 0;
    for (const k of ['a', 'b', 'bias'] as const) {
      const analytic = out[`grad.${k}`].data as Float64Array;
      t.equal(analytic.length, params[k].length);
      for (let j = 0; j < params[k].length; j++) {
        const x0 = params[k][j];
        params[k][j] = x0 + H;
        const up = await loss();
        params[k][j] = x0 - H;
        const down = await loss();
        params[k][j] = x0;
        const numeric = (up - down) / (2 * H);
        worst = Math.max(worst, Math.abs(numeric - analytic[j]) / Math.max(1, Math.abs(numeric)));
      }
    }
    t.ok(worst < 1e-6, `max relative error ${worst.toExponential(2)}`);
  });
}

t.test('the loss is the mean BCE with logits, stable at large logits', async (t) => {
  const { graph } = buildPredictorLossGraph(1, 1, 2, { dtype: 'float64', gradients: false });
  const s = await session(graph);
  // z = x * a * b + bias = [1000, -1000] + 0 with y = [0, 1]: each costs 1000 nats.
  const run = async (x: number, y: number[]) =>
    (
      (await s.run({ a: f64([1], [1, 1]), b: f64([1, -1], [1, 2]), bias: f64([0, 0], [2]), x: f64([x], [1, 1]), y: f64(y, [1, 2]) })).loss.data as Float64Array
    )[0];
  t.ok(Math.abs((await run(1000, [0, 1])) - 1000) < 1e-9);
  t.ok(Math.abs((await run(1000, [1, 0])) - 0) < 1e-9);
  const sp = (z: number) => Math.log(1 + Math.exp(z));
  t.ok(Math.abs((await run(0.5, [0.25, 1])) - (sp(0.5) - 0.25 * 0.5 + sp(-0.5) - 1 * -0.5) / 2) < 1e-12);
});

t.test('keepCounts: nested top-k sets in one count per neuron', async (t) => {
  const scores = [0.1, 0.9, -1, 0.5, 0.3, 0.7, 0, 0.2, 0.8, 0.4];
  const sparsities = [0.5, 0.8, 0.9];
  const counts = new Uint8Array(12);
  keepCounts(scores, sparsities, counts, 2);
  t.same(Array.from(counts.subarray(0, 2)), [0, 0], 'writes at the offset');
  sparsities.forEach((s, m) => {
    const top = rankUnits(scores)
      .slice(0, keptCount(10, s))
      .sort((a, b) => a - b);
    t.same(setAt(counts, 2, 10, m + 1), top, `count >= ${m + 1} is the top-k at ${s}`);
  });
});

t.test('selectPassages: validation first, budgets in labelled positions, deterministic', async (t) => {
  const texts = Array.from({ length: 40 }, (_, i) => 'x'.repeat(20 + i));
  const encode = (s: string) => Array.from(s, (_, i) => i);
  const o = { trainTokens: 100, validationTokens: 30, maxLength: 16, seed: 3 };
  const ps = selectPassages(texts, encode, o);
  t.same(selectPassages(texts, encode, o), ps);
  const count = (v: boolean) => ps.filter((p) => p.validation === v).reduce((s, p) => s + p.tokens.length - 1, 0);
  t.equal(count(true), 30);
  t.equal(count(false), 100);
  t.ok(ps.every((p) => p.tokens.length <= 16));
  const kinds = ps.map((p) => p.validation);
  t.same(
    kinds,
    [...kinds].sort((a, b) => Number(b) - Number(a)),
    'validation passages come first',
  );
});

t.test('labels and training on stories260K', async (t) => {
  const { config, weights, tokenizer } = await loadModelDir('models/stories260K');
  const texts = [
    'Once upon a time there was a little girl named Lily. She loved to play outside in the sun with her dog.',
    'The cat sat on the mat and looked at the big red ball. It wanted to play with the ball all day long.',
    'Tom had a toy car. He liked to drive it around the house and make loud noises.',
  ];
  const passages = selectPassages(texts, (s) => tokenizer.encode(s), { trainTokens: 40, validationTokens: 10, maxLength: 24, seed: 1 });
  const work = t.testdir();
  const F = config.intermediateSize;
  const { train, validation } = await labelPassages(config, weights, passages, { work, ort: { intraOpThreads: 1 }, chunk: 1 });
  t.equal(validation.positions, 10);
  t.equal(train.positions, 40);
  t.equal(train.x[0].length, 40 * config.hiddenSize);

  // Position 3 of the first validation passage, recomputed as eval's oracle does it (with the
  // cache from one prefill instead of single steps: float noise may swap neurons at the cut).
  const p = passages.find((q) => q.validation)!;
  const dense = await DecoderSession.create(config, weights, { intraOpThreads: 1 });
  const stepper = await Attributor.create(config, weights, { intraOpThreads: 1 }, { cache: true, mlpInputs: true });
  let cache = (await dense.forward(p.tokens.slice(0, 3), dense.emptyCache(), 1)).cache;
  const next = await dense.forward([p.tokens[3]], cache, 1);
  const att = await stepper.step(p.tokens[3], cache, argmax(next.logits));
  cache = next.cache;
  for (let l = 0; l < config.numLayers; l++) {
    const want = rankUnits(unitScores('cor_gxo', att.layers[l].mlp, F))
      .slice(0, keptCount(F, 0.8))
      .sort((a, b) => a - b);
    const got = setAt(validation.counts.cor_gxo[l], 2 * F, F, 3);
    t.ok(got.filter((i) => want.includes(i)).length >= want.length - 2, `layer ${l}: the stored s=0.8 set is the oracle's (up to ties)`);
    const x = validation.x[l].subarray(2 * config.hiddenSize, 3 * config.hiddenSize);
    t.ok(
      x.every((v, i) => Math.abs(v - att.mlpInputs![l][i]) < 1e-4),
      `layer ${l}: the stored x is the MLP input`,
    );
  }
  await dense.release();
  await stepper.release();

  // A second call reads the cached chunks.
  const again = await labelPassages(config, weights, passages, { work, chunk: 1 });
  t.same(again.train.counts.cor_gxo[1], train.counts.cor_gxo[1]);

  const rank = defaultRank(config.hiddenSize);
  const settings = { rank, steps: 20, batch: 16, peakLr: 1e-2, warmup: 2, weightDecay: 0, posWeight: 1, seed: 1 };
  const checkpoint = t.testdir();
  const losses: number[] = [];
  const full = await trainPredictor(train, 'cor_gxo', settings, { threads: 1, checkpoint, checkpointEvery: 10, onProgress: (q) => losses.push(q.loss) });
  t.ok(losses[losses.length - 1] < losses[0], `the loss falls (${losses[0].toFixed(4)} -> ${losses[losses.length - 1].toFixed(4)})`);
  // Resumed from the last checkpoint (step 20): no step runs and the same weights come back.
  const steps: number[] = [];
  const resumed = await trainPredictor(train, 'cor_gxo', settings, { threads: 1, checkpoint, onProgress: (q) => steps.push(q.step) });
  t.same(steps, []);
  t.same(resumed.layers, full.layers);
  const r = measureRecall(validation, predictorScoreFn(full.layers, rank, F));
  t.same(Object.keys(r), ['0.5', '0.7', '0.8', '0.9']);
  t.ok(Object.values(r).every((v) => v > 0 && v <= 1));
});
