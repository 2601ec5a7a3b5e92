/**
 * The learned predictor's training data: for text passages, each position p (after the first)
 * decoded by the dense model one step at a time, as eval's oracle mode does it
 * (src/eval/neuron-sets.ts `oracleScores`): the step that reads token p with the dense KV
 * cache of everything before it held fixed, attributed against the dense model's greedy
 * prediction at p. Per layer it records the MLP's input x (what the predictor reads) and, per
 * label kind (Corrected GxO and magnitude), how many of the label sparsities keep each neuron.
 *
 * The top-k sets of one position are prefixes of one ranking, so they are nested: with the
 * sparsities ascending s_1 < ... < s_M, neuron i is in the set of s_m exactly when its count
 * is at least m. One byte per neuron thus holds every set, and count / M is the soft target.
 *
 * Labelled passages are cached in chunks under a work directory, so that an interrupted run
 * resumes where it stopped.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ModelConfig, ModelWeights } from '../model/types.js';
import { Prng } from '../random.js';
import { argmax } from '../runtime/sampling.js';
import { DecoderSession, type OrtOptions } from '../runtime/session.js';
import { Attributor } from './attribution.js';
import { keptCount, rankUnits } from './masks.js';
import { unitScores } from './metrics.js';
import type { PredictorLabels } from './predictor.js';

export const DEFAULT_LABEL_SPARSITIES = [0.5, 0.7, 0.8, 0.9];
/** Bumped when what a chunk holds changes, so that old caches are not read. */
const DATA_VERSION = 1;

export interface Passage {
  tokens: number[];
  /** Held out from training: recall is measured on these. */
  validation: boolean;
}

export interface PassageOptions {
  trainTokens: number;
  validationTokens: number;
  /** Tokens per passage at most (a passage of n tokens labels n - 1 positions). */
  maxLength: number;
  seed: number;
}

/**
 * Passages of up to `maxLength` tokens, one from the start of each document in a seeded
 * order: validation passages first until they label `validationTokens` positions, then
 * training passages until `trainTokens`. Documents too short to label 8 positions are skipped.
 */
export function selectPassages(texts: readonly string[], encode: (text: string) => number[], o: PassageOptions): Passage[] {
  const order = texts.map((_, i) => i);
  const rng = new Prng(o.seed);
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(rng.next() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  const out: Passage[] = [];
  let val = 0;
  let train = 0;
  for (const i of order) {
    if (train >= o.trainTokens) break;
    // About 6 characters a token at most for these tokenizers; encode no more than needed.
    const tokens = encode(texts[i].slice(0, o.maxLength * 8)).slice(0, o.maxLength);
    if (tokens.length < 9) continue;
    const validation = val < o.validationTokens;
    const n = Math.min(tokens.length - 1, validation ? o.validationTokens - val : o.trainTokens - train);
    if (n < 8) continue;
    out.push({ tokens: tokens.slice(0, n + 1), validation });
    if (validation) val += n;
    else train += n;
  }
  return out;
}

/** Positions of a passage that are labelled: every one after the first. */
export const labelledPositions = (p: Passage) => p.tokens.length - 1;

/** Per-layer data of a set of positions. */
export interface LabelledData {
  layers: number;
  hidden: number;
  intermediate: number;
  sparsities: number[];
  positions: number;
  /** Per layer, [position][hidden] */
  x: Float32Array[];
  /** Per label kind and layer, [position][neuron]: how many of `sparsities` keep the neuron. */
  counts: Record<PredictorLabels, Uint8Array[]>;
}

/** Neuron i is in the top round((1 - s_m) * F) at the m-th (1-based, ascending) sparsity iff count >= m. */
export function setAt(counts: Uint8Array, offset: number, F: number, m: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < F; i++) if (counts[offset + i] >= m) out.push(i);
  return out;
}

/** Counts of one position's scores: for each neuron, how many sparsities keep it. */
export function keepCounts(scores: ArrayLike<number>, sparsities: readonly number[], into: Uint8Array, offset: number): void {
  const order = rankUnits(scores);
  for (const s of sparsities) {
    const k = keptCount(scores.length, s);
    for (let r = 0; r < k; r++) into[offset + order[r]]++;
  }
}

export function dataKey(weightsHash: string, passages: readonly Passage[], sparsities: readonly number[]): string {
  const h = createHash('sha256');
  h.update(JSON.stringify({ version: DATA_VERSION, sparsities, passages }));
  return `${weightsHash.slice(0, 16)}-${h.digest('hex').slice(0, 16)}`;
}

export interface LabelOptions {
  /** Where chunks go (e.g. .cache/predictor/<key>); resumed from what is there. */
  work: string;
  sparsities?: number[];
  ort?: OrtOptions;
  /** Passages per cached chunk. */
  chunk?: number;
  onProgress?(done: number, total: number): void;
}

interface Chunk {
  positions: number;
  x: Float32Array[];
  counts: Record<PredictorLabels, Uint8Array[]>;
}

function emptyChunk(config: ModelConfig, positions: number): Chunk {
  const L = config.numLayers;
  return {
    positions,
    x: Array.from({ length: L }, () => new Float32Array(positions * config.hiddenSize)),
    counts: {
      cor_gxo: Array.from({ length: L }, () => new Uint8Array(positions * config.intermediateSize)),
      magnitude: Array.from({ length: L }, () => new Uint8Array(positions * config.intermediateSize)),
    },
  };
}

function writeChunk(file: string, c: Chunk): void {
  const parts = [...c.x, ...c.counts.cor_gxo, ...c.counts.magnitude].map((a) => Buffer.from(a.buffer, a.byteOffset, a.byteLength));
  writeFileSync(`${file}.tmp`, Buffer.concat(parts));
  renameSync(`${file}.tmp`, file);
}

function readChunk(file: string, config: ModelConfig, positions: number): Chunk {
  const c = emptyChunk(config, positions);
  const buf = readFileSync(file);
  const arrays = [...c.x, ...c.counts.cor_gxo, ...c.counts.magnitude];
  const need = arrays.reduce((s, a) => s + a.byteLength, 0);
  if (buf.length !== need) throw new Error(`${file}: ${buf.length} bytes, expected ${need}; delete it (or run with --fresh)`);
  let off = 0;
  for (const a of arrays) {
    new Uint8Array(a.buffer, a.byteOffset, a.byteLength).set(buf.subarray(off, off + a.byteLength));
    off += a.byteLength;
  }
  return c;
}

/** Labels every passage (resuming from cached chunks) and returns the training and validation sets. */
export async function labelPassages(
  config: ModelConfig,
  weights: ModelWeights,
  passages: readonly Passage[],
  o: LabelOptions,
): Promise<{ train: LabelledData; validation: LabelledData }> {
  const sparsities = [...(o.sparsities ?? DEFAULT_LABEL_SPARSITIES)].sort((a, b) => a - b);
  if (sparsities.length > 255) throw new RangeError('at most 255 label sparsities');
  const per = o.chunk ?? 8;
  mkdirSync(o.work, { recursive: true });
  const total = passages.reduce((s, p) => s + labelledPositions(p), 0);
  const chunks: Chunk[] = [];
  let done = 0;
  let session: DecoderSession | null = null;
  let stepper: Attributor | null = null;
  try {
    for (let c = 0; c * per < passages.length; c++) {
      const group = passages.slice(c * per, (c + 1) * per);
      const positions = group.reduce((s, p) => s + labelledPositions(p), 0);
      const file = join(o.work, `chunk-${String(c).padStart(4, '0')}.bin`);
      if (existsSync(file)) {
        chunks.push(readChunk(file, config, positions));
      } else {
        session ??= await DecoderSession.create(config, weights, o.ort);
        stepper ??= await Attributor.create(config, weights, o.ort, { cache: true, mlpInputs: true });
        const chunk = emptyChunk(config, positions);
        let row = 0;
        for (const p of group) {
          row = await labelPassage(config, session, stepper, p, sparsities, chunk, row);
          o.onProgress?.(done + row, total);
        }
        writeChunk(file, chunk);
        chunks.push(chunk);
      }
      done += positions;
      o.onProgress?.(done, total);
    }
  } finally {
    await session?.release();
    await stepper?.release();
  }
  // Passages are split by kind; chunks hold them in order.
  const pick = (validation: boolean) => {
    const rows: { chunk: Chunk; row: number; n: number }[] = [];
    let p = 0;
    for (const chunk of chunks) {
      let row = 0;
      for (let q = 0; q < per && p < passages.length; q++, p++) {
        const n = labelledPositions(passages[p]);
        if (passages[p].validation === validation) rows.push({ chunk, row, n });
        row += n;
      }
    }
    return gather(config, sparsities, rows);
  };
  return { train: pick(false), validation: pick(true) };
}

function gather(config: ModelConfig, sparsities: number[], rows: { chunk: Chunk; row: number; n: number }[]): LabelledData {
  const H = config.hiddenSize;
  const F = config.intermediateSize;
  const positions = rows.reduce((s, r) => s + r.n, 0);
  const out = emptyChunk(config, positions);
  let at = 0;
  for (const { chunk, row, n } of rows) {
    for (let l = 0; l < config.numLayers; l++) {
      out.x[l].set(chunk.x[l].subarray(row * H, (row + n) * H), at * H);
      for (const k of ['cor_gxo', 'magnitude'] as const) out.counts[k][l].set(chunk.counts[k][l].subarray(row * F, (row + n) * F), at * F);
    }
    at += n;
  }
  return { layers: config.numLayers, hidden: H, intermediate: F, sparsities, positions, x: out.x, counts: out.counts };
}

/** One passage, one dense step and one attribution step per labelled position; returns the next row. */
async function labelPassage(
  config: ModelConfig,
  session: DecoderSession,
  stepper: Attributor,
  p: Passage,
  sparsities: number[],
  into: Chunk,
  row: number,
): Promise<number> {
  const H = config.hiddenSize;
  const F = config.intermediateSize;
  let cache = (await session.forward([p.tokens[0]], session.emptyCache(), 1)).cache;
  for (let j = 1; j < p.tokens.length; j++, row++) {
    const before = cache;
    const next = await session.forward([p.tokens[j]], before, 1);
    const att = await stepper.step(p.tokens[j], before, argmax(next.logits));
    cache = next.cache;
    for (let l = 0; l < config.numLayers; l++) {
      into.x[l].set(att.mlpInputs![l].subarray(0, H), row * H);
      const mlp = att.layers[l].mlp;
      keepCounts(unitScores('cor_gxo', mlp, F), sparsities, into.counts.cor_gxo[l], row * F);
      keepCounts(unitScores('magnitude', mlp, F), sparsities, into.counts.magnitude[l], row * F);
    }
  }
  return row;
}
