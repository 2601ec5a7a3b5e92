/**
 * What one MLP neuron owns: index i along one axis of some of a layer's tensors (a row of each
 * input projection, a column of the output projection, an entry of a per-neuron bias).
 * Pruning, FLOP and byte counting read this description instead of naming tensors, so that an
 * architecture with another MLP (Phi's fc1/fc2 with biases, GPT-2's c_fc/c_proj) brings its
 * own table and nothing else changes.
 */
import type { HostTensor, LayerWeights, ModelConfig } from '../model/types.js';

export interface NeuronSlice {
  tensor: keyof LayerWeights;
  /** Neuron i owns index i along this axis: 0 for rows ([intermediate, hidden]), 1 for columns ([hidden, intermediate]). */
  axis: 0 | 1;
  /** A per-neuron bias: one value, one add per token. Otherwise `hidden` values, `hidden` multiply-adds. */
  bias?: true;
}

/** LLaMA's SwiGLU neuron i: row i of gate and of up, column i of down. */
const SWIGLU_NEURON: readonly NeuronSlice[] = [
  { tensor: 'gate', axis: 0 },
  { tensor: 'up', axis: 0 },
  { tensor: 'down', axis: 1 },
];

/** A GELU MLP's neuron i (Phi's fc1/fc2, GPT-2's c_fc/c_proj): row i of up and its bias, column i of down. */
const GELU_NEURON: readonly NeuronSlice[] = [
  { tensor: 'up', axis: 0 },
  { tensor: 'upBias', axis: 0, bias: true },
  { tensor: 'down', axis: 1 },
];

/** The slices one MLP neuron owns in a model of `config`. */
export function neuronSlices(config: ModelConfig): readonly NeuronSlice[] {
  return config.mlp === 'swiglu' ? SWIGLU_NEURON : GELU_NEURON;
}

/** Values one neuron owns: 4 bytes each in float32. */
export function neuronValues(config: ModelConfig): number {
  return neuronSlices(config).reduce((n, s) => n + (s.bias ? 1 : config.hiddenSize), 0);
}

/** FLOPs one neuron costs per token (a multiply-add counts 2, a bias add 1). */
export function neuronFlops(config: ModelConfig): number {
  return neuronSlices(config).reduce((n, s) => n + (s.bias ? 1 : 2 * config.hiddenSize), 0);
}

/** The entries of `t` at `keep` along `axis` (a 1-D tensor's own axis is 0). */
function take(t: HostTensor, axis: 0 | 1, keep: readonly number[]): HostTensor {
  if (t.shape.length === 1) return { shape: [keep.length], data: Float32Array.from(keep, (i) => t.data[i]) };
  const [rows, cols] = t.shape;
  if (axis === 0) {
    const data = new Float32Array(keep.length * cols);
    for (const [i, r] of keep.entries()) data.set(t.data.subarray(r * cols, (r + 1) * cols), i * cols);
    return { shape: [keep.length, cols], data };
  }
  const data = new Float32Array(rows * keep.length);
  for (let r = 0; r < rows; r++) for (let i = 0; i < keep.length; i++) data[r * keep.length + i] = t.data[r * cols + keep[i]];
  return { shape: [rows, keep.length], data };
}

/** One layer with only the neurons in `keep` (their order), everything else shared. */
export function keepNeurons(w: LayerWeights, keep: readonly number[], slices: readonly NeuronSlice[]): LayerWeights {
  const out = { ...w };
  for (const { tensor, axis } of slices) {
    const t = w[tensor];
    if (!t) throw new Error(`an MLP neuron owns ${tensor}, which this layer lacks`);
    out[tensor] = take(t, axis, keep);
  }
  return out;
}
