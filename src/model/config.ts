/**
 * Reading a Hugging Face `config.json` (and the optional `generation_config.json`) into the
 * few numbers the LLaMA family's forward needs. Every refusal names the file, the field and
 * what was expected: a wrong config otherwise shows up much later as garbage text.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Architecture, GenerationDefaults, LlamaConfig } from './types.js';
import { FieldReader, readJsonFile } from './json.js';

/** The architectures (config.json `architectures[0]`) the loader serves. */
export const ARCHITECTURES: readonly Architecture[] = ['LlamaForCausalLM', 'MistralForCausalLM', 'Qwen2ForCausalLM', 'Phi3ForCausalLM'];

/** HF's default when config.json has no `rope_theta` (LlamaConfig, MistralConfig, Qwen2Config). */
const DEFAULT_ROPE_THETA = 10000;

/** What generation_config.json contributes. */
export interface GenerationConfig {
  bosTokenId: number | null;
  eosTokenIds: number[];
  defaults: GenerationDefaults;
}

export function parseConfig(json: unknown, file: string): LlamaConfig {
  const f = new FieldReader(json, file);

  const architecture = readArchitecture(f);
  const hiddenSize = f.positiveInt('hidden_size');
  const intermediateSize = f.positiveInt('intermediate_size');
  const numLayers = f.positiveInt('num_hidden_layers');
  const numHeads = f.positiveInt('num_attention_heads');

  const numKvHeads = f.optional('num_key_value_heads', () => f.positiveInt('num_key_value_heads')) ?? numHeads;
  if (numHeads % numKvHeads !== 0) {
    throw f.error('num_key_value_heads', `a divisor of num_attention_heads (${numHeads})`, numKvHeads);
  }

  const headDim = f.optional('head_dim', () => f.positiveInt('head_dim')) ?? defaultHeadDim(f, hiddenSize, numHeads);
  if (headDim % 2 !== 0) {
    // RoPE rotates pairs (i, i + headDim/2), so an odd head size cannot be rotated.
    throw f.error('head_dim', 'an even number (RoPE rotates pairs of dimensions)', headDim);
  }

  if (f.has('hidden_act') && f.string('hidden_act') !== 'silu') {
    throw f.error('hidden_act', '"silu" (the SwiGLU MLP is the only one implemented)', f.raw('hidden_act'));
  }
  if (f.optional('mlp_bias', () => f.boolean('mlp_bias')) === true) {
    throw f.error('mlp_bias', 'false or absent (MLP biases are not supported)', true);
  }

  const ropeTheta = readRopeTheta(f);
  const partialRotary = f.optional('partial_rotary_factor', () => f.positiveNumber('partial_rotary_factor'));
  if (partialRotary !== undefined && partialRotary !== 1) {
    throw f.error('partial_rotary_factor', '1 or absent (RoPE on part of each head is not supported yet)', partialRotary);
  }
  const vocabSize = f.positiveInt('vocab_size');
  const maxPositions = readMaxPositions(f, architecture);

  const config: LlamaConfig = {
    architecture,
    hiddenSize,
    intermediateSize,
    numLayers,
    numHeads,
    numKvHeads,
    headDim,
    rmsNormEps: f.positiveNumber('rms_norm_eps'),
    ropeTheta,
    tieWordEmbeddings: f.optional('tie_word_embeddings', () => f.boolean('tie_word_embeddings')) ?? false,
    attentionBias: readAttentionBias(f, architecture),
    vocabSize,
    maxPositions,
    bosTokenId: readTokenId(f, 'bos_token_id', vocabSize),
    eosTokenIds: readTokenIds(f, 'eos_token_id', vocabSize),
  };
  return config;
}

/** Reads `dir/config.json`, with the eos ids of `dir/generation_config.json` (if any) merged in. */
export function readConfig(dir: string): LlamaConfig {
  const file = join(dir, 'config.json');
  const config = parseConfig(readJsonFile(file), file);
  const generation = readGenerationConfig(dir, config.vocabSize);
  return generation === null ? config : mergeGenerationConfig(config, generation);
}

/**
 * Reads the optional `dir/generation_config.json`; null when absent. `vocabSize`, when given,
 * bounds the token ids it may name.
 */
export function readGenerationConfig(dir: string, vocabSize?: number): GenerationConfig | null {
  const file = join(dir, 'generation_config.json');
  if (!existsSync(file)) return null;
  return parseGenerationConfig(readJsonFile(file), file, vocabSize);
}

export function parseGenerationConfig(json: unknown, file: string, vocabSize?: number): GenerationConfig {
  const f = new FieldReader(json, file);
  const bound = vocabSize ?? Number.MAX_SAFE_INTEGER;
  const defaults: GenerationDefaults = {};
  // do_sample is not read: whether a request samples is the request's choice (OpenAI's API),
  // these are only the values used when a request does not name them.
  const temperature = f.optional('temperature', () => f.number('temperature', 'a number >= 0', (x) => x >= 0));
  if (temperature !== undefined) defaults.temperature = temperature;
  const topP = f.optional('top_p', () => f.number('top_p', 'a number in (0, 1]', (x) => x > 0 && x <= 1));
  if (topP !== undefined) defaults.topP = topP;
  const topK = f.optional('top_k', () => f.nonNegativeInt('top_k'));
  if (topK !== undefined) defaults.topK = topK;
  return {
    bosTokenId: readTokenId(f, 'bos_token_id', bound),
    eosTokenIds: readTokenIds(f, 'eos_token_id', bound),
    defaults,
  };
}

/** config.json's ids win for bos; eos becomes the union, since generation should stop at any. */
export function mergeGenerationConfig(config: LlamaConfig, generation: GenerationConfig): LlamaConfig {
  const eos = [...config.eosTokenIds];
  for (const id of generation.eosTokenIds) if (!eos.includes(id)) eos.push(id);
  return {
    ...config,
    bosTokenId: config.bosTokenId ?? generation.bosTokenId,
    eosTokenIds: eos,
  };
}

function readArchitecture(f: FieldReader): Architecture {
  const list = f.raw('architectures');
  if (!Array.isArray(list) || list.length === 0 || typeof list[0] !== 'string') {
    throw f.error('architectures', `a non-empty array naming one of ${ARCHITECTURES.join(', ')}`, list);
  }
  const name = list[0];
  const found = ARCHITECTURES.find((a) => a === name);
  if (found === undefined) {
    throw f.error('architectures', `one of ${ARCHITECTURES.join(', ')} (unsupported architecture)`, name);
  }
  return found;
}

function defaultHeadDim(f: FieldReader, hiddenSize: number, numHeads: number): number {
  if (hiddenSize % numHeads !== 0) {
    throw f.error('head_dim', `present, since hidden_size (${hiddenSize}) is not divisible by num_attention_heads (${numHeads})`, undefined);
  }
  return hiddenSize / numHeads;
}

/**
 * Only plain RoPE is implemented. transformers v5 moves theta into `rope_parameters`, so that
 * form is read as well when its type is the default one.
 */
function readRopeTheta(f: FieldReader): number {
  const scaling = f.raw('rope_scaling');
  if (scaling !== undefined && scaling !== null) {
    throw f.error('rope_scaling', 'null or absent (RoPE scaling is not supported yet)', scaling);
  }
  const params = f.raw('rope_parameters');
  if (params !== undefined && params !== null) {
    const p = new FieldReader(params, f.file, 'rope_parameters.');
    const type = p.optional('rope_type', () => p.string('rope_type')) ?? 'default';
    if (type !== 'default') {
      throw p.error('rope_type', '"default" (RoPE scaling is not supported yet)', type);
    }
    const theta = p.optional('rope_theta', () => p.positiveNumber('rope_theta'));
    if (theta !== undefined) return theta;
  }
  return f.optional('rope_theta', () => f.positiveNumber('rope_theta')) ?? DEFAULT_ROPE_THETA;
}

function readAttentionBias(f: FieldReader, architecture: Architecture): boolean {
  switch (architecture) {
    case 'Qwen2ForCausalLM':
      // Qwen2's attention always has q/k/v biases; its config has no field for it.
      return true;
    case 'MistralForCausalLM':
    case 'Phi3ForCausalLM':
      // HF's Mistral and Phi-3 attention are built without biases whatever the config says.
      return false;
    case 'LlamaForCausalLM':
      return f.optional('attention_bias', () => f.boolean('attention_bias')) ?? false;
  }
}

/**
 * The positions a model serves: max_position_embeddings, or a sliding window shorter than it.
 * Within its window a position attends to every earlier one, as full causal attention does, so
 * capping the context at the window serves exactly what the checkpoint computes without
 * implementing the window (as vLLM's --disable-sliding-window does). Qwen2's window applies
 * only with use_sliding_window.
 */
function readMaxPositions(f: FieldReader, architecture: Architecture): number {
  const maxPositions = f.positiveInt('max_position_embeddings');
  if (architecture === 'LlamaForCausalLM') return maxPositions;
  if (architecture === 'Qwen2ForCausalLM' && f.optional('use_sliding_window', () => f.boolean('use_sliding_window')) !== true) {
    return maxPositions;
  }
  const window = f.optional('sliding_window', () => f.positiveInt('sliding_window'));
  return window === undefined ? maxPositions : Math.min(window, maxPositions);
}

function readTokenId(f: FieldReader, field: string, vocabSize: number): number | null {
  return f.optional(field, () => f.int(field, `a token id in [0, ${vocabSize})`, (x) => x >= 0 && x < vocabSize)) ?? null;
}

function readTokenIds(f: FieldReader, field: string, vocabSize: number): number[] {
  const value = f.raw(field);
  if (value === undefined || value === null) return [];
  const expected = `a token id in [0, ${vocabSize}) or an array of them`;
  const list = Array.isArray(value) ? value : [value];
  const ids: number[] = [];
  for (const id of list) {
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id >= vocabSize) throw f.error(field, expected, value);
    if (!ids.includes(id)) ids.push(id);
  }
  return ids;
}
