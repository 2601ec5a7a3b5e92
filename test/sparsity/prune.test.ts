/** A pruned graph computes what the dense graph computes with the dropped neurons zeroed. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { loadModelDir } from '../../src/arch/load.js';
import { writeTestModel } from '../../src/arch/testmodel.js';
import type { ModelWeights } from '../../src/model/types.js';
import { DecoderSession } from '../../src/runtime/session.js';
import { keepTop } from '../../src/sparsity/masks.js';
import { pruneMlp } from '../../src/sparsity/prune.js';
import { uniform } from '../helpers/ort.js';

const dir = mkdtempSync(join(tmpdir(), 'prune-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
await writeTestModel(dir, { hidden: 32, intermediate: 80, layers: 3, heads: 4, kvHeads: 2, headDim: 8, vocab: 300, maxPositions: 64, seed: 4 });
const { config, weights } = await loadModelDir(dir);
const tokens = [1, 50, 60, 70, 80, 90, 100];

async function logits(w: ModelWeights): Promise<Float32Array> {
  const s = await DecoderSession.create(config, w, { intraOpThreads: 1 });
  let r = await s.forward(tokens.slice(0, 4), s.emptyCache(), 4);
  const out = [r.logits];
  for (const id of tokens.slice(4)) {
    r = await s.forward([id], r.cache, 1);
    out.push(r.logits);
  }
  await s.release();
  return Float32Array.from(out.flatMap((x) => Array.from(x)));
}

/** Dense weights with the gate rows of dropped neurons set to 0: silu(0) * up = 0 exactly. */
function zeroed(keep: number[][]): ModelWeights {
  return {
    ...weights,
    layers: weights.layers.map((w, l) => {
      const gate = Float32Array.from(w.gate!.data);
      const kept = new Set(keep[l]);
      for (let r = 0; r < config.intermediateSize; r++) if (!kept.has(r)) gate.fill(0, r * config.hiddenSize, (r + 1) * config.hiddenSize);
      return { ...w, gate: { shape: w.gate!.shape, data: gate } };
    }),
  };
}

t.test('pruning shrinks the MLP matrices to the kept neurons', async (t) => {
  const keep = [[0, 5, 9], [1, 2, 3], [79, 0, 40].sort((a, b) => a - b)];
  const p = pruneMlp(config, weights, keep);
  t.same(p.layers[0].gate!.shape, [3, 32]);
  t.same(p.layers[0].down.shape, [32, 3]);
  t.same(Array.from(p.layers[2].gate!.data.subarray(32, 64)), Array.from(weights.layers[2].gate!.data.subarray(40 * 32, 41 * 32)), 'row 40 becomes row 1');
  t.equal(p.layers[1].down.data[1 * 3 + 2], weights.layers[1].down.data[1 * 80 + 3], 'column 3 becomes column 2');
  t.equal(p.layers[0].q, weights.layers[0].q, 'attention untouched');
  t.throws(() => pruneMlp(config, weights, keep.slice(1)), /2 layers given to a model of 3/);
});

t.test('tier 0 (every neuron kept) is the dense graph, exactly', async (t) => {
  const all = weights.layers.map(() => [...Array(config.intermediateSize).keys()]);
  t.same(await logits(pruneMlp(config, weights, all)), await logits(weights));
});

for (const sparsity of [0.5, 0.8]) {
  t.test(`at sparsity ${sparsity} the pruned graph equals the dense one with the dropped neurons zeroed`, async (t) => {
    const keep = weights.layers.map((_, l) => keepTop(uniform(config.intermediateSize, 100 + l), sparsity));
    const sparse = await logits(pruneMlp(config, weights, keep));
    const reference = await logits(zeroed(keep));
    const dense = await logits(weights);
    const scale = Math.max(...Array.from(reference, Math.abs));
    const err = Math.max(...Array.from(sparse, (v, i) => Math.abs(v - reference[i])));
    // Same products summed over fewer terms (the zeros dropped): float32 rounding only.
    t.ok(err < 1e-5 * scale, `max error ${err.toExponential(2)} (scale ${scale.toFixed(2)})`);
    const moved = Math.max(...Array.from(sparse, (v, i) => Math.abs(v - dense[i])));
    t.ok(moved > 1e-3 * scale, 'and it differs from dense: the neurons were really dropped');
  });
}
