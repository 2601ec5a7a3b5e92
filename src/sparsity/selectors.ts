/**
 * Per-token selectors a model can serve, and what the serving graph needs of each:
 * - `gate`: gate-first, from the weights alone, so every model has it;
 * - `gate-rerank`: gate-first keeps RERANK times the neurons, computes their up projections,
 *   and keeps those with the largest exact outputs |SiLU(g) u| ||down|| (SwiGLU only: a GELU
 *   MLP's gate-first scores are its exact outputs already);
 * - `predictor-cor_gxo` / `predictor-magnitude`: the learned low-rank predictor trained on
 *   the oracle's Corrected GxO sets (or on activation magnitudes, for comparison), when
 *   `npm run train-predictor` has written one for these weights.
 * Selection runs by blocks of neurons (src/arch/token-mlp.ts); a tier's sparsity becomes a
 * number of blocks kept per layer and token.
 */
import * as ort from 'onnxruntime-node';
import { neuronValues } from '../arch/neurons.js';
import { TOKEN_BLOCKS, TOKEN_CANDIDATES, type TokenSelection } from '../arch/token-mlp.js';
import type { LoadedModel } from '../arch/load.js';
import type { ModelConfig } from '../model/types.js';
import type { KeptUnits } from './flops.js';
import { keptCount } from './masks.js';
import { readPredictor, type Predictor, type PredictorLabels } from './predictor.js';

export const SELECTORS = ['gate', 'gate-rerank', 'predictor-cor_gxo', 'predictor-magnitude'] as const;
export type Selector = (typeof SELECTORS)[number];

export const isSelector = (name: string): name is Selector => (SELECTORS as readonly string[]).includes(name);

const predictorLabels = (selector: Selector): PredictorLabels | null =>
  selector.startsWith('predictor-') ? (selector.slice('predictor-'.length) as PredictorLabels) : null;

/** `gate-rerank`'s first stage keeps this many times the neurons it finally keeps. */
export const RERANK = 2;

/** The model's predictor for `selector`, or null (gate-first needs none, or none was trained). */
export function predictorOf(model: LoadedModel, selector: Selector): Predictor | null {
  const labels = predictorLabels(selector);
  return labels ? readPredictor(model.dir, model.weightsHash, labels, model.config) : null;
}

/** Whether the model's MLP has a gate, whose gate-first candidates reranking re-scores (SwiGLU's). */
const reranks = (model: LoadedModel) => model.config.mlp === 'swiglu';

/** The selectors this model can serve: gate-first always (reranked with a gated MLP), predictors where trained. */
export function availableSelectors(model: LoadedModel): Selector[] {
  return SELECTORS.filter((s) => (s === 'gate-rerank' ? reranks(model) : predictorLabels(s) === null || predictorOf(model, s) !== null));
}

/**
 * What serves `activation: "token"`: the predictor trained on Corrected GxO where it recalls
 * more of the oracle's sets than gate-first on its held-out positions (mean over the trained
 * sparsities), else gate-first reranked by exact outputs (docs/eval: the best per-token mode
 * on both shipped models).
 */
export function servedSelector(model: LoadedModel): Selector {
  const gateFirst = reranks(model) ? 'gate-rerank' : 'gate';
  const predictor = predictorOf(model, 'predictor-cor_gxo');
  if (!predictor) return gateFirst;
  const mean = (r: Record<string, number>) => Object.values(r).reduce((a, b) => a + b, 0) / Object.values(r).length;
  return mean(predictor.meta.recall) > mean(predictor.meta.gateFirstRecall) ? 'predictor-cor_gxo' : gateFirst;
}

/**
 * The serving graph's selection for `selector`, by blocks of `block` neurons. Served: single
 * neurons, because blocks of neurons in checkpoint order lose the model (docs/eval: the default
 * model at 80% loses 6% perplexity selecting neurons, 100% with blocks of 16).
 */
export function tokenSelection(model: LoadedModel, selector: Selector, block = 1, outputSelected = false): TokenSelection {
  if (selector === 'gate') return { selector: 'gate', block, outputSelected };
  if (selector === 'gate-rerank') {
    if (!reranks(model)) throw new Error(`${model.dir}: gate-rerank needs a gated (SwiGLU) MLP; this model's GELU MLP is ranked exactly by gate`);
    return { selector: 'gate', block: 1, rerank: true, outputSelected };
  }
  const predictor = predictorOf(model, selector);
  if (!predictor) throw new Error(`${model.dir} has no ${selector} (run npm run train-predictor -- --model ${model.dir})`);
  return { selector: 'predictor', block, rank: predictor.rank, layers: predictor.layers, outputSelected };
}

/** Blocks each layer keeps per token at `sparsity`. */
export function keptBlocks(intermediate: number, block: number, sparsity: number): number {
  return keptCount(intermediate / block, sparsity);
}

/** Neurons whose up projections a token computes: the kept ones, or reranking's candidates. */
function upRows(intermediate: number, selection: TokenSelection, blocks: number): number {
  const kept = blocks * selection.block;
  return selection.selector === 'gate' && selection.rerank ? Math.min(intermediate, RERANK * kept) : kept;
}

/** The graph inputs of a per-token tier: blocks kept per layer and token (and reranking's candidates). */
export function tokenFeeds(intermediate: number, selection: TokenSelection, blocks: number): Record<string, ort.Tensor> {
  const scalar = (n: number) => new ort.Tensor('int64', BigInt64Array.of(BigInt(n)), [1]);
  const feeds = { [TOKEN_BLOCKS]: scalar(blocks) };
  return selection.selector === 'gate' && selection.rerank ? { ...feeds, [TOKEN_CANDIDATES]: scalar(upRows(intermediate, selection, blocks)) } : feeds;
}

/**
 * Per layer, what a token computes under per-token selection: the kept neurons, and the
 * selector's own products (a predictor's two low-rank factors, or gate-first's dense gate rows
 * of the neurons it then drops).
 */
export function tokenKeptUnits(config: ModelConfig, selection: TokenSelection, blocks: number): KeptUnits[] {
  const kept = blocks * selection.block;
  const d = config.hiddenSize;
  const F = config.intermediateSize;
  const extraUp = upRows(F, selection, blocks) - kept;
  const selector = selection.selector === 'gate' ? 2 * d * (F - kept + extraUp) : 2 * selection.rank * (d + F);
  return Array.from({ length: config.numLayers }, () => ({ mlp: kept, selector }));
}

/** Float32 weight bytes a token no longer reads under per-token selection (dropped neurons less the selector's own bytes). */
export function tokenSavedBytes(config: ModelConfig, selection: TokenSelection, blocks: number): number {
  const dropped = config.intermediateSize - blocks * selection.block;
  const d = config.hiddenSize;
  const extraUp = upRows(config.intermediateSize, selection, blocks) - blocks * selection.block;
  const selector = selection.selector === 'gate' ? d * (dropped + extraUp) : selection.rank * (d + config.intermediateSize) + config.intermediateSize;
  return 4 * config.numLayers * (neuronValues(config) * dropped - selector);
}
