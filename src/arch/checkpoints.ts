/**
 * The LLaMA family's Hugging Face checkpoint: every tensor's name and shape for a config, and
 * how they become the forward's weights. The only place that names them.
 */
import type { HostTensor, LayerWeights, LlamaConfig, LlamaWeights } from '../model/types.js';
import { readCheckpoint, type TensorSpec } from '../model/weights.js';

export type LayerKey = keyof LayerWeights;

/** HF name suffix (after `model.layers.{i}.`) of each layer field. */
const LAYER_NAMES: Readonly<Record<LayerKey, string>> = {
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

export function layerTensorName(layer: number, key: LayerKey): string {
  return `model.layers.${layer}.${LAYER_NAMES[key]}`;
}

/** The shape of each layer field for `config` (biases only when the config has them). */
export function layerShapes(c: LlamaConfig): Partial<Record<LayerKey, number[]>> {
  const qDim = c.numHeads * c.headDim;
  const kvDim = c.numKvHeads * c.headDim;
  const shapes: Partial<Record<LayerKey, number[]>> = {
    inputNorm: [c.hiddenSize],
    q: [qDim, c.hiddenSize],
    k: [kvDim, c.hiddenSize],
    v: [kvDim, c.hiddenSize],
    o: [c.hiddenSize, qDim],
    postNorm: [c.hiddenSize],
    gate: [c.intermediateSize, c.hiddenSize],
    up: [c.intermediateSize, c.hiddenSize],
    down: [c.hiddenSize, c.intermediateSize],
  };
  if (c.attentionBias) {
    shapes.qBias = [qDim];
    shapes.kBias = [kvDim];
    shapes.vBias = [kvDim];
  }
  return shapes;
}

/** Every tensor a checkpoint for `config` holds, in the order HF writes them. */
export function llamaTensorSpecs(config: LlamaConfig): TensorSpec[] {
  const specs: TensorSpec[] = [{ name: EMBED_NAME, shape: [config.vocabSize, config.hiddenSize] }];
  for (let i = 0; i < config.numLayers; i++) {
    for (const [key, shape] of Object.entries(layerShapes(config)) as [LayerKey, number[]][]) {
      specs.push({ name: layerTensorName(i, key), shape });
    }
  }
  specs.push({ name: NORM_NAME, shape: [config.hiddenSize] });
  if (!config.tieWordEmbeddings) specs.push({ name: LM_HEAD_NAME, shape: [config.vocabSize, config.hiddenSize] });
  return specs;
}

/** Builds LlamaWeights from a source of tensors by Hugging Face name (a checkpoint, a trainer). */
export function assembleLlamaWeights(config: LlamaConfig, read: (name: string) => HostTensor): LlamaWeights {
  const shapes = layerShapes(config);
  const layers: LayerWeights[] = [];
  for (let i = 0; i < config.numLayers; i++) {
    const get = (key: LayerKey): HostTensor => read(layerTensorName(i, key));
    const layer: LayerWeights = {
      inputNorm: get('inputNorm'),
      q: get('q'),
      k: get('k'),
      v: get('v'),
      o: get('o'),
      postNorm: get('postNorm'),
      gate: get('gate'),
      up: get('up'),
      down: get('down'),
    };
    if (shapes.qBias !== undefined) {
      layer.qBias = get('qBias');
      layer.kBias = get('kBias');
      layer.vBias = get('vBias');
    }
    layers.push(layer);
  }
  const embed = read(EMBED_NAME);
  // With tied embeddings the head is the embedding matrix itself (one copy in memory); a stray
  // lm_head.weight in such a checkpoint is ignored, as transformers does.
  const lmHead = config.tieWordEmbeddings ? embed : read(LM_HEAD_NAME);
  return { embed, layers, norm: read(NORM_NAME), lmHead };
}

export function loadLlamaWeights(dir: string, config: LlamaConfig): LlamaWeights {
  return readCheckpoint(dir, llamaTensorSpecs(config), (read) => assembleLlamaWeights(config, read));
}
