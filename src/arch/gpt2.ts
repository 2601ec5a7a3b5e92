/**
 * GPT-2 (GPT2LMHeadModel): learned absolute positions added to the embeddings, LayerNorm with a
 * bias, a sequential block, a GELU MLP 4x wide unless `n_inner`, a head tied to the embedding. Its
 * linear layers are Conv1D, stored [in, out], and q/k/v are one of them, `c_attn`.
 */
import type { FieldReader } from '../model/json.js';
import type { Architecture, ModelConfig } from '../model/types.js';
import { DEFAULT_ROPE_THETA, type Family, type Layout, readAttentionShape, readGeluTanh, readVocabulary, requireDerivedHeadSize } from './family.js';
import { LLAMA } from './llama.js';
import type { TestModelShape } from './testmodel.js';

/**
 * The layout under `root`: `transformer.` as GPT2LMHeadModel.save_pretrained writes it, nothing
 * in the original checkpoints (openai-community/gpt2).
 */
const layoutUnder = (root: string): Layout => ({
  embed: `${root}wte.weight`,
  positions: `${root}wpe.weight`,
  norm: `${root}ln_f.weight`,
  normBias: `${root}ln_f.bias`,
  lmHead: 'lm_head.weight',
  layer: (i) => `${root}h.${i}.`,
  fields: {
    inputNorm: 'ln_1.weight',
    inputNormBias: 'ln_1.bias',
    q: 'attn.c_attn.weight',
    k: 'attn.c_attn.weight',
    v: 'attn.c_attn.weight',
    qBias: 'attn.c_attn.bias',
    kBias: 'attn.c_attn.bias',
    vBias: 'attn.c_attn.bias',
    o: 'attn.c_proj.weight',
    oBias: 'attn.c_proj.bias',
    postNorm: 'ln_2.weight',
    postNormBias: 'ln_2.bias',
    up: 'mlp.c_fc.weight',
    upBias: 'mlp.c_fc.bias',
    down: 'mlp.c_proj.weight',
    downBias: 'mlp.c_proj.bias',
  },
  stacked: [
    { name: 'attn.c_attn.weight', parts: ['q', 'k', 'v'] },
    { name: 'attn.c_attn.bias', parts: ['qBias', 'kBias', 'vBias'] },
  ],
  conv1d: true,
});

const ROOTS = ['transformer.', ''];

export const GPT2: Family = {
  /** LLaMA's block: x = x + attn(ln_1(x));  x = x + mlp(ln_2(x)) */
  layer: LLAMA.layer,

  readConfig(f: FieldReader, architecture: Architecture): ModelConfig {
    const hiddenSize = f.positiveInt('n_embd');
    if (f.optional('scale_attn_weights', () => f.boolean('scale_attn_weights')) === false) {
      throw f.error('scale_attn_weights', 'true or absent (unscaled attention scores are not supported)', false);
    }
    if (f.optional('scale_attn_by_inverse_layer_idx', () => f.boolean('scale_attn_by_inverse_layer_idx')) === true) {
      throw f.error('scale_attn_by_inverse_layer_idx', 'false or absent (per-layer score scaling is not supported)', true);
    }
    return {
      architecture,
      ...readAttentionShape(f, hiddenSize, 'n_head', null),
      intermediateSize: f.optional('n_inner', () => f.positiveInt('n_inner')) ?? 4 * hiddenSize,
      numLayers: f.positiveInt('n_layer'),
      norm: 'layer',
      normEps: f.optional('layer_norm_epsilon', () => f.positiveNumber('layer_norm_epsilon')) ?? 1e-5,
      mlp: readGeluTanh(f, 'activation_function'),
      rotaryDim: 0,
      ropeTheta: DEFAULT_ROPE_THETA,
      attentionBias: true,
      maxPositions: f.positiveInt('n_positions'),
      ...readVocabulary(f, true),
    };
  },

  /** Under the root that holds the embedding in `names`; `transformer.` without names (what is written). */
  layout(_architecture, names) {
    return layoutUnder(ROOTS.find((root) => names?.includes(`${root}wte.weight`)) ?? ROOTS[0]);
  },

  configJson(shape: TestModelShape): Record<string, unknown> {
    requireDerivedHeadSize(shape);
    if (!shape.attentionBias) throw new Error('test model: GPT-2 always has biases; attentionBias cannot be false');
    if (shape.kvHeads !== shape.heads) throw new Error('test model: GPT-2 has no grouped-query attention; kvHeads must equal heads');
    return {
      architectures: [shape.architecture],
      model_type: 'gpt2',
      n_embd: shape.hidden,
      n_inner: shape.intermediate,
      n_layer: shape.layers,
      n_head: shape.heads,
      vocab_size: shape.vocab,
      n_positions: shape.maxPositions,
      n_ctx: shape.maxPositions,
      layer_norm_epsilon: shape.normEps,
      activation_function: 'gelu_new',
      scale_attn_weights: true,
      tie_word_embeddings: shape.tie,
    };
  },
};
