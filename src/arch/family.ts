/**
 * What an architecture brings, one file each (llama.ts: LLaMA, Mistral, Qwen2, Phi-3; phi.ts:
 * Phi-1.5/2; gpt2.ts: GPT-2): its layer, written on the decoder's primitives (src/arch/decoder.ts:
 * norms, attention, the MLP); how its config.json reads into the forward's vocabulary
 * (`ModelConfig`, which picks each primitive's variant: RMSNorm or LayerNorm, SwiGLU or GELU,
 * RoPE's width); how its checkpoints name their tensors; and the config.json a random checkpoint
 * of a given shape carries. Everything else (pruning, FLOP counting, attribution, serving) reads
 * `ModelConfig` and `ModelWeights` only; families.ts lists the families.
 */
import { readTokenId, readTokenIds } from '../model/config.js';
import { FieldReader } from '../model/json.js';
import type { Architecture, LayerWeights, ModelConfig } from '../model/types.js';
import type { DecoderLayer } from './decoder.js';
import type { TestModelShape } from './testmodel.js';

export type LayerKey = keyof LayerWeights;

/** How one family names its tensors (the names HF's `save_pretrained` writes). */
export interface Layout {
  embed: string;
  /** Learned positions (GPT-2). */
  positions?: string;
  norm: string;
  normBias?: string;
  lmHead: string;
  lmHeadBias?: string;
  /** Layer i's name prefix. */
  layer: (i: number) => string;
  /** The name (after the prefix) of each layer field the family has; q/k/v biases only where the config has them. */
  fields: Partial<Record<LayerKey, string>>;
  /** Fields stored in one tensor, one after the other (rows of a weight, entries of a bias). */
  stacked?: readonly { name: string; parts: readonly LayerKey[] }[];
  /** Linear weights stored [in, out] (GPT-2's Conv1D), transposed at load to the [out, in] of every other family. */
  conv1d?: boolean;
  /** Fields one layer's tensors hold for every layer (MobiLlama's one MLP): stored once, under `layer`. */
  shared?: { layer: number; keys: readonly LayerKey[] };
}

export interface Family {
  /** One layer, as the model's forward writes it (nanoGPT's Block.forward), on the decoder's primitives. */
  layer: DecoderLayer;
  /** config.json's fields as the forward reads them; refuses, by field, what the forward does not implement. */
  readConfig(f: FieldReader, architecture: Architecture): ModelConfig;
  /** The tensor names; `names` (a checkpoint's, when given) picks between variants the family has written. */
  layout(architecture: Architecture, names?: readonly string[]): Layout;
  /** The config.json of a checkpoint of `shape` (random test models); throws for a shape the family cannot have. */
  configJson(shape: TestModelShape): Record<string, unknown>;
}

/** HF's default when config.json has no `rope_theta` (LlamaConfig, MistralConfig, Qwen2Config, PhiConfig). */
export const DEFAULT_ROPE_THETA = 10000;
/** transformers' names of the tanh-approximated GELU (`gelu_new` in Phi and GPT-2; the same function under other names). */
const GELU_TANH = ['gelu_new', 'gelu_pytorch_tanh', 'gelu_fast'];

/** Heads, KV heads (`kvField`, null where the family has none) and head size, checked against each other. */
export function readAttentionShape(f: FieldReader, hiddenSize: number, headsField: string, kvField: string | null) {
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

/** The vocabulary, its special ids and whether the head is the embedding (`tieDefault` when absent). */
export function readVocabulary(f: FieldReader, tieDefault: boolean) {
  const vocabSize = f.positiveInt('vocab_size');
  return {
    vocabSize,
    tieWordEmbeddings: f.optional('tie_word_embeddings', () => f.boolean('tie_word_embeddings')) ?? tieDefault,
    bosTokenId: readTokenId(f, 'bos_token_id', vocabSize),
    eosTokenIds: readTokenIds(f, 'eos_token_id', vocabSize),
  };
}

/** A GELU MLP's activation field: only the tanh approximation is implemented. */
export function readGeluTanh(f: FieldReader, field: string): 'gelu' {
  const act = f.optional(field, () => f.string(field)) ?? 'gelu_new';
  if (!GELU_TANH.includes(act)) throw f.error(field, `one of ${GELU_TANH.map((a) => `"${a}"`).join(', ')} (the tanh-approximated GELU)`, act);
  return 'gelu';
}

/**
 * Only plain RoPE is implemented. transformers v5 moves theta into `rope_parameters`, so that
 * form is read as well when its type is the default one.
 */
export function readRopeTheta(f: FieldReader): number {
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

/** A test shape whose head size must be hidden / heads (families whose config has no head_dim). */
export function requireDerivedHeadSize(shape: TestModelShape): void {
  if (shape.heads * shape.headDim !== shape.hidden) {
    throw new Error(`test model: ${shape.architecture}'s head size is hidden / heads; headDim must be ${shape.hidden / shape.heads}`);
  }
}
