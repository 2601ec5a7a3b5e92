/**
 * Reading a Hugging Face `config.json` into the one vocabulary every forward reads
 * (`ModelConfig`), each family from its own field names: the LLaMA family (LLaMA, Mistral,
 * Qwen2, Phi-3), Phi (Phi-1.5, Phi-2) and GPT-2. Every refusal names the file, the field and what
 * was expected: a wrong config otherwise shows up much later as garbage text.
 */
import { join } from 'node:path';
import { mergeGenerationConfig, readGenerationConfig, readTokenId, readTokenIds } from '../model/config.js';
import { FieldReader, readJsonFile } from '../model/json.js';
import type { Architecture, ModelConfig } from '../model/types.js';

/** HF's default when config.json has no `rope_theta` (LlamaConfig, MistralConfig, Qwen2Config, PhiConfig). */
const DEFAULT_ROPE_THETA = 10000;
/** transformers' names of the tanh-approximated GELU (`gelu_new` in Phi and GPT-2; the same function under other names). */
const GELU_TANH = ['gelu_new', 'gelu_pytorch_tanh', 'gelu_fast'];

type FamilyReader = (f: FieldReader, architecture: Architecture) => ModelConfig;

const FAMILIES: Readonly<Record<Architecture, FamilyReader>> = {
  LlamaForCausalLM: readLlamaFamily,
  MistralForCausalLM: readLlamaFamily,
  Qwen2ForCausalLM: readLlamaFamily,
  Phi3ForCausalLM: readLlamaFamily,
  PhiForCausalLM: readPhi,
  GPT2LMHeadModel: readGpt2,
};

/** The architectures (config.json `architectures[0]`) the loader serves. */
export const ARCHITECTURES = Object.keys(FAMILIES) as Architecture[];

export function parseConfig(json: unknown, file: string): ModelConfig {
  const f = new FieldReader(json, file);
  const architecture = readArchitecture(f);
  return FAMILIES[architecture](f, architecture);
}

/** Reads `dir/config.json`, with the eos ids of `dir/generation_config.json` (if any) merged in. */
export function readConfig(dir: string): ModelConfig {
  const file = join(dir, 'config.json');
  const config = parseConfig(readJsonFile(file), file);
  const generation = readGenerationConfig(dir, config.vocabSize);
  return generation === null ? config : mergeGenerationConfig(config, generation);
}

/** LLaMA, Mistral, Qwen2, Phi-3: RMSNorm, SwiGLU, RoPE on whole heads. */
function readLlamaFamily(f: FieldReader, architecture: Architecture): ModelConfig {
  const attention = readAttentionShape(f, f.positiveInt('hidden_size'), 'num_attention_heads', 'num_key_value_heads');
  if (f.has('hidden_act') && f.string('hidden_act') !== 'silu') {
    throw f.error('hidden_act', '"silu" (the LLaMA family\'s MLP is SwiGLU)', f.raw('hidden_act'));
  }
  if (f.optional('mlp_bias', () => f.boolean('mlp_bias')) === true) {
    throw f.error('mlp_bias', 'false or absent (MLP biases are not supported)', true);
  }
  const partialRotary = f.optional('partial_rotary_factor', () => f.positiveNumber('partial_rotary_factor'));
  if (partialRotary !== undefined && partialRotary !== 1) {
    throw f.error('partial_rotary_factor', '1 or absent (RoPE on part of each head is not supported for this architecture)', partialRotary);
  }
  const vocabSize = f.positiveInt('vocab_size');
  return {
    architecture,
    ...attention,
    intermediateSize: f.positiveInt('intermediate_size'),
    numLayers: f.positiveInt('num_hidden_layers'),
    norm: 'rms',
    normEps: f.positiveNumber('rms_norm_eps'),
    mlp: 'swiglu',
    parallelBlock: false,
    rotaryDim: attention.headDim,
    ropeTheta: readRopeTheta(f),
    tieWordEmbeddings: f.optional('tie_word_embeddings', () => f.boolean('tie_word_embeddings')) ?? false,
    attentionBias: readAttentionBias(f, architecture),
    vocabSize,
    maxPositions: readMaxPositions(f, architecture),
    bosTokenId: readTokenId(f, 'bos_token_id', vocabSize),
    eosTokenIds: readTokenIds(f, 'eos_token_id', vocabSize),
  };
}

/**
 * Phi-1.5 and Phi-2 (transformers' PhiForCausalLM): LayerNorm with bias, attention and MLP in
 * parallel, RoPE on the first `partial_rotary_factor` of each head, biases on every projection
 * and on the head, a GELU MLP (fc1, fc2).
 */
function readPhi(f: FieldReader, architecture: Architecture): ModelConfig {
  const attention = readAttentionShape(f, f.positiveInt('hidden_size'), 'num_attention_heads', 'num_key_value_heads');
  const factor = f.optional('partial_rotary_factor', () => f.number('partial_rotary_factor', 'a number in (0, 1]', (x) => x > 0 && x <= 1)) ?? 0.5;
  // HF: rotary_ndims = int(partial_rotary_factor * head_dim); RoPE rotates pairs, so it must be even.
  const rotaryDim = Math.floor(factor * attention.headDim);
  if (rotaryDim % 2 !== 0 || rotaryDim === 0) {
    throw f.error('partial_rotary_factor', `a factor that rotates an even, non-zero number of the head's ${attention.headDim} dimensions`, factor);
  }
  if (f.optional('qk_layernorm', () => f.boolean('qk_layernorm')) === true) {
    throw f.error('qk_layernorm', 'false or absent (norms on queries and keys are not supported)', true);
  }
  const vocabSize = f.positiveInt('vocab_size');
  return {
    architecture,
    ...attention,
    intermediateSize: f.positiveInt('intermediate_size'),
    numLayers: f.positiveInt('num_hidden_layers'),
    norm: 'layer',
    normEps: f.positiveNumber('layer_norm_eps'),
    mlp: readGeluTanh(f, 'hidden_act'),
    parallelBlock: true,
    rotaryDim,
    ropeTheta: readRopeTheta(f),
    tieWordEmbeddings: f.optional('tie_word_embeddings', () => f.boolean('tie_word_embeddings')) ?? false,
    attentionBias: true,
    vocabSize,
    maxPositions: f.positiveInt('max_position_embeddings'),
    bosTokenId: readTokenId(f, 'bos_token_id', vocabSize),
    eosTokenIds: readTokenIds(f, 'eos_token_id', vocabSize),
  };
}

/** GPT-2: learned positions, LayerNorm with bias, a GELU MLP 4x wide unless `n_inner`, a tied head. */
function readGpt2(f: FieldReader, architecture: Architecture): ModelConfig {
  const hiddenSize = f.positiveInt('n_embd');
  const attention = readAttentionShape(f, hiddenSize, 'n_head', null);
  if (f.optional('scale_attn_weights', () => f.boolean('scale_attn_weights')) === false) {
    throw f.error('scale_attn_weights', 'true or absent (unscaled attention scores are not supported)', false);
  }
  if (f.optional('scale_attn_by_inverse_layer_idx', () => f.boolean('scale_attn_by_inverse_layer_idx')) === true) {
    throw f.error('scale_attn_by_inverse_layer_idx', 'false or absent (per-layer score scaling is not supported)', true);
  }
  const vocabSize = f.positiveInt('vocab_size');
  return {
    architecture,
    ...attention,
    intermediateSize: f.optional('n_inner', () => f.positiveInt('n_inner')) ?? 4 * hiddenSize,
    numLayers: f.positiveInt('n_layer'),
    norm: 'layer',
    normEps: f.optional('layer_norm_epsilon', () => f.positiveNumber('layer_norm_epsilon')) ?? 1e-5,
    mlp: readGeluTanh(f, 'activation_function'),
    parallelBlock: false,
    rotaryDim: 0,
    ropeTheta: DEFAULT_ROPE_THETA,
    tieWordEmbeddings: f.optional('tie_word_embeddings', () => f.boolean('tie_word_embeddings')) ?? true,
    attentionBias: true,
    vocabSize,
    maxPositions: f.positiveInt('n_positions'),
    bosTokenId: readTokenId(f, 'bos_token_id', vocabSize),
    eosTokenIds: readTokenIds(f, 'eos_token_id', vocabSize),
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

/** Heads, KV heads (`kvField`, null where the family has none) and head size, checked against each other. */
function readAttentionShape(f: FieldReader, hiddenSize: number, headsField: string, kvField: string | null) {
  const numHeads = f.positiveInt(headsField);
  const numKvHeads = kvField === null ? numHeads : (f.optional(kvField, () => f.positiveInt(kvField)) ?? numHeads);
  if (kvField !== null && numHeads % numKvHeads !== 0) {
    throw f.error(kvField, `a divisor of ${headsField} (${numHeads})`, numKvHeads);
  }
  const headDim = f.optional('head_dim', () => f.positiveInt('head_dim')) ?? defaultHeadDim(f, hiddenSize, numHeads, headsField);
  if (headDim % 2 !== 0) {
    // RoPE rotates pairs (i, i + headDim/2), so an odd head size cannot be rotated.
    throw f.error('head_dim', 'an even number (RoPE rotates pairs of dimensions)', headDim);
  }
  return { hiddenSize, numHeads, numKvHeads, headDim };
}

function defaultHeadDim(f: FieldReader, hiddenSize: number, numHeads: number, headsField: string): number {
  if (hiddenSize % numHeads !== 0) {
    throw f.error('head_dim', `present, since the hidden size (${hiddenSize}) is not divisible by ${headsField} (${numHeads})`, undefined);
  }
  return hiddenSize / numHeads;
}

function readGeluTanh(f: FieldReader, field: string): 'gelu' {
  const act = f.optional(field, () => f.string(field)) ?? 'gelu_new';
  if (!GELU_TANH.includes(act)) throw f.error(field, `one of ${GELU_TANH.map((a) => `"${a}"`).join(', ')} (the tanh-approximated GELU)`, act);
  return 'gelu';
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
    case 'LlamaForCausalLM':
      return f.optional('attention_bias', () => f.boolean('attention_bias')) ?? false;
    default:
      // HF's Mistral and Phi-3 attention are built without biases whatever the config says.
      return false;
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
