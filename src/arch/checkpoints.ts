/**
 * Hugging Face checkpoints: every tensor's name and shape for a config, from its family's name
 * table (`Layout`, src/arch/family.ts), and how they become the forward's weights
 * (`ModelWeights`, one vocabulary for every architecture): stacked tensors split, Conv1D weights
 * transposed.
 */
import type { HostTensor, LayerWeights, ModelConfig, ModelWeights } from '../model/types.js';
import { transposed } from './decoder.js';
import { familyOf } from './families.js';
import type { LayerKey, Layout } from './family.js';
import { SafetensorsCheckpoint } from '../model/checkpoint.js';
import { readCheckpoint, type TensorSpec } from '../model/weights.js';

/** The family's layout; `names` (a checkpoint's, when given) picks between the variants it writes (GPT-2's root). */
const layoutOf = (config: ModelConfig, names?: readonly string[]): Layout => familyOf(config.architecture).layout(config.architecture, names);

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

/** A shape as the forward holds it -> as stored: Conv1D weights are [in, out] on disk. */
const stored = (layout: Layout, shape: number[]) => (layout.conv1d && shape.length === 2 ? [shape[1], shape[0]] : shape);

function layerTensors(config: ModelConfig, layout: Layout, layer: number): LayerTensor[] {
  const shapes = layerShapes(config, layout);
  const out: LayerTensor[] = [];
  for (const [key, shape] of Object.entries(shapes) as [LayerKey, number[]][]) {
    // A shared field is stored once, under its layer, and every layer reads that tensor.
    const name = `${layout.layer(layout.shared?.keys.includes(key) ? layout.shared.layer : layer)}${layout.fields[key]}`;
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
  const listed = new Set<string>();
  for (let i = 0; i < config.numLayers; i++) {
    for (const { name, shape } of layerTensors(config, layout, i)) {
      if (!listed.has(name)) specs.push({ name, shape });
      listed.add(name);
    }
  }
  specs.push({ name: layout.norm, shape: [hidden] });
  if (layout.normBias) specs.push({ name: layout.normBias, shape: [hidden] });
  if (!config.tieWordEmbeddings) specs.push({ name: layout.lmHead, shape: [vocab, hidden] });
  if (layout.lmHeadBias) specs.push({ name: layout.lmHeadBias, shape: [vocab] });
  return specs;
}

/** Builds ModelWeights from a source of tensors by Hugging Face name (a checkpoint, a trainer). */
export function assembleWeights(config: ModelConfig, read: (name: string) => HostTensor, layout = layoutOf(config)): ModelWeights {
  const layers: LayerWeights[] = [];
  // Tensors every layer shares are read once: one object in each layer's fields.
  const shared = new Map<string, HostTensor>();
  for (let i = 0; i < config.numLayers; i++) {
    const fields: Partial<LayerWeights> = {};
    for (const { name, parts } of layerTensors(config, layout, i)) {
      const raw = shared.get(name) ?? read(name);
      if (parts.every((p) => layout.shared?.keys.includes(p.key))) shared.set(name, raw);
      const t = layout.conv1d && raw.shape.length === 2 ? { shape: [raw.shape[1], raw.shape[0]], data: transposed(raw) } : raw;
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
