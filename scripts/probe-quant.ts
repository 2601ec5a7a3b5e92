/**
 * Probe: how ONNX Runtime's CPU kernels serve weight-only quantised linears at SmolLM2-135M's
 * shapes (hidden 576, intermediate 1536, vocab 49152), for one row (decode) and 8 rows.
 *
 * Sections (--sections, all by default):
 * - nbits:  com.microsoft.MatMulNBits, weights as initializers: bits 4 and 8, block sizes,
 *           accuracy_level 0 (fp32 compute) and 4 (int8 activations), with and without zero points.
 * - inputs: the same op with B and scales as graph inputs, as per-prompt gathering would feed them
 *           (ORT pre-packs constant operands only).
 * - int8:   com.microsoft.DynamicQuantizeMatMul and ONNX MatMulInteger (int8 weights, one scale per
 *           output column), the older integer alternatives.
 * - embed:  com.microsoft.GatherBlockQuantized for the embedding, and one uint8 tensor serving both
 *           the embedding and a tied MatMulNBits LM head.
 * - gather: per-token selection: quantised neuron rows (or neuron blocks) gathered, then
 *           MatMulNBits or GatherBlockQuantized + MatMul, against gathering fp32 rows.
 *
 * Every case is checked against a float64 JS reference computed from the weights the kernel is
 * given (the dequantised codes), so the check tests the layout and the kernel, not quantisation
 * error; the error against the unquantised weights is reported beside it. Times are medians of
 * runs interleaved with the fp32 MatMul baseline (weight as an initializer) in one process; the
 * ratio is the median over rounds of fp32 time / case time (> 1: faster than fp32).
 *
 *   npx tsx scripts/probe-quant.ts [--sections nbits,inputs,int8,embed,gather] [--shapes gateup,down,head]
 *     [--rows 1,8] [--blocks 32,64,128] [--threads 2] [--runs 100] [--warmup 10] [--budget 30] [--layers 30]
 *     [--keep 0.2] [--ort-info]
 *
 * The weights MiB column counts a graph's initializers as stored in the model; what ORT keeps in
 * memory differs where it pre-packs a constant operand into a layout of its own.
 */
import { Command, InvalidArgumentError } from 'commander';
import onnxProto from 'onnx-proto';
import * as ort from 'onnxruntime-node';
import { parsePositiveInt, parsePositiveNumber, runCli } from '../src/cli/options.js';
import { Graph } from '../src/graph/graph.js';
import { toOnnx } from '../src/graph/onnx.js';
import type { Value } from '../src/graph/types.js';
import { createRng, type Rng } from '../src/random.js';
import { sessionOptions } from '../src/runtime/session.js';

const { onnx } = onnxProto;
const f32 = 'float32' as const;

const HIDDEN = 576;
const INTERMEDIATE = 1536;
const VOCAB = 49152;

/** Linear shapes as ONNX Runtime's MatMulNBits sees them: y [rows, N] = x [rows, K] @ W^T, W [N, K]. */
const SHAPES = {
  gateup: { N: INTERMEDIATE, K: HIDDEN },
  down: { N: HIDDEN, K: INTERMEDIATE },
  head: { N: VOCAB, K: HIDDEN },
} as const;
type ShapeName = keyof typeof SHAPES;

const SECTIONS = ['nbits', 'inputs', 'int8', 'embed', 'gather'] as const;
type Section = (typeof SECTIONS)[number];

/**
 * Largest error allowed, as max |y - reference| / rms(reference):
 * - FLOAT_TOLERANCE where the kernel computes in fp32 (accuracy_level 0, fp32 MatMul, dequantising
 *   gathers): rounding over K <= 1536 terms and 30 summed layers stays near 1e-6 of the output's size;
 * - INT8_TOLERANCE where it also rounds the activations to 8 bits (accuracy_level 4,
 *   DynamicQuantizeMatMul, MatMulInteger): a step of max|x| / 127 per block (or 2 max|x| / 255 per
 *   tensor) adds an error near 0.7% of the output's rms per output, so the largest of up to 49152
 *   outputs (about 4.5 sigma) stays near 3%.
 */
const FLOAT_TOLERANCE = 1e-4;
const INT8_TOLERANCE = 0.05;

interface Options {
  sections: Section[];
  shapes: ShapeName[];
  rows: number[];
  blocks: number[];
  threads: number;
  runs: number;
  warmup: number;
  layers: number;
  keep: number;
  budget: number;
  ortInfo: boolean;
}

// ---------------------------------------------------------------------------------------------
// Quantisation in JS, in MatMulNBits' layout (ONNX Runtime's matmul_nbits_helper.h):
// - B [N, nBlocks, blob] uint8, nBlocks = ceil(K / block), blob = block * bits / 8: row n's codes
//   along K, block after block, packed low bits first (4 bits: element 2j in byte j's low nibble);
// - scales [N, nBlocks] float;
// - zero_points, optional: [N, ceil(nBlocks * bits / 8)] uint8, row n's block zero points packed
//   like the codes; without them the kernel takes 2^(bits-1) (8 for 4 bits, 128 for 8 bits).
// Weight = (code - zero_point) * scale. A last block past K is padded with the zero point.

type Bits = 4 | 8;

interface BlockQuant {
  N: number;
  K: number;
  bits: Bits;
  block: number;
  nBlocks: number;
  blob: number;
  codes: Uint8Array;
  scales: Float32Array;
  zeroPoints: Uint8Array | null;
}

function packedBytes(count: number, bits: Bits): number {
  return Math.ceil((count * bits) / 8);
}

/** Writes `code` as element `i` of a low-bits-first packed array at `offset`. */
function putPacked(out: Uint8Array, offset: number, i: number, code: number, bits: Bits): void {
  const perByte = 8 / bits;
  out[offset + Math.floor(i / perByte)] |= code << ((i % perByte) * bits);
}

function getPacked(data: Uint8Array, offset: number, i: number, bits: Bits): number {
  const perByte = 8 / bits;
  return (data[offset + Math.floor(i / perByte)] >> ((i % perByte) * bits)) & ((1 << bits) - 1);
}

/**
 * Blockwise quantisation of W [N, K] along K. Symmetric: scale = max|w| / (2^(bits-1) - 1) and
 * the kernel's default zero point; asymmetric: the block's [min, max] (widened to hold 0) over the
 * full code range, with explicit zero points.
 */
function blockQuantise(w: Float32Array, N: number, K: number, bits: Bits, block: number, symmetric: boolean): BlockQuant {
  const nBlocks = Math.ceil(K / block);
  const blob = (block * bits) / 8;
  const top = (1 << bits) - 1;
  const mid = 1 << (bits - 1);
  const codes = new Uint8Array(N * nBlocks * blob);
  const scales = new Float32Array(N * nBlocks);
  const zpBytes = packedBytes(nBlocks, bits);
  const zeroPoints = symmetric ? null : new Uint8Array(N * zpBytes);
  for (let n = 0; n < N; n++) {
    for (let b = 0; b < nBlocks; b++) {
      const start = n * K + b * block;
      const end = n * K + Math.min(K, (b + 1) * block);
      let lo = 0;
      let hi = 0;
      for (let i = start; i < end; i++) {
        lo = Math.min(lo, w[i]);
        hi = Math.max(hi, w[i]);
      }
      const scale = Math.fround(symmetric ? Math.max(-lo, hi) / (mid - 1) : (hi - lo) / top) || 1;
      const zp = symmetric ? mid : Math.min(top, Math.max(0, Math.round(-lo / scale)));
      scales[n * nBlocks + b] = scale;
      if (zeroPoints) putPacked(zeroPoints, n * zpBytes, b, zp, bits);
      const offset = (n * nBlocks + b) * blob;
      for (let j = 0; j < block; j++) {
        const i = start + j;
        const code = i < end ? Math.min(top, Math.max(0, Math.round(w[i] / scale) + zp)) : zp;
        putPacked(codes, offset, j, code, bits);
      }
    }
  }
  return { N, K, bits, block, nBlocks, blob, codes, scales, zeroPoints };
}

/** The weights a blockwise-quantised tensor stands for, [N, K], as the kernel computes them in fp32. */
function dequantise(q: BlockQuant): Float32Array {
  const { N, K, bits, block, nBlocks, blob } = q;
  const out = new Float32Array(N * K);
  const zpBytes = packedBytes(nBlocks, bits);
  for (let n = 0; n < N; n++) {
    for (let k = 0; k < K; k++) {
      const b = Math.floor(k / block);
      const code = getPacked(q.codes, (n * nBlocks + b) * blob, k % block, bits);
      const zp = q.zeroPoints ? getPacked(q.zeroPoints, n * zpBytes, b, bits) : 1 << (bits - 1);
      out[n * K + k] = Math.fround((code - zp) * q.scales[n * nBlocks + b]);
    }
  }
  return out;
}

/** int8 per output column (symmetric, [-127, 127]), in MatMul's layout: B [K, N] as bytes, scales [N]. */
interface ColumnQuant {
  bytes: Uint8Array;
  scales: Float32Array;
  dequant: Float32Array;
}

function int8Columns(w: Float32Array, N: number, K: number): ColumnQuant {
  const bytes = new Uint8Array(K * N);
  const scales = new Float32Array(N);
  const dequant = new Float32Array(N * K);
  for (let n = 0; n < N; n++) {
    let absMax = 0;
    for (let k = 0; k < K; k++) absMax = Math.max(absMax, Math.abs(w[n * K + k]));
    const scale = Math.fround(absMax / 127) || 1;
    scales[n] = scale;
    for (let k = 0; k < K; k++) {
      const q = Math.round(w[n * K + k] / scale);
      bytes[k * N + n] = q & 0xff;
      dequant[n * K + k] = Math.fround(q * scale);
    }
  }
  return { bytes, scales, dequant };
}

// ---------------------------------------------------------------------------------------------
// Graph helpers. The builder types tensors as float or int only, so 8-bit tensors are recorded
// as `bool` placeholders (one byte each) and retyped when the model is serialised.

type ByteType = 'uint8' | 'int8';
const BYTE_ELEM_TYPE: Record<ByteType, number> = { uint8: onnx.TensorProto.DataType.UINT8, int8: onnx.TensorProto.DataType.INT8 };
const byteTensors = new WeakMap<Graph, Map<string, ByteType>>();

function markBytes(g: Graph, v: Value, type: ByteType): Value {
  const types = byteTensors.get(g) ?? new Map<string, ByteType>();
  byteTensors.set(g, types.set(v.name, type));
  return v;
}

function byteConstant(g: Graph, data: Uint8Array, shape: number[], type: ByteType = 'uint8'): Value {
  return markBytes(g, g.constant(data, shape, 'bool'), type);
}

function byteInput(g: Graph, name: string, shape: number[], type: ByteType = 'uint8'): Value {
  return markBytes(g, g.input(name, 'bool', shape), type);
}

function serialise(g: Graph): Uint8Array {
  const bytes = toOnnx(g);
  const types = byteTensors.get(g);
  if (!types) return bytes;
  const model = onnx.ModelProto.decode(bytes);
  for (const t of model.graph?.initializer ?? []) {
    const type = types.get(t.name ?? '');
    if (type) t.dataType = BYTE_ELEM_TYPE[type];
  }
  for (const v of model.graph?.input ?? []) {
    const type = types.get(v.name ?? '');
    if (type && v.type?.tensorType) v.type.tensorType.elemType = BYTE_ELEM_TYPE[type];
  }
  return onnx.ModelProto.encode(model).finish();
}

/** The tensors of one MatMulNBits weight as graph values (initializers, or inputs named `${prefix}_b` etc.). */
interface NBitsOperands {
  b: Value;
  scales: Value;
  zeroPoints: Value | null;
}

function nbitsConstants(g: Graph, q: BlockQuant): NBitsOperands {
  return {
    b: byteConstant(g, q.codes, [q.N, q.nBlocks, q.blob]),
    scales: g.constant(q.scales, [q.N, q.nBlocks], f32),
    zeroPoints: q.zeroPoints ? byteConstant(g, q.zeroPoints, [q.N, packedBytes(q.nBlocks, q.bits)]) : null,
  };
}

function nbitsInputs(g: Graph, q: BlockQuant, prefix: string, feeds: Feeds): NBitsOperands {
  const zpShape = [q.N, packedBytes(q.nBlocks, q.bits)];
  feeds[`${prefix}_b`] = new ort.Tensor('uint8', q.codes, [q.N, q.nBlocks, q.blob]);
  feeds[`${prefix}_s`] = new ort.Tensor(f32, q.scales, [q.N, q.nBlocks]);
  if (q.zeroPoints) feeds[`${prefix}_z`] = new ort.Tensor('uint8', q.zeroPoints, zpShape);
  return {
    b: byteInput(g, `${prefix}_b`, [q.N, q.nBlocks, q.blob]),
    scales: g.input(`${prefix}_s`, f32, [q.N, q.nBlocks]),
    zeroPoints: q.zeroPoints ? byteInput(g, `${prefix}_z`, zpShape) : null,
  };
}

/** y [..., N] = x [..., K] @ W^T through com.microsoft.MatMulNBits. */
function matMulNBits(g: Graph, x: Value, w: NBitsOperands, attrs: { K: number; N: number; bits: Bits; block: number; accuracy: number }): Value {
  const inputs = [x, w.b, w.scales, ...(w.zeroPoints ? [w.zeroPoints] : [])];
  const out = { dtype: f32, shape: [...x.shape.slice(0, -1), attrs.N] };
  return g.kernel('com.microsoft.MatMulNBits', inputs, [out], {
    K: attrs.K,
    N: attrs.N,
    bits: attrs.bits,
    block_size: attrs.block,
    accuracy_level: attrs.accuracy,
  })[0];
}

/** The sum of same-shaped values, one op (layers run side by side from one x, summed into one output). */
function sum(g: Graph, ys: Value[]): Value {
  return ys.length === 1 ? ys[0] : g.kernel('Sum', ys, [{ dtype: f32, shape: ys[0].shape }])[0];
}

function transpose(w: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(w.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = w[r * cols + c];
  return out;
}

// ---------------------------------------------------------------------------------------------
// Cases, references and timing.

type Feeds = Record<string, ort.Tensor>;

/** One graph to check and time: its output y [rows, N] against a reference of the same size. */
interface Case {
  name: string;
  /** Records the graph on `g` given its float input x and returns y; may add feeds. */
  build: (g: Graph, x: Value, feeds: Feeds) => Value;
  reference: Float64Array;
  /** y with the unquantised weights, for the quantisation error column (absent: same as reference). */
  exact?: Float64Array;
  tolerance: number;
  /** Further outputs of the graph to check, exactly as y. */
  also?: { output: string; reference: Float64Array; tolerance: number }[];
}

interface Prepared {
  c: Case;
  session: ort.InferenceSession | null;
  feeds: Feeds;
  error?: string;
  relError?: number;
  quantError?: number;
  /** The graph's initializers as stored in the model (ORT's pre-packed copies not counted). */
  weightMiB?: number;
}

/** y [rows, N] = sum over layers of x [rows, K] @ W_l^T in float64, W_l [N, K]. */
function referenceMatmul(x: Float32Array, rows: number, K: number, N: number, ws: Float32Array[]): Float64Array {
  const y = new Float64Array(rows * N);
  for (const w of ws) {
    for (let n = 0; n < N; n++) {
      for (let r = 0; r < rows; r++) {
        let acc = 0;
        for (let k = 0; k < K; k++) acc += x[r * K + k] * w[n * K + k];
        y[r * N + n] += acc;
      }
    }
  }
  return y;
}

function rms(y: Float64Array): number {
  let s = 0;
  for (const v of y) s += v * v;
  return Math.sqrt(s / y.length);
}

/** max |y - ref| / rms(ref). */
function relMaxError(y: ArrayLike<number>, ref: Float64Array): number {
  let worst = 0;
  for (let i = 0; i < ref.length; i++) worst = Math.max(worst, Math.abs(y[i] - ref[i]));
  return worst / rms(ref);
}

/** rms(a - b) / rms(b). */
function relRmsError(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i] - b[i]) ** 2;
  return Math.sqrt(s / a.length) / rms(b);
}

/** Builds, creates and checks one case; a kernel that refuses the graph is reported, not thrown. */
async function prepare(c: Case, xShape: number[], inputs: Feeds, opts: Options): Promise<Prepared> {
  const g = new Graph('probe');
  const x = g.input('x', f32, xShape);
  const feeds: Feeds = { ...inputs };
  try {
    g.output(c.build(g, x, feeds), 'y');
    const weightMiB = [...g.initializers.values()].reduce((n, i) => n + i.data.byteLength, 0) / 2 ** 20;
    const options = { ...sessionOptions({ intraOpThreads: opts.threads, interOpThreads: 1 }), ...(opts.ortInfo ? { logSeverityLevel: 1 as const } : {}) };
    const session = await ort.InferenceSession.create(serialise(g), options);
    // Feed only what this graph declares (the feeds of a section serve several graphs).
    const used = Object.fromEntries(session.inputNames.map((n) => [n, feeds[n]]));
    if (opts.ortInfo) console.error(`# ${c.name}`);
    const out = await session.run(used, opts.ortInfo ? { logSeverityLevel: 1 } : {});
    let relError = 0;
    for (const check of [{ output: 'y', reference: c.reference, tolerance: c.tolerance }, ...(c.also ?? [])]) {
      const err = relMaxError(out[check.output].data as Float32Array, check.reference);
      if (!(err <= check.tolerance)) {
        await session.release();
        return { c, session: null, feeds, error: `wrong ${check.output}: max error ${err.toExponential(2)} of rms > ${check.tolerance}` };
      }
      relError = Math.max(relError, err);
    }
    const quantError = c.exact ? relRmsError(c.reference, c.exact) : 0;
    return { c, session, feeds: used, relError, quantError, weightMiB };
  } catch (err) {
    return { c, session: null, feeds, error: (err instanceof Error ? err.message : String(err)).split('\n')[0].slice(0, 160) };
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/**
 * Times the cases round-robin, the first (the fp32 baseline) in every round, and prints one
 * Markdown table: median ms, and the median over rounds of baseline ms / case ms. Rounds: --runs,
 * fewer (at least 10) where the warm-up rounds say they would take longer than --budget seconds.
 */
async function timeAndReport(title: string, prepared: Prepared[], opts: Options): Promise<void> {
  const live = prepared.filter((p) => p.session);
  const times = new Map<Prepared, number[]>(live.map((p) => [p, []]));
  const round = async (record: boolean) => {
    for (const p of live) {
      const t0 = performance.now();
      await p.session?.run(p.feeds);
      if (record) times.get(p)?.push(performance.now() - t0);
    }
  };
  const w0 = performance.now();
  for (let r = 0; r < opts.warmup; r++) await round(false);
  const roundMs = (performance.now() - w0) / opts.warmup;
  const rounds = Math.min(opts.runs, Math.max(10, Math.floor((opts.budget * 1000) / roundMs)));
  for (let r = 0; r < rounds; r++) await round(true);
  const base = times.get(prepared[0]);
  console.log(`\n### ${title} (${rounds} rounds)\n`);
  console.log('| case | ms (median) | speed vs fp32 | max err / rms | quant. err (rms) | weights MiB |');
  console.log('|---|---:|---:|---:|---:|---:|');
  for (const p of prepared) {
    const t = times.get(p);
    if (!t) {
      console.log(`| ${p.c.name} | fails: ${p.error?.replaceAll('|', '/')} | | | | |`);
      continue;
    }
    const ratio = base ? median(t.map((v, i) => base[i] / v)) : Number.NaN;
    const err = (p.relError ?? 0).toExponential(1);
    const quant = p.quantError ? `${(100 * p.quantError).toFixed(2)}%` : '-';
    console.log(`| ${p.c.name} | ${median(t).toFixed(3)} | ${ratio.toFixed(2)}x | ${err} | ${quant} | ${(p.weightMiB ?? 0).toFixed(1)} |`);
  }
}

async function run(title: string, cases: Case[], xData: Float32Array, xShape: number[], inputs: Feeds, opts: Options): Promise<void> {
  const xFeeds = { ...inputs, x: new ort.Tensor(f32, xData, xShape) };
  const prepared: Prepared[] = [];
  for (const c of cases) prepared.push(await prepare(c, xShape, xFeeds, opts));
  await timeAndReport(title, prepared, opts);
  for (const p of prepared) await p.session?.release();
}

// ---------------------------------------------------------------------------------------------
// Weights: `layers` random matrices per shape (30 for the MLP shapes, as SmolLM2-135M has 30
// layers, so that the weights stream from memory as in decoding rather than sit in cache; 1 for
// the head), each with its quantisations and their references, computed once.

interface Weights {
  N: number;
  K: number;
  ws: Float32Array[];
  x: Float32Array;
  exact: Float64Array;
  rows: number;
}

function uniform(rand: Rng, n: number, scale: number): Float32Array {
  return Float32Array.from({ length: n }, () => (rand() * 2 - 1) * scale);
}

function makeWeights(shape: ShapeName, layers: number, maxRows: number, seed: number): Weights {
  const { N, K } = SHAPES[shape];
  const rand = createRng(seed);
  const ws = Array.from({ length: layers }, () => uniform(rand, N * K, 0.04));
  const x = uniform(rand, maxRows * K, 1);
  return { N, K, ws, x, rows: maxRows, exact: referenceMatmul(x, maxRows, K, N, ws) };
}

interface Quantised {
  qs: BlockQuant[];
  reference: Float64Array;
}

function quantiseAll(W: Weights, bits: Bits, block: number, symmetric: boolean): Quantised {
  const qs = W.ws.map((w) => blockQuantise(w, W.N, W.K, bits, block, symmetric));
  return { qs, reference: referenceMatmul(W.x, W.rows, W.K, W.N, qs.map(dequantise)) };
}

/** The first `rows` rows of a [maxRows, N] reference. */
function firstRows(y: Float64Array, rows: number, N: number): Float64Array {
  return y.subarray(0, rows * N);
}

function fp32Case(W: Weights, rows: number): Case {
  const wts = W.ws.map((w) => transpose(w, W.N, W.K));
  return {
    name: 'fp32 MatMul (initializer)',
    build: (g, x) =>
      sum(
        g,
        wts.map((w) => g.matmul(x, g.constant(w, [W.K, W.N], f32))),
      ),
    reference: firstRows(W.exact, rows, W.N),
    tolerance: FLOAT_TOLERANCE,
  };
}

function nbitsCase(W: Weights, q: Quantised, rows: number, accuracy: number, asInputs: boolean): Case {
  const { bits, block } = q.qs[0];
  const zp = q.qs[0].zeroPoints ? ', zp' : '';
  return {
    name: `MatMulNBits ${bits}b blk${block}${zp} acc${accuracy}${asInputs ? ' (B, scales as inputs)' : ''}`,
    build: (g, x, feeds) =>
      sum(
        g,
        q.qs.map((qq, l) => {
          const operands = asInputs ? nbitsInputs(g, qq, `w${l}`, feeds) : nbitsConstants(g, qq);
          return matMulNBits(g, x, operands, { K: W.K, N: W.N, bits, block, accuracy });
        }),
      ),
    reference: firstRows(q.reference, rows, W.N),
    exact: firstRows(W.exact, rows, W.N),
    tolerance: accuracy === 4 ? INT8_TOLERANCE : FLOAT_TOLERANCE,
  };
}

// ---------------------------------------------------------------------------------------------
// Sections.

function shapesFor(opts: Options): { shape: ShapeName; W: Weights }[] {
  const maxRows = Math.max(...opts.rows);
  // Each shape's own seed: its weights do not depend on which other shapes run.
  return opts.shapes.map((shape) => ({ shape, W: makeWeights(shape, shape === 'head' ? 1 : opts.layers, maxRows, 11 + Object.keys(SHAPES).indexOf(shape)) }));
}

function layerNote(shape: ShapeName, W: Weights): string {
  return `${shape} [N ${W.N}, K ${W.K}]${W.ws.length > 1 ? `, ${W.ws.length} layers summed` : ''}`;
}

/** 1. MatMulNBits with constant weights: bits, block sizes, accuracy levels, zero points. */
async function sectionNbits(opts: Options): Promise<void> {
  for (const { shape, W } of shapesFor(opts)) {
    const quants: Quantised[] = [];
    for (const bits of [4, 8] as const) {
      for (const block of opts.blocks) quants.push(quantiseAll(W, bits, block, true));
      quants.push(quantiseAll(W, bits, opts.blocks[0], false));
    }
    for (const rows of opts.rows) {
      const cases = [fp32Case(W, rows)];
      for (const q of quants) for (const accuracy of [0, 4]) cases.push(nbitsCase(W, q, rows, accuracy, false));
      await run(`nbits: ${layerNote(shape, W)}, ${rows} row(s)`, cases, W.x.subarray(0, rows * W.K), [rows, W.K], {}, opts);
    }
  }
}

/** 2. MatMulNBits with B and scales as graph inputs (no pre-packing), against fp32 with W as an input too. */
async function sectionInputs(opts: Options): Promise<void> {
  for (const { shape, W } of shapesFor(opts)) {
    const block = opts.blocks[0];
    const quants = [quantiseAll(W, 4, block, true), quantiseAll(W, 8, block, true)];
    for (const rows of opts.rows) {
      const cases = [fp32Case(W, rows)];
      const wts = W.ws.map((w) => transpose(w, W.N, W.K));
      cases.push({
        name: 'fp32 MatMul (W as input)',
        build: (g, x, feeds) =>
          sum(
            g,
            wts.map((w, l) => {
              feeds[`w${l}`] = new ort.Tensor(f32, w, [W.K, W.N]);
              return g.matmul(x, g.input(`w${l}`, f32, [W.K, W.N]));
            }),
          ),
        reference: firstRows(W.exact, rows, W.N),
        tolerance: FLOAT_TOLERANCE,
      });
      for (const q of quants) {
        for (const accuracy of [0, 4]) {
          cases.push(nbitsCase(W, q, rows, accuracy, false));
          cases.push(nbitsCase(W, q, rows, accuracy, true));
        }
      }
      await run(`inputs: ${layerNote(shape, W)}, ${rows} row(s)`, cases, W.x.subarray(0, rows * W.K), [rows, W.K], {}, opts);
    }
  }
}

/** 3. int8 weights with one scale per output column: DynamicQuantizeMatMul, and MatMulInteger spelled out. */
async function sectionInt8(opts: Options): Promise<void> {
  for (const { shape, W } of shapesFor(opts)) {
    const cq = W.ws.map((w) => int8Columns(w, W.N, W.K));
    const reference = referenceMatmul(
      W.x,
      W.rows,
      W.K,
      W.N,
      cq.map((c) => c.dequant),
    );
    const q4 = quantiseAll(W, 4, opts.blocks[0], true);
    const q8 = quantiseAll(W, 8, opts.blocks[0], true);
    for (const rows of opts.rows) {
      const ref = firstRows(reference, rows, W.N);
      const exact = firstRows(W.exact, rows, W.N);
      const cases: Case[] = [
        fp32Case(W, rows),
        {
          name: 'DynamicQuantizeMatMul int8/col',
          build: (g, x) =>
            sum(
              g,
              cq.map((c) => {
                const b = byteConstant(g, c.bytes, [W.K, W.N], 'int8');
                const out = { dtype: f32, shape: [rows, W.N] };
                return g.kernel('com.microsoft.DynamicQuantizeMatMul', [x, b, g.constant(c.scales, [W.N], f32)], [out])[0];
              }),
            ),
          reference: ref,
          exact,
          tolerance: INT8_TOLERANCE,
        },
        {
          name: 'DynamicQuantizeLinear + MatMulInteger int8/col',
          build: (g, x) => {
            // x's 8-bit codes, scale and zero point once, shared by every layer's MatMulInteger.
            // (Their uint8 types are never serialised: only graph inputs, outputs and initializers are.)
            const [xq, xScale, xZero] = g.kernel(
              'DynamicQuantizeLinear',
              [x],
              [
                { dtype: 'bool', shape: [rows, W.K] },
                { dtype: f32, shape: [] },
                { dtype: 'bool', shape: [] },
              ],
            );
            return sum(
              g,
              cq.map((c) => {
                const b = byteConstant(g, c.bytes, [W.K, W.N], 'int8');
                const [acc] = g.kernel('MatMulInteger', [xq, b, xZero], [{ dtype: 'int32', shape: [rows, W.N] }]);
                return g.mul(g.mul(g.cast(acc, f32), xScale), g.constant(c.scales, [W.N], f32));
              }),
            );
          },
          reference: ref,
          exact,
          tolerance: INT8_TOLERANCE,
        },
        nbitsCase(W, q4, rows, 4, false),
        nbitsCase(W, q8, rows, 4, false),
      ];
      await run(`int8: ${layerNote(shape, W)}, ${rows} row(s)`, cases, W.x.subarray(0, rows * W.K), [rows, W.K], {}, opts);
    }
  }
}

/** Rows `at` of W [*, d], side by side: [at.length, d]. */
function selectRows(w: Float32Array, d: number, at: number[]): Float32Array {
  const out = new Float32Array(at.length * d);
  for (const [i, r] of at.entries()) out.set(w.subarray(r * d, (r + 1) * d), i * d);
  return out;
}

/** GatherBlockQuantized's operands: data [N, K * bits / 8] (B's bytes when the block divides K), scales [N, nBlocks], zero points as MatMulNBits packs them. */
function gatherOperands(g: Graph, q: BlockQuant): NBitsOperands {
  if (q.K % q.block !== 0) throw new Error(`block ${q.block} does not divide K ${q.K}: B's rows are padded, GatherBlockQuantized's are not`);
  return {
    b: byteConstant(g, q.codes, [q.N, (q.K * q.bits) / 8]),
    scales: g.constant(q.scales, [q.N, q.nBlocks], f32),
    zeroPoints: q.zeroPoints ? byteConstant(g, q.zeroPoints, [q.N, packedBytes(q.nBlocks, q.bits)]) : null,
  };
}

/** Rows `ids` of the quantised W [N, K], dequantised: [rows, K] float. */
function gatherBlockQuantized(g: Graph, q: BlockQuant, w: NBitsOperands, ids: Value, rows: number): Value {
  const inputs = [w.b, ids, w.scales, ...(w.zeroPoints ? [w.zeroPoints] : [])];
  return g.kernel('com.microsoft.GatherBlockQuantized', inputs, [{ dtype: f32, shape: [rows, q.K] }], {
    bits: q.bits,
    block_size: q.block,
    gather_axis: 0,
    quantize_axis: 1,
  })[0];
}

/** An int64 index input of the graph, declared on first use (a section's feeds serve several graphs). */
function indexInput(g: Graph, name: string, length: number): Value {
  return g.inputs.find((v) => v.name === name) ?? g.input(name, 'int64', [length]);
}

function indexFeed(values: number[]): ort.Tensor {
  return new ort.Tensor('int64', BigInt64Array.from(values, BigInt), [values.length]);
}

function zpNote(q: BlockQuant): string {
  return q.zeroPoints ? ', zp' : '';
}

/**
 * 4. GatherBlockQuantized for the embedding [V, d], against an fp32 Gather; its output is exact
 * (each value is one float32 product), so the tolerance is 0. Then the tied head: one uint8
 * initializer, [V, d * bits / 8], read by GatherBlockQuantized and, reshaped to [V, nBlocks, blob],
 * by MatMulNBits, against the fp32 tied pair (Gather from the table, MatMul with its transposed copy).
 */
async function sectionEmbed(opts: Options): Promise<void> {
  const V = VOCAB;
  const d = HIDDEN;
  const rand = createRng(5);
  const table = uniform(rand, V * d, 0.04);
  const maxRows = Math.max(...opts.rows);
  const allIds = Array.from({ length: maxRows }, () => Math.floor(rand() * V));
  const xAll = uniform(rand, maxRows * d, 1);
  const quants: { q: BlockQuant; deq: Float32Array }[] = [];
  for (const bits of [4, 8] as const) {
    for (const block of opts.blocks) {
      if (d % block !== 0) continue; // a padded last block makes B's rows longer than d * bits / 8
      for (const symmetric of block === opts.blocks[0] ? [true, false] : [true]) {
        const q = blockQuantise(table, V, d, bits, block, symmetric);
        quants.push({ q, deq: dequantise(q) });
      }
    }
  }
  const tableT = transpose(table, V, d);
  for (const rows of opts.rows) {
    const ids = allIds.slice(0, rows);
    const x = xAll.subarray(0, rows * d);
    const feeds = { ids: indexFeed(ids) };
    const exact = gatherRows(table, d, ids);
    const embedCases: Case[] = [
      { name: 'fp32 Gather (initializer)', build: (g) => g.gather(g.constant(table, [V, d], f32), indexInput(g, 'ids', rows)), reference: exact, tolerance: 0 },
    ];
    for (const { q, deq } of quants) {
      embedCases.push({
        name: `GatherBlockQuantized ${q.bits}b blk${q.block}${zpNote(q)}`,
        build: (g) => gatherBlockQuantized(g, q, gatherOperands(g, q), indexInput(g, 'ids', rows), rows),
        reference: gatherRows(deq, d, ids),
        exact,
        tolerance: 0,
      });
    }
    await run(`embed: [V ${V}, d ${d}], ${rows} id(s)`, embedCases, x, [rows, d], feeds, opts);

    const headCases: Case[] = [
      {
        name: 'fp32 tied: Gather + MatMul (transposed copy)',
        build: (g, xv) => {
          g.output(g.gather(g.constant(table, [V, d], f32), indexInput(g, 'ids', rows)), 'embedding');
          return g.matmul(xv, g.constant(tableT, [d, V], f32));
        },
        reference: referenceMatmul(x, rows, d, V, [table]),
        tolerance: FLOAT_TOLERANCE,
        also: [{ output: 'embedding', reference: exact, tolerance: 0 }],
      },
    ];
    for (const { q, deq } of quants.filter((e) => e.q.block === opts.blocks[0])) {
      headCases.push({
        name: `one ${q.bits}b blk${q.block}${zpNote(q)} tensor: GatherBlockQuantized + MatMulNBits acc4`,
        build: (g, xv) => {
          const operands = gatherOperands(g, q);
          g.output(gatherBlockQuantized(g, q, operands, indexInput(g, 'ids', rows), rows), 'embedding');
          const b = g.reshape(operands.b, [V, q.nBlocks, q.blob]);
          return matMulNBits(g, xv, { ...operands, b }, { K: d, N: V, bits: q.bits, block: q.block, accuracy: 4 });
        },
        reference: referenceMatmul(x, rows, d, V, [deq]),
        exact: referenceMatmul(x, rows, d, V, [table]),
        tolerance: INT8_TOLERANCE,
        also: [{ output: 'embedding', reference: gatherRows(deq, d, ids), tolerance: 0 }],
      });
    }
    await run(`tied head + embedding: [V ${V}, d ${d}], ${rows} row(s) and id(s)`, headCases, x, [rows, d], feeds, opts);
  }
}

/** Embedding rows for token ids, as a [rows, K] reference. */
function gatherRows(table: Float32Array, K: number, ids: number[]): Float64Array {
  const out = new Float64Array(ids.length * K);
  for (const [r, id] of ids.entries()) for (let k = 0; k < K; k++) out[r * K + k] = table[id * K + k];
  return out;
}

/** Per-token selection's setting: `layers` layers of [F, d] neuron rows, one selection for all, one row. */
interface Selection {
  d: number;
  F: number;
  layers: number;
  block: number;
  rand: Rng;
}

/**
 * 5a. Gate/up direction: y [1, k] = x [1, d] @ W[idx]^T for k selected neuron rows of W [F, d],
 * a smaller N. Quantised rows of B [F, nBlocks, blob] and their scales are gathered and fed to
 * MatMulNBits with N = k, or GatherBlockQuantized dequantises them for a MatMul.
 */
async function gatherRowsTable(s: Selection, keep: number, opts: Options): Promise<void> {
  const { d, F, layers, block, rand } = s;
  const k = Math.round(keep * F);
  const ws = Array.from({ length: layers }, () => uniform(rand, F * d, 0.04));
  const x = uniform(rand, d, 1);
  const idx = pickSorted(rand, F, k);
  const selected = (w: Float32Array) => selectRows(w, d, idx);
  const denseExact = referenceMatmul(x, 1, d, F, ws);
  const exact = referenceMatmul(x, 1, d, k, ws.map(selected));
  const wsT = ws.map((w) => transpose(w, F, d));
  const cases: Case[] = [
    {
      name: `fp32 dense MatMul, all ${F} rows (baseline)`,
      build: (g, xv) =>
        sum(
          g,
          wsT.map((w) => g.matmul(xv, g.constant(w, [d, F], f32))),
        ),
      reference: denseExact,
      tolerance: FLOAT_TOLERANCE,
    },
    {
      name: `fp32 Gather ${k} rows + MatMul`,
      build: (g, xv) => {
        const xT = g.reshape(xv, [d, 1]);
        const ys = ws.map((w) => g.matmul(g.gather(g.constant(w, [F, d], f32), indexInput(g, 'idx', k)), xT));
        return g.reshape(sum(g, ys), [1, k]);
      },
      reference: exact,
      tolerance: FLOAT_TOLERANCE,
    },
  ];
  for (const bits of [4, 8] as const) {
    const qs = ws.map((w) => blockQuantise(w, F, d, bits, block, true));
    const deqs = qs.map(dequantise);
    const reference = referenceMatmul(x, 1, d, k, deqs.map(selected));
    for (const accuracy of [0, 4]) {
      cases.push({
        name: `Gather ${k} rows of ${bits}b B + scales, MatMulNBits acc${accuracy}`,
        build: (g, xv) =>
          sum(
            g,
            qs.map((q) => {
              const w = nbitsConstants(g, q);
              const i = indexInput(g, 'idx', k);
              const rows = { b: g.gather(w.b, i), scales: g.gather(w.scales, i), zeroPoints: null };
              return matMulNBits(g, xv, rows, { K: d, N: k, bits, block, accuracy });
            }),
          ),
        reference,
        exact,
        tolerance: accuracy === 4 ? INT8_TOLERANCE : FLOAT_TOLERANCE,
      });
    }
    cases.push({
      name: `GatherBlockQuantized ${k} rows ${bits}b + MatMul`,
      build: (g, xv) => {
        const xT = g.reshape(xv, [d, 1]);
        const ys = qs.map((q) => g.matmul(gatherBlockQuantized(g, q, gatherOperands(g, q), indexInput(g, 'idx', k), k), xT));
        return g.reshape(sum(g, ys), [1, k]);
      },
      reference,
      exact,
      tolerance: FLOAT_TOLERANCE,
    });
    cases.push({
      name: `dense MatMulNBits ${bits}b acc4, all ${F} rows`,
      build: (g, xv) =>
        sum(
          g,
          qs.map((q) => matMulNBits(g, xv, nbitsConstants(g, q), { K: d, N: F, bits, block, accuracy: 4 })),
        ),
      reference: referenceMatmul(x, 1, d, F, deqs),
      exact: denseExact,
      tolerance: INT8_TOLERANCE,
    });
  }
  await run(`gather rows: k ${k} of ${F} neurons (keep ${keep}), ${layers} layers summed, 1 row`, cases, x, [1, d], { idx: indexFeed(idx) }, opts);
}

/**
 * 5b. Down direction: y [1, d] = h [1, kb * nb] @ (rows of down^T [F, d] for kb selected blocks of
 * nb neurons), a smaller K. MatMulNBits quantises down [d, F] along F: with its block the size of a
 * neuron block, a selected neuron block is one whole quantisation block, gathered along B's axis 1
 * with its scales; or the neurons' rows of down^T quantised along d go through GatherBlockQuantized.
 */
async function gatherBlocksTable(s: Selection, keep: number, opts: Options): Promise<void> {
  const { d, F, layers, block: nb, rand } = s;
  const kb = Math.round((keep * F) / nb);
  const K = kb * nb;
  const downsT = Array.from({ length: layers }, () => uniform(rand, F * d, 0.04)); // [F, d]: neuron rows
  const downs = downsT.map((w) => transpose(w, F, d)); // [d, F]: MatMulNBits' W [N = d, K = F]
  const blockIdx = pickSorted(rand, F / nb, kb);
  const neurons = blockIdx.flatMap((b) => Array.from({ length: nb }, (_, j) => b * nb + j));
  const h = uniform(rand, K, 1);
  const hFull = scatter(h, neurons, F);
  // h @ rows: the selected rows of down^T transposed are W [d, K] for referenceMatmul.
  const ref = (rowsT: Float32Array[]) =>
    referenceMatmul(
      h,
      1,
      K,
      d,
      rowsT.map((w) => transpose(selectRows(w, d, neurons), K, d)),
    );
  const exact = ref(downsT);
  const cases: Case[] = [
    {
      name: `fp32 dense MatMul, all ${F} neurons (baseline)`,
      build: (g) => {
        const hAll = g.input('h_full', f32, [1, F]);
        return sum(
          g,
          downsT.map((w) => g.matmul(hAll, g.constant(w, [F, d], f32))),
        );
      },
      reference: referenceMatmul(hFull, 1, F, d, downs),
      tolerance: FLOAT_TOLERANCE,
    },
    {
      name: `fp32 Gather ${kb} blocks of ${nb} rows + MatMul`,
      build: (g, hv) =>
        sum(
          g,
          downsT.map((w) => g.matmul(hv, g.reshape(g.gather(g.constant(w, [F / nb, nb * d], f32), indexInput(g, 'blocks', kb)), [K, d]))),
        ),
      reference: exact,
      tolerance: FLOAT_TOLERANCE,
    },
  ];
  for (const bits of [4, 8] as const) {
    const qs = downs.map((w) => blockQuantise(w, d, F, bits, nb, true));
    const reference = ref(qs.map((q) => transpose(dequantise(q), d, F)));
    for (const accuracy of [0, 4]) {
      cases.push({
        name: `Gather ${kb} blocks of ${bits}b B + scales (axis 1), MatMulNBits acc${accuracy}`,
        build: (g, hv) =>
          sum(
            g,
            qs.map((q) => {
              const w = nbitsConstants(g, q);
              const i = indexInput(g, 'blocks', kb);
              const cols = { b: g.gather(w.b, i, 1), scales: g.gather(w.scales, i, 1), zeroPoints: null };
              return matMulNBits(g, hv, cols, { K, N: d, bits, block: nb, accuracy });
            }),
          ),
        reference,
        exact,
        tolerance: accuracy === 4 ? INT8_TOLERANCE : FLOAT_TOLERANCE,
      });
    }
    const rowQs = downsT.map((w) => blockQuantise(w, F, d, bits, nb, true));
    cases.push({
      name: `GatherBlockQuantized ${K} rows ${bits}b + MatMul`,
      build: (g, hv) =>
        sum(
          g,
          rowQs.map((q) => g.matmul(hv, gatherBlockQuantized(g, q, gatherOperands(g, q), indexInput(g, 'neurons', K), K))),
        ),
      reference: ref(rowQs.map(dequantise)),
      exact,
      tolerance: FLOAT_TOLERANCE,
    });
  }
  const feeds = { blocks: indexFeed(blockIdx), neurons: indexFeed(neurons), h_full: new ort.Tensor(f32, hFull, [1, F]) };
  await run(`gather blocks: ${kb} of ${F / nb} blocks of ${nb} neurons, ${layers} layers summed, 1 row`, cases, h, [1, K], feeds, opts);
}

/** 5. Per-token selection at the MLP shape, one row, each layer its own weights, one selection fed as inputs. */
async function sectionGather(opts: Options): Promise<void> {
  const s: Selection = { d: HIDDEN, F: INTERMEDIATE, layers: opts.layers, block: opts.blocks[0], rand: createRng(21) };
  await gatherRowsTable(s, opts.keep, opts);
  await gatherBlocksTable(s, opts.keep, opts);
}

/** `count` distinct sorted integers in [0, n). */
function pickSorted(rand: Rng, n: number, count: number): number[] {
  const all = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [all[i], all[j]] = [all[j], all[i]];
  }
  return all.slice(0, count).sort((a, b) => a - b);
}

/** h's values at `at` in an otherwise zero vector of length n. */
function scatter(h: Float32Array, at: number[], n: number): Float32Array {
  const out = new Float32Array(n);
  at.forEach((i, j) => {
    out[i] = h[j];
  });
  return out;
}

// ---------------------------------------------------------------------------------------------

function listOf<T extends string>(allowed: readonly T[]): (value: string) => T[] {
  return (value) => {
    const items = value.split(',');
    const bad = items.filter((s) => !allowed.includes(s as T));
    if (bad.length) throw new InvalidArgumentError(`expected a comma-separated subset of ${allowed.join(', ')}`);
    return items as T[];
  };
}

function intList(value: string): number[] {
  const items = value.split(',').map(Number);
  if (items.some((n) => !Number.isInteger(n) || n < 1)) throw new InvalidArgumentError('expected comma-separated positive integers');
  return items;
}

function blockList(value: string): number[] {
  const blocks = intList(value);
  if (blocks.some((b) => b < 16 || (b & (b - 1)) !== 0)) throw new InvalidArgumentError('expected powers of 2, at least 16');
  return blocks;
}

async function main(opts: Options): Promise<void> {
  if (opts.ortInfo) ort.env.logLevel = 'info';
  console.log(`onnxruntime-node ${ort.env.versions.common}, ${opts.threads} intra-op threads, ${opts.runs} timed runs after ${opts.warmup} warm-up`);
  const sections: Record<Section, (o: Options) => Promise<void>> = {
    nbits: sectionNbits,
    inputs: sectionInputs,
    int8: sectionInt8,
    embed: sectionEmbed,
    gather: sectionGather,
  };
  for (const s of opts.sections) await sections[s](opts);
}

const program = new Command('probe-quant')
  .description("weight-only quantised linears on ONNX Runtime's CPU kernels at SmolLM2-135M's shapes")
  .option('--sections <list>', `comma-separated, of ${SECTIONS.join(', ')}`, listOf(SECTIONS), [...SECTIONS])
  .option('--shapes <list>', 'linear shapes for nbits, inputs and int8: gateup, down, head', listOf(Object.keys(SHAPES) as ShapeName[]), [
    'gateup',
    'down',
    'head',
  ])
  .option('--rows <list>', 'rows per run (1: decode)', intList, [1, 8])
  .option('--blocks <list>', 'MatMulNBits block sizes (the first is used where one is)', blockList, [32, 64, 128])
  .option('--threads <n>', 'ONNX Runtime intra-op threads', parsePositiveInt, 2)
  .option('--runs <n>', 'timed rounds (each runs every case once)', parsePositiveInt, 100)
  .option('--warmup <n>', 'untimed rounds first', parsePositiveInt, 10)
  .option('--layers <n>', 'weight matrices per graph at the MLP shapes (the head has 1)', parsePositiveInt, 30)
  .option('--keep <fraction>', 'fraction of the 1536 neurons selected in the gather section', parsePositiveNumber, 0.2)
  .option('--budget <s>', 'seconds of timed rounds per table, at most (fewer rounds, never under 10)', parsePositiveNumber, 30)
  .option(
    '--ort-info',
    "ONNX Runtime's INFO log, each case's name before its first run (it names MatMulNBits' fallback to dequantising B); best with --runs 1",
    false,
  )
  .action(main);

await runCli(program);
