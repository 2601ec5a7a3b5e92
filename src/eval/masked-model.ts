/**
 * The model as evaluation runs it: the serving graph with every layer's MLP activations
 * multiplied by a 0/1 mask fed per position. Zeroing a neuron computes exactly what pruning it
 * computes (test/runtime/sparse.test.ts), so this graph stands for any tier or neuron set while
 * letting every decode step have its own, as the oracle needs. It saves no work; speed is the
 * bench's business, not evaluation's.
 */
import * as ort from 'onnxruntime-node';
import type { QuantSpec } from '../model/quant.js';
import type { ModelConfig, ModelWeights } from '../model/types.js';
import { argmax, logSoftmax } from '../runtime/sampling.js';
import type { KvCache } from '../runtime/kv-cache.js';
import { DecoderSession, mlpMaskName, type OrtOptions } from '../runtime/session.js';

/** Per layer, the MLP neurons kept (indices); null keeps them all. */
export type NeuronSet = number[][] | null;

export interface GreedyOptions {
  /** Tokens to generate at most. */
  maxTokens: number;
  /** Generation ends after any of these (it is not part of the output). */
  eos: ReadonlySet<number>;
  /**
   * The neuron set of generated token t (t >= 1; token 0 comes from the prompt pass, which
   * runs dense, as served by default).
   */
  neuronsAt(t: number): NeuronSet;
}

export class MaskedModel {
  private constructor(
    readonly config: ModelConfig,
    private readonly session: DecoderSession,
  ) {}

  /**
   * With `quant`, every weight is quantised as served, the down projection at full width: the
   * mask zeroes activations in front of blocks that span kept and masked neurons. A served
   * static tier prunes first and quantises after, and down's blocks run along neurons, so its
   * blocks (and scales) hold only kept neurons: its numbers can differ slightly from these.
   */
  static async create(config: ModelConfig, weights: ModelWeights, options: OrtOptions = {}, quant?: QuantSpec): Promise<MaskedModel> {
    return new MaskedModel(config, await DecoderSession.create(config, weights, options, { mlpMask: true, quant }));
  }

  /** Mask inputs for `positions` tokens, each with its own neuron set. */
  private masks(sets: NeuronSet[]): Record<string, ort.Tensor> {
    const I = this.config.intermediateSize;
    const feeds: Record<string, ort.Tensor> = {};
    for (let l = 0; l < this.config.numLayers; l++) {
      const mask = new Float32Array(sets.length * I);
      sets.forEach((set, p) => {
        if (set === null) mask.fill(1, p * I, (p + 1) * I);
        else for (const i of set[l]) mask[p * I + i] = 1;
      });
      feeds[mlpMaskName(l)] = new ort.Tensor('float32', mask, [1, sets.length, I]);
    }
    return feeds;
  }

  private forward(tokens: number[], cache: KvCache, keep: number, sets: NeuronSet[]) {
    return this.session.forward(tokens, cache, keep, this.masks(sets));
  }

  /** Greedy continuation of `prompt`: a dense prompt pass, then one masked step per token. */
  async greedy(prompt: number[], options: GreedyOptions): Promise<number[]> {
    const out: number[] = [];
    let step = await this.forward(
      prompt,
      this.session.emptyCache(),
      1,
      prompt.map(() => null),
    );
    for (let t = 0; t < options.maxTokens; t++) {
      const token = argmax(step.logits);
      if (options.eos.has(token)) break;
      out.push(token);
      if (t + 1 === options.maxTokens) break;
      step = await this.forward([token], step.cache, 1, [options.neuronsAt(t + 1)]);
    }
    return out;
  }

  /**
   * Teacher-forced negative log-likelihood (nats) of tokens[p + 1] at each position p from
   * `start` on, when position p runs with `neuronsAt(p)` and every position before `start`
   * runs dense. One pass: position p sees the earlier positions' keys and values as computed
   * under their own sets, exactly as if it had been decoded step by step.
   */
  async nll(tokens: number[], start: number, neuronsAt: (position: number) => NeuronSet): Promise<number[]> {
    const inputs = tokens.slice(0, -1);
    const sets = inputs.map((_, p) => (p < start ? null : neuronsAt(p)));
    const { logits } = await this.forward(inputs, this.session.emptyCache(), inputs.length, sets);
    const V = this.config.vocabSize;
    const out: number[] = [];
    for (let p = start; p < inputs.length; p++) out.push(-logSoftmax(logits.subarray(p * V, (p + 1) * V))[tokens[p + 1]]);
    return out;
  }

  /** The dense model's cache after `tokens` and its greedy prediction of the next one. */
  async denseStep(tokens: number[], cache: KvCache): Promise<{ next: number; cache: KvCache }> {
    const step = await this.forward(
      tokens,
      cache,
      1,
      tokens.map(() => null),
    );
    return { next: argmax(step.logits), cache: step.cache };
  }

  emptyCache(): KvCache {
    return this.session.emptyCache();
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
