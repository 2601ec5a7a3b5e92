/**
 * The attribution graph's gradients, checked against finite differences of the whole model in
 * float64, and its loss against the serving graph's logits in float32.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { grad } from '../../src/graph/autodiff.js';
import { loadModelDir } from '../../src/arch/load.js';
import { writeTestModel } from '../../src/arch/testmodel.js';
import { logSoftmax } from '../../src/runtime/sampling.js';
import { DecoderSession } from '../../src/runtime/session.js';
import { buildAttributionGraph, headGateName, mlpScaleName } from '../../src/sparsity/attribution-graph.js';
import { Attributor, continuationTargets, promptTargets, selfTargets } from '../../src/sparsity/attribution.js';
import { METRICS, scoreEveryMetric, scoreSequence } from '../../src/sparsity/metrics.js';
import { f64, i64, session, uniform } from '../helpers/ort.js';

const dir = mkdtempSync(join(tmpdir(), 'attribution-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const SHAPE = { hidden: 16, intermediate: 24, layers: 2, heads: 4, kvHeads: 2, headDim: 4, vocab: 300, maxPositions: 32, seed: 3 };
const tokens = [1, 70, 71, 72, 100, 33, 72];
// The LLaMA model the tests below read; the gradient check also writes one per architecture.
await writeTestModel(dir, SHAPE);

t.test('selfTargets and continuationTargets choose the positions that predict the next token', async (t) => {
  t.same(selfTargets([5, 6, 7]), { ids: [6, 7, 0], weights: [1, 1, 0] });
  t.same(continuationTargets([5, 6, 7, 8], 2), { ids: [6, 7, 8, 0], weights: [0, 1, 1, 0] });
  t.throws(() => continuationTargets([5, 6], 2), RangeError);
  t.same(promptTargets([5, 6]), selfTargets([5, 6]));
  t.same(promptTargets([5]), { ids: [5], weights: [1] }, 'a one-token prompt is its own target');
});

for (const architecture of ['LlamaForCausalLM', 'Phi3ForCausalLM', 'MobiLlamaForCausalLM', 'PhiForCausalLM', 'GPT2LMHeadModel'] as const)
  t.test(`whole-model gradients match central finite differences (float64), ${architecture}`, async (t) => {
    const modelDir = join(dir, 'by-architecture', architecture);
    // GPT-2's and MobiLlama's attention is multi-head.
    const multiHead = architecture === 'GPT2LMHeadModel' || architecture === 'MobiLlamaForCausalLM';
    await writeTestModel(modelDir, { ...SHAPE, architecture, ...(multiHead ? { kvHeads: SHAPE.heads } : {}) });
    const { config, weights } = await loadModelDir(modelDir);
    const built = buildAttributionGraph(config, weights, { dtype: 'float64' });
    const { graph } = built;
    // Gradients with respect to the scale and gate inputs themselves, so they can be perturbed.
    const wrt = [...built.mlpScales, ...built.headGates];
    for (const [i, d] of grad(graph, built.loss, wrt).entries()) graph.output(d, `d_input_${i}`);
    const s = await session(graph);

    const S = tokens.length;
    const L = config.numLayers;
    const I = config.intermediateSize;
    const Hh = config.numHeads;
    // Scales and gates away from 1, so that a*scale and the unscaled a differ.
    const scales = Array.from({ length: L }, (_, l) => uniform(I, 10 + l, 0.5, 1.5));
    const gates = Array.from({ length: L }, (_, l) => uniform(S * Hh, 20 + l, 0.5, 1.5));
    const targets = selfTargets(tokens);
    const feeds = () => {
      const f: Record<string, ReturnType<typeof f64>> = {
        input_ids: i64(tokens, [1, S]),
        position_ids: i64(
          tokens.map((_, i) => i),
          [1, S],
        ),
        target_ids: i64(targets.ids, [1, S]),
        target_weights: f64(targets.weights, [1, S]),
      };
      for (let l = 0; l < L; l++) {
        f[mlpScaleName(l)] = f64(scales[l], [I]);
        f[headGateName(l)] = f64(gates[l], [1, S, Hh]);
      }
      return f;
    };
    const out = await s.run(feeds());
    const lossAt = async () => ((await s.run(feeds())).loss.data as Float64Array)[0];
    const h = 1e-5;
    const fd = async (values: number[], j: number) => {
      const x0 = values[j];
      values[j] = x0 + h;
      const up = await lossAt();
      values[j] = x0 - h;
      const down = await lossAt();
      values[j] = x0;
      return (up - down) / (2 * h);
    };

    // Tolerance as in the per-op tests: h = 1e-5 in float64 leaves errors ~1e-9.
    let worst = 0;
    for (let l = 0; l < L; l++) {
      const dScale = out[`d_input_${l}`].data as Float64Array;
      const dGate = out[`heads.${l}.g`].data as Float64Array;
      for (const j of [0, 5, I - 1]) worst = Math.max(worst, Math.abs((await fd(scales[l], j)) - dScale[j]));
      for (const j of [0, 7, S * Hh - 1]) worst = Math.max(worst, Math.abs((await fd(gates[l], j)) - dGate[j]));

      // The reported dL/da is consistent with dL/dscale: scale_i multiplies a_i at every
      // position, so dL/dscale_i = sum_p dL/da_pi * a_pi / scale_i.
      const a = out[`mlp.${l}.a`].data as Float64Array;
      const g = out[`mlp.${l}.g`].data as Float64Array;
      for (let i = 0; i < I; i++) {
        let sum = 0;
        for (let p = 0; p < S; p++) sum += (g[p * I + i] * a[p * I + i]) / scales[l][i];
        worst = Math.max(worst, Math.abs(sum - dScale[i]));
      }
    }
    t.ok(worst < 1e-7, `max abs error ${worst.toExponential(2)}`);
  });

t.test("the attribution loss is the cross-entropy of the serving graph's logits", async (t) => {
  const { config, weights } = await loadModelDir(dir);
  const attributor = await Attributor.create(config, weights, { intraOpThreads: 1 });
  const served = await DecoderSession.create(config, weights, { intraOpThreads: 1 });
  const { logits } = await served.forward(tokens, served.emptyCache(), tokens.length);
  const V = config.vocabSize;
  const nll = (p: number) => -logSoftmax(logits.subarray(p * V, (p + 1) * V))[tokens[p + 1]];

  const self = await attributor.run(tokens, selfTargets(tokens));
  let expected = 0;
  for (let p = 0; p + 1 < tokens.length; p++) expected += nll(p) / (tokens.length - 1);
  // float32 through two different graphs: agreement to ~1e-6 relative is what rounding allows.
  t.ok(Math.abs(self.loss - expected) < 1e-5 * Math.max(1, expected), `self: ${self.loss} vs ${expected}`);

  const cont = await attributor.run(tokens, continuationTargets(tokens, 4));
  const expectedCont = (nll(3) + nll(4) + nll(5)) / 3;
  t.ok(Math.abs(cont.loss - expectedCont) < 1e-5 * Math.max(1, expectedCont), `continuation: ${cont.loss} vs ${expectedCont}`);

  t.equal(self.layers.length, config.numLayers);
  t.equal(self.layers[0].mlp.a.length, tokens.length * config.intermediateSize);
  t.equal(self.layers[0].heads.g.length, tokens.length * config.numHeads);
  await attributor.release();
  await served.release();
});

t.test('a cached decode step attributes exactly what the whole sequence does at its last position', async (t) => {
  const { config, weights } = await loadModelDir(dir);
  const whole = await Attributor.create(config, weights, { intraOpThreads: 1 });
  const stepper = await Attributor.create(config, weights, { intraOpThreads: 1 }, { cache: true });
  const served = await DecoderSession.create(config, weights, { intraOpThreads: 1 });
  const last = tokens.length - 1;
  const { cache } = await served.forward(tokens.slice(0, last), served.emptyCache());
  const target = 42;
  // Only the last position's loss: its activations affect nothing else, so the gradients agree.
  const onlyLast = { ids: tokens.map(() => target), weights: tokens.map((_, p) => (p === last ? 1 : 0)) };
  const I = config.intermediateSize;
  for (const scale of [1, 0.25]) {
    const expected = await whole.run(tokens, onlyLast, { scale });
    const step = await stepper.step(tokens[last], cache, target, { scale });
    // The whole-sequence run scales every position; the step scales only its own (the cache
    // is fixed). They agree at scale 1 and only then.
    if (scale !== 1) {
      t.not(step.loss.toFixed(5), expected.loss.toFixed(5), 'scaling the past changes the whole-sequence loss');
      continue;
    }
    t.ok(Math.abs(step.loss - expected.loss) < 1e-5 * Math.max(1, expected.loss), `loss ${step.loss} vs ${expected.loss}`);
    let worst = 0;
    let size = 0;
    step.layers.forEach((layer, l) => {
      const a = expected.layers[l].mlp.a.subarray(last * I);
      const g = expected.layers[l].mlp.g.subarray(last * I);
      for (let i = 0; i < I; i++) {
        worst = Math.max(
          worst,
          Math.abs(layer.mlp.a[i] - a[i]) / Math.max(1e-3, Math.abs(a[i])),
          Math.abs(layer.mlp.g[i] - g[i]) / Math.max(1e-6, Math.abs(g[i])),
        );
        size = Math.max(size, Math.abs(g[i]));
      }
    });
    // float32 through two graphs of different shapes: a relative 1e-3 on every entry (floors
    // keep near-zero entries from dividing by rounding noise) is far below any ranking change.
    t.ok(size > 0, 'the gradients are not all zero');
    t.ok(worst < 1e-3, `worst relative difference ${worst}`);
  }
  await t.rejects(stepper.run(tokens, onlyLast), /use step/);
  await t.rejects(whole.step(tokens[last], cache, target), /use run/);
  await Promise.all([whole.release(), stepper.release(), served.release()]);
});

t.test('scoreEveryMetric gives each metric the scores scoreSequence gives it, from one IG path', async (t) => {
  const { config, weights } = await loadModelDir(dir);
  const attributor = await Attributor.create(config, weights, { intraOpThreads: 1 });
  const targets = selfTargets(tokens);
  let runs = 0;
  const all = await scoreEveryMetric(
    (o) => {
      runs++;
      return attributor.run(tokens, targets, o);
    },
    config.intermediateSize,
    4,
  );
  t.equal(runs, 4, 'n runs for all six metrics');
  for (const metric of METRICS) {
    const one = await scoreSequence(attributor, tokens, targets, metric, { igSteps: 4 });
    t.same(
      all[metric],
      one.layers.map((l) => l.mlp),
      metric,
    );
  }
  await attributor.release();
});
