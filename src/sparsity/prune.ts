/**
 * Sparse execution that skips work: a neuron that is not kept is not multiplied. For a tier,
 * each layer's MLP keeps only the rows of gate/up and the columns of down of its kept neurons,
 * so the serving graph built from the pruned weights multiplies smaller matrices.
 */
import type { HostTensor, LayerWeights, LlamaWeights } from '../model/types.js';

function rows(t: HostTensor, keep: readonly number[]): HostTensor {
  const cols = t.shape[1];
  const data = new Float32Array(keep.length * cols);
  for (const [i, r] of keep.entries()) data.set(t.data.subarray(r * cols, (r + 1) * cols), i * cols);
  return { shape: [keep.length, cols], data };
}

function columns(t: HostTensor, keep: readonly number[]): HostTensor {
  const [nRows, nCols] = t.shape;
  const data = new Float32Array(nRows * keep.length);
  for (let r = 0; r < nRows; r++) {
    const src = r * nCols;
    const dst = r * keep.length;
    for (let i = 0; i < keep.length; i++) data[dst + i] = t.data[src + keep[i]];
  }
  return { shape: [nRows, keep.length], data };
}

/** The MLP of one layer reduced to the neurons in `keep`. */
export function pruneLayerMlp(w: LayerWeights, keep: readonly number[]): LayerWeights {
  return { ...w, gate: rows(w.gate, keep), up: rows(w.up, keep), down: columns(w.down, keep) };
}

/** Weights whose MLPs hold only the kept neurons of each layer (attention untouched). */
export function pruneMlp(weights: LlamaWeights, keep: readonly (readonly number[])[]): LlamaWeights {
  if (keep.length !== weights.layers.length) throw new Error(`a mask for ${keep.length} layers given to a model of ${weights.layers.length}`);
  return { ...weights, layers: weights.layers.map((w, l) => pruneLayerMlp(w, keep[l])) };
}

/** One layer's kept MLP weights in the serving graph's [in, out] layout (y = x @ W). */
export interface GatheredMlp {
  /** [hidden, 2 * kept]: the kept gate columns, then the kept up columns (the fused gate/up product). */
  gateUp: Float32Array;
  /** [kept, hidden] */
  down: Float32Array;
}

/**
 * What pruning a layer's MLP and then laying it out for the graph (`sideBySide` for gate/up,
 * `transposed` for down) gives, gathered in one pass without the pruned copy in between: a
 * per-prompt request does this for every layer.
 */
export function gatherLayerMlp(w: LayerWeights, keep: readonly number[]): GatheredMlp {
  const k = keep.length;
  const [intermediate, hidden] = w.gate.shape;
  // gate/up are [intermediate, hidden]: neuron keep[j]'s row becomes column j (gate) and k + j (up).
  const gateUp = new Float32Array(hidden * 2 * k);
  keep.forEach((n, j) => {
    for (let h = 0; h < hidden; h++) {
      gateUp[h * 2 * k + j] = w.gate.data[n * hidden + h];
      gateUp[h * 2 * k + k + j] = w.up.data[n * hidden + h];
    }
  });
  // down is [hidden, intermediate]: neuron keep[j]'s column becomes row j.
  const down = new Float32Array(k * hidden);
  keep.forEach((n, j) => {
    for (let h = 0; h < hidden; h++) down[j * hidden + h] = w.down.data[h * intermediate + n];
  });
  return { gateUp, down };
}
