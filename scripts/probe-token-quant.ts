/**
 * Probe: per-token MLP selection on 8-bit weights, at SmolLM2-135M's MLP shape (d 576, F 1536),
 * 30 chained SwiGLU MLPs, one token per run, timed side by side in one process (medians of
 * interleaved runs). Can gate-first selection read 8-bit rows and beat the dense 8-bit MLP?
 *
 * Every per-token variant computes the 8-bit gate densely (MatMulNBits, blocks of 32, accuracy
 * level 4), keeps the top k neurons by |SiLU(gate)|, and differs in how it reads the kept
 * neurons' up rows and down columns (stored neuron-major, [F, d]):
 * - f32:     float32 rows gathered (what serving does today), with or without reranking 2k
 *            candidates by their exact outputs;
 * - gbq:     8-bit blockwise rows dequantised by GatherBlockQuantized;
 * - cast:    int8 rows with one scale per row, gathered, cast to float32, multiplied;
 * - integer: int8 rows gathered into MatMulInteger against activations rounded to 8 bits per
 *            tensor (DynamicQuantizeLinear), the per-row scales applied to the small vectors.
 * Beside them: the dense and the statically pruned 8-bit MLP, and the gate and TopK alone (the
 * floor under every per-token variant).
 *
 *   npx tsx scripts/probe-token-quant.ts [--threads 2] [--sparsity 0.8] [--runs 200] [--only a,b] [--profile DIR]
 */
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import { Graph } from '../src/graph/graph.js';
import { toOnnx } from '../src/graph/onnx.js';
import type { Value } from '../src/graph/types.js';
import { blockBytes, type QuantSpec, quantize } from '../src/model/quant.js';
import { sessionOptions } from '../src/runtime/session.js';
import { PROBE_OPTIONS, PROBE_SHAPE, timeInterleaved, topk, uniformWeights } from './lib/probe.js';

const { values } = parseArgs({ options: { ...PROBE_OPTIONS, profile: { type: 'string' } } });
const { d, F, L } = PROBE_SHAPE;
const s = Number(values.sparsity);
const k = Math.round((1 - s) * F);
const C = Math.min(F, 2 * k);
const randn = uniformWeights(3);
const f32 = 'float32' as const;
const INT8: QuantSpec = { bits: 8, block: 32, accuracyLevel: 4 };

type Variant = (g: Graph, x: Value, l: number) => Value;
/** The kept neurons' up projections (`side` up, [n, m]) or the MLP output from their activations `h` (down, [n, d]). */
type Rows = (g: Graph, x: Value, idx: Value, m: number, name: string, side: 'up' | 'down', h?: Value) => Value;

/** x [n, K] times W^T for a random W [N, K] as 8-bit MatMulNBits codes: [n, N]. */
function nbits(g: Graph, x: Value, N: number, K: number, name: string): Value {
  const q = quantize(randn(N * K, 0.04), N, K, INT8);
  const B = g.constant(q.codes, [N, q.blocksPerRow, blockBytes(INT8)], 'uint8', `${name}.q`);
  const scales = g.constant(q.scales, [N, q.blocksPerRow], f32, `${name}.s`);
  return g.kernel('com.microsoft.MatMulNBits', [x, B, scales], [{ dtype: f32, shape: ['n', N] }], { K, N, bits: 8, block_size: 32, accuracy_level: 4 })[0];
}

/** The dense 8-bit SwiGLU of `width` neurons (F: dense; k: a pruned static tier). */
const nbitsMlp =
  (width: number): Variant =>
  (g, x, l) => {
    const gate = nbits(g, x, width, d, `g${l}`);
    const up = nbits(g, x, width, d, `u${l}`);
    return nbits(g, g.mul(g.mul(gate, g.sigmoid(gate)), up), d, width, `down${l}`);
  };

/** The dense 8-bit gate, SiLU, and the top `m` neurons by |SiLU(gate)|: activations, indices, and the kept activations. */
function gateTopK(g: Graph, x: Value, l: number, m: number): { act: Value; idx: Value; kept: Value } {
  const gate = nbits(g, x, F, d, `gate${l}`);
  const act = g.mul(gate, g.sigmoid(gate));
  const [score] = g.kernel('Abs', [act], [{ dtype: f32, shape: ['n', F] }]);
  const idx = topk(g, score, m);
  return { act, idx, kept: atIndices(g, act, idx, m, f32) };
}
const atIndices = (g: Graph, data: Value, idx: Value, m: number, dtype: 'float32' | 'int64') =>
  g.kernel('GatherElements', [data, idx], [{ dtype, shape: ['n', m] }], { axis: 1 })[0];

/** Rows of a [F, d] table gathered as float32: from float32 rows, or dequantised 8-bit blockwise rows. */
function floatRows(gather: (g: Graph, idx: Value, name: string) => Value): Rows {
  return (g, x, idx, m, name, side, h) => {
    const rows = gather(g, idx, name); // [n, m, d]
    if (side === 'up') return g.reshape(g.matmul(rows, g.unsqueeze(x, [-1])), [0, m]);
    return g.reshape(g.matmul(g.unsqueeze(h!, [1]), rows), [0, d]);
  };
}
const f32Rows = floatRows((g, idx, name) => g.gather(g.constant(randn(F * d, 0.04), [F, d], f32, name), idx));
const gbqRows = floatRows((g, idx, name) => {
  const q = quantize(randn(F * d, 0.04), F, d, INT8);
  const table = g.constant(q.codes, [F, d], 'uint8', `${name}.q`);
  const scales = g.constant(q.scales, [F, q.blocksPerRow], f32, `${name}.s`);
  return g.kernel('com.microsoft.GatherBlockQuantized', [table, idx, scales], [{ dtype: f32, shape: [...idx.shape, d] }], {
    bits: 8,
    block_size: 32,
    gather_axis: 0,
    quantize_axis: 1,
  })[0];
});

/** A random [F, d] table as int8 codes with one scale per row. */
function perRow(g: Graph, name: string): { codes: Value; scales: Value } {
  const w = randn(F * d, 0.04);
  const codes = new Int8Array(F * d);
  const scales = new Float32Array(F);
  for (let r = 0; r < F; r++) {
    let max = 0;
    for (let c = 0; c < d; c++) max = Math.max(max, Math.abs(w[r * d + c]));
    scales[r] = max / 127;
    for (let c = 0; c < d; c++) codes[r * d + c] = Math.round(w[r * d + c] / scales[r]);
  }
  return { codes: g.constant(codes, [F, d], 'int8', `${name}.q`), scales: g.constant(scales, [F], f32, `${name}.s`) };
}

/** int8 rows cast to float32; a row's scale multiplies the small vector, not the rows. */
const castRows: Rows = (g, x, idx, m, name, side, h) => {
  const { codes, scales } = perRow(g, name);
  const rows = g.cast(g.gather(codes, idx), f32);
  const scale = g.gather(scales, idx); // [n, m]
  if (side === 'up') return g.mul(g.reshape(g.matmul(rows, g.unsqueeze(x, [-1])), [0, m]), scale);
  return g.reshape(g.matmul(g.unsqueeze(g.mul(h!, scale), [1]), rows), [0, d]);
};

/** int8 rows into MatMulInteger against 8-bit activations (one scale and zero point per tensor). */
const integerRows: Rows = (g, x, idx, m, name, side, h) => {
  const { codes, scales } = perRow(g, name);
  const rows = g.gather(codes, idx); // [n, m, d] int8
  const scale = g.gather(scales, idx); // [n, m]
  const quantized = (v: Value) =>
    g.kernel(
      'DynamicQuantizeLinear',
      [v],
      [
        { dtype: 'uint8', shape: v.shape },
        { dtype: f32, shape: [] },
        { dtype: 'uint8', shape: [] },
      ],
    );
  if (side === 'up') {
    const [xq, xScale, xZero] = quantized(x);
    const [acc] = g.kernel('MatMulInteger', [rows, g.unsqueeze(xq, [-1]), g.const([0], 'int8'), xZero], [{ dtype: 'int32', shape: ['n', m, 1] }]);
    return g.mul(g.mul(g.reshape(g.cast(acc, f32), [0, m]), scale), xScale);
  }
  const [hq, hScale, hZero] = quantized(g.mul(h!, scale));
  const [acc] = g.kernel('MatMulInteger', [g.unsqueeze(hq, [1]), rows, hZero], [{ dtype: 'int32', shape: ['n', 1, d] }]);
  return g.mul(g.reshape(g.cast(acc, f32), [0, d]), hScale);
};

/** Gate-first per-token selection reading rows with `rows`; with `rerank`, 2k candidates are ranked by their exact outputs. */
function perToken(rows: Rows, rerank = false): Variant {
  return (g, x, l) => {
    const m = rerank ? C : k;
    const { idx: candidates, kept } = gateTopK(g, x, l, m);
    let h = g.mul(kept, rows(g, x, candidates, m, `up${l}`, 'up'));
    let idx = candidates;
    if (rerank) {
      const [exact] = g.kernel('Abs', [h], [{ dtype: f32, shape: ['n', m] }]);
      const best = topk(g, exact, k);
      h = atIndices(g, h, best, k, f32);
      idx = atIndices(g, candidates, best, k, 'int64');
    }
    return rows(g, x, idx, k, `down${l}`, 'down', h);
  };
}

const variants: Record<string, Variant> = {
  denseInt8: nbitsMlp(F),
  staticInt8: nbitsMlp(k),
  gateTopKOnly: (g, x, l) => g.mul(g.reduceSum(gateTopK(g, x, l, k).kept, [-1]), x),
  tokenF32: perToken(f32Rows),
  tokenF32Rerank: perToken(f32Rows, true),
  tokenGbq: perToken(gbqRows),
  tokenCast: perToken(castRows),
  tokenInteger: perToken(integerRows),
};

async function build(name: string): Promise<ort.InferenceSession> {
  const g = new Graph('probe');
  let h = g.input('x', f32, ['n', d]);
  for (let l = 0; l < L; l++) h = g.add(h, variants[name](g, h, l));
  g.output(h, 'y');
  const options = sessionOptions({ intraOpThreads: Number(values.threads), interOpThreads: 1 });
  return ort.InferenceSession.create(
    toOnnx(g),
    values.profile ? { ...options, enableProfiling: true, profileFilePrefix: join(values.profile, name) } : options,
  );
}

const names = values.only ? values.only.split(',') : Object.keys(variants);
const sessions = await Promise.all(names.map(build));
const x = new ort.Tensor('float32', randn(d, 1), [1, d]);
const times = await timeInterleaved(sessions, () => ({ x }), Number(values.runs));
if (values.profile) for (const session of sessions) await (session as unknown as { endProfiling(): Promise<void> }).endProfiling();
const base = times[names.indexOf('denseInt8')] ?? times[0];
console.log(`d ${d}, F ${F}, ${L} layers, sparsity ${s} (k ${k}, rerank candidates ${C}), threads ${values.threads}`);
console.table(names.map((n, i) => ({ variant: n, 'ms/step': times[i].toFixed(2), 'vs dense int8': `${(base / times[i]).toFixed(2)}x` })));
