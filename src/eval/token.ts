/**
 * The per-token served modes, as the server runs them: the serving graph with per-token
 * selection inside it (src/arch/token-mlp.ts), one session per (selector, block size), the
 * number of kept blocks fed per run (`token_blocks`). A variant is a selector at a block size:
 * `token:gate/1`, `token:gate/16`, `token:predictor-cor_gxo/16`, ...
 *
 * Prompts: the prompt pass runs dense (the masked model, every neuron kept), each decode step
 * through the variant's session. Passages: the dense context through the dense model, then
 * every scored position in one pass through the variant's session on that cache; each
 * position selects its own blocks, exactly as step-by-step decoding would.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type * as ort from 'onnxruntime-node';
import { defaultBlock, type TokenSelection } from '../arch/token-mlp.js';
import type { LoadedModel } from '../arch/load.js';
import type { QuantSpec } from '../model/quant.js';
import type { KvCache } from '../runtime/kv-cache.js';
import { argmax, logSoftmax } from '../runtime/sampling.js';
import { DecoderSession, type OrtOptions } from '../runtime/session.js';
import { predictorFile } from '../sparsity/predictor.js';
import { availableSelectors, keptBlocks, SELECTORS, tokenFeeds, tokenSelection, type Selector } from '../sparsity/selectors.js';

export interface TokenVariant {
  selector: Selector;
  /** Neurons per selection block. */
  block: number;
}

export const variantName = (v: TokenVariant): string => `token:${v.selector}/${v.block}`;

/**
 * The variants evaluated for `model`: gate-first at single neurons and at the model's default
 * block, each trained predictor at the default block and at single neurons; only the
 * `selectors` asked for (default: every one the model has). Asking for a predictor the model
 * lacks is an error.
 */
export function tokenVariants(model: LoadedModel, selectors?: readonly Selector[]): TokenVariant[] {
  const available = availableSelectors(model);
  for (const s of selectors ?? []) {
    if (available.includes(s)) continue;
    if (s === 'gate-rerank') throw new Error(`${model.dir} has no gate-rerank: its GELU MLP has no gate (gate ranks it by exact outputs)`);
    throw new Error(`${model.dir} has no ${s} (run npm run train-predictor -- --model ${model.dir})`);
  }
  const B = defaultBlock(model.config.intermediateSize);
  const out: TokenVariant[] = [];
  for (const selector of SELECTORS.filter((s) => available.includes(s) && (!selectors || selectors.includes(s)))) {
    const blocks = selector === 'gate-rerank' ? [1] : selector === 'gate' ? [1, B] : [B, 1];
    for (const block of new Set(blocks)) out.push({ selector, block });
  }
  return out;
}

/** sha256 of each predictor file the variants read: a retrained predictor is another run. */
export function predictorHashes(model: LoadedModel, variants: readonly TokenVariant[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const { selector } of variants) {
    if (!selector.startsWith('predictor-') || out[selector]) continue;
    out[selector] = createHash('sha256')
      .update(readFileSync(predictorFile(model.dir, selector.slice('predictor-'.length) as 'cor_gxo' | 'magnitude')))
      .digest('hex');
  }
  return out;
}

/** Neurons a variant keeps per layer and token at `sparsity`. */
export function tokenKeptNeurons(intermediate: number, block: number, sparsity: number): number {
  return keptBlocks(intermediate, block, sparsity) * block;
}

export class TokenModel {
  private constructor(
    readonly variant: TokenVariant,
    private readonly selection: TokenSelection,
    private readonly intermediate: number,
    private readonly session: DecoderSession,
  ) {}

  /** With `quant`, as served: constant weights quantised, the rows the selection gathers float32. */
  static async create(model: LoadedModel, variant: TokenVariant, options: OrtOptions = {}, quant?: QuantSpec): Promise<TokenModel> {
    const selection = tokenSelection(model, variant.selector, variant.block, true);
    const session = await DecoderSession.create(model.config, model.weights, options, { tokenSelection: selection, quant });
    return new TokenModel(variant, selection, model.config.intermediateSize, session);
  }

  private feeds(sparsity: number): Record<string, ort.Tensor> {
    return tokenFeeds(this.intermediate, this.selection, keptBlocks(this.intermediate, this.variant.block, sparsity));
  }

  /**
   * Greedy decoding after a dense prompt pass (its cache and its next token): up to `maxTokens`
   * tokens, each decode step selecting its own blocks; ends after an eos (not in the output).
   */
  async greedy(after: { cache: KvCache; next: number }, sparsity: number, maxTokens: number, eos: ReadonlySet<number>): Promise<number[]> {
    const feeds = this.feeds(sparsity);
    const out: number[] = [];
    let { cache, next: token } = after;
    for (let t = 0; t < maxTokens; t++) {
      if (eos.has(token)) break;
      out.push(token);
      if (t + 1 === maxTokens) break;
      const step = await this.session.forward([token], cache, 1, feeds);
      cache = step.cache;
      token = argmax(step.logits);
    }
    return out;
  }

  /**
   * Negative log-likelihood (nats) of tokens[p + 1] at each position p from `cache.length` on,
   * in one pass after the dense `cache` of tokens[0 .. cache.length); and, per position and
   * layer, the neurons the selection kept.
   */
  async nll(tokens: number[], cache: KvCache, sparsity: number): Promise<{ nats: number[]; kept: number[][][] }> {
    const start = cache.length;
    const inputs = tokens.slice(start, -1);
    const { logits, selected } = await this.session.forward(inputs, cache, inputs.length, this.feeds(sparsity));
    const V = logits.length / inputs.length;
    const nats = inputs.map((_, q) => -logSoftmax(logits.subarray(q * V, (q + 1) * V))[tokens[start + q + 1]]);
    const { block } = this.variant;
    const kb = keptBlocks(this.intermediate, block, sparsity);
    const kept = inputs.map((_, q) =>
      selected!.map((layer) => {
        const neurons: number[] = [];
        for (let j = 0; j < kb; j++) {
          const b = Number(layer[q * kb + j]);
          for (let i = 0; i < block; i++) neurons.push(b * block + i);
        }
        return neurons;
      }),
    );
    return { nats, kept };
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
