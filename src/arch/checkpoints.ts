/**
 * The LLaMA family's Hugging Face checkpoints (LLaMA, Mistral, Qwen2, Phi-3): every tensor's
 * name and shape for a config, and how they become the forward's weights. The only place that
 * names them.
 */
import type { Architecture, HostTensor, LayerWeights, LlamaConfig, LlamaWeights } from '../model/types.js';
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
function layerShapes(c: LlamaConfig): Partial<Record<LayerKey, number[]>> {
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

/**
 * Layer fields a family stores stacked by rows in one tensor: Phi-3's qkv_proj holds q, k and v,
 * its gate_up_proj gate then up (HF's Phi3MLP chunks it in that order).
 */
const STACKED: Partial<Record<Architecture, readonly { name: string; parts: readonly LayerKey[] }[]>> = {
  Phi3ForCausalLM: [
    { name: 'self_attn.qkv_proj.weight', parts: ['q', 'k', 'v'] },
    { name: 'mlp.gate_up_proj.weight', parts: ['gate', 'up'] },
  ],
};

/** One layer's tensors in a checkpoint: a field's own, or several fields stacked by rows. */
interface LayerTensor {
  name: string;
  shape: number[];
  parts: { key: LayerKey; rows: number }[];
}

function layerTensors(config: LlamaConfig, layer: number): LayerTensor[] {
  const shapes = layerShapes(config);
  const stacked = STACKED[config.architecture] ?? [];
  const out: LayerTensor[] = [];
  for (const [key, shape] of Object.entries(shapes) as [LayerKey, number[]][]) {
    const group = stacked.find((g) => g.parts.includes(key));
    if (!group) {
      out.push({ name: layerTensorName(layer, key), shape, parts: [{ key, rows: shape[0] }] });
    } else if (group.parts[0] === key) {
      const parts = group.parts.map((k) => ({ key: k, rows: shapes[k]![0] }));
      out.push({ name: `model.layers.${layer}.${group.name}`, shape: [parts.reduce((n, p) => n + p.rows, 0), shape[1]], parts });
    }
  }
  return out;
}

/** Every tensor a checkpoint for `config` holds, in the order HF writes them. */
export function llamaTensorSpecs(config: LlamaConfig): TensorSpec[] {
  const specs: TensorSpec[] = [{ name: EMBED_NAME, shape: [config.vocabSize, config.hiddenSize] }];
  for (let i = 0; i < config.numLayers; i++) for (const { name, shape } of layerTensors(config, i)) specs.push({ name, shape });
  specs.push({ name: NORM_NAME, shape: [config.hiddenSize] });
  if (!config.tieWordEmbeddings) specs.push({ name: LM_HEAD_NAME, shape: [config.vocabSize, config.hiddenSize] });
  return specs;
}

/** Builds LlamaWeights from a source of tensors by Hugging Face name (a checkpoint, a trainer). */
export function assembleLlamaWeights(config: LlamaConfig, read: (name: string) => HostTensor): LlamaWeights {
  const layers: LayerWeights[] = [];
  for (let i = 0; i < config.numLayers; i++) {
    const fields: Partial<LayerWeights> = {};
    for (const { name, parts } of layerTensors(config, i)) {
      const t = read(name);
      if (parts.length === 1) {
        fields[parts[0].key] = t;
        continue;
      }
      // Stacked fields: consecutive row ranges, each copied out as the field's own tensor.
      const cols = t.shape[1];
      let row = 0;
      for (const { key, rows } of parts) {
        fields[key] = { shape: [rows, cols], data: t.data.slice(row * cols, (row + rows) * cols) };
        row += rows;
      }
    }
    layers.push(fields as LayerWeights);
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
