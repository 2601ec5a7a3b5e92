/**
 * A llama.cpp GGUF file of a LLaMA-family model -> a Hugging Face-layout model directory that
 * the loader reads: config.json, generation_config.json, model.safetensors (float32),
 * tokenizer.json and tokenizer_config.json.
 *
 * - `llama.*` metadata becomes config.json; settings the forward does not implement (RoPE
 *   scaling, partial rotary, mixture of experts) are refused by name.
 * - `blk.N.*` tensors get their Hugging Face names; F32, F16, BF16, Q8_0 and Q4_0 are
 *   dequantised to float32.
 * - llama.cpp's converter permutes the rows of q and k within each head for its RoPE layout
 *   (rotating adjacent pairs rather than halves); the permutation is undone.
 * - The tokenizer is rebuilt from `tokenizer.ggml.*` (gguf-tokenizer.ts).
 *
 * Everything is checked (architecture, metadata, tensor names, types and shapes, tokenizer)
 * before anything is written.
 */
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseConfig } from './config.js';
import { checkSupported, GgufFields, GgufFile, GgufType, type GgufTensorInfo } from '../model/gguf.js';
import { tokenizerFromGguf, type ImportedTokenizer } from '../model/gguf-tokenizer.js';
import { SINGLE_FILE } from '../model/checkpoint.js';
import { writeSafetensorsFrom, type TensorSource } from '../model/safetensors.js';
import { ModelTokenizer } from '../model/tokenizer.js';
import type { ModelConfig } from '../model/types.js';
import { tensorSpecs } from './checkpoints.js';
import type { LayerKey } from './family.js';
import { EMBED_NAME, layerTensorName, LM_HEAD_NAME, NORM_NAME } from './llama.js';

export interface ImportOptions {
  /** Write into `out` even when it exists and is not empty (the model files are replaced). */
  force?: boolean;
}

export interface ImportSummary {
  dir: string;
  config: ModelConfig;
  /** How many tensors of each ggml type the file held. */
  tensorTypes: Record<string, number>;
  tokenizer: Pick<ImportedTokenizer, 'model' | 'tokens' | 'merges' | 'duplicates'>;
}

/** What a GGUF tensor becomes: its Hugging Face name and, for q and k, the head count of the row permutation. */
interface Mapped {
  hfName: string;
  permuteHeads: number | null;
}

/** ggml's per-layer tensor names -> the loader's layer fields. */
const LAYER_TENSORS: Readonly<Record<string, LayerKey>> = {
  'attn_norm.weight': 'inputNorm',
  'attn_q.weight': 'q',
  'attn_k.weight': 'k',
  'attn_v.weight': 'v',
  'attn_output.weight': 'o',
  'attn_q.bias': 'qBias',
  'attn_k.bias': 'kBias',
  'attn_v.bias': 'vBias',
  'ffn_norm.weight': 'postNorm',
  'ffn_gate.weight': 'gate',
  'ffn_up.weight': 'up',
  'ffn_down.weight': 'down',
};

const GLOBAL_TENSORS: Readonly<Record<string, string>> = {
  'token_embd.weight': EMBED_NAME,
  'output_norm.weight': NORM_NAME,
  'output.weight': LM_HEAD_NAME,
};

/** Imports `from` into the directory `out`; see the file comment. */
export function importGguf(from: string, out: string, options: ImportOptions = {}): ImportSummary {
  const gguf = GgufFile.open(from);
  try {
    const fields = new GgufFields(from, gguf.metadata);
    const architecture = fields.string('general.architecture');
    if (architecture !== 'llama') {
      throw new Error(`${from}: general.architecture is "${architecture}"; only "llama" (LLaMA-family) models can be imported`);
    }
    const splits = fields.optionalUint('split.count') ?? 1;
    if (splits > 1) throw new Error(`${from}: one of ${splits} split GGUF files; merge them first (llama.cpp's llama-gguf-split --merge)`);
    const { configJson, generationJson, config, tokenizer } = describeModel(gguf, fields);
    const plan = planTensors(gguf, config);
    checkOutput(out, options.force === true);

    mkdirSync(out, { recursive: true });
    // The weights go to a temporary name first, so a failure leaves no model.safetensors behind.
    const partial = join(out, `${SINGLE_FILE}.partial`);
    try {
      writeSafetensorsFrom(partial, plan.sources, 'F32', { source: 'gguf' });
    } catch (err) {
      rmSync(partial, { force: true });
      throw err;
    }
    renameSync(partial, join(out, SINGLE_FILE));
    const json = (name: string, value: unknown) => writeFileSync(join(out, name), `${JSON.stringify(value, null, 2)}\n`);
    json('config.json', configJson);
    json('generation_config.json', generationJson);
    json('tokenizer.json', tokenizer.tokenizerJson);
    json('tokenizer_config.json', tokenizer.tokenizerConfig);

    const tensorTypes: Record<string, number> = {};
    for (const info of gguf.tensors.values()) tensorTypes[info.typeName] = (tensorTypes[info.typeName] ?? 0) + 1;
    const { model, tokens, merges, duplicates } = tokenizer;
    return { dir: out, config, tensorTypes, tokenizer: { model, tokens, merges, duplicates } };
  } finally {
    gguf.close();
  }
}

/** config.json, generation_config.json and the tokenizer files from the metadata, all checked. */
function describeModel(
  gguf: GgufFile,
  f: GgufFields,
): {
  configJson: Record<string, unknown>;
  generationJson: Record<string, unknown>;
  config: ModelConfig;
  tokenizer: ImportedTokenizer;
} {
  const k = (name: string) => `llama.${name}`;
  const experts = f.optionalUint(k('expert_count')) ?? 0;
  if (experts > 0) throw new Error(`${f.path}: a mixture-of-experts model (llama.expert_count ${experts}); only dense LLaMA models can be imported`);
  const scaling = f.optionalString(k('rope.scaling.type'));
  if (scaling !== undefined && scaling !== 'none') {
    throw new Error(`${f.path}: llama.rope.scaling.type is "${scaling}"; RoPE scaling is not supported`);
  }
  const factor = f.optionalNumber(k('rope.scaling.factor'));
  if (factor !== undefined && factor !== 1 && factor !== 0 && scaling !== 'none') {
    throw new Error(`${f.path}: llama.rope.scaling.factor is ${factor}; RoPE scaling is not supported`);
  }

  const hidden = f.uint(k('embedding_length'));
  const heads = f.uint(k('attention.head_count'));
  const kvHeads = f.optionalUint(k('attention.head_count_kv')) ?? heads;
  let headDim = f.optionalUint(k('attention.key_length'));
  if (headDim === undefined) {
    if (heads === 0 || hidden % heads !== 0)
      throw f.error(k('attention.key_length'), `present, since embedding_length ${hidden} is not a multiple of head_count ${heads}`);
    headDim = hidden / heads;
  }
  const valueDim = f.optionalUint(k('attention.value_length')) ?? headDim;
  if (valueDim !== headDim)
    throw f.error(k('attention.value_length'), `equal to attention.key_length (${headDim}); different key and value head sizes are not supported`);
  const ropeDim = f.optionalUint(k('rope.dimension_count')) ?? headDim;
  if (ropeDim !== headDim) throw f.error(k('rope.dimension_count'), `the head size ${headDim}; partial rotary embeddings are not supported`);

  const embed = gguf.tensors.get('token_embd.weight');
  if (embed === undefined) throw new Error(`${f.path}: no tensor "token_embd.weight" (the token embeddings)`);
  const vocabSize = f.optionalUint(k('vocab_size')) ?? embed.shape[0];
  const maxPositions = f.uint(k('context_length'));
  const tokenizer = tokenizerFromGguf(f, maxPositions);
  if (tokenizer.tokens > vocabSize) {
    throw new Error(`${f.path}: tokenizer.ggml.tokens has ${tokenizer.tokens} tokens but the model's vocabulary is ${vocabSize}`);
  }
  const eos = tokenizer.eosTokenIds[0] ?? null;

  const configJson: Record<string, unknown> = {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    hidden_size: hidden,
    intermediate_size: f.uint(k('feed_forward_length')),
    num_hidden_layers: f.uint(k('block_count')),
    num_attention_heads: heads,
    num_key_value_heads: kvHeads,
    head_dim: headDim,
    vocab_size: vocabSize,
    max_position_embeddings: maxPositions,
    rms_norm_eps: float(f, gguf, k('attention.layer_norm_rms_epsilon')),
    rope_theta: f.has(k('rope.freq_base')) ? float(f, gguf, k('rope.freq_base')) : 10000,
    rope_scaling: null,
    tie_word_embeddings: !gguf.tensors.has('output.weight'),
    attention_bias: gguf.tensors.has('blk.0.attn_q.bias'),
    mlp_bias: false,
    hidden_act: 'silu',
    bos_token_id: tokenizer.bosTokenId,
    eos_token_id: eos,
    torch_dtype: 'float32',
  };
  const config = parseConfig(configJson, `${f.path} (as config.json)`);

  const generationJson: Record<string, unknown> = {
    bos_token_id: tokenizer.bosTokenId,
    eos_token_id: tokenizer.eosTokenIds.length > 1 ? tokenizer.eosTokenIds : eos,
  };
  // llama.cpp's recommended sampling settings, when the file has them.
  const sampling: [string, string][] = [
    ['temp', 'temperature'],
    ['top_p', 'top_p'],
    ['top_k', 'top_k'],
  ];
  for (const [key, field] of sampling) {
    if (f.has(`general.sampling.${key}`)) generationJson[field] = float(f, gguf, `general.sampling.${key}`);
  }

  // The loader's own checks, before anything is written.
  try {
    ModelTokenizer.fromJson(tokenizer.tokenizerJson, tokenizer.tokenizerConfig, config, `${f.path} (as tokenizer.json)`);
  } catch (err) {
    throw new Error(`${f.path}: the rebuilt tokenizer does not load: ${(err as Error).message}`);
  }
  return { configJson, generationJson, config, tokenizer };
}

/**
 * A float from the metadata; FLOAT32 values as the shortest decimal that rounds to the same
 * float32 (1e-5, not 9.999999747378752e-6), as the original config.json had them.
 */
function float(f: GgufFields, gguf: GgufFile, key: string): number {
  const value = f.optionalNumber(key);
  if (value === undefined) throw f.error(key, 'a number');
  if (gguf.get(key)!.type !== GgufType.FLOAT32) return value;
  for (let digits = 1; digits <= 9; digits++) {
    const short = Number(value.toPrecision(digits));
    if (Math.fround(short) === value) return short;
  }
  return value;
}

/** Every GGUF tensor mapped, supported and shaped as the config says; the writer's lazy sources in HF order. */
function planTensors(gguf: GgufFile, config: ModelConfig): { sources: TensorSource[] } {
  const byHfName = new Map<string, { info: GgufTensorInfo; mapped: Mapped }>();
  for (const info of gguf.tensors.values()) {
    const mapped = mapTensor(gguf.path, info.name, config);
    checkSupported(gguf.path, info);
    byHfName.set(mapped.hfName, { info, mapped });
  }
  const sources: TensorSource[] = [];
  for (const spec of tensorSpecs(config)) {
    const entry = byHfName.get(spec.name);
    if (entry === undefined) throw new Error(`${gguf.path}: no tensor for ${spec.name} (expected ${ggufNameOf(spec.name)}, shape [${spec.shape.join(', ')}])`);
    const { info, mapped } = entry;
    if (info.shape.length !== spec.shape.length || info.shape.some((d, i) => d !== spec.shape[i])) {
      throw new Error(
        `${gguf.path}: tensor "${info.name}" has ggml dims [${info.dims.join(', ')}] (shape [${info.shape.join(', ')}]), but the metadata make ${spec.name} [${spec.shape.join(', ')}]`,
      );
    }
    sources.push({
      name: spec.name,
      shape: spec.shape,
      data: () => {
        const { data } = gguf.read(info.name);
        return mapped.permuteHeads === null ? data : unpermuteRows(data, spec.shape[0], spec.shape.length > 1 ? spec.shape[1] : 1, mapped.permuteHeads);
      },
    });
  }
  return { sources };
}

function mapTensor(path: string, name: string, config: ModelConfig): Mapped {
  const global = GLOBAL_TENSORS[name];
  if (global !== undefined) return { hfName: global, permuteHeads: null };
  const m = /^blk\.(\d+)\.(.+)$/.exec(name);
  const key = m === null ? undefined : LAYER_TENSORS[m[2]];
  if (m !== null && key !== undefined) {
    const layer = Number(m[1]);
    if (layer >= config.numLayers) throw new Error(`${path}: tensor "${name}" is for layer ${layer}, but llama.block_count is ${config.numLayers}`);
    const permuteHeads = key === 'q' || key === 'qBias' ? config.numHeads : key === 'k' || key === 'kBias' ? config.numKvHeads : null;
    return { hfName: layerTensorName(layer, key), permuteHeads };
  }
  if (name === 'rope_freqs.weight')
    throw new Error(`${path}: tensor "${name}" holds RoPE frequency factors (Llama 3.1-style RoPE scaling), which are not supported`);
  if (/_exps?\b|ffn_gate_inp/.test(name)) throw new Error(`${path}: tensor "${name}" belongs to a mixture of experts; only dense LLaMA models can be imported`);
  throw new Error(`${path}: tensor "${name}" has no counterpart in a LLaMA checkpoint`);
}

/** The GGUF name of a Hugging Face tensor name, for messages. */
function ggufNameOf(hfName: string): string {
  for (const [gguf, hf] of Object.entries(GLOBAL_TENSORS)) if (hf === hfName) return `"${gguf}"`;
  const m = /^model\.layers\.(\d+)\.(.+)$/.exec(hfName);
  if (m !== null) {
    for (const [suffix, key] of Object.entries(LAYER_TENSORS)) if (layerTensorName(Number(m[1]), key) === hfName) return `"blk.${m[1]}.${suffix}"`;
  }
  return 'a tensor';
}

/**
 * Undoes llama.cpp's q/k permutation. Its converter stores, within each head of d rows, HF row
 * `half * d/2 + i` at row `2 i + half` (so that RoPE rotates adjacent pairs); this puts every
 * row back. `rows` = heads * d; a bias is a matrix of one column.
 */
export function unpermuteRows(data: Float32Array, rows: number, cols: number, heads: number): Float32Array {
  if (rows % heads !== 0 || (rows / heads) % 2 !== 0)
    throw new Error(`cannot unpermute ${rows} rows over ${heads} heads: each head needs an even number of rows`);
  const d = rows / heads;
  const half = d / 2;
  const out = new Float32Array(data.length);
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < half; i++) {
      for (let s = 0; s < 2; s++) {
        const from = (h * d + 2 * i + s) * cols;
        const to = (h * d + s * half + i) * cols;
        out.set(data.subarray(from, from + cols), to);
      }
    }
  }
  return out;
}

function checkOutput(out: string, force: boolean): void {
  if (!existsSync(out)) return;
  if (!statSync(out).isDirectory()) throw new Error(`${out}: exists and is not a directory`);
  if (!force && readdirSync(out).length > 0) throw new Error(`${out}: directory exists and is not empty; pass --force to overwrite its model files`);
}
