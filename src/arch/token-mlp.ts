/**
 * Per-token MLP selection inside the serving graph: every position of every layer picks its
 * own top-k blocks of neurons before the MLP's weights are read, and only those blocks' rows
 * are gathered and multiplied. No JavaScript runs between layers, and no weights are copied
 * outside the graph.
 *
 * Layout. Hugging Face stores gate and up as [intermediate, hidden]: already neuron-major. The
 * builder keeps down transposed the same way ([intermediate, hidden]), and groups `block`
 * consecutive neurons into one row of a packed tensor, so one Gather index copies a block's
 * weights in one run of memory:
 * - learned predictor: gate and up interleaved per neuron, [blocks, block * 2 * hidden], and
 *   down, [blocks, block * hidden];
 * - gate-first: the gate stays a dense [hidden, intermediate] product (its values are the
 *   scores), up and down are packed as down is above.
 *
 * Selectors score each neuron from the layer's MLP input x:
 * - `gate`: |SiLU(gate_i(x))| * ||up_i|| * ||down_i||: the activation's size times how much
 *   a unit of it can move the output. Needs no training. With `rerank` (what serves), the top
 *   `token_candidates` get their up projections computed and the `token_blocks` of them with
 *   the largest exact outputs |SiLU(g_i) u_i| * ||down_i|| are kept. In a GELU MLP (Phi, GPT-2)
 *   the dense input projection gives each neuron's exact activation a_i = gelu(up_i(x) + b_i),
 *   and the score is its exact output |a_i| * ||down_i||: nothing is left to rerank.
 * - `predictor`: sigmoid((x A) B + bias), a low-rank predictor trained on the oracle's
 *   Corrected GxO sets (src/sparsity/predictor.ts).
 * A block's score is the sum of its neurons' scores; TopK keeps `token_blocks` blocks (a graph
 * input, so one graph serves every per-token tier).
 *
 * Single neurons keep the model; blocks read faster but lose it (docs/per-token.md: the default
 * model at 80% loses 6% perplexity by neuron, 100% by blocks of 16). Either way the gathered
 * rows are copied before they are multiplied, so at SmolLM2-135M's shape per-token decode is
 * not faster than dense (docs/bench.md).
 */
import type { Graph } from '../graph/graph.js';
import type { Value } from '../graph/types.js';
import type { HostTensor, LayerWeights, ModelConfig } from '../model/types.js';

/** The graph input holding how many blocks each layer keeps per token. */
export const TOKEN_BLOCKS = 'token_blocks';
/** With gate-first's `rerank`: how many neurons each layer's first stage keeps per token. */
export const TOKEN_CANDIDATES = 'token_candidates';

export interface TokenInputs {
  blocks: Value;
  candidates: Value | null;
}
/** Layer l's selected blocks ([positions, kept blocks], int64), an output with `outputSelected`. */
export const selectedName = (layer: number) => `selected.${layer}`;

/** One layer's low-rank predictor: scores = sigmoid((x A) B + bias). */
export interface PredictorWeights {
  /** [hidden, rank] */
  a: Float32Array;
  /** [rank, intermediate] */
  b: Float32Array;
  /** [intermediate] */
  bias: Float32Array;
}

export type TokenSelection =
  /**
   * `rerank` (single neurons only): gate-first keeps `token_candidates` neurons, computes their
   * up projections, and keeps the `token_blocks` of them whose exact outputs |SiLU(g) u| ||down||
   * are largest; only those are multiplied by down.
   */
  | { selector: 'gate'; block: number; rerank?: boolean; outputSelected?: boolean }
  | { selector: 'predictor'; block: number; rank: number; layers: PredictorWeights[]; outputSelected?: boolean };

/** The largest of 16, 8, 4, 2, 1 that divides the MLP's width: neurons per selection block. */
export function defaultBlock(intermediate: number): number {
  return [16, 8, 4, 2, 1].find((b) => intermediate % b === 0)!;
}

/** L2 norm of each row of a row-major [rows, cols] matrix. */
function rowNorms(data: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let c = 0; c < cols; c++) s += data[r * cols + c] ** 2;
    out[r] = Math.sqrt(s);
  }
  return out;
}

/**
 * Gate-first's per-neuron weight: ||up_i|| * ||down column i|| (in a GELU MLP, where the score
 * is the exact activation, ||down column i|| alone); `down` as neuronMajorDown gives it.
 */
export function gateFirstWeights(w: Pick<LayerWeights, 'gate' | 'up' | 'down'>, down = neuronMajorDown(w)): Float32Array {
  const [intermediate, hidden] = w.up.shape;
  const downNorms = rowNorms(down, intermediate, hidden);
  if (!w.gate) return downNorms;
  const up = rowNorms(w.up.data, intermediate, hidden);
  return up.map((u, i) => u * downNorms[i]);
}

/** gelu_new: 0.5 z (1 + tanh(sqrt(2/pi) (z + 0.044715 z^3))), what FastGelu computes. */
const geluTanh = (z: number) => 0.5 * z * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (z + 0.044715 * z ** 3)));

/**
 * Gate-first scores of every neuron for one MLP input x ([hidden]), computed in JavaScript as the
 * graph's `gate` selector computes them: |SiLU(gate_i . x)| (in a GELU MLP |gelu(up_i . x + b_i)|)
 * times `weights` (gateFirstWeights). The predictor's training compares against it as a baseline.
 */
export function gateFirstScores(layer: Pick<LayerWeights, 'gate' | 'up' | 'upBias'>, weights: Float32Array, x: ArrayLike<number>): Float32Array {
  const scored = layer.gate ?? layer.up;
  const [F, H] = scored.shape;
  const w = scored.data;
  const out = new Float32Array(F);
  for (let i = 0; i < F; i++) {
    let z = layer.gate ? 0 : (layer.upBias?.data[i] ?? 0);
    for (let j = 0; j < H; j++) z += w[i * H + j] * x[j];
    out[i] = Math.abs(layer.gate ? z / (1 + Math.exp(-z)) : geluTanh(z)) * weights[i];
  }
  return out;
}

/** down ([hidden, intermediate]) as [intermediate, hidden]: neuron i's output column as row i. */
export function neuronMajorDown(w: Pick<LayerWeights, 'down'>): Float32Array {
  const [hidden, intermediate] = w.down.shape;
  const out = new Float32Array(hidden * intermediate);
  for (let h = 0; h < hidden; h++) for (let i = 0; i < intermediate; i++) out[i * hidden + h] = w.down.data[h * intermediate + i];
  return out;
}

/** gate and up rows interleaved per neuron: [intermediate, 2 * hidden]. */
function interleavedGateUp(gate: HostTensor, up: HostTensor): Float32Array {
  const [intermediate, hidden] = gate.shape;
  const out = new Float32Array(2 * hidden * intermediate);
  for (let i = 0; i < intermediate; i++) {
    out.set(gate.data.subarray(i * hidden, (i + 1) * hidden), 2 * i * hidden);
    out.set(up.data.subarray(i * hidden, (i + 1) * hidden), (2 * i + 1) * hidden);
  }
  return out;
}

/** data [batch, seq, blocks, B] at the kept blocks idx [batch, seq, kept]: [batch, seq, kept, B]. */
function keptActivations(g: Graph, data: Value, idx: Value, B: number): Value {
  const type = { dtype: idx.dtype, shape: [...idx.shape, B] };
  const shape = g.concat([g.shape(idx), g.const([B])], 0);
  // GatherElements wants indices of the data's rank: each block index repeated over its B neurons.
  const [repeated] = g.apply('Expand', [g.unsqueeze(idx, [-1]), shape], {}, undefined, [type]);
  const [out] = g.kernel('GatherElements', [data, repeated], [{ dtype: data.dtype, shape: type.shape }], { axis: 2 });
  return out;
}

/**
 * The MLP with per-token selection (SwiGLU, or GELU with its biases). `x` is [batch, seq,
 * hidden]; returns the MLP output in the same shape. `inputs` are the graph's `token_blocks` (and `token_candidates`). Every position
 * keeps its own leading axes through the gathers and batched products, so no op reshapes
 * positions together. It costs kernels: a decode step at SmolLM2-135M's shape ran 609 with
 * gate-first by single neurons, 309 dense (docs/per-token.md).
 */
export function tokenMlp(
  g: Graph,
  config: ModelConfig,
  x: Value,
  w: LayerWeights,
  layer: number,
  selection: TokenSelection,
  inputs: TokenInputs,
  /**
   * The activation gate-first ranks, from the dense input projection ([batch, seq,
   * intermediate]): SiLU(gate x), or in a GELU MLP gelu(up x + b), each neuron's exact activation.
   */
  selectorActivation: (x: Value) => Value,
): Value {
  const { hiddenSize: d, intermediateSize: F } = config;
  const B = selection.block;
  if (F % B !== 0) throw new Error(`a selection block of ${B} neurons does not divide the MLP's ${F}`);
  const nb = F / B;
  const p = `model.layers.${layer}.mlp`;
  const f32 = (data: Float32Array, shape: number[], name: string) => g.constant(data, shape, 'float32', name);
  const column = g.unsqueeze(x, [-1]); // [batch, seq, d, 1]
  const down = neuronMajorDown(w);
  const [batch, seq] = x.shape;

  let scores: Value; // [batch, seq, F], higher = keep
  let gateAct: Value | null = null; // gate-first: SiLU(gate) of every neuron, or its GELU activation
  if (selection.selector === 'gate') {
    gateAct = selectorActivation(x);
    [scores] = g.kernel('Abs', [g.mul(gateAct, f32(gateFirstWeights(w, down), [F], `${p}.selector.weight`))], [{ dtype: 'float32', shape: [batch, seq, F] }]);
  } else {
    const { rank, layers } = selection;
    const pw = layers[layer];
    const logits = g.add(
      g.matmul(g.matmul(x, f32(pw.a, [d, rank], `${p}.predictor.a`)), f32(pw.b, [rank, F], `${p}.predictor.b`)),
      f32(pw.bias, [F], `${p}.predictor.bias`),
    );
    // Per neuron the logits rank as their sigmoids do; a block sums probabilities.
    scores = B === 1 ? logits : g.sigmoid(logits);
  }
  const topK = (s: Value, k: Value) =>
    g.kernel(
      'TopK',
      [s, k],
      [
        { dtype: 'float32', shape: [batch, seq, 'kept'] },
        { dtype: 'int64', shape: [batch, seq, 'kept'] },
      ],
      { axis: -1, largest: 1, sorted: 0 },
    )[1];
  const atIndices = (data: Value, indices: Value) => g.kernel('GatherElements', [data, indices], [{ dtype: data.dtype, shape: indices.shape }], { axis: 2 })[0];
  const addDownBias = (y: Value) => (w.downBias ? g.add(y, f32(w.downBias.data, [d], `${p}.down_proj.bias`)) : y);
  // Reranked gate-first: candidates by gate-first score, the kept ones by their exact outputs.
  if (gateAct && inputs.candidates) {
    if (B !== 1) throw new Error('gate-first reranking selects single neurons');
    const candidates = topK(scores, inputs.candidates); // [batch, seq, candidates]
    const u = g.reshape(g.matmul(g.gather(f32(w.up.data, [F, d], `${p}.up_proj.packed`), candidates), column), [0, 0, -1]);
    const a = g.mul(atIndices(gateAct, candidates), u); // the candidates' exact activations
    const downNorms = g.gather(f32(rowNorms(down, F, d), [F], `${p}.down_proj.norms`), candidates);
    const [exact] = g.kernel('Abs', [g.mul(a, downNorms)], [{ dtype: 'float32', shape: a.shape }]);
    const kept = topK(exact, inputs.blocks); // positions among the candidates
    const idx = atIndices(candidates, kept);
    if (selection.outputSelected) g.output(idx, selectedName(layer));
    const y = g.matmul(g.unsqueeze(atIndices(a, kept), [2]), g.gather(f32(down, [F, d], `${p}.down_proj.packed`), idx));
    return addDownBias(g.reshape(y, [0, 0, d]));
  }
  const blockScores = B === 1 ? scores : g.reduceSum(g.reshape(scores, [0, 0, nb, B]), [-1], false); // [batch, seq, nb]
  const idx = topK(blockScores, inputs.blocks);
  if (selection.outputSelected) g.output(idx, selectedName(layer));
  /** The kept blocks' rows of a packed [nb, B * rows * d] tensor, as [batch, seq, kept * B * rows, d]. */
  const gathered = (data: Float32Array, rows: number, name: string) => {
    const t = g.gather(f32(data, [nb, B * rows * d], name), idx);
    return B * rows === 1 ? t : g.reshape(t, [0, 0, -1, d]);
  };

  let h: Value; // [batch, seq, 1, kept neurons]: the kept neurons' activations, as a row
  if (gateAct) {
    const kept = B === 1 ? atIndices(gateAct, idx) : g.reshape(keptActivations(g, g.reshape(gateAct, [0, 0, nb, B]), idx, B), [0, 0, -1]); // [batch, seq, kB]
    if (w.gate) {
      const u = g.matmul(gathered(w.up.data, 1, `${p}.up_proj.packed`), column); // [batch, seq, kB, 1]
      h = g.mul(g.reshape(u, [0, 0, 1, -1]), g.unsqueeze(kept, [2]));
    } else {
      h = g.unsqueeze(kept, [2]); // GELU: the selector's activations are the neurons' own
    }
  } else if (w.gate) {
    const both = g.reshape(g.matmul(gathered(interleavedGateUp(w.gate, w.up), 2, `${p}.gate_up_proj.packed`), column), [0, 0, -1, 2]); // [batch, seq, kB, 2]: gate, up
    const gate = g.slice(both, [0], [1], [3]);
    const up = g.slice(both, [1], [2], [3]);
    h = g.reshape(g.mul(g.mul(gate, g.sigmoid(gate)), up), [0, 0, 1, -1]);
  } else {
    // GELU: the kept up rows and their biases; FastGelu is gelu_new.
    let u = g.reshape(g.matmul(gathered(w.up.data, 1, `${p}.up_proj.packed`), column), [0, 0, 1, -1]);
    if (w.upBias) u = g.add(u, g.reshape(g.gather(f32(w.upBias.data, [nb, B], `${p}.up_proj.bias_packed`), idx), [0, 0, 1, -1]));
    [h] = g.kernel('com.microsoft.FastGelu', [u], [{ dtype: 'float32', shape: u.shape }]);
  }
  const y = g.matmul(h, gathered(down, 1, `${p}.down_proj.packed`)); // [batch, seq, 1, d]
  return addDownBias(g.reshape(y, [0, 0, d]));
}
