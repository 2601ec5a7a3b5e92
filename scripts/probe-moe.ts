/**
 * Probe: can ONNX Runtime's com.microsoft MoE operator (CPU kernel, fp32) compute a LLaMA SwiGLU
 * MLP restricted to a per-token set of blocks of neurons (each block an "expert"), exactly, and
 * faster than gathering the blocks' rows (src/arch/token-mlp.ts)?
 *
 * 1. Correctness at a small shape (d 16, F 32, blocks of 4, 2 tokens): every MoE setting below
 *    against a float64 JS reference SwiGLU over the selected blocks' neurons.
 * 2. Speed at SmolLM2-135M's MLP shape (d 576, F 1536), 30 chained MLPs (h = h + mlp(h)), one
 *    token per run, timed side by side in one process (medians of interleaved runs).
 *
 * MoE inputs, as the kernel reads them (swiglu_fusion = 1):
 * - fc1_experts_weights [E, 2B, d]: expert e's rows 2j and 2j+1 are neuron e*B+j's gate and up
 *   rows (the same bytes as token-mlp's interleaved [F, 2d] gate/up tensor);
 * - fc2_experts_weights [E, d, B]: expert e's slice of down ([d, F]) columns;
 * - router_probs [tokens, E]: the kernel softmaxes it over all experts, keeps the top k (attribute
 *   `k`, fixed per graph) and weights each kept expert by its probability. Logits 0 on the
 *   selected blocks and -inf elsewhere give each exactly 1/k (exp(0) / k), so the output times k
 *   is the plain sum.
 *
 *   npx tsx scripts/probe-moe.ts [--threads 2] [--runs 100] [--only dense,moe16,...] [--check-only]
 */
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import onnxProto from 'onnx-proto';
import { tokenMlp, type PredictorWeights } from '../src/arch/token-mlp.js';
import { Graph } from '../src/graph/graph.js';
import { toOnnx } from '../src/graph/onnx.js';
import type { AttrValue, Value } from '../src/graph/types.js';
import type { LayerWeights, ModelConfig } from '../src/model/types.js';
import { createRng } from '../src/random.js';
import { sessionOptions } from '../src/runtime/session.js';

const { onnx } = onnxProto;
const { values } = parseArgs({
  options: {
    threads: { type: 'string', default: '2' },
    runs: { type: 'string', default: '100' },
    warmup: { type: 'string', default: '10' },
    keep: { type: 'string', default: '0.2' },
    only: { type: 'string' },
    'check-only': { type: 'boolean', default: false },
  },
});
const threads = Number(values.threads);
const keep = Number(values.keep);
const f32 = 'float32' as const;

// ---------------------------------------------------------------------------------------------
// Weights, in Hugging Face layout: gate and up [F, d], down [d, F]; a router [d, E] per block size.

interface Mlp {
  gate: Float32Array;
  up: Float32Array;
  down: Float32Array;
}

function makeLayers(d: number, F: number, L: number, seed: number): Mlp[] {
  const rand = createRng(seed);
  const u = (n: number, scale: number) => Float32Array.from({ length: n }, () => (rand() * 2 - 1) * scale);
  return Array.from({ length: L }, () => ({ gate: u(F * d, 0.04), up: u(F * d, 0.04), down: u(d * F, 0.04) }));
}

function makeRouters(d: number, E: number, L: number, seed: number): Float32Array[] {
  const rand = createRng(seed);
  return Array.from({ length: L }, () => Float32Array.from({ length: d * E }, () => rand() * 2 - 1));
}

/** Per neuron i: gate row i then up row i, [F, 2d] (= MoE fc1 [E, 2B, d] = token-mlp's packed gate/up). */
function interleaved(w: Mlp, d: number, F: number): Float32Array {
  const out = new Float32Array(2 * F * d);
  for (let i = 0; i < F; i++) {
    out.set(w.gate.subarray(i * d, (i + 1) * d), 2 * i * d);
    out.set(w.up.subarray(i * d, (i + 1) * d), (2 * i + 1) * d);
  }
  return out;
}

/** MoE fc2 [E, d, B]: expert e's [d, B] slice of down's columns. */
function fc2Experts(w: Mlp, d: number, F: number, B: number): Float32Array {
  const E = F / B;
  const out = new Float32Array(d * F);
  for (let e = 0; e < E; e++) for (let h = 0; h < d; h++) for (let j = 0; j < B; j++) out[(e * d + h) * B + j] = w.down[h * F + e * B + j];
  return out;
}

/** down as [F, d]: neuron i's output column as row i. */
function neuronMajorDown(w: Mlp, d: number, F: number): Float32Array {
  const out = new Float32Array(d * F);
  for (let h = 0; h < d; h++) for (let i = 0; i < F; i++) out[i * d + h] = w.down[h * F + i];
  return out;
}

/** [F, d] -> [d, F]. */
function transpose(a: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = a[r * cols + c];
  return out;
}

// ---------------------------------------------------------------------------------------------
// MLP builders. Each takes x [n, d] and returns the MLP output [n, d].

interface Shape {
  d: number;
  F: number;
}
type Build = (g: Graph, x: Value, l: number) => Value;

function dense({ d, F }: Shape, layers: Mlp[]): Build {
  return (g, x, l) => {
    const w = layers[l];
    const gu = new Float32Array(d * 2 * F); // [d, 2F]: gate columns then up columns
    for (let i = 0; i < F; i++) {
      for (let h = 0; h < d; h++) {
        gu[h * 2 * F + i] = w.gate[i * d + h];
        gu[h * 2 * F + F + i] = w.up[i * d + h];
      }
    }
    const y = g.matmul(x, g.constant(gu, [d, 2 * F], f32, `gu${l}`));
    const [gate, up] = g.kernel(
      'Split',
      [y, g.const([F, F])],
      [
        { dtype: f32, shape: ['n', F] },
        { dtype: f32, shape: ['n', F] },
      ],
      { axis: -1 },
    );
    return g.matmul(g.mul(g.mul(gate, g.sigmoid(gate)), up), g.constant(transpose(w.down, d, F), [F, d], f32, `down${l}`));
  };
}

/** Block scores x @ router [n, E]; TopK's indices [n, kb] and values [n, kb]. */
function route(g: Graph, x: Value, router: Float32Array, d: number, E: number, kb: number, l: number) {
  const scores = g.matmul(x, g.constant(router, [d, E], f32, `router${l}`));
  const [vals, idx] = g.kernel(
    'TopK',
    [scores, g.const([kb])],
    [
      { dtype: f32, shape: ['n', kb] },
      { dtype: 'int64', shape: ['n', kb] },
    ],
    { axis: -1, largest: 1, sorted: 0 },
  );
  return { scores, vals, idx };
}

interface MoeSettings {
  /** Router logits: `softmax` 0 on the kept blocks and -inf elsewhere (output times kb), `raw` 1 and 0. */
  router: 'softmax' | 'raw';
  normalize?: number;
  /** Float attributes; left out when undefined (the kernel's defaults). */
  alpha?: number;
  beta?: number;
  limit?: number;
  /** Multiply the output by kb. */
  rescale: boolean;
}

const FLOAT_ATTRS = new Set(['activation_alpha', 'activation_beta', 'swiglu_limit']);

function moe({ d, F }: Shape, layers: Mlp[], routers: Float32Array[], B: number, kb: number, s: MoeSettings): Build {
  const E = F / B;
  return (g, x, l) => {
    const w = layers[l];
    const { scores, vals } = route(g, x, routers[l], d, E, kb, l);
    const kth = g.neg(g.reduceMax(g.neg(vals), [-1])); // [n, 1]: the kb-th largest score
    const kept = g.lessOrEqual(kth, scores); // [n, E]
    const on = s.router === 'softmax' ? 0 : 1;
    const off = s.router === 'softmax' ? -Infinity : 0;
    const logits = g.where(kept, g.scalar(on), g.scalar(off));
    const attrs: Record<string, AttrValue> = { k: kb, activation_type: 'swiglu', swiglu_fusion: 1, normalize_routing_weights: s.normalize ?? 0 };
    if (s.alpha !== undefined) attrs.activation_alpha = s.alpha;
    if (s.beta !== undefined) attrs.activation_beta = s.beta;
    if (s.limit !== undefined) attrs.swiglu_limit = s.limit;
    const [y] = g.kernel(
      'com.microsoft.MoE',
      [x, logits, g.constant(interleaved(w, d, F), [E, 2 * B, d], f32, `fc1_${l}`), null, g.constant(fc2Experts(w, d, F, B), [E, d, B], f32, `fc2_${l}`)],
      [{ dtype: f32, shape: ['n', d] }],
      attrs,
    );
    return s.rescale ? g.mul(y, g.scalar(kb)) : y;
  };
}

/** Hand-built Gather of the kept blocks (same router as `moe`): packed [E, B*2*d] and [E, B*d]. */
function gather({ d, F }: Shape, layers: Mlp[], routers: Float32Array[], B: number, kb: number): Build {
  const E = F / B;
  return (g, x, l) => {
    const w = layers[l];
    const { idx } = route(g, x, routers[l], d, E, kb, l);
    const gu = g.reshape(g.gather(g.constant(interleaved(w, d, F), [E, B * 2 * d], f32, `gu${l}`), idx), [0, kb * B * 2, d]);
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
    const down = g.reshape(g.gather(g.constant(neuronMajorDown(w, d, F), [E, B * d], f32, `down${l}`), idx), [0, kb * B, d]);
    return g.reshape(g.matmul(h, down), [0, d]);
  };
}

/** The product's per-token MLP (tokenMlp, learned-predictor selector of rank 64, token_blocks input). */
function product({ d, F }: Shape, layers: Mlp[], B: number, seed: number): { build: Build; blocks: (g: Graph) => Value } {
  const rand = createRng(seed);
  const u = (n: number, scale: number) => Float32Array.from({ length: n }, () => (rand() * 2 - 1) * scale);
  const rank = 64;
  const predictors: PredictorWeights[] = layers.map(() => ({ a: u(d * rank, 0.04), b: u(rank * F, 0.1), bias: u(F, 0.1) }));
  const config = { hiddenSize: d, intermediateSize: F } as ModelConfig;
  let blocksIn: Value | undefined;
  const blocks = (g: Graph) => (blocksIn ??= g.input('token_blocks', 'int64', [1]));
  const build: Build = (g, x, l) => {
    const w = layers[l];
    const lw = { gate: { shape: [F, d], data: w.gate }, up: { shape: [F, d], data: w.up }, down: { shape: [d, F], data: w.down } } as LayerWeights;
    const x3 = g.unsqueeze(x, [1]); // [n, 1, d]
    // tokenMlp's 7th argument has been the `token_blocks` Value and, lately, { blocks, candidates }:
    // this object serves as either.
    const b = blocks(g);
    const inputs = { ...b, blocks: b, candidates: null };
    const y = tokenMlp(g, config, x3, lw, l, { selector: 'predictor', block: B, rank, layers: predictors }, inputs as never, (v) =>
      g.matmul(v, g.constant(transpose(w.gate, F, d), [d, F], 'float32')),
    );
    return g.reshape(y, [0, d]);
  };
  return { build, blocks };
}

// ---------------------------------------------------------------------------------------------

/** The model bytes, with the MoE float attributes typed FLOAT (toOnnx types whole numbers INT). */
function serialise(g: Graph): Uint8Array {
  const model = onnx.ModelProto.decode(toOnnx(g));
  for (const node of model.graph!.node!) {
    for (const a of node.attribute ?? []) {
      if (!FLOAT_ATTRS.has(a.name!) || a.type === onnx.AttributeProto.AttributeType.FLOAT) continue;
      a.f = Number(a.i);
      delete (a as { i?: unknown }).i;
      a.type = onnx.AttributeProto.AttributeType.FLOAT;
    }
  }
  return onnx.ModelProto.encode(model).finish();
}

async function session(build: Build, d: number, L: number, residual: boolean, extra?: (g: Graph) => void): Promise<ort.InferenceSession> {
  const g = new Graph('probe');
  const x0 = g.input('x', f32, ['n', d]);
  extra?.(g);
  let h = x0;
  for (let l = 0; l < L; l++) h = residual ? g.add(h, build(g, h, l)) : build(g, h, l);
  g.output(h, 'y');
  return ort.InferenceSession.create(serialise(g), sessionOptions({ intraOpThreads: threads, interOpThreads: 1 }));
}

// ---------------------------------------------------------------------------------------------
// 1. Correctness.

/** Float64 reference: one MLP over each token's top-kb blocks (by x @ router), each with weight 1. */
function reference(
  x: Float32Array,
  n: number,
  d: number,
  F: number,
  B: number,
  kb: number,
  w: Mlp,
  router: Float32Array,
  act: (g: number, u: number) => number,
): Float64Array {
  const E = F / B;
  const out = new Float64Array(n * d);
  for (let t = 0; t < n; t++) {
    const xs = x.subarray(t * d, (t + 1) * d);
    const scores = Array.from({ length: E }, (_, e) => {
      let s = 0;
      for (let h = 0; h < d; h++) s += xs[h] * router[h * E + e];
      return [s, e];
    });
    scores.sort((a, b) => b[0] - a[0]);
    for (const [, e] of scores.slice(0, kb)) {
      for (let i = e * B; i < (e + 1) * B; i++) {
        let gv = 0;
        let uv = 0;
        for (let h = 0; h < d; h++) {
          gv += w.gate[i * d + h] * xs[h];
          uv += w.up[i * d + h] * xs[h];
        }
        const a = act(gv, uv);
        for (let h = 0; h < d; h++) out[t * d + h] += a * w.down[h * F + i];
      }
    }
  }
  return out;
}

const silu = (g: number, u: number) => (g / (1 + Math.exp(-g))) * u;
/** What the kernel's SwiGLU computes: min(g, limit) * sigmoid(alpha * min(g, limit)) * (clamp(u, ±limit) + beta). */
const swiglu = (alpha: number, beta: number, limit: number) => (g: number, u: number) => {
  const gc = Math.min(g, limit);
  const uc = Math.min(Math.max(u, -limit), limit);
  return (gc / (1 + Math.exp(-alpha * gc))) * (uc + beta);
};

async function correctness(): Promise<void> {
  const d = 16;
  const F = 32;
  const B = 4;
  const E = F / B;
  const kb = 2; // 20% of 8 blocks, rounded up
  const n = 2;
  const shape = { d, F };
  // Large weights so that some gates and ups pass the GPT-OSS clamp (7) and the check sees it.
  const rand = createRng(11);
  const u = (len: number, scale: number) => Float32Array.from({ length: len }, () => (rand() * 2 - 1) * scale);
  const layers: Mlp[] = [{ gate: u(F * d, 1), up: u(F * d, 1), down: u(d * F, 0.5) }];
  const routers = [u(d * E, 1)];
  const xData = u(n * d, 3);
  const x = new ort.Tensor(f32, xData, [n, d]);
  const plain = reference(xData, n, d, F, B, kb, layers[0], routers[0], silu);
  // `scale`: the weight the kernel gives each selected expert when that is not 1.
  const cases: { name: string; build: Build; act: (g: number, u: number) => number; scale?: number }[] = [
    { name: 'softmax 0/-inf, defaults, *k', build: moe(shape, layers, routers, B, kb, { router: 'softmax', rescale: true }), act: silu },
    {
      name: 'softmax 0/-inf, alpha 1 beta 0, *k',
      build: moe(shape, layers, routers, B, kb, { router: 'softmax', alpha: 1, beta: 0, rescale: true }),
      act: silu,
    },
    { name: 'softmax 0/-inf, normalize 1, *k', build: moe(shape, layers, routers, B, kb, { router: 'softmax', normalize: 1, rescale: true }), act: silu },
    {
      name: 'softmax 0/-inf, defaults, no *k (expect 1/k)',
      build: moe(shape, layers, routers, B, kb, { router: 'softmax', rescale: false }),
      act: silu,
      scale: 1 / kb,
    },
    // Raw 1/0 logits are softmaxed too: each kept expert weighs e / (k e + E - k).
    {
      name: 'raw 1/0, defaults (expect softmax weight)',
      build: moe(shape, layers, routers, B, kb, { router: 'raw', rescale: false }),
      act: silu,
      scale: Math.E / (kb * Math.E + E - kb),
    },
    {
      name: 'softmax, GPT-OSS 1.702/1/7, *k',
      build: moe(shape, layers, routers, B, kb, { router: 'softmax', alpha: 1.702, beta: 1, limit: 7, rescale: true }),
      act: swiglu(1.702, 1, 7),
    },
    { name: 'hand Gather', build: gather(shape, layers, routers, B, kb), act: silu },
  ];
  console.log(`correctness: d ${d}, F ${F}, B ${B} (${E} experts, k ${kb}), ${n} tokens; reference: float64 JS SwiGLU over the selected blocks`);
  const rows = [];
  for (const c of cases) {
    const ref = (c.act === silu ? plain : reference(xData, n, d, F, B, kb, layers[0], routers[0], c.act)).map((v) => v * (c.scale ?? 1));
    try {
      const s = await session(c.build, d, 1, false);
      const y = (await s.run({ x })).y.data as Float32Array;
      let diff = 0;
      let diffPlain = 0;
      for (let i = 0; i < y.length; i++) {
        diff = Math.max(diff, Math.abs(y[i] - ref[i]));
        diffPlain = Math.max(diffPlain, Math.abs(y[i] - plain[i]));
      }
      rows.push({
        case: c.name,
        'max |ref|': Math.max(...ref.map(Math.abs)).toFixed(3),
        'max diff vs its formula': diff.toExponential(2),
        'max diff vs plain SwiGLU': diffPlain.toExponential(2),
      });
      await s.release();
    } catch (e) {
      rows.push({ case: c.name, 'max |ref|': '-', 'max diff vs its formula': `error: ${(e as Error).message.slice(-200)}`, 'max diff vs plain SwiGLU': '-' });
    }
  }
  console.table(rows);
}

// ---------------------------------------------------------------------------------------------
// 2. Speed.

async function speed(): Promise<void> {
  const d = 576;
  const F = 1536;
  const L = 30;
  const shape = { d, F };
  const layers = makeLayers(d, F, L, 3);
  const kbOf = (B: number) => Math.round((keep * F) / B);
  const routers = new Map<number, Float32Array[]>();
  const routerOf = (B: number) => {
    if (!routers.has(B)) routers.set(B, makeRouters(d, F / B, L, 100 + B));
    return routers.get(B)!;
  };
  const rescaled: MoeSettings = { router: 'softmax', rescale: true };
  const all: Record<string, () => { build: Build; feeds?: Record<string, ort.Tensor>; extra?: (g: Graph) => void }> = {
    dense: () => ({ build: dense(shape, layers) }),
    moe16: () => ({ build: moe(shape, layers, routerOf(16), 16, kbOf(16), rescaled) }),
    moe4: () => ({ build: moe(shape, layers, routerOf(4), 4, kbOf(4), rescaled) }),
    moe1: () => ({ build: moe(shape, layers, routerOf(1), 1, kbOf(1), rescaled) }),
    gather16: () => ({ build: gather(shape, layers, routerOf(16), 16, kbOf(16)) }),
    gather4: () => ({ build: gather(shape, layers, routerOf(4), 4, kbOf(4)) }),
    product16: () => {
      const p = product(shape, layers, 16, 7);
      return { build: p.build, extra: (g) => void p.blocks(g), feeds: { token_blocks: new ort.Tensor('int64', BigInt64Array.of(BigInt(kbOf(16))), [1]) } };
    },
    product4: () => {
      const p = product(shape, layers, 4, 7);
      return { build: p.build, extra: (g) => void p.blocks(g), feeds: { token_blocks: new ort.Tensor('int64', BigInt64Array.of(BigInt(kbOf(4))), [1]) } };
    },
  };
  const names = values.only ? values.only.split(',') : Object.keys(all);
  const sessions: ort.InferenceSession[] = [];
  const feeds: Record<string, ort.Tensor>[] = [];
  const rand = createRng(5);
  const x = new ort.Tensor(
    f32,
    Float32Array.from({ length: d }, () => rand() * 2 - 1),
    [1, d],
  );
  for (const name of names) {
    const v = all[name]();
    sessions.push(await session(v.build, d, L, true, v.extra));
    feeds.push({ x, ...v.feeds });
  }
  // Same weights, same router: MoE and the hand Gather must agree after 30 layers.
  const outputs = new Map<string, Float32Array>();
  for (const [i, s] of sessions.entries()) outputs.set(names[i], (await s.run(feeds[i])).y.data as Float32Array);
  for (const B of [16, 4]) {
    const a = outputs.get(`moe${B}`);
    const b = outputs.get(`gather${B}`);
    if (!a || !b) continue;
    let diff = 0;
    let scale = 0;
    for (let i = 0; i < d; i++) {
      diff = Math.max(diff, Math.abs(a[i] - b[i]));
      scale = Math.max(scale, Math.abs(b[i]));
    }
    console.log(`moe${B} vs gather${B} after ${L} layers: max abs diff ${diff.toExponential(2)} (max |y| ${scale.toFixed(3)})`);
  }
  const times = names.map((): number[] => []);
  const runs = Number(values.runs);
  const warmup = Number(values.warmup);
  for (let r = 0; r < runs + warmup; r++) {
    for (const [i, s] of sessions.entries()) {
      const t0 = performance.now();
      await s.run(feeds[i]);
      if (r >= warmup) times[i].push(performance.now() - t0);
    }
  }
  const quantile = (xs: number[], q: number) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length * q)];
  const denseMs = times[names.indexOf('dense')] ? quantile(times[names.indexOf('dense')], 0.5) : NaN;
  console.log(
    `speed: d ${d}, F ${F}, ${L} chained MLPs, 1 token, keep ${keep} of blocks, ${threads} intra-op threads, ${runs} interleaved runs after ${warmup} warm-up`,
  );
  console.table(
    names.map((n, i) => {
      const B = Number(n.replace(/\D/g, '')) || F;
      return {
        variant: n,
        'kept blocks': n === 'dense' ? '-' : `${kbOf(B)} of ${F / B}`,
        'median ms': quantile(times[i], 0.5).toFixed(2),
        'p10 ms': quantile(times[i], 0.1).toFixed(2),
        'p90 ms': quantile(times[i], 0.9).toFixed(2),
        'vs dense': `${(denseMs / quantile(times[i], 0.5)).toFixed(2)}x`,
      };
    }),
  );
}

await correctness();
if (!values['check-only']) await speed();
