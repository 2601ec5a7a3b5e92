/**
 * The ONNX forward against the independent TypeScript reference (test/helpers/reference.ts)
 * on generated models of each architecture, with and without the KV cache.
 *
 * Tolerance: 1e-4 of the logits' scale (max |logit| of the reference). ORT computes in float32
 * (relative rounding ~6e-8 per op, accumulated over a few hundred-term dot products and a few
 * layers, ~1e-6 of scale) and the reference in float64; a wrong op (RoPE pairing, GQA mapping,
 * a missing bias or norm weight) moves logits by a large fraction of their scale.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { loadModelDir } from '../../src/arch/load.js';
import { writeTestModel, type TestModelOptions } from '../../src/arch/testmodel.js';
import { DecoderBuilder, mlpInputTensors, sideBySide, transposed } from '../../src/arch/decoder.js';
import { keepNeurons, neuronSlices } from '../../src/arch/neurons.js';
import { Graph } from '../../src/graph/graph.js';
import { DecoderSession } from '../../src/runtime/session.js';
import { pruneMlp } from '../../src/sparsity/prune.js';
import * as ort from 'onnxruntime-node';
import { referenceLogits } from '../helpers/reference.js';

const root = mkdtempSync(join(tmpdir(), 'llama-graph-'));
t.teardown(() => rmSync(root, { recursive: true, force: true }));

const base: TestModelOptions = { hidden: 48, intermediate: 96, layers: 2, heads: 6, kvHeads: 2, headDim: 8, vocab: 300, maxPositions: 64 };
const variants: [string, TestModelOptions][] = [
  ['LLaMA, GQA, separate head', { ...base, seed: 1 }],
  ['LLaMA, tied embeddings, MHA', { ...base, kvHeads: 6, tie: true, seed: 2 }],
  ['Qwen2 (q/k/v bias), rope_theta 1e6', { ...base, architecture: 'Qwen2ForCausalLM', ropeTheta: 1e6, seed: 3 }],
  ['Mistral, head_dim not hidden/heads', { ...base, architecture: 'MistralForCausalLM', headDim: 16, seed: 4 }],
  ['LLaMA from BF16 weights', { ...base, dtype: 'BF16', seed: 5 }],
  ['Phi-3 (q/k/v and gate/up stacked in the checkpoint)', { ...base, architecture: 'Phi3ForCausalLM', seed: 9 }],
  ['MobiLlama (one MLP shared by every layer, multi-head attention)', { ...base, architecture: 'MobiLlamaForCausalLM', kvHeads: 6, layers: 3, seed: 16 }],
  [
    'Phi-2 (parallel block, LayerNorm, GELU, biases; RoPE on half of each head inside GroupQueryAttention)',
    { ...base, architecture: 'PhiForCausalLM', hidden: 64, heads: 2, kvHeads: 2, headDim: 32, seed: 10 },
  ],
  ['Phi-2, head size 8, GQA (RotaryEmbedding on a quarter of each head)', { ...base, architecture: 'PhiForCausalLM', partialRotary: 0.25, seed: 11 }],
  ['GPT-2 (learned positions, Conv1D weights, c_attn, GELU, tied head)', { ...base, architecture: 'GPT2LMHeadModel', kvHeads: 6, tie: true, seed: 13 }],
  // ORT's GroupQueryAttention needs head sizes that are multiples of 8: these take the op-table attention.
  ['LLaMA, head size 4 (op-table attention)', { ...base, headDim: 4, seed: 7 }],
  ['Phi-2, head size 4 (op-table attention, RoPE on half of each head)', { ...base, architecture: 'PhiForCausalLM', hidden: 24, headDim: 4, seed: 12 }],
  [
    'GPT-2, head size 4 (op-table attention), untied head',
    { ...base, architecture: 'GPT2LMHeadModel', hidden: 24, kvHeads: 6, headDim: 4, tie: false, seed: 14 },
  ],
];
const tokens = [1, 72, 101, 108, 108, 111, 32, 119, 111, 114, 108, 100, 33, 5];

function maxAbs(rows: Float32Array[]): number {
  return Math.max(...rows.map((r) => Math.max(...Array.from(r, Math.abs))));
}

for (const [name, options] of variants) {
  t.test(name, async (t) => {
    const dir = join(root, name.replace(/\W+/g, '-'));
    await writeTestModel(dir, options);
    const { config, weights } = await loadModelDir(dir);
    const expected = referenceLogits(config, weights, tokens);
    const scale = maxAbs(expected);
    const tol = 1e-4 * scale;
    const V = config.vocabSize;
    const session = await DecoderSession.create(config, weights, { intraOpThreads: 1 });
    const rowError = (got: Float32Array, p: number) => Math.max(...Array.from(got, (v, i) => Math.abs(v - expected[p][i])));

    // Whole sequence in one prefill, logits at every position.
    const full = await session.forward(tokens, session.emptyCache(), tokens.length);
    const prefillErr = Math.max(...tokens.map((_, p) => rowError(full.logits.subarray(p * V, (p + 1) * V), p)));
    t.ok(prefillErr < tol, `prefill: max error ${prefillErr.toExponential(2)} (scale ${scale.toFixed(2)})`);

    // One token at a time through the KV cache.
    let cache = session.emptyCache();
    let decodeErr = 0;
    for (let p = 0; p < tokens.length; p++) {
      const step = await session.forward([tokens[p]], cache, 1);
      decodeErr = Math.max(decodeErr, rowError(step.logits, p));
      cache = step.cache;
    }
    t.ok(decodeErr < tol, `decode with cache: max error ${decodeErr.toExponential(2)}`);
    t.equal(cache.length, tokens.length);
    const stepwise = cache.contiguous();
    const whole = full.cache.contiguous();
    t.same(stepwise.keys[0].dims, [1, config.numKvHeads, tokens.length, config.headDim]);
    const cacheErr = Math.max(
      ...[...stepwise.keys, ...stepwise.values].map((c, i) => {
        const w = (i < config.numLayers ? whole.keys[i] : whole.values[i - config.numLayers]).data as Float32Array;
        return Math.max(...Array.from(c.data as Float32Array, (v, j) => Math.abs(v - w[j])));
      }),
    );
    t.ok(cacheErr < 1e-4, `the stepwise cache holds the prefill's keys and values: max difference ${cacheErr.toExponential(2)}`);

    // A chunk after a cached prefix (positions continue from the cache), last logits only.
    const head = await session.forward(tokens.slice(0, 5), session.emptyCache(), 1);
    const rest = await session.forward(tokens.slice(5), head.cache, 2);
    t.equal(rest.logits.length, 2 * V, 'logits only for the positions asked for');
    const chunkErr = Math.max(rowError(rest.logits.subarray(0, V), tokens.length - 2), rowError(rest.logits.subarray(V), tokens.length - 1));
    t.ok(chunkErr < tol, `chunk after cache: max error ${chunkErr.toExponential(2)}`);

    // The prefix's cache continued a second time (as n choices of one prompt are): the first
    // continuation appended in place, so this one copies the prefix and must see only it.
    const again = await session.forward(tokens.slice(5, 7), head.cache, 2);
    const againErr = Math.max(rowError(again.logits.subarray(0, V), 5), rowError(again.logits.subarray(V), 6));
    t.ok(againErr < tol, `a second continuation of one cache: max error ${againErr.toExponential(2)}`);
    await session.release();
  });
}

t.test('the fused serving graph multiplies the same weights as the op-table graph, in fewer nodes', async (t) => {
  const dir = join(root, 'fused-flops');
  await writeTestModel(dir, { ...base, architecture: 'Qwen2ForCausalLM', seed: 6 });
  const { config, weights } = await loadModelDir(dir);
  const count = (fused: boolean) => {
    const g = new Graph();
    g.output(new DecoderBuilder(g, config, { cache: true, fused }).build(weights), 'logits');
    const matmuls = g.nodes.filter((n) => n.op === 'MatMul');
    const weightFlops = matmuls.reduce((sum, n) => {
      const data = g.constantData(n.inputs[1]);
      return data ? sum + 2 * (n.inputs[1].shape[0] as number) * (n.inputs[1].shape[1] as number) : sum;
    }, 0);
    const attention = matmuls.filter((n) => !g.constantData(n.inputs[1])).length;
    return { weightFlops, attention, kernels: g.nodes.filter((n) => n.op === 'com.microsoft.GroupQueryAttention').length, nodes: g.nodes.length };
  };
  const plain = count(false);
  const fused = count(true);
  t.equal(fused.weightFlops, plain.weightFlops, 'same weight products (q, k, v in one MatMul)');
  t.equal(plain.attention, 2 * config.numLayers, 'op table: two attention products per layer');
  t.same([fused.attention, fused.kernels], [0, config.numLayers], 'fused: one GroupQueryAttention kernel per layer instead');
  t.ok(fused.nodes < plain.nodes * 0.7, `${fused.nodes} nodes instead of ${plain.nodes}`);
});

t.test("a per-prompt set's graph inputs are its kept neurons in the graph's [in, out] layout, in the set's order", async (t) => {
  const dir = join(root, 'prompt-inputs');
  await writeTestModel(dir, { ...base, seed: 8 });
  const { config, weights } = await loadModelDir(dir);
  const keep = [
    [70, 3, 41, 0, 12],
    [5, 95],
  ];
  const inputs = mlpInputTensors(weights, keep);
  t.same(Object.keys(inputs).sort(), [
    'model.layers.0.mlp.down_proj.weight',
    'model.layers.0.mlp.gate_up_proj.weight',
    'model.layers.1.mlp.down_proj.weight',
    'model.layers.1.mlp.gate_up_proj.weight',
  ]);
  for (const [l, kept] of keep.entries()) {
    const pruned = keepNeurons(weights.layers[l], kept, neuronSlices(config));
    const gateUp = inputs[`model.layers.${l}.mlp.gate_up_proj.weight`];
    const down = inputs[`model.layers.${l}.mlp.down_proj.weight`];
    t.same(gateUp.shape, [config.hiddenSize, 2 * kept.length]);
    t.same(gateUp.data, sideBySide([pruned.gate!, pruned.up]), `layer ${l}: gate and up side by side, as the fused MLP product takes them`);
    t.same(down.shape, [kept.length, config.hiddenSize]);
    t.same(down.data, transposed(pruned.down), `layer ${l}: down transposed`);
  }
});

t.test('a per-prompt set fed to a GELU MLP (up columns, their biases, down rows) computes what the pruned model does', async (t) => {
  const dir = join(root, 'prompt-inputs-gelu');
  await writeTestModel(dir, { ...base, architecture: 'PhiForCausalLM', seed: 15 });
  const { config, weights } = await loadModelDir(dir);
  const keep = [
    [70, 3, 41, 0, 12, 90],
    [5, 95, 6, 7, 8, 9],
  ];
  const inputs = mlpInputTensors(weights, keep);
  t.same(Object.keys(inputs).sort(), [
    'model.layers.0.mlp.down_proj.weight',
    'model.layers.0.mlp.up_proj.bias',
    'model.layers.0.mlp.up_proj.weight',
    'model.layers.1.mlp.down_proj.weight',
    'model.layers.1.mlp.up_proj.bias',
    'model.layers.1.mlp.up_proj.weight',
  ]);
  const pruned = pruneMlp(config, weights, keep);
  const fed = await DecoderSession.create(config, pruned, { intraOpThreads: 1 }, { mlpInputs: true });
  const built = await DecoderSession.create(config, pruned, { intraOpThreads: 1 });
  t.teardown(async () => {
    await fed.release();
    await built.release();
  });
  const feeds = Object.fromEntries(Object.entries(inputs).map(([name, x]) => [name, new ort.Tensor('float32', x.data, x.shape)]));
  const a = await fed.forward(tokens, fed.emptyCache(), tokens.length, feeds);
  const b = await built.forward(tokens, built.emptyCache(), tokens.length);
  const diff = Math.max(...Array.from(a.logits, (v, i) => Math.abs(v - b.logits[i])));
  t.ok(diff < 1e-5, `the same logits as the graph built from the pruned weights (max difference ${diff.toExponential(2)})`);
});
