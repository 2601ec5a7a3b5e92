/**
 * Hugging Face checkpoints, one name table per family: every tensor's name and shape for a
 * config, and how they become the forward's weights (`ModelWeights`, one vocabulary for every
 * architecture). The only place that names them.
 */
import type { Architecture, HostTensor, LayerWeights, ModelConfig, ModelWeights } from '../model/types.js';
import { SafetensorsCheckpoint } from '../model/checkpoint.js';
import { readCheckpoint, type TensorSpec } from '../model/weights.js';

export type LayerKey = keyof LayerWeights;

/** How one family names its tensors. */
interface Layout {
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
}

const LLAMA_FIELDS: Layout['fields'] = {
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

const LLAMA: Layout = { embed: EMBED_NAME, norm: NORM_NAME, lmHead: LM_HEAD_NAME, layer: (i) => `model.layers.${i}.`, fields: LLAMA_FIELDS };

/** Phi-1.5 / Phi-2: LLaMA's prefixes, a bias on everything, `dense` for o, fc1/fc2, no MLP norm. */
const PHI: Layout = {
  embed: EMBED_NAME,
  norm: 'model.final_layernorm.weight',
  normBias: 'model.final_layernorm.bias',
  lmHead: LM_HEAD_NAME,
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

/**
 * GPT-2 under `root`: `transformer.` as GPT2LMHeadModel.save_pretrained writes it, nothing in
 * the original checkpoints (openai-community/gpt2). Its q/k/v are one Conv1D, `c_attn`.
 */
const gpt2 = (root: string): Layout => ({
  embed: `${root}wte.weight`,
  positions: `${root}wpe.weight`,
  norm: `${root}ln_f.weight`,
  normBias: `${root}ln_f.bias`,
  lmHead: LM_HEAD_NAME,
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

const GPT2_ROOTS = ['transformer.', ''];

const LAYOUTS: Readonly<Record<Architecture, Layout>> = {
  LlamaForCausalLM: LLAMA,
  MistralForCausalLM: LLAMA,
  Qwen2ForCausalLM: LLAMA,
  // Phi-3 stacks q/k/v and gate/up (HF's Phi3MLP chunks gate_up_proj gate first).
  Phi3ForCausalLM: {
    ...LLAMA,
    stacked: [
      { name: 'self_attn.qkv_proj.weight', parts: ['q', 'k', 'v'] },
      { name: 'mlp.gate_up_proj.weight', parts: ['gate', 'up'] },
    ],
  },
  PhiForCausalLM: PHI,
  GPT2LMHeadModel: gpt2(GPT2_ROOTS[0]),
};

/** The family's layout; for GPT-2, the root under which `names` (a checkpoint's, when given) hold the embedding. */
function layoutOf(config: ModelConfig, names?: readonly string[]): Layout {
  if (config.architecture !== 'GPT2LMHeadModel' || !names) return LAYOUTS[config.architecture];
  const root = GPT2_ROOTS.find((r) => names.includes(`${r}wte.weight`)) ?? GPT2_ROOTS[0];
  return gpt2(root);
}

/** A LLaMA-family layer tensor's name (the GGUF importer's). */
export function layerTensorName(layer: number, key: LayerKey): string {
  return `${LLAMA.layer(layer)}${LLAMA_FIELDS[key]}`;
}

/** The shape of each layer field for `config`, as the forward holds it ([out, in] for linear weights). */
function layerShapes(c: ModelConfig, layout: Layout): Partial<Record<LayerKey, number[]>> {
  const qDim = c.numHeads * c.headDim;
  const kvDim = c.numKvHeads * c.headDim;
  const all: Record<LayerKey, number[]> = {
    inputNorm: [c.hiddenSize],
    inputNormBias: [c.hiddenSize],
    q: [qDim, c.hiddenSize],
    k: [kvDim, c.hiddenSize],
    v: [kvDim, c.hiddenSize],
    o: [c.hiddenSize, qDim],
    qBias: [qDim],
    kBias: [kvDim],
    vBias: [kvDim],
    oBias: [c.hiddenSize],
    postNorm: [c.hiddenSize],
    postNormBias: [c.hiddenSize],
    gate: [c.intermediateSize, c.hiddenSize],
    up: [c.intermediateSize, c.hiddenSize],
    upBias: [c.intermediateSize],
    down: [c.hiddenSize, c.intermediateSize],
    downBias: [c.hiddenSize],
  };
  const qkvBias: LayerKey[] = ['qBias', 'kBias', 'vBias'];
  const shapes: Partial<Record<LayerKey, number[]>> = {};
  for (const key of Object.keys(layout.fields) as LayerKey[]) {
    if (!c.attentionBias && qkvBias.includes(key)) continue;
    shapes[key] = all[key];
  }
  return shapes;
}

/** One layer's tensors in a checkpoint: a field's own, or several fields stacked. */
interface LayerTensor {
  name: string;
  /** As stored. */
  shape: number[];
  parts: { key: LayerKey; rows: number }[];
}

/** [rows, cols] as stored -> the forward's; Conv1D weights are [in, out] on disk. */
const stored = (layout: Layout, shape: number[]) => (layout.conv1d && shape.length === 2 ? [shape[1], shape[0]] : shape);

function layerTensors(config: ModelConfig, layout: Layout, layer: number): LayerTensor[] {
  const shapes = layerShapes(config, layout);
  const out: LayerTensor[] = [];
  for (const [key, shape] of Object.entries(shapes) as [LayerKey, number[]][]) {
    const name = `${layout.layer(layer)}${layout.fields[key]}`;
    const group = layout.stacked?.find((g) => g.parts.includes(key));
    if (!group) {
      out.push({ name, shape: stored(layout, shape), parts: [{ key, rows: shape[0] }] });
    } else if (group.parts[0] === key) {
      const parts = group.parts.map((k) => ({ key: k, rows: shapes[k]![0] }));
      out.push({ name: `${layout.layer(layer)}${group.name}`, shape: stored(layout, [parts.reduce((n, p) => n + p.rows, 0), ...shape.slice(1)]), parts });
    }
  }
  return out;
}

/** Every tensor a checkpoint for `config` holds, in the order HF writes them. */
export function tensorSpecs(config: ModelConfig, layout = layoutOf(config)): TensorSpec[] {
  const { hiddenSize: hidden, vocabSize: vocab } = config;
  const specs: TensorSpec[] = [{ name: layout.embed, shape: [vocab, hidden] }];
  if (layout.positions) specs.push({ name: layout.positions, shape: [config.maxPositions, hidden] });
  for (let i = 0; i < config.numLayers; i++) for (const { name, shape } of layerTensors(config, layout, i)) specs.push({ name, shape });
  specs.push({ name: layout.norm, shape: [hidden] });
  if (layout.normBias) specs.push({ name: layout.normBias, shape: [hidden] });
  if (!config.tieWordEmbeddings) specs.push({ name: layout.lmHead, shape: [vocab, hidden] });
  if (layout.lmHeadBias) specs.push({ name: layout.lmHeadBias, shape: [vocab] });
  return specs;
}

/** [rows, cols] row-major -> [cols, rows]. */
function transpose(t: HostTensor): HostTensor {
  const [rows, cols] = t.shape;
  const data = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) data[c * rows + r] = t.data[r * cols + c];
  return { shape: [cols, rows], data };
}

/** Builds ModelWeights from a source of tensors by Hugging Face name (a checkpoint, a trainer). */
export function assembleWeights(config: ModelConfig, read: (name: string) => HostTensor, layout = layoutOf(config)): ModelWeights {
  const layers: LayerWeights[] = [];
  for (let i = 0; i < config.numLayers; i++) {
    const fields: Partial<LayerWeights> = {};
    for (const { name, parts } of layerTensors(config, layout, i)) {
      const raw = read(name);
      const t = layout.conv1d && raw.shape.length === 2 ? transpose(raw) : raw;
      if (parts.length === 1) {
        fields[parts[0].key] = t;
        continue;
      }
      // Stacked fields: consecutive row ranges (entries of a bias), each copied out as the field's own tensor.
      const cols = t.shape.length === 2 ? t.shape[1] : 1;
      let row = 0;
      for (const { key, rows } of parts) {
        fields[key] = { shape: t.shape.length === 2 ? [rows, cols] : [rows], data: t.data.slice(row * cols, (row + rows) * cols) };
        row += rows;
      }
    }
    layers.push(fields as LayerWeights);
  }
  const embed = read(layout.embed);
  // With tied embeddings the head is the embedding matrix itself (one copy in memory); a stray
  // lm_head.weight in such a checkpoint is ignored, as transformers does.
  const lmHead = config.tieWordEmbeddings ? embed : read(layout.lmHead);
  const weights: ModelWeights = { embed, layers, norm: read(layout.norm), lmHead };
  if (layout.positions) weights.positions = read(layout.positions);
  if (layout.normBias) weights.normBias = read(layout.normBias);
  if (layout.lmHeadBias) weights.lmHeadBias = read(layout.lmHeadBias);
  return weights;
}

export function loadWeights(dir: string, config: ModelConfig): ModelWeights {
  const checkpoint = SafetensorsCheckpoint.open(dir);
  let layout: Layout;
  try {
    layout = layoutOf(config, checkpoint.names());
  } finally {
    checkpoint.close();
  }
  return readCheckpoint(dir, tensorSpecs(config, layout), (read) => assembleWeights(config, read, layout));
}
