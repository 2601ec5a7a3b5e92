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
 *   a unit of it can move the output. Needs no training.
 * - `predictor`: sigmoid((x A) B + bias), a low-rank predictor trained on the oracle's
 *   Corrected GxO sets (src/sparsity/predictor.ts).
 * A block's score is the sum of its neurons' scores; TopK keeps `token_blocks` blocks (a graph
 * input, so one graph serves every per-token tier).
 *
 * Measured at SmolLM2-135M's MLP shape, 30 chained MLPs, 2 threads, 80% sparsity
 * (scripts/probe-token-mlp.ts): one Gather per neuron row costs 68-77 us per call, so neuron
 * granularity saved little (1.18-1.58x on the MLPs against 4x for a static tier), while blocks
 * of 16 neurons copy runs of 37 KB and reached 2.2-2.6x.
 */
import type { Graph } from '../graph/graph.js';
import type { Value } from '../graph/types.js';
import type { LayerWeights, LlamaConfig } from '../model/types.js';

/** The graph input holding how many blocks each layer keeps per token. */
export const TOKEN_BLOCKS = 'token_blocks';
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
  | { selector: 'gate'; block: number; outputSelected?: boolean }
  | { selector: 'predictor'; block: number; rank: number; layers: PredictorWeights[]; outputSelected?: boolean };

export type SelectorName = TokenSelection['selector'];

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

/** Gate-first's per-neuron weight: ||up_i|| * ||down column i||. */
export function gateFirstWeights(w: LayerWeights): Float32Array {
  const [intermediate, hidden] = w.up.shape;
  const up = rowNorms(w.up.data, intermediate, hidden);
  const down = rowNorms(neuronMajorDown(w), intermediate, hidden);
  return up.map((u, i) => u * down[i]);
}

/** down ([hidden, intermediate]) as [intermediate, hidden]: neuron i's output column as row i. */
export function neuronMajorDown(w: LayerWeights): Float32Array {
  const [hidden, intermediate] = w.down.shape;
  const out = new Float32Array(hidden * intermediate);
  for (let h = 0; h < hidden; h++) for (let i = 0; i < intermediate; i++) out[i * hidden + h] = w.down.data[h * intermediate + i];
  return out;
}

/** gate and up rows interleaved per neuron: [intermediate, 2 * hidden]. */
function interleavedGateUp(w: LayerWeights): Float32Array {
  const [intermediate, hidden] = w.gate.shape;
  const out = new Float32Array(2 * hidden * intermediate);
  for (let i = 0; i < intermediate; i++) {
    out.set(w.gate.data.subarray(i * hidden, (i + 1) * hidden), 2 * i * hidden);
    out.set(w.up.data.subarray(i * hidden, (i + 1) * hidden), (2 * i + 1) * hidden);
  }
  return out;
}

/** data [N, blocks, B] at the kept blocks idx [N, kept]: [N, kept, B]. */
function keptActivations(g: Graph, data: Value, idx: Value, B: number): Value {
  const type = { dtype: idx.dtype, shape: [...idx.shape, B] };
  const shape = g.concat([g.shape(idx), g.const([B])], 0);
  const [repeated] = g.apply('Expand', [g.unsqueeze(idx, [-1]), shape], {}, undefined, [type]);
  const [out] = g.kernel('GatherElements', [data, repeated], [{ dtype: data.dtype, shape: type.shape }], { axis: 1 });
  return out;
}

/**
 * SwiGLU with per-token selection. `x` is [batch, seq, hidden]; returns the MLP output in the
 * same shape. `blocks` is the `token_blocks` input.
 */
export function tokenMlp(g: Graph, config: LlamaConfig, x: Value, w: LayerWeights, layer: number, selection: TokenSelection, blocks: Value, transposedGate: () => Float32Array): Value {
  const { hiddenSize: d, intermediateSize: F } = config;
  const B = selection.block;
  if (F % B !== 0) throw new Error(`a selection block of ${B} neurons does not divide the MLP's ${F}`);
  const nb = F / B;
  const p = `model.layers.${layer}.mlp`;
  const f32 = (data: Float32Array, shape: number[], name: string) => g.constant(data, shape, 'float32', name);
  const flat = g.reshape(x, [-1, d]); // [N, d]: every position selects on its own
  const column = g.unsqueeze(flat, [-1]); // [N, d, 1]

  let scores: Value; // [N, F], higher = keep
  let gateAct: Value | null = null; // gate-first: SiLU(gate) of every neuron, [N, F]
  if (selection.selector === 'gate') {
    const gate = g.matmul(flat, f32(transposedGate(), [d, F], `${p}.gate_proj.weight`));
    gateAct = g.mul(gate, g.sigmoid(gate));
    [scores] = g.kernel('Abs', [g.mul(gateAct, f32(gateFirstWeights(w), [F], `${p}.selector.weight`))], [{ dtype: 'float32', shape: flat.shape.slice(0, 1).concat(F) }]);
  } else {
    const { rank, layers } = selection;
    const pw = layers[layer];
    const logits = g.add(g.matmul(g.matmul(flat, f32(pw.a, [d, rank], `${p}.predictor.a`)), f32(pw.b, [rank, F], `${p}.predictor.b`)), f32(pw.bias, [F], `${p}.predictor.bias`));
    // Per neuron the logits rank as their sigmoids do; a block sums probabilities.
    scores = B === 1 ? logits : g.sigmoid(logits);
  }
  const blockScores = B === 1 ? scores : g.reduceSum(g.reshape(scores, [0, nb, B]), [-1], false); // [N, nb]
  const [, idx] = g.kernel('TopK', [blockScores, blocks], [
    { dtype: 'float32', shape: [flat.shape[0], 'kept'] },
    { dtype: 'int64', shape: [flat.shape[0], 'kept'] },
  ], { axis: -1, largest: 1, sorted: 0 });
  if (selection.outputSelected) g.output(idx, selectedName(layer));

  const down = g.reshape(g.gather(f32(neuronMajorDown(w), [nb, B * d], `${p}.down_proj.packed`), idx), [0, -1, d]); // [N, kB, d]
  let h: Value; // [N, kB, 1]: the kept neurons' activations
  if (gateAct) {
    const up = g.reshape(g.gather(f32(w.up.data, [nb, B * d], `${p}.up_proj.packed`), idx), [0, -1, d]); // [N, kB, d]
    // The kept neurons' SiLU(gate): GatherElements wants indices of the data's rank, so each
    // block index is repeated over the block's B neurons.
    const kept = g.reshape(keptActivations(g, g.reshape(gateAct, [0, nb, B]), idx, B), [0, -1, 1]); // [N, kB, 1]
    h = g.mul(g.matmul(up, column), kept);
  } else {
    const gateUp = g.reshape(g.gather(f32(interleavedGateUp(w), [nb, B * 2 * d], `${p}.gate_up_proj.packed`), idx), [0, -1, d]); // [N, 2kB, d]
    const both = g.reshape(g.matmul(gateUp, column), [0, -1, 2]); // [N, kB, 2]: gate, up
    const gate = g.slice(both, [0], [1], [2]);
    const up = g.slice(both, [1], [2], [2]);
    h = g.mul(g.mul(gate, g.sigmoid(gate)), up);
  }
  const y = g.matmul(g.reshape(h, [0, 1, -1]), down); // [N, 1, d]
  return g.reshapeAs(y, x);
}
