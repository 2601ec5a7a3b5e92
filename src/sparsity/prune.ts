/**
 * Sparse execution that skips work: a neuron that is not kept is not multiplied. For a tier,
 * each layer's MLP keeps only what its kept neurons own (src/arch/neurons.ts: for LLaMA the
 * rows of gate/up and the columns of down), so the serving graph built from the pruned weights
 * multiplies smaller matrices.
 */
import { keepNeurons, neuronSlices } from '../arch/neurons.js';
import type { ModelConfig, ModelWeights } from '../model/types.js';

/** Weights whose MLPs hold only the kept neurons of each layer (attention untouched). */
export function pruneMlp(config: ModelConfig, weights: ModelWeights, keep: readonly (readonly number[])[]): ModelWeights {
  if (keep.length !== weights.layers.length) throw new Error(`a mask for ${keep.length} layers given to a model of ${weights.layers.length}`);
  const slices = neuronSlices(config);
  return { ...weights, layers: weights.layers.map((w, l) => keepNeurons(w, keep[l], slices)) };
}
