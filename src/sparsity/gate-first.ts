/**
 * Gate-first selection: each token's neurons ranked by what the gate projection alone says,
 * before up/down run: |SiLU(gate_i . x)| * ||up_i||_2 * ||down[:, i]||_2, the size of neuron
 * i's output when |up_i . x| is replaced by its row's norm (x is RMS-normalised, so of fixed
 * scale). A baseline for the learned predictor (src/sparsity/predictor.ts).
 */
import type { LayerWeights } from '../model/types.js';

/** Gate-first scores of every neuron for one MLP input x ([hidden]); `norms` from gateFirstWeights (src/arch/token-mlp.ts, what the graph uses). */
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
