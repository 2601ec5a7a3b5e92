/**
 * Probe: per-token MLP selection structures at SmolLM2-135M's MLP shape, 30 chained SwiGLU MLPs,
 * one token per run, timed side by side in one process (medians of interleaved runs).
 *
 *   npx tsx scripts/probe-token-mlp.ts [--threads 2] [--sparsity 0.8] [--runs 200]
 */
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import { Graph } from '../src/graph/graph.js';
import { toOnnx } from '../src/graph/onnx.js';
import type { Value } from '../src/graph/types.js';
import { sessionOptions } from '../src/runtime/session.js';
import { PROBE_OPTIONS, PROBE_SHAPE, timeInterleaved, topk, uniformWeights } from './lib/probe.js';

const { values } = parseArgs({ options: PROBE_OPTIONS });
const { d, F, L } = PROBE_SHAPE;
const rank = 64;
const s = Number(values.sparsity);
const k = Math.round((1 - s) * F);
const randn = uniformWeights(3);

let kInput: Value | undefined;
type Variant = (g: Graph, x: Value, l: number) => Value;
const f32 = 'float32' as const;

const variants: Record<string, Variant> = {
  dense: (g, x, l) => {
    const gu = g.matmul(x, g.constant(randn(d * 2 * F, 0.04), [d, 2 * F], f32, `gu${l}`));
    const [gate, up] = g.kernel(
      'Split',
      [gu, g.const([F, F])],
      [
        { dtype: f32, shape: ['n', F] },
        { dtype: f32, shape: ['n', F] },
      ],
      { axis: -1 },
    );
    return g.matmul(g.mul(g.mul(gate, g.sigmoid(gate)), up), g.constant(randn(F * d, 0.04), [F, d], f32, `down${l}`));
  },
  static: (g, x, l) => {
    const gu = g.matmul(x, g.constant(randn(d * 2 * k, 0.04), [d, 2 * k], f32, `gu${l}`));
    const [gate, up] = g.kernel(
      'Split',
      [gu, g.const([k, k])],
      [
        { dtype: f32, shape: ['n', k] },
        { dtype: f32, shape: ['n', k] },
      ],
      { axis: -1 },
    );
    return g.matmul(g.mul(g.mul(gate, g.sigmoid(gate)), up), g.constant(randn(k * d, 0.04), [k, d], f32, `down${l}`));
  },
  // Gate dense; up and down rows gathered separately (two Gathers), batched matvecs.
  gateFirst2: (g, x, l) => {
    const gate = g.matmul(x, g.constant(randn(d * F, 0.04), [d, F], f32, `gate${l}`));
    const act = g.mul(gate, g.sigmoid(gate));
    const c = g.constant(randn(F, 1), [F], f32, `c${l}`);
    const [score] = g.kernel('Abs', [g.mul(act, c)], [{ dtype: f32, shape: ['n', F] }]);
    const idx = topk(g, score, k);
    const [a] = g.kernel('GatherElements', [act, idx], [{ dtype: f32, shape: ['n', k] }], { axis: 1 });
    const up = g.gather(g.constant(randn(F * d, 0.04), [F, d], f32, `up${l}`), idx); // [n, k, d]
    const u = g.matmul(up, g.unsqueeze(x, [-1])); // [n, k, 1]
    const h = g.mul(g.reshape(u, [0, 1, k]), g.unsqueeze(a, [1])); // [n, 1, k]
    const down = g.gather(g.constant(randn(F * d, 0.04), [F, d], f32, `down${l}`), idx);
    return g.reshape(g.matmul(h, down), [0, d]);
  },
  // Gate dense; up and down rows packed per neuron [F, 2d]: one Gather; the product with x
  // also takes down rows (wasted, from cache), and down takes a zero-interleaved activation.
  gateFirst1: (g, x, l) => {
    const gate = g.matmul(x, g.constant(randn(d * F, 0.04), [d, F], f32, `gate${l}`));
    const act = g.mul(gate, g.sigmoid(gate));
    const c = g.constant(randn(F, 1), [F], f32, `c${l}`);
    const [score] = g.kernel('Abs', [g.mul(act, c)], [{ dtype: f32, shape: ['n', F] }]);
    const idx = topk(g, score, k);
    const [a] = g.kernel('GatherElements', [act, idx], [{ dtype: f32, shape: ['n', k] }], { axis: 1 });
    const packed = g.reshape(g.gather(g.constant(randn(F * 2 * d, 0.04), [F, 2 * d], f32, `ud${l}`), idx), [0, 2 * k, d]); // [n, 2k, d]
    const ud = g.reshape(g.matmul(packed, g.unsqueeze(x, [-1])), [0, k, 2]); // [n, k, 2]
    const u = g.slice(ud, [0], [1], [2]); // [n, k, 1]
    const h = g.mul(u, g.unsqueeze(a, [-1]));
    const hz = g.reshape(g.concat([g.mul(h, g.scalar(0)), h], 2), [0, 1, 2 * k]);
    return g.reshape(g.matmul(hz, packed), [0, d]);
  },
  // Low-rank predictor; gate|up rows packed [F, 2d] (one Gather) and down rows [F, d] (another).
  predictor2: (g, x, l) => {
    const score = g.matmul(
      g.matmul(x, g.constant(randn(d * rank, 0.04), [d, rank], f32, `pa${l}`)),
      g.constant(randn(rank * F, 0.1), [rank, F], f32, `pb${l}`),
    );
    const idx = topk(g, score, k);
    const gu = g.reshape(g.gather(g.constant(randn(F * 2 * d, 0.04), [F, 2 * d], f32, `gu${l}`), idx), [0, 2 * k, d]);
    const y = g.reshape(g.matmul(gu, g.unsqueeze(x, [-1])), [0, k, 2]);
    const [gate, up] = g.kernel(
      'Split',
      [y, g.const([1, 1])],
      [
        { dtype: f32, shape: ['n', k, 1] },
        { dtype: f32, shape: ['n', k, 1] },
      ],
      { axis: 2 },
    );
    const h = g.reshape(g.mul(g.mul(gate, g.sigmoid(gate)), up), [0, 1, k]);
    const down = g.gather(g.constant(randn(F * d, 0.04), [F, d], f32, `down${l}`), idx);
    return g.reshape(g.matmul(h, down), [0, d]);
  },
};

/** Block variants: neurons in blocks of B, one score per block (the max of its neurons'). */
for (const B of [8, 16, 32]) {
  const nb = F / B;
  const kb = Math.round(k / B);
  variants[`predictorBlock${B}`] = (g, x, l) => {
    const score = g.matmul(
      g.matmul(x, g.constant(randn(d * rank, 0.04), [d, rank], f32, `pa${l}`)),
      g.constant(randn(rank * nb, 0.1), [rank, nb], f32, `pb${l}`),
    );
    const idx = topk(g, score, kb); // [n, kb]
    const gu = g.reshape(g.gather(g.constant(randn(nb * B * 2 * d, 0.04), [nb, B * 2 * d], f32, `gu${l}`), idx), [0, kb * B * 2, d]);
    const y = g.reshape(g.matmul(gu, g.unsqueeze(x, [-1])), [0, kb * B, 2]);
    const [gate, up] = g.kernel(
      'Split',
      [y, g.const([1, 1])],
      [
        { dtype: f32, shape: ['n', kb * B, 1] },
        { dtype: f32, shape: ['n', kb * B, 1] },
      ],
      { axis: 2 },
    );
    const h = g.reshape(g.mul(g.mul(gate, g.sigmoid(gate)), up), [0, 1, kb * B]);
    const down = g.reshape(g.gather(g.constant(randn(nb * B * d, 0.04), [nb, B * d], f32, `down${l}`), idx), [0, kb * B, d]);
    return g.reshape(g.matmul(h, down), [0, d]);
  };
  // The same with k a graph input (one graph for every tier): shapes after TopK are symbolic.
  variants[`predictorBlock${B}kIn`] = (g, x, l) => {
    const score = g.matmul(
      g.matmul(x, g.constant(randn(d * rank, 0.04), [d, rank], f32, `pa${l}`)),
      g.constant(randn(rank * nb, 0.1), [rank, nb], f32, `pb${l}`),
    );
    kInput ??= g.input('k', 'int64', [1]);
    const [, idx] = g.kernel(
      'TopK',
      [score, kInput],
      [
        { dtype: f32, shape: ['n', 'k'] },
        { dtype: 'int64', shape: ['n', 'k'] },
      ],
      { axis: -1, largest: 1, sorted: 0 },
    );
    const gu = g.reshape(g.gather(g.constant(randn(nb * B * 2 * d, 0.04), [nb, B * 2 * d], f32, `gu${l}`), idx), [0, -1, d]);
    const y = g.reshape(g.matmul(gu, g.unsqueeze(x, [-1])), [0, -1, 2]);
    const [gate, up] = g.kernel(
      'Split',
      [y, g.const([1, 1])],
      [
        { dtype: f32, shape: ['n', 'kb', 1] },
        { dtype: f32, shape: ['n', 'kb', 1] },
      ],
      { axis: 2 },
    );
    const h = g.reshape(g.mul(g.mul(gate, g.sigmoid(gate)), up), [0, 1, -1]);
    const down = g.reshape(g.gather(g.constant(randn(nb * B * d, 0.04), [nb, B * d], f32, `down${l}`), idx), [0, -1, d]);
    return g.reshape(g.matmul(h, down), [0, d]);
  };
  variants[`gateFirstBlock${B}`] = (g, x, l) => {
    const gate = g.matmul(x, g.constant(randn(d * F, 0.04), [d, F], f32, `gate${l}`));
    const act = g.mul(gate, g.sigmoid(gate));
    const [absAct] = g.kernel('Abs', [act], [{ dtype: f32, shape: ['n', F] }]);
    const score = g.reduceMax(g.reshape(absAct, [0, nb, B]), [-1], false);
    const idx = topk(g, score, kb);
    const a = g.reshape(g.gather(g.reshape(act, [0, nb, B]), idx, 1), [0, kb * B]); // [n, n?, ...] for n = 1
    const up = g.reshape(g.gather(g.constant(randn(nb * B * d, 0.04), [nb, B * d], f32, `up${l}`), idx), [0, kb * B, d]);
    const u = g.matmul(up, g.unsqueeze(x, [-1]));
    const h = g.mul(g.reshape(u, [0, 1, kb * B]), g.reshape(a, [1, 1, kb * B]));
    const down = g.reshape(g.gather(g.constant(randn(nb * B * d, 0.04), [nb, B * d], f32, `down${l}`), idx), [0, kb * B, d]);
    return g.reshape(g.matmul(h, down), [0, d]);
  };
}

async function build(variant: Variant): Promise<ort.InferenceSession> {
  const g = new Graph('probe');
  kInput = undefined;
  const x0 = g.input('x', f32, ['n', d]);
  let h = x0;
  for (let l = 0; l < L; l++) h = g.add(h, variant(g, h, l));
  g.output(h, 'y');
  if (kInput) g.output(g.add(kInput, g.const(0)), 'k_out');
  return ort.InferenceSession.create(toOnnx(g), sessionOptions({ intraOpThreads: Number(values.threads), interOpThreads: 1 }));
}

const names = values.only ? values.only.split(',') : Object.keys(variants);
const sessions = await Promise.all(names.map((n) => build(variants[n])));
const x = new ort.Tensor('float32', randn(d, 1), [1, d]);
const kFeed = new ort.Tensor('int64', BigInt64Array.of(BigInt(Math.round(k / 16))), [1]);
const times = await timeInterleaved(
  sessions,
  (session): Record<string, ort.Tensor> => (session.inputNames.includes('k') ? { x, k: kFeed } : { x }),
  Number(values.runs),
);
const dense = times[names.indexOf('dense')] ?? times[0];
console.log(`d ${d}, F ${F}, ${L} layers, sparsity ${s} (k ${k}), rank ${rank}, threads ${values.threads}`);
console.table(names.map((n, i) => ({ variant: n, 'ms/step': times[i].toFixed(2), 'vs dense': `${(dense / times[i]).toFixed(2)}x` })));
