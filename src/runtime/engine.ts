/** A loaded model directory served through one ONNX Runtime session: the ServedModel contract. */
import { basename, resolve } from 'node:path';
import { loadModelDir, type LoadedModel } from '../model/load.js';
import { generate, type DecodingModel } from './generate.js';
import { LlamaSession, type ForwardResult, type KvCache, type OrtOptions } from './session.js';
import type { GenerationDelta, GenerationResult, SamplingParams, ServedModel } from './types.js';

export interface ServeOptions extends OrtOptions {
  /** Name clients use in `model`; defaults to the directory's name. */
  id?: string;
}

export class Engine implements ServedModel, DecodingModel {
  readonly id: string;
  readonly created = Math.floor(Date.now() / 1000);
  readonly contextLength: number;
  readonly vocabSize: number;
  readonly eosToken: string | null;
  readonly bosToken: string | null;
  readonly eosTokenIds: ReadonlySet<number>;
  /**
   * The last prefill, so that `n` choices of one prompt (and a repeated prompt) share it. The
   * cache tensors are never written after they are made, so sharing them is safe.
   */
  private lastPrefill: { key: string; result: Promise<ForwardResult> } | null = null;

  constructor(
    readonly model: LoadedModel,
    private readonly session: LlamaSession,
    id?: string,
  ) {
    this.id = id ?? basename(model.dir);
    this.contextLength = model.config.maxPositions;
    this.vocabSize = model.config.vocabSize;
    this.eosToken = model.tokenizer.eosToken;
    this.bosToken = model.tokenizer.bosToken;
    this.eosTokenIds = new Set(model.config.eosTokenIds);
  }

  encode(text: string, addSpecialTokens = true): number[] {
    return this.model.tokenizer.encode(text, addSpecialTokens);
  }

  decode(ids: number[]): string {
    return this.model.tokenizer.decode(ids);
  }

  tokenLabel(id: number): string {
    return this.model.tokenizer.idToToken(id) ?? '';
  }

  prefill(promptIds: number[], logitsToKeep: number): Promise<ForwardResult> {
    const key = `${logitsToKeep}:${promptIds.join(',')}`;
    if (this.lastPrefill?.key !== key) {
      const result = this.session.forward(promptIds, this.session.emptyCache(), logitsToKeep);
      this.lastPrefill = { key, result };
      // A failed prefill must not be served from the memo to the next request.
      result.catch(() => {
        if (this.lastPrefill?.key === key) this.lastPrefill = null;
      });
    }
    return this.lastPrefill.result;
  }

  step(id: number, cache: KvCache): Promise<ForwardResult> {
    return this.session.forward([id], cache, 1);
  }

  generate(promptIds: number[], params: SamplingParams, signal?: AbortSignal): AsyncGenerator<GenerationDelta, GenerationResult> {
    for (const id of promptIds) {
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
        throw new RangeError(`token id ${id} is outside the vocabulary [0, ${this.vocabSize})`);
      }
    }
    if (promptIds.length === 0) throw new RangeError('the prompt has no tokens');
    if (promptIds.length + params.maxTokens > this.contextLength) {
      throw new RangeError(`prompt (${promptIds.length} tokens) + max_tokens (${params.maxTokens}) exceeds the context length ${this.contextLength}`);
    }
    return generate(this, promptIds, params, signal);
  }

  async close(): Promise<void> {
    this.lastPrefill = null;
    await this.session.release();
  }
}

export async function loadServedModel(dir: string, options: ServeOptions = {}): Promise<Engine> {
  const model = await loadModelDir(resolve(dir));
  const session = await LlamaSession.create(model.config, model.weights, options);
  return new Engine(model, session, options.id);
}
