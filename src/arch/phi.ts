/**
 * Phi-1.5 and Phi-2 (transformers' PhiForCausalLM), the paper's models: LayerNorm with a bias;
 * attention and MLP in parallel on one normalised input (x += attn(norm(x)) + mlp(norm(x)));
 * RoPE on the first `partial_rotary_factor` of each head; a GELU MLP (fc1, fc2); a bias on every
 * projection and on the head.
 */
import type { FieldReader } from '../model/json.js';
import type { Architecture, ModelConfig } from '../model/types.js';
import { type Family, type Layout, readAttentionShape, readGeluTanh, readRopeTheta, readVocabulary, requireDerivedHeadSize } from './family.js';
import type { TestModelShape } from './testmodel.js';

/** PhiConfig's default share of each head that rotates. */
const DEFAULT_PARTIAL_ROTARY = 0.5;

const LAYOUT: Layout = {
  embed: 'model.embed_tokens.weight',
  norm: 'model.final_layernorm.weight',
  normBias: 'model.final_layernorm.bias',
  lmHead: 'lm_head.weight',
  lmHeadBias: 'lm_head.bias',
  layer: (i) => `model.layers.${i}.`,
  fields: {
    inputNorm: 'input_layernorm.weight',
    inputNormBias: 'input_layernorm.bias',
    q: 'self_attn.q_proj.weight',
    k: 'self_attn.k_proj.weight',
    v: 'self_attn.v_proj.weight',
    o: 'self_attn.dense.weight',
    qBias: 'self_attn.q_proj.bias',
    kBias: 'self_attn.k_proj.bias',
    vBias: 'self_attn.v_proj.bias',
    oBias: 'self_attn.dense.bias',
    up: 'mlp.fc1.weight',
    upBias: 'mlp.fc1.bias',
    down: 'mlp.fc2.weight',
    downBias: 'mlp.fc2.bias',
  },
};

export const PHI: Family = {
  /** x = x + attn(norm(x)) + mlp(norm(x)) */
  layer: (b, x, w, i) => ({ out: b.g.add(b.attention(x.normed, w, i), b.mlp(x.normed, w, i)), residual: x.sum }),

  readConfig(f: FieldReader, architecture: Architecture): ModelConfig {
    const attention = readAttentionShape(f, f.positiveInt('hidden_size'), 'num_attention_heads', 'num_key_value_heads');
    const factor =
      f.optional('partial_rotary_factor', () => f.number('partial_rotary_factor', 'a number in (0, 1]', (x) => x > 0 && x <= 1)) ?? DEFAULT_PARTIAL_ROTARY;
    // HF: rotary_ndims = int(partial_rotary_factor * head_dim); RoPE rotates pairs, so it must be even.
    const rotaryDim = Math.floor(factor * attention.headDim);
    if (rotaryDim % 2 !== 0 || rotaryDim === 0) {
      throw f.error('partial_rotary_factor', `a factor that rotates an even, non-zero number of the head's ${attention.headDim} dimensions`, factor);
    }
    if (f.optional('qk_layernorm', () => f.boolean('qk_layernorm')) === true) {
      throw f.error('qk_layernorm', 'false or absent (norms on queries and keys are not supported)', true);
    }
    return {
      architecture,
      ...attention,
      intermediateSize: f.positiveInt('intermediate_size'),
      numLayers: f.positiveInt('num_hidden_layers'),
      norm: 'layer',
      normEps: f.positiveNumber('layer_norm_eps'),
      mlp: readGeluTanh(f, 'hidden_act'),
      rotaryDim,
      ropeTheta: readRopeTheta(f),
      attentionBias: true,
      maxPositions: f.positiveInt('max_position_embeddings'),
      ...readVocabulary(f, false),
    };
  },

  layout: () => LAYOUT,

  configJson(shape: TestModelShape): Record<string, unknown> {
    requireDerivedHeadSize(shape);
    if (!shape.attentionBias) throw new Error('test model: Phi always has biases; attentionBias cannot be false');
    return {
      architectures: [shape.architecture],
      model_type: 'phi',
      hidden_size: shape.hidden,
      intermediate_size: shape.intermediate,
      num_hidden_layers: shape.layers,
      num_attention_heads: shape.heads,
      num_key_value_heads: shape.kvHeads,
      vocab_size: shape.vocab,
      max_position_embeddings: shape.maxPositions,
      layer_norm_eps: shape.normEps,
      rope_theta: shape.ropeTheta,
      rope_scaling: null,
      partial_rotary_factor: shape.partialRotary,
      qk_layernorm: false,
      hidden_act: 'gelu_new',
      tie_word_embeddings: shape.tie,
    };
  },
};
