/**
 * The LLaMA family (LLaMA, Mistral, Qwen2, Phi-3, MobiLlama; SmolLM, TinyLlama): RMSNorm, a SwiGLU
 * MLP, RoPE on whole heads, a sequential block (x += attn(norm(x)); x += mlp(norm(x))).
 */
import type { FieldReader } from '../model/json.js';
import type { Architecture, ModelConfig } from '../model/types.js';
import { type Family, type LayerKey, type Layout, readAttentionShape, readRopeTheta, readVocabulary } from './family.js';
import type { TestModelShape } from './testmodel.js';

const FIELDS: Layout['fields'] = {
  inputNorm: 'input_layernorm.weight',
  q: 'self_attn.q_proj.weight',
  k: 'self_attn.k_proj.weight',
  v: 'self_attn.v_proj.weight',
  o: 'self_attn.o_proj.weight',
  qBias: 'self_attn.q_proj.bias',
  kBias: 'self_attn.k_proj.bias',
  vBias: 'self_attn.v_proj.bias',
  postNorm: 'post_attention_layernorm.weight',
  gate: 'mlp.gate_proj.weight',
  up: 'mlp.up_proj.weight',
  down: 'mlp.down_proj.weight',
};

export const EMBED_NAME = 'model.embed_tokens.weight';
export const NORM_NAME = 'model.norm.weight';
export const LM_HEAD_NAME = 'lm_head.weight';

const LAYOUT: Layout = { embed: EMBED_NAME, norm: NORM_NAME, lmHead: LM_HEAD_NAME, layer: (i) => `model.layers.${i}.`, fields: FIELDS };

/** Phi-3 stacks q/k/v and gate/up (HF's Phi3MLP chunks gate_up_proj gate first). */
const PHI3_LAYOUT: Layout = {
  ...LAYOUT,
  stacked: [
    { name: 'self_attn.qkv_proj.weight', parts: ['q', 'k', 'v'] },
    { name: 'mlp.gate_up_proj.weight', parts: ['gate', 'up'] },
  ],
};

const MLP_KEYS: readonly LayerKey[] = ['gate', 'up', 'down'];
/** A layer's gate name; its number says which layer holds a shared MLP. */
const SHARED_GATE = /^model\.layers\.(\d+)\.mlp\.gate_proj\.weight$/;

/**
 * MobiLlama (mbzuai-oryx/MobiLlama, the paper's third model family) is LLaMA with one MLP shared
 * by every layer: a checkpoint saved with safetensors keeps the shared tensors once, under the
 * first layer that names them (`names`, a checkpoint's), layer 0 without.
 */
function mobiLlamaLayout(names: readonly string[] = []): Layout {
  const holders = names.map((n) => SHARED_GATE.exec(n)?.[1]).filter((i) => i !== undefined);
  return { ...LAYOUT, shared: { layer: holders.length > 0 ? Math.min(...holders.map(Number)) : 0, keys: MLP_KEYS } };
}

/** A layer tensor's name (the GGUF importer's, whose files hold LLaMA-family models). */
export function layerTensorName(layer: number, key: LayerKey): string {
  return `${LAYOUT.layer(layer)}${FIELDS[key]}`;
}

const MODEL_TYPES: Partial<Record<Architecture, string>> = {
  LlamaForCausalLM: 'llama',
  MistralForCausalLM: 'mistral',
  Qwen2ForCausalLM: 'qwen2',
  Phi3ForCausalLM: 'phi3',
  MobiLlamaForCausalLM: 'llama',
};

export const LLAMA: Family = {
  /** x = x + attn(norm1(x));  x = x + mlp(norm2(x)) */
  layer(b, x, w, i) {
    const h = b.addNorm(b.attention(x.normed, w, i), x.sum, w.postNorm!, w.postNormBias, `model.layers.${i}.post_attention_layernorm`);
    return { out: b.mlp(h.normed, w, i), residual: h.sum };
  },

  readConfig(f: FieldReader, architecture: Architecture): ModelConfig {
    // MobiLlama's attention is multi-head whatever num_key_value_heads says (its modelling code builds it so).
    const kvField = architecture === 'MobiLlamaForCausalLM' ? null : 'num_key_value_heads';
    const attention = readAttentionShape(f, f.positiveInt('hidden_size'), 'num_attention_heads', kvField);
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
    return {
      architecture,
      ...attention,
      intermediateSize: f.positiveInt('intermediate_size'),
      numLayers: f.positiveInt('num_hidden_layers'),
      norm: 'rms',
      normEps: f.positiveNumber('rms_norm_eps'),
      mlp: 'swiglu',
      rotaryDim: attention.headDim,
      ropeTheta: readRopeTheta(f),
      attentionBias: readAttentionBias(f, architecture),
      maxPositions: readMaxPositions(f, architecture),
      ...readVocabulary(f, false),
    };
  },

  layout(architecture, names) {
    if (architecture === 'Phi3ForCausalLM') return PHI3_LAYOUT;
    if (architecture === 'MobiLlamaForCausalLM') return mobiLlamaLayout(names);
    return LAYOUT;
  },

  configJson(shape: TestModelShape): Record<string, unknown> {
    const { architecture } = shape;
    if (architecture === 'Qwen2ForCausalLM' && !shape.attentionBias) {
      throw new Error('test model: Qwen2 always has q/k/v biases; attentionBias cannot be false');
    }
    if ((architecture === 'MistralForCausalLM' || architecture === 'Phi3ForCausalLM' || architecture === 'MobiLlamaForCausalLM') && shape.attentionBias) {
      throw new Error(`test model: ${architecture} has no q/k/v biases; attentionBias cannot be true`);
    }
    if (architecture === 'MobiLlamaForCausalLM' && shape.kvHeads !== shape.heads) {
      throw new Error("test model: MobiLlama's attention is multi-head; kvHeads must equal heads");
    }
    const json: Record<string, unknown> = {
      architectures: [architecture],
      model_type: MODEL_TYPES[architecture],
      hidden_size: shape.hidden,
      intermediate_size: shape.intermediate,
      num_hidden_layers: shape.layers,
      num_attention_heads: shape.heads,
      num_key_value_heads: shape.kvHeads,
      head_dim: shape.headDim,
      vocab_size: shape.vocab,
      max_position_embeddings: shape.maxPositions,
      rms_norm_eps: shape.normEps,
      rope_theta: shape.ropeTheta,
      rope_scaling: null,
      tie_word_embeddings: shape.tie,
      hidden_act: 'silu',
    };
    if (architecture === 'LlamaForCausalLM') Object.assign(json, { attention_bias: shape.attentionBias, mlp_bias: false });
    if (shape.partialRotary !== 1) json.partial_rotary_factor = shape.partialRotary;
    if (architecture === 'MistralForCausalLM' || architecture === 'Phi3ForCausalLM') json.sliding_window = null;
    if (architecture === 'Qwen2ForCausalLM') Object.assign(json, { use_sliding_window: false, sliding_window: null });
    return json;
  },
};

function readAttentionBias(f: FieldReader, architecture: Architecture): boolean {
  switch (architecture) {
    case 'Qwen2ForCausalLM':
      // Qwen2's attention always has q/k/v biases; its config has no field for it.
      return true;
    case 'LlamaForCausalLM':
      return f.optional('attention_bias', () => f.boolean('attention_bias')) ?? false;
    default:
      // HF's Mistral and Phi-3 attention, and MobiLlama's, are built without biases whatever the config says.
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
  if (architecture === 'LlamaForCausalLM' || architecture === 'MobiLlamaForCausalLM') return maxPositions;
  if (architecture === 'Qwen2ForCausalLM' && f.optional('use_sliding_window', () => f.boolean('use_sliding_window')) !== true) {
    return maxPositions;
  }
  const window = f.optional('sliding_window', () => f.positiveInt('sliding_window'));
  return window === undefined ? maxPositions : Math.min(window, maxPositions);
}
