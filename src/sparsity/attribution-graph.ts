/**
 * The attribution graph: the model's forward on a whole sequence, the mean cross-entropy over
 * chosen target positions, and its gradient with respect to every layer's MLP activations and
 * attention heads, all in one ONNX model.
 *
 * Inputs beyond the forward's: `target_ids` / `target_weights` ([batch, seq]: the token each
 * position should predict and how much its loss counts; 0 leaves a position out),
 * `mlp_scale.{l}` ([intermediate]: multiplies the layer's activations, 1 to attribute, k/n for
 * Integrated Gradients, 0 to ablate a neuron) and `head_gate.{l}` ([batch, seq, heads]: fixed at
 * 1, the multiplier on each head's output whose gradient attributes the head). With `cache`,
 * also the serving graph's `past_key_values.*` (the KV cache before the new tokens).
 *
 * Outputs: `loss`; per layer `mlp.{l}.a` and `mlp.{l}.g` (activations after scaling and dL/da,
 * [batch, seq, intermediate]), `heads.{l}.norm` (L2 norm of each head's output) and
 * `heads.{l}.g` (dL/dgate), both [batch, seq, heads]. With `mlpInputs`, also `mlp.{l}.x` (the
 * MLP's input, the normalised hidden state, [batch, seq, hidden]: what a per-token predictor reads).
 */
import { DecoderBuilder } from '../arch/decoder.js';
import { grad } from '../graph/autodiff.js';
import { Graph } from '../graph/graph.js';
import type { Value } from '../graph/types.js';
import type { ModelConfig, ModelWeights } from '../model/types.js';

export const mlpScaleName = (l: number) => `mlp_scale.${l}`;
export const headGateName = (l: number) => `head_gate.${l}`;

export interface AttributionGraph {
  graph: Graph;
  loss: Value;
  mlpScales: Value[];
  headGates: Value[];
}

/** Mean over weighted positions of -log softmax(logits)[target]. */
export function crossEntropy(g: Graph, logits: Value, targets: Value, weights: Value, vocab: number): Value {
  const dtype = logits.dtype;
  // log-sum-exp with the max detached: it cancels in exact arithmetic, so no gradient is lost.
  const max = g.stopGradient(g.reduceMax(logits, [-1], true));
  const logZ = g.add(max, g.log(g.reduceSum(g.exp(g.sub(logits, max)), [-1], true)));
  const vocabIds = g.const([...Array(vocab).keys()]);
  const oneHot = g.cast(g.equal(g.unsqueeze(targets, [-1]), vocabIds), dtype);
  const nll = g.reduceSum(g.mul(oneHot, g.sub(logZ, logits)), [-1], false); // [batch, seq]
  return g.div(g.reduceSum(g.mul(nll, weights), [0, 1], false), g.reduceSum(weights, [0, 1], false));
}

export interface AttributionGraphOptions {
  dtype?: 'float32' | 'float64';
  /**
   * Take a KV cache (`past_key_values.*`, held constant) and run only the new tokens: a decode
   * step's attribution, the way the step is served, at the cost of one token instead of the
   * whole sequence.
   */
  cache?: boolean;
  /** Also output each layer's MLP input as `mlp.{l}.x`. */
  mlpInputs?: boolean;
}

export function buildAttributionGraph(config: ModelConfig, weights: ModelWeights, options: AttributionGraphOptions = {}): AttributionGraph {
  const dtype = options.dtype ?? 'float32';
  const g = new Graph('attribution');
  const activations: Value[] = [];
  const headOutputs: Value[] = [];
  const mlpScales: Value[] = [];
  const headGates: Value[] = [];
  const mlpInputs: Value[] = [];
  const builder = new DecoderBuilder(g, config, {
    dtype,
    cache: options.cache,
    logitsToKeep: false,
    onMlpActivation(layer, a) {
      mlpScales[layer] = g.input(mlpScaleName(layer), dtype, [config.intermediateSize]);
      const scaled = g.mul(a, mlpScales[layer]);
      activations[layer] = scaled;
      return scaled;
    },
    onMlpInput: options.mlpInputs
      ? (layer, x) => {
          mlpInputs[layer] = x;
          return x;
        }
      : undefined,
    onHeadOutput(layer, o) {
      headGates[layer] = g.input(headGateName(layer), dtype, ['batch', 'seq', config.numHeads]);
      headOutputs[layer] = o;
      return g.mul(o, g.unsqueeze(headGates[layer], [-1]));
    },
  });
  const logits = builder.build(weights);
  const targets = g.input('target_ids', 'int64', ['batch', 'seq']);
  const targetWeights = g.input('target_weights', dtype, ['batch', 'seq']);
  const loss = crossEntropy(g, logits, targets, targetWeights, config.vocabSize);
  g.output(loss, 'loss');

  const L = config.numLayers;
  const grads = grad(g, loss, [...activations, ...headGates]);
  for (let l = 0; l < L; l++) {
    g.output(activations[l], `mlp.${l}.a`);
    g.output(grads[l], `mlp.${l}.g`);
    g.output(g.sqrt(g.reduceSum(g.mul(headOutputs[l], headOutputs[l]), [-1], false)), `heads.${l}.norm`);
    g.output(grads[L + l], `heads.${l}.g`);
    if (options.mlpInputs) g.output(mlpInputs[l], `mlp.${l}.x`);
  }
  return { graph: g, loss, mlpScales, headGates };
}
