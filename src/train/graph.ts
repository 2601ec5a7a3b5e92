/**
 * Training graphs from the same forward definition as serving: weights become inputs, the
 * loss is the mean next-token cross-entropy, and autodiff appends every weight's gradient.
 */
import { DecoderBuilder, type Parameter } from '../arch/decoder.js';
import { grad } from '../graph/autodiff.js';
import { Graph } from '../graph/graph.js';
import type { ModelConfig, ModelWeights } from '../model/types.js';
import { crossEntropy } from '../sparsity/attribution-graph.js';

export const gradName = (param: string) => `grad.${param}`;

export interface TrainingGraph {
  graph: Graph;
  /** By Hugging Face tensor name; linear weights in [in, out] layout. */
  parameters: Map<string, Parameter>;
}

/**
 * Inputs: `input_ids`, `position_ids`, `target_ids` ([batch, seq]), `target_weights` ([batch,
 * seq], 1 where a target counts) and every parameter. Outputs: `loss` and, unless
 * `withGradients` is false, `grad.<name>` for every parameter.
 */
export function buildTrainingGraph(config: ModelConfig, weights: ModelWeights, withGradients = true, dtype: 'float32' | 'float64' = 'float32'): TrainingGraph {
  const g = new Graph(withGradients ? 'train' : 'eval');
  const builder = new DecoderBuilder(g, config, { trainable: true, dtype });
  const logits = builder.build(weights);
  const targets = g.input('target_ids', 'int64', ['batch', 'seq']);
  const targetWeights = g.input('target_weights', dtype, ['batch', 'seq']);
  const loss = crossEntropy(g, logits, targets, targetWeights, config.vocabSize);
  g.output(loss, 'loss');
  if (withGradients) {
    const names = [...builder.parameters.keys()];
    const grads = grad(
      g,
      loss,
      names.map((n) => builder.parameters.get(n)!.value),
    );
    for (const [i, n] of names.entries()) g.output(grads[i], gradName(n));
  }
  return { graph: g, parameters: builder.parameters };
}
