/**
 * Gate-first selection: each token's neurons ranked by what the gate projection alone says,
 * before up/down run: |SiLU(gate_i . x)| * ||up_i||_2 * ||down[:, i]||_2, the size of neuron
 * i's output when |up_i . x| is replaced by its row's norm (x is RMS-normalised, so of fixed
 * scale). A baseline for the learned predictor (src/sparsity/predictor.ts).
 */
import type { LayerWeights } from '../model/types.js';

/** Per neuron, ||up_i||_2 * ||down[:, i]||_2: the gate-independent factor of gate-first scores. */
export function gateFirstNorms(layer: Pick<LayerWeights, 'up' | 'down'>): Float32Array {
  const [F, H] = layer.up.shape;
  const out = new Float32Array(F);
  const down = layer.down.data; // [hidden, intermediate]
  for (let i = 0; i < F; i++) {
    let u = 0;
    for (let j = 0; j < H; j++) u += layer.up.data[i * H + j] ** 2;
    let d = 0;
    for (let j = 0; j < layer.down.shape[0]; j++) d += down[j * F + i] ** 2;
    out[i] = Math.sqrt(u) * Math.sqrt(d);
  }
  return out;
}

/** Gate-first scores of every neuron for one MLP input x ([hidden]); `norms` from gateFirstNorms. */
export function gateFirstScores(layer: Pick<LayerWeights, 'gate'>, norms: Float32Array, x: ArrayLike<number>): Float32Array {
  const [F, H] = layer.gate.shape;
  const w = layer.gate.data;
  const out = new Float32Array(F);
  for (let i = 0; i < F; i++) {
    let z = 0;
    for (let j = 0; j < H; j++) z += w[i * H + j] * x[j];
    out[i] = Math.abs(z / (1 + Math.exp(-z))) * norms[i];
  }
  return out;
}
