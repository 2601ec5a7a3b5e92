/**
 * Experiment: can blocks of neurons that are active together stand in for single neurons?
 *
 * Per-token selection reads weights fastest by blocks of B neurons (one Gather index copies a
 * block), but blocks in checkpoint order mix a token's important neurons with unimportant ones.
 * This permutes each layer's neurons (gate and up rows and down columns together, which leaves
 * the function unchanged) so that neurons whose |activation| rises and falls together over the
 * calibration tokens share a block: balanced k-means over centred, normalised activity
 * profiles, each cluster exactly B neurons. Then it measures held-out perplexity of gate-first
 * selection by blocks, in checkpoint order and clustered, against single neurons.
 *
 *   npx tsx scripts/block-clustering.ts [--model models/default] [--blocks 16,8,4] [--threads 1]
 *
 * Results are in docs/per-token.md. Nothing in the product uses this: clustered blocks did not
 * keep the model well enough to serve.
 */
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import { DecoderBuilder } from '../src/arch/decoder.js';
import { readPassages } from '../src/eval/run.js';
import { Graph } from '../src/graph/graph.js';
import { toOnnx } from '../src/graph/onnx.js';
import { loadModelDir, type LoadedModel } from '../src/arch/load.js';
import { createRng } from '../src/random.js';
import { logSoftmax } from '../src/runtime/sampling.js';
import { DecoderSession, sessionOptions, type OrtOptions } from '../src/runtime/session.js';
import { readCalibrationFile } from '../src/sparsity/calibration.js';
import { readMaskFile } from '../src/sparsity/masks.js';
import { pruneMlp } from '../src/sparsity/prune.js';
import { keptBlocks, tokenFeeds } from '../src/sparsity/selectors.js';

const { values } = parseArgs({
  options: { model: { type: 'string', default: 'models/default' }, blocks: { type: 'string', default: '16,8,4' }, threads: { type: 'string', default: '1' } },
});

/**
 * `activity` is [tokens, units] row-major (|activation| of each unit at each token). Returns a
 * permutation of the units in which each run of `block` units is one cluster.
 */
function clusterUnits(activity: Float32Array, units: number, block: number, iterations = 12, seed = 1): number[] {
  if (units % block !== 0) throw new Error(`${block} does not divide ${units} units`);
  const tokens = activity.length / units;
  const clusters = units / block;
  // Unit profiles: column u over tokens, centred and normalised.
  const profiles = Array.from({ length: units }, (_, u) => {
    const v = new Float32Array(tokens);
    let mean = 0;
    for (let t = 0; t < tokens; t++) {
      const a = activity[t * units + u];
      v[t] = a;
      mean += a / tokens;
    }
    let norm = 0;
    for (let t = 0; t < tokens; t++) {
      // The unrounded difference, as squared before the Float32Array stores it.
      const centred = v[t] - mean;
      v[t] = centred;
      norm += centred ** 2;
    }
    norm = Math.sqrt(norm) || 1;
    for (let t = 0; t < tokens; t++) v[t] /= norm;
    return v;
  });
  const rand = createRng(seed);
  // Start from random units' profiles as centroids.
  let centroids = [...Array(units).keys()]
    .sort(() => rand() - 0.5)
    .slice(0, clusters)
    .map((u) => Float32Array.from(profiles[u]));
  let assignment: number[] = [];
  for (let it = 0; it < iterations; it++) {
    assignment = balancedAssign(profiles, centroids, block);
    centroids = Array.from({ length: clusters }, () => new Float32Array(tokens));
    assignment.forEach((c, u) => {
      const p = profiles[u];
      const m = centroids[c];
      for (let t = 0; t < tokens; t++) m[t] += p[t];
    });
  }
  return [...Array(units).keys()].sort((a, b) => assignment[a] - assignment[b] || a - b);
}

/** Each unit to a centroid, most similar pairs first, each centroid taking `capacity` units. */
function balancedAssign(profiles: Float32Array[], centroids: Float32Array[], capacity: number): number[] {
  const pairs: { u: number; c: number; sim: number }[] = [];
  for (const [u, p] of profiles.entries()) {
    for (const [c, m] of centroids.entries()) {
      let dot = 0;
      let norm = 0;
      for (let t = 0; t < p.length; t++) {
        dot += p[t] * m[t];
        norm += m[t] * m[t];
      }
      pairs.push({ u, c, sim: dot / (Math.sqrt(norm) || 1) });
    }
  }
  pairs.sort((a, b) => b.sim - a.sim);
  const out = new Array<number>(profiles.length).fill(-1);
  const load = new Array<number>(centroids.length).fill(0);
  for (const { u, c } of pairs) {
    if (out[u] !== -1 || load[c] === capacity) continue;
    out[u] = c;
    load[c]++;
  }
  return out;
}

/**
 * Per layer, |MLP activation| of every neuron at every token of `sequences` run densely:
 * [tokens, intermediate] row-major.
 */
async function mlpActivity(model: LoadedModel, sequences: number[][], options: OrtOptions = {}): Promise<Float32Array[]> {
  const { config, weights } = model;
  const g = new Graph('activity');
  const builder = new DecoderBuilder(g, config, {
    onMlpActivation(layer, a) {
      const [abs] = g.kernel('Abs', [a], [{ dtype: a.dtype, shape: a.shape }]);
      g.output(abs, `activity.${layer}`);
      return a;
    },
  });
  g.output(builder.build(weights), 'logits');
  const session = await ort.InferenceSession.create(toOnnx(g), sessionOptions(options));
  const rows: Float32Array[][] = config.numLayers > 0 ? Array.from({ length: config.numLayers }, () => []) : [];
  try {
    for (const ids of sequences) {
      const n = ids.length;
      const out = await session.run({
        input_ids: new ort.Tensor('int64', BigInt64Array.from(ids, BigInt), [1, n]),
        position_ids: new ort.Tensor(
          'int64',
          BigInt64Array.from(ids, (_, i) => BigInt(i)),
          [1, n],
        ),
      });
      for (const [l, layer] of rows.entries()) layer.push(out[`activity.${l}`].data as Float32Array);
    }
  } finally {
    await session.release();
  }
  return rows.map((layer) => {
    const all = new Float32Array(layer.reduce((a, r) => a + r.length, 0));
    let offset = 0;
    for (const r of layer) {
      all.set(r, offset);
      offset += r.length;
    }
    return all;
  });
}

const model = await loadModelDir(values.model);
const { config } = model;
const F = config.intermediateSize;
const options = { intraOpThreads: Number(values.threads) };
const masks = readMaskFile(model.dir, model.weightsHash, model.config);
const calibration = readCalibrationFile(`data/calibration/${masks?.calibration.file ?? 'default-model.jsonl'}`);
const activity = await mlpActivity(
  model,
  calibration.samples.map((s) => model.tokenizer.encode(s.prompt).slice(0, 256)),
  options,
);
const passages = readPassages('data/eval/heldout-text.jsonl', null).texts.map((t) => model.tokenizer.encode(t).slice(0, 128));
const dense = await DecoderSession.create(config, model.weights, options);
const context = 32;

/** Held-out perplexity after a dense context, every scored position through `session`. */
async function perplexity(session: DecoderSession, inputs: Record<string, ort.Tensor>): Promise<number> {
  let nats = 0;
  let n = 0;
  for (const tokens of passages) {
    const { cache } = await dense.forward(tokens.slice(0, context), dense.emptyCache());
    const rest = tokens.slice(context, -1);
    const { logits } = await session.forward(rest, cache, rest.length, inputs);
    const V = config.vocabSize;
    rest.forEach((_, p) => {
      nats -= logSoftmax(logits.subarray(p * V, (p + 1) * V))[tokens[context + p + 1]];
      n++;
    });
  }
  return Math.exp(nats / n);
}

const sparsities = [0.5, 0.7, 0.8, 0.9];
const densePpl = await perplexity(dense, {});
const rows: Record<string, string>[] = [];
async function row(label: string, weights: typeof model.weights, block: number) {
  const selection = { selector: 'gate' as const, block };
  const session = await DecoderSession.create(config, weights, options, { tokenSelection: selection });
  const cells: Record<string, string> = { selection: label };
  for (const s of sparsities) {
    const ppl = await perplexity(session, tokenFeeds(F, selection, keptBlocks(F, block, s)));
    cells[`${s * 100}%`] = `${ppl.toFixed(2)} (+${((ppl / densePpl - 1) * 100).toFixed(1)}%)`;
  }
  await session.release();
  rows.push(cells);
}
await row('single neurons', model.weights, 1);
for (const block of values.blocks.split(',').map(Number)) {
  await row(`blocks of ${block}, checkpoint order`, model.weights, block);
  const order = activity.map((a) => clusterUnits(a, F, block));
  await row(`blocks of ${block}, clustered`, pruneMlp(model.config, model.weights, order), block);
}
console.log(
  `${model.dir}: held-out perplexity of gate-first selection (dense ${densePpl.toFixed(2)}), ${passages.length} passages after ${context} dense tokens; clusters from ${activity[0].length / F} calibration tokens`,
);
console.table(rows);
