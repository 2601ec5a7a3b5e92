/**
 * Random-initialised checkpoints in Hugging Face layout, for tests and benchmarks at real
 * models' shapes without downloading them. Deterministic in the seed: each tensor draws from
 * its own generator seeded by (seed, tensor name).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseConfig } from '../model/config.js';
import { Prng } from '../random.js';
import { writeSafetensorsFrom, type SafetensorsDtype, type TensorSource } from '../model/safetensors.js';
import { BOS_ID, buildByteLevelTokenizer, EOS_ID } from '../model/testtokenizer.js';
import type { Architecture, LlamaConfig } from '../model/types.js';
import { llamaTensorSpecs } from './checkpoints.js';

export interface TestModelShape {
  architecture: Architecture;
  hidden: number;
  intermediate: number;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  /** Also the tokenizer's size: its merges fill the vocabulary, so every id has text. */
  vocab: number;
  maxPositions: number;
  tie: boolean;
  /** q/k/v biases; defaults to true for Qwen2 (which always has them), false otherwise. */
  attentionBias: boolean;
  ropeTheta: number;
  rmsEps: number;
}

export interface TestModelOptions extends Partial<TestModelShape> {
  seed?: number;
  dtype?: SafetensorsDtype;
}

export interface TestModel {
  dir: string;
  shape: TestModelShape;
  config: LlamaConfig;
}

/** Small enough for exhaustive tests (about 180K parameters), with GQA and a separate head. */
export const TINY_SHAPE: Readonly<TestModelShape> = {
  architecture: 'LlamaForCausalLM',
  hidden: 64,
  intermediate: 160,
  layers: 2,
  heads: 4,
  kvHeads: 2,
  headDim: 16,
  vocab: 320,
  maxPositions: 256,
  tie: false,
  attentionBias: false,
  ropeTheta: 10000,
  rmsEps: 1e-5,
};

/** HuggingFaceTB/SmolLM2-135M's shapes (the weights here are random). */
export const SMOLLM2_135M_SHAPE: Readonly<TestModelShape> = {
  architecture: 'LlamaForCausalLM',
  hidden: 576,
  intermediate: 1536,
  layers: 30,
  heads: 9,
  kvHeads: 3,
  headDim: 64,
  vocab: 49152,
  maxPositions: 8192,
  tie: true,
  attentionBias: false,
  ropeTheta: 100000,
  rmsEps: 1e-5,
};

export const PRESETS: Readonly<Record<string, Readonly<TestModelShape>>> = {
  tiny: TINY_SHAPE,
  'smollm2-135m': SMOLLM2_135M_SHAPE,
};

const MODEL_TYPES: Readonly<Record<Architecture, string>> = {
  LlamaForCausalLM: 'llama',
  MistralForCausalLM: 'mistral',
  Qwen2ForCausalLM: 'qwen2',
  Phi3ForCausalLM: 'phi3',
};

/** Norm weights are 1 plus this much noise, so a forward that ignores them is caught. */
const NORM_NOISE = 0.1;
/** Bias scale: small next to the projections (about unit size) but far above float error. */
const BIAS_STD = 0.1;

/** Fills in `options` over the tiny preset; unset `attentionBias` follows the architecture. */
export function resolveShape(options: Partial<TestModelShape> = {}): TestModelShape {
  const defined = Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as Partial<TestModelShape>;
  const architecture = defined.architecture ?? TINY_SHAPE.architecture;
  return {
    ...TINY_SHAPE,
    ...defined,
    attentionBias: defined.attentionBias ?? architecture === 'Qwen2ForCausalLM',
  };
}

/** The config.json a Hugging Face checkpoint of this shape would carry. */
export function hfConfigJson(shape: TestModelShape, dtype: SafetensorsDtype = 'F32'): Record<string, unknown> {
  if (shape.architecture === 'Qwen2ForCausalLM' && !shape.attentionBias) {
    throw new Error('test model: Qwen2 always has q/k/v biases; attentionBias cannot be false');
  }
  if ((shape.architecture === 'MistralForCausalLM' || shape.architecture === 'Phi3ForCausalLM') && shape.attentionBias) {
    throw new Error(`test model: ${shape.architecture} has no q/k/v biases; attentionBias cannot be true`);
  }
  const json: Record<string, unknown> = {
    architectures: [shape.architecture],
    model_type: MODEL_TYPES[shape.architecture],
    hidden_size: shape.hidden,
    intermediate_size: shape.intermediate,
    num_hidden_layers: shape.layers,
    num_attention_heads: shape.heads,
    num_key_value_heads: shape.kvHeads,
    head_dim: shape.headDim,
    vocab_size: shape.vocab,
    max_position_embeddings: shape.maxPositions,
    rms_norm_eps: shape.rmsEps,
    rope_theta: shape.ropeTheta,
    rope_scaling: null,
    tie_word_embeddings: shape.tie,
    hidden_act: 'silu',
    bos_token_id: BOS_ID,
    eos_token_id: EOS_ID,
    torch_dtype: { F32: 'float32', F16: 'float16', BF16: 'bfloat16' }[dtype],
  };
  if (shape.architecture === 'LlamaForCausalLM') Object.assign(json, { attention_bias: shape.attentionBias, mlp_bias: false });
  if (shape.architecture === 'MistralForCausalLM' || shape.architecture === 'Phi3ForCausalLM') json.sliding_window = null;
  if (shape.architecture === 'Qwen2ForCausalLM') Object.assign(json, { use_sliding_window: false, sliding_window: null });
  return json;
}

/**
 * Linear weights ([out, in]) have std 1/sqrt(in), so activations keep about unit size through
 * the layers and logits spread (std about 1) instead of all being nearly equal, as a 0.02 init
 * would leave them. The embedding uses 1/sqrt(hidden) too: with a tied head its rows are the
 * output projection.
 */
export function initialValues(name: string, shape: number[], seed: number): Float32Array {
  const rng = Prng.forLabel(seed, name);
  const n = shape.reduce((a, b) => a * b, 1);
  if (name.endsWith('layernorm.weight') || name === 'model.norm.weight') return rng.normals(n, NORM_NOISE, 1);
  if (name.endsWith('.bias')) return rng.normals(n, BIAS_STD);
  return rng.normals(n, 1 / Math.sqrt(shape[1]));
}

export async function writeTestModel(dir: string, options: TestModelOptions = {}): Promise<TestModel> {
  const { seed = 0, dtype = 'F32', ...shapeOptions } = options;
  const shape = resolveShape(shapeOptions);
  const configJson = hfConfigJson(shape, dtype);
  // Parsing what we are about to write checks the shape (divisibility, even head size, ...)
  // with the same rules and messages a loaded model gets.
  const config = parseConfig(configJson, join(dir, 'config.json'));
  const tokenizer = buildByteLevelTokenizer(shape.vocab, shape.maxPositions);

  mkdirSync(dir, { recursive: true });
  const writeJson = (file: string, value: unknown): void => writeFileSync(join(dir, file), `${JSON.stringify(value, null, 2)}\n`);
  writeJson('config.json', configJson);
  writeJson('generation_config.json', { bos_token_id: BOS_ID, eos_token_id: EOS_ID });
  writeJson('tokenizer_config.json', tokenizer.tokenizerConfig);
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(tokenizer.tokenizerJson));

  const sources: TensorSource[] = llamaTensorSpecs(config).map(({ name, shape: s }) => ({
    name,
    shape: s,
    data: () => initialValues(name, s, seed),
  }));
  writeSafetensorsFrom(join(dir, 'model.safetensors'), sources, dtype);
  return { dir, shape, config };
}
