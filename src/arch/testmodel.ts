/**
 * Random-initialised checkpoints in Hugging Face layout, for tests and benchmarks at real
 * models' shapes without downloading them. Deterministic in the seed: each tensor draws from
 * its own generator seeded by (seed, tensor name).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseConfig } from './config.js';
import { familyOf } from './families.js';
import { Prng } from '../random.js';
import { writeSafetensorsFrom, type SafetensorsDtype, type TensorSource } from '../model/safetensors.js';
import { BOS_ID, buildByteLevelTokenizer, EOS_ID } from '../model/testtokenizer.js';
import type { Architecture, ModelConfig } from '../model/types.js';
import { tensorSpecs } from './checkpoints.js';

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
  normEps: number;
  /** Phi: the share of each head RoPE rotates. */
  partialRotary: number;
}

export interface TestModelOptions extends Partial<TestModelShape> {
  seed?: number;
  dtype?: SafetensorsDtype;
}

export interface TestModel {
  dir: string;
  shape: TestModelShape;
  config: ModelConfig;
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
  normEps: 1e-5,
  partialRotary: 1,
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
  normEps: 1e-5,
  partialRotary: 1,
};

/** microsoft/phi-2's layout (parallel block, LayerNorm, GELU, biases, partial RoPE) scaled down. */
export const PHI2_TINY_SHAPE: Readonly<TestModelShape> = {
  ...TINY_SHAPE,
  architecture: 'PhiForCausalLM',
  intermediate: 256,
  kvHeads: 4,
  attentionBias: true,
  partialRotary: 0.5,
};

/** openai-community/gpt2's layout (learned positions, Conv1D, fused c_attn, GELU, tied head) scaled down. */
export const GPT2_TINY_SHAPE: Readonly<TestModelShape> = {
  ...TINY_SHAPE,
  architecture: 'GPT2LMHeadModel',
  intermediate: 256,
  kvHeads: 4,
  tie: true,
  attentionBias: true,
  partialRotary: 0,
};

export const PRESETS: Readonly<Record<string, Readonly<TestModelShape>>> = {
  tiny: TINY_SHAPE,
  'smollm2-135m': SMOLLM2_135M_SHAPE,
  'phi2-tiny': PHI2_TINY_SHAPE,
  'gpt2-tiny': GPT2_TINY_SHAPE,
};

/** Norm weights are 1 plus this much noise, so a forward that ignores them is caught. */
const NORM_NOISE = 0.1;
/** Bias scale: small next to the projections (about unit size) but far above float error. */
const BIAS_STD = 0.1;

/** Each architecture's own tiny preset, under which options fill in. */
const TINY_OF: Partial<Record<Architecture, Readonly<TestModelShape>>> = {
  PhiForCausalLM: PHI2_TINY_SHAPE,
  GPT2LMHeadModel: GPT2_TINY_SHAPE,
  // MobiLlama's attention is multi-head.
  MobiLlamaForCausalLM: { ...TINY_SHAPE, architecture: 'MobiLlamaForCausalLM', kvHeads: TINY_SHAPE.heads },
};

/** Fills in `options` over the architecture's tiny preset; unset `attentionBias` follows the architecture. */
export function resolveShape(options: Partial<TestModelShape> = {}): TestModelShape {
  const defined = Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as Partial<TestModelShape>;
  const architecture = defined.architecture ?? TINY_SHAPE.architecture;
  const base = TINY_OF[architecture] ?? TINY_SHAPE;
  return {
    ...base,
    ...defined,
    attentionBias: defined.attentionBias ?? (architecture === 'Qwen2ForCausalLM' || base.attentionBias),
  };
}

/** The config.json a Hugging Face checkpoint of this shape would carry (its family writes the architecture's fields). */
export function hfConfigJson(shape: TestModelShape, dtype: SafetensorsDtype = 'F32'): Record<string, unknown> {
  return {
    ...familyOf(shape.architecture).configJson(shape),
    bos_token_id: BOS_ID,
    eos_token_id: EOS_ID,
    torch_dtype: { F32: 'float32', F16: 'float16', BF16: 'bfloat16' }[dtype],
  };
}

/**
 * Linear weights ([out, in]) have std 1/sqrt(in), so activations keep about unit size through
 * the layers and logits spread (std about 1) instead of all being nearly equal, as a 0.02 init
 * would leave them. The embedding uses 1/sqrt(hidden) too: with a tied head its rows are the
 * output projection.
 */
export function initialValues(name: string, shape: number[], seed: number, conv1d = false): Float32Array {
  const rng = Prng.forLabel(seed, name);
  const n = shape.reduce((a, b) => a * b, 1);
  if (NORM_WEIGHT.test(name)) return rng.normals(n, NORM_NOISE, 1);
  if (name.endsWith('.bias')) return rng.normals(n, BIAS_STD);
  // GPT-2's Conv1D weights are stored [in, out].
  return rng.normals(n, 1 / Math.sqrt(conv1d && !name.endsWith('wte.weight') && !name.endsWith('wpe.weight') ? shape[0] : shape[1]));
}

/** Norm weights by each family's names: LLaMA's and Phi's `*layernorm.weight`, `model.norm.weight`, GPT-2's `ln_*.weight`. */
const NORM_WEIGHT = /(layernorm\.weight|^model\.norm\.weight|(^|\.)ln_(\d+|f)\.weight)$/;

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

  const sources: TensorSource[] = tensorSpecs(config).map(({ name, shape: s }) => ({
    name,
    shape: s,
    data: () => initialValues(name, s, seed, config.architecture === 'GPT2LMHeadModel'),
  }));
  writeSafetensorsFrom(join(dir, 'model.safetensors'), sources, dtype);
  return { dir, shape, config };
}
