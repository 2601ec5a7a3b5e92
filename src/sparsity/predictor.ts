/**
 * A learned per-token neuron predictor: for each layer, a low-rank linear map from the MLP's
 * input x (the normalised hidden state, [hidden]) to one score per MLP neuron,
 *
 *   scores = (x @ A) @ B + bias        A: [hidden, rank], B: [rank, intermediate]
 *
 * trained on the oracle's per-token top-k sets (src/sparsity/predictor-train.ts). A serving
 * graph takes TopK of the scores before the MLP runs. Stored in a model directory's
 * `sparsity/predictor-{labels}.safetensors`, stamped with the hash of the weights it was
 * trained for (as tier masks are, src/sparsity/masks.ts), so it is never applied to others.
 */
import { existsSync, mkdirSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { describe, FieldReader, isRecord } from '../model/json.js';
import { SafetensorsFile, writeSafetensors } from '../model/safetensors.js';
import type { HostTensor, ModelConfig } from '../model/types.js';
import { checkFinite } from '../model/weights.js';

export const PREDICTOR_LABELS = ['cor_gxo', 'magnitude'] as const;
export type PredictorLabels = (typeof PREDICTOR_LABELS)[number];

export interface PredictorLayer {
  /** [hidden, rank], row-major */
  a: Float32Array;
  /** [rank, intermediate] */
  b: Float32Array;
  /** [intermediate] */
  bias: Float32Array;
}

export interface PredictorMeta {
  weightsSha256: string;
  labels: PredictorLabels;
  rank: number;
  trainSparsities: number[];
  steps: number;
  trainTokens: number;
  validationTokens: number;
  /**
   * Per sparsity (as a string key, e.g. "0.5"), the mean over layers of the recall of the
   * Corrected-GxO oracle's top-k on held-out tokens (for either label kind: the oracle is what
   * serving wants to reach).
   */
  recall: Record<string, number>;
  /** Gate-first's recall on the same positions: the predictor serves only where it beats it. */
  gateFirstRecall: Record<string, number>;
  createdAt: string;
}

export interface Predictor {
  labels: PredictorLabels;
  rank: number;
  hidden: number;
  intermediate: number;
  layers: PredictorLayer[];
  meta: PredictorMeta;
}

/** The predictor's share of a layer's MLP weights may not exceed this. */
export const MAX_PREDICTOR_SHARE = 0.1;

/** hidden / 8 rounded to a multiple of 8 (at least 8). */
export function defaultRank(hidden: number): number {
  return Math.max(8, Math.round(hidden / 8 / 8) * 8);
}

/** Throws unless rank * (hidden + intermediate) <= 10% of the layer's 3 * hidden * intermediate MLP weights. */
export function checkRank(rank: number, hidden: number, intermediate: number): void {
  if (!Number.isInteger(rank) || rank < 1) throw new RangeError(`predictor rank must be a positive integer, got ${rank}`);
  const own = rank * (hidden + intermediate);
  const mlp = 3 * hidden * intermediate;
  if (own > MAX_PREDICTOR_SHARE * mlp) {
    throw new RangeError(
      `a rank-${rank} predictor has ${own} weights per layer, more than ${MAX_PREDICTOR_SHARE * 100}% of the layer's ${mlp} MLP weights ` +
        `(hidden ${hidden}, intermediate ${intermediate}); the largest rank allowed is ${Math.floor((MAX_PREDICTOR_SHARE * mlp) / (hidden + intermediate))}`,
    );
  }
}

export function predictorFile(dir: string, labels: PredictorLabels): string {
  return `${dir}/sparsity/predictor-${labels}.safetensors`;
}

/** Scores of every neuron for one MLP input x ([hidden]): (x @ A) @ B + bias. Plain JS, float64 sums. */
export function predictorScores(layer: PredictorLayer, rank: number, intermediate: number, x: Float32Array): Float32Array {
  const hidden = x.length;
  if (layer.a.length !== hidden * rank || layer.b.length !== rank * intermediate || layer.bias.length !== intermediate) {
    throw new RangeError(`predictor layer shapes do not fit hidden ${hidden}, rank ${rank}, intermediate ${intermediate}`);
  }
  const h = new Float64Array(rank);
  for (let i = 0; i < hidden; i++) {
    const xi = x[i];
    if (xi === 0) continue;
    for (let r = 0; r < rank; r++) h[r] += xi * layer.a[i * rank + r];
  }
  const out = new Float64Array(intermediate);
  for (let r = 0; r < rank; r++) {
    const hr = h[r];
    for (let j = 0; j < intermediate; j++) out[j] += hr * layer.b[r * intermediate + j];
  }
  return Float32Array.from(out, (v, j) => v + layer.bias[j]);
}

const tensorName = (layer: number, part: 'a' | 'b' | 'bias') => `layers.${layer}.${part}`;

/** Writes `p` atomically to predictorFile(dir, p.labels); the meta goes into the header's `__metadata__`. */
export function writePredictor(dir: string, p: Predictor): void {
  checkShapes(p, `predictor for ${dir}`);
  const file = predictorFile(dir, p.labels);
  mkdirSync(join(dir, 'sparsity'), { recursive: true });
  const tensors: Record<string, HostTensor> = {};
  p.layers.forEach((l, i) => {
    tensors[tensorName(i, 'a')] = { shape: [p.hidden, p.rank], data: l.a };
    tensors[tensorName(i, 'b')] = { shape: [p.rank, p.intermediate], data: l.b };
    tensors[tensorName(i, 'bias')] = { shape: [p.intermediate], data: l.bias };
  });
  const metadata = {
    predictor: JSON.stringify({ format: 1, labels: p.labels, rank: p.rank, hidden: p.hidden, intermediate: p.intermediate, layers: p.layers.length }),
    meta: JSON.stringify(p.meta),
  };
  writeSafetensors(`${file}.tmp`, tensors, 'F32', metadata);
  renameSync(`${file}.tmp`, file);
}

/**
 * The model's predictor trained on `labels`, or null when it has none. Throws when it was
 * trained for other weights than `weightsHash` (stale), or its shapes are wrong.
 */
export function readPredictor(
  dir: string,
  weightsHash: string,
  labels: PredictorLabels,
  config?: Pick<ModelConfig, 'hiddenSize' | 'intermediateSize' | 'numLayers'>,
): Predictor | null {
  const file = predictorFile(dir, labels);
  if (!existsSync(file)) return null;
  const st = SafetensorsFile.open(file);
  try {
    const head = predictorHead(parseJson(st.metadata.predictor, file, 'predictor'), file);
    const meta = predictorMeta(parseJson(st.metadata.meta, file, 'meta'), file);
    if (head.labels !== labels || meta.labels !== labels) throw new Error(`${file}: holds a predictor trained on ${head.labels} labels, expected ${labels}`);
    if (meta.rank !== head.rank) throw new Error(`${file}: the meta says rank ${meta.rank}, the predictor rank ${head.rank}`);
    if (meta.weightsSha256 !== weightsHash) {
      throw new Error(
        `${file}: this predictor was trained for weights ${meta.weightsSha256.slice(0, 12)}…, ` +
          `but the model's weights hash is ${weightsHash.slice(0, 12)}…; run \`npm run train-predictor\` again for this model`,
      );
    }
    const layers: PredictorLayer[] = [];
    for (let l = 0; l < head.layers; l++) {
      const part = (name: 'a' | 'b' | 'bias', shape: number[]) => {
        const t = st.read(tensorName(l, name));
        if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
          throw new Error(`${file}: ${tensorName(l, name)} has shape [${t.shape.join(', ')}], expected [${shape.join(', ')}]`);
        }
        return checkFinite(t, file, tensorName(l, name)).data;
      };
      layers.push({ a: part('a', [head.hidden, head.rank]), b: part('b', [head.rank, head.intermediate]), bias: part('bias', [head.intermediate]) });
    }
    const p: Predictor = { labels, rank: head.rank, hidden: head.hidden, intermediate: head.intermediate, layers, meta };
    if (config && (config.hiddenSize !== p.hidden || config.intermediateSize !== p.intermediate || config.numLayers !== layers.length)) {
      throw new Error(
        `${file}: a predictor for hidden ${p.hidden}, intermediate ${p.intermediate}, ${layers.length} layers does not fit ` +
          `the model's hidden ${config.hiddenSize}, intermediate ${config.intermediateSize}, ${config.numLayers} layers`,
      );
    }
    checkShapes(p, file);
    return p;
  } finally {
    st.close();
  }
}

function parseJson(value: unknown, file: string, key: string): unknown {
  if (typeof value !== 'string') throw new Error(`${file}: no "${key}" in the safetensors metadata; not a predictor file`);
  try {
    return JSON.parse(value);
  } catch {
    throw new Error(`${file}: the "${key}" metadata is not JSON`);
  }
}

interface PredictorHead {
  labels: string;
  rank: number;
  hidden: number;
  intermediate: number;
  layers: number;
}

function predictorHead(json: unknown, file: string): PredictorHead {
  const r = new FieldReader(json, file, 'predictor.');
  const format = r.raw('format');
  if (format !== 1) throw new Error(`${file}: unknown predictor format ${describe(format)}, expected 1`);
  return {
    labels: r.string('labels'),
    rank: r.positiveInt('rank'),
    hidden: r.positiveInt('hidden'),
    intermediate: r.positiveInt('intermediate'),
    layers: r.positiveInt('layers'),
  };
}

/** The meta the server reads: whose weights, and the recalls that decide whether the predictor serves. */
function predictorMeta(json: unknown, file: string): PredictorMeta {
  const r = new FieldReader(json, file, 'meta.');
  const weightsSha256 = r.string('weightsSha256');
  if (!/^[0-9a-f]{64}$/.test(weightsSha256)) throw r.error('weightsSha256', 'a sha256 of 64 lowercase hex digits', weightsSha256);
  const labels = r.string('labels');
  if (!(PREDICTOR_LABELS as readonly string[]).includes(labels)) throw r.error('labels', `one of ${PREDICTOR_LABELS.join(', ')}`, labels);
  const recalls = (field: string): Record<string, number> => {
    const value = r.raw(field);
    const entries = isRecord(value) ? Object.entries(value) : [];
    if (entries.length === 0 || entries.some(([k, v]) => !(Number(k) >= 0 && Number(k) < 1) || typeof v !== 'number' || !(v >= 0 && v <= 1))) {
      throw r.error(field, 'an object of recalls in [0, 1] by sparsity ({"0.5": 0.9, ...})', value);
    }
    return Object.fromEntries(entries) as Record<string, number>;
  };
  const sparsities = r.raw('trainSparsities');
  if (!Array.isArray(sparsities) || sparsities.length === 0 || sparsities.some((s) => typeof s !== 'number' || !(s >= 0 && s < 1))) {
    throw r.error('trainSparsities', 'a non-empty array of sparsities in [0, 1)', sparsities);
  }
  return {
    weightsSha256,
    labels: labels as PredictorLabels,
    rank: r.positiveInt('rank'),
    trainSparsities: sparsities as number[],
    steps: r.nonNegativeInt('steps'),
    trainTokens: r.nonNegativeInt('trainTokens'),
    validationTokens: r.nonNegativeInt('validationTokens'),
    recall: recalls('recall'),
    gateFirstRecall: recalls('gateFirstRecall'),
    createdAt: r.string('createdAt'),
  };
}

function checkShapes(p: Predictor, what: string): void {
  if (p.layers.length === 0) throw new Error(`${what}: no layers`);
  p.layers.forEach((l, i) => {
    if (l.a.length !== p.hidden * p.rank || l.b.length !== p.rank * p.intermediate || l.bias.length !== p.intermediate) {
      throw new Error(`${what}: layer ${i}'s tensors do not have shapes [${p.hidden}, ${p.rank}], [${p.rank}, ${p.intermediate}], [${p.intermediate}]`);
    }
  });
}
