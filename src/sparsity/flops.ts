/**
 * Analytic FLOPs of one decoded token (a multiply-add counts 2), dense and with units removed.
 * Counted: the attention projections, attention over the context (scores and weighted sum),
 * the MLP and the LM head. Not counted: norms, RoPE, softmax and residual adds, which are
 * O(hidden) per layer, three orders below the matrix products at SmolLM2-135M's shape.
 */
import { neuronFlops } from '../arch/neurons.js';
import type { ModelConfig, ModelWeights } from '../model/types.js';

/** Units kept per layer; undefined means all of them. */
export interface KeptUnits {
  mlp?: number;
  heads?: number;
  /**
   * FLOPs a per-token selector adds per token in this layer, beyond the kept neurons' own
   * products: a predictor's, or gate-first's dense gate rows of the neurons it drops (and,
   * reranked, the up rows of the candidates it drops).
   */
  selector?: number;
}

export interface TokenFlops {
  attentionProjections: number;
  attentionContext: number;
  mlp: number;
  lmHead: number;
  total: number;
}

/**
 * FLOPs one query head costs per token at `context` attended positions: its q rows and o
 * columns, and its scores and weighted sum. K/V projections are shared by the heads of a group
 * and are not saved by removing one head.
 */
export const headFlops = (c: ModelConfig, context: number) => 2 * 2 * c.headDim * c.hiddenSize + 2 * 2 * c.headDim * context;

export function tokenFlops(c: ModelConfig, context: number, kept: KeptUnits[] = []): TokenFlops {
  const kvDim = c.numKvHeads * c.headDim;
  let attentionProjections = 0;
  let attentionContext = 0;
  let mlp = 0;
  for (let l = 0; l < c.numLayers; l++) {
    const heads = kept[l]?.heads ?? c.numHeads;
    const neurons = kept[l]?.mlp ?? c.intermediateSize;
    attentionProjections += 2 * c.hiddenSize * 2 * kvDim + heads * 2 * 2 * c.headDim * c.hiddenSize;
    attentionContext += heads * 2 * 2 * c.headDim * context;
    mlp += neurons * neuronFlops(c) + (kept[l]?.selector ?? 0);
  }
  const lmHead = 2 * c.hiddenSize * c.vocabSize;
  return { attentionProjections, attentionContext, mlp, lmHead, total: attentionProjections + attentionContext + mlp + lmHead };
}

/**
 * The share of the prunable FLOPs (MLP neurons and query heads, each weighted by what it
 * costs) that a mask removes.
 */
export function flopWeightedSparsity(c: ModelConfig, context: number, kept: KeptUnits[]): number {
  let dense = 0;
  let executed = 0;
  for (let l = 0; l < c.numLayers; l++) {
    dense += c.intermediateSize * neuronFlops(c) + c.numHeads * headFlops(c, context);
    executed += (kept[l]?.mlp ?? c.intermediateSize) * neuronFlops(c) + (kept[l]?.heads ?? c.numHeads) * headFlops(c, context);
  }
  return 1 - executed / dense;
}

export interface GenerationShape {
  promptTokens: number;
  /** Forward passes of single decoded tokens (a generation's last token is never fed back). */
  decodeSteps: number;
  /** Prompt positions whose logits were computed (1, or all of them for prompt logprobs). */
  promptLogits: number;
  /** False when the prompt's pass was shared with an earlier choice (then it costs nothing here). */
  prefillRan?: boolean;
}

/**
 * FLOPs of a generation as the graphs run it: the prompt in one pass (each position attends to
 * the ones before it, logits only where asked), then one pass per decoded token.
 */
export function generationFlops(c: ModelConfig, g: GenerationShape, prefillKept: KeptUnits[], decodeKept: KeptUnits[]): number {
  let total = 0;
  for (let p = 0; p < (g.prefillRan === false ? 0 : g.promptTokens); p++) {
    const f = tokenFlops(c, p + 1, prefillKept);
    total += f.total - (p < g.promptTokens - g.promptLogits ? f.lmHead : 0);
  }
  for (let i = 0; i < g.decodeSteps; i++) total += tokenFlops(c, g.promptTokens + i + 1, decodeKept).total;
  return total;
}

/**
 * Weight bytes one decoded token reads (float32): every matrix it multiplies, one embedding
 * row. Decode on a CPU is memory-bound, so dense bytes / a tier's bytes bounds its speedup.
 */
export function weightBytesPerToken(w: ModelWeights): number {
  // One row of the embedding (and of learned positions), the final norm and the head, with their biases.
  let n = w.embed.shape[1] + (w.positions?.shape[1] ?? 0) + w.norm.data.length + (w.normBias?.data.length ?? 0);
  n += w.lmHead.data.length + (w.lmHeadBias?.data.length ?? 0);
  for (const l of w.layers) for (const t of Object.values(l)) n += t.data.length;
  return 4 * n;
}
