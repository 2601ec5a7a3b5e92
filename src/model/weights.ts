/**
 * Loading a LLaMA-family checkpoint by its Hugging Face tensor names. Shapes are checked
 * against the config from the headers before any data is read, so a mismatched checkpoint
 * fails fast and says which tensor, where, and both shapes. Values are checked as they are
 * read: one NaN or infinity poisons every logit downstream, so such a model is refused.
 */
import { SafetensorsCheckpoint } from './checkpoint.js';
import type { HostTensor, LayerWeights, LlamaConfig, LlamaWeights } from './types.js';

export interface TensorSpec {
  name: string;
  shape: number[];
}

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
  const checkpoint = SafetensorsCheckpoint.open(dir);
  try {
    // Check every shape first: reading gigabytes before finding a mistake helps nobody.
    for (const spec of llamaTensorSpecs(config)) checkShape(checkpoint, spec.name, spec.shape);
    return assembleLlamaWeights(config, (name) => checkFinite(checkpoint.read(name), checkpoint.info(name)!.file, name));
  } finally {
    checkpoint.close();
  }
}

function checkShape(checkpoint: SafetensorsCheckpoint, name: string, expected: number[]): void {
  const info = checkpoint.info(name);
  if (info === undefined) {
    throw new Error(`${checkpoint.source}: tensor "${name}" is missing (expected shape [${expected.join(', ')}])`);
  }
  if (info.shape.length !== expected.length || info.shape.some((d, i) => d !== expected[i])) {
    throw new Error(`${info.file}: tensor "${name}" has shape [${info.shape.join(', ')}], expected [${expected.join(', ')}]`);
  }
}

/**
 * Returns `tensor` when every value is finite; otherwise throws naming the file, the tensor,
 * the first bad value's index (flat and per dimension) and how many there are. One pass over
 * the data, after F16/BF16 have been widened (their NaN and infinities widen to float32's).
 */
export function checkFinite(tensor: HostTensor, file: string, name: string): HostTensor {
  const { data, shape } = tensor;
  let first = -1;
  for (let i = 0; i < data.length; i++) {
    if (!Number.isFinite(data[i])) {
      first = i;
      break;
    }
  }
  if (first < 0) return tensor;
  let count = 0;
  for (let i = first; i < data.length; i++) if (!Number.isFinite(data[i])) count++;
  const at: number[] = [];
  for (let d = shape.length - 1, rest = first; d >= 0; d--) {
    at.unshift(rest % shape[d]);
    rest = Math.floor(rest / shape[d]);
  }
  throw new Error(
    `${file}: tensor "${name}" holds ${String(data[first])} at index ${first} ([${at.join(', ')}] of shape [${shape.join(', ')}])` +
      `${count > 1 ? ` and ${count - 1} more non-finite values` : ''}; the checkpoint is corrupt or diverged in training, and the model cannot serve it`,
  );
}
