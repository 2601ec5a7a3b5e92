/**
 * Tier masks: for a sparsity s, each layer keeps the top (1 - s) of its units by score. Stored
 * in a model directory's `sparsity/masks.json` with what they came from (metric, calibration
 * set, weights), so masks are never applied to weights they were not computed for. Every field
 * is checked when the file is read: an index out of range would read another neuron's weights
 * (or none), and a repeated one would count a neuron twice, and neither fails later on its own.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, FieldReader, readJsonFile } from '../model/json.js';
import type { ModelConfig } from '../model/types.js';
import { flopWeightedSparsity } from './flops.js';
import { isMetric, METRICS, type Metric } from './metrics.js';
import { tierName } from './tiers.js';

export const DEFAULT_TIERS = [0.25, 0.5, 0.7, 0.8, 0.9];
export const MASKS_FILE = join('sparsity', 'masks.json');
/** Context length at which head FLOPs are weighed in the reported FLOP-weighted sparsity. */
export const REPORT_CONTEXT = 256;

/** How many of n units a sparsity keeps: round((1 - s) * n), at least one. */
export function keptCount(n: number, sparsity: number): number {
  if (!(sparsity >= 0 && sparsity < 1)) throw new RangeError(`sparsity must be in [0, 1), got ${sparsity}`);
  return Math.max(1, Math.round((1 - sparsity) * n));
}

/** Unit indices from the highest score down; equal scores keep index order. */
export function rankUnits(scores: ArrayLike<number>): number[] {
  return Array.from({ length: scores.length }, (_, i) => i).sort((x, y) => scores[y] - scores[x] || x - y);
}

/** Indices of the units kept at `sparsity`, ascending: the top round((1 - s) * n) by score. */
export function keepTop(scores: ArrayLike<number>, sparsity: number): number[] {
  const keep = keptCount(scores.length, sparsity);
  return rankUnits(scores)
    .slice(0, keep)
    .sort((x, y) => x - y);
}

/** Aggregated scores of one layer's units. */
export interface LayerUnitScores {
  mlp: ArrayLike<number>;
  heads: ArrayLike<number>;
}

export interface LayerMask {
  mlp: number[];
  heads: number[];
}

export interface TierMask {
  /** The requested per-layer sparsity of MLP neurons. */
  sparsity: number;
  /** FLOP-weighted share of MLP and head FLOPs removed, at REPORT_CONTEXT. */
  flopSparsity: number;
  layers: LayerMask[];
}

export interface MaskFile {
  format: 1;
  metric: Metric;
  weightsSha256: string;
  calibration: { file: string; sha256: string; samples: number; tokens: number };
  created: string;
  /** Whether tiers drop heads too (at the same per-layer sparsity) or keep every head. */
  pruneHeads: boolean;
  /** The aggregated scores the tiers were cut from, so that other tiers can be derived. */
  scores: { mlp: number[]; heads: number[] }[];
  tiers: TierMask[];
}

export function tierMask(config: ModelConfig, scores: LayerUnitScores[], sparsity: number, pruneHeads: boolean): TierMask {
  const layers = scores.map((s) => ({
    mlp: keepTop(s.mlp, sparsity),
    heads: pruneHeads ? keepTop(s.heads, sparsity) : [...Array(s.heads.length).keys()],
  }));
  const kept = layers.map((l) => ({ mlp: l.mlp.length, heads: l.heads.length }));
  return { sparsity, flopSparsity: flopWeightedSparsity(config, REPORT_CONTEXT, kept), layers };
}

export function writeMaskFile(modelDir: string, masks: MaskFile): string {
  const file = join(modelDir, MASKS_FILE);
  mkdirSync(join(modelDir, 'sparsity'), { recursive: true });
  writeFileSync(file, `${JSON.stringify(masks)}\n`);
  return file;
}

/** The shapes a mask file must fit. */
export type MaskShape = Pick<ModelConfig, 'numLayers' | 'intermediateSize' | 'numHeads'>;

/**
 * The model's tier masks, or null when it has none. Refuses, naming the file and the field, a
 * file that does not fit `shape` (layer count, neuron and head indices in range and unique,
 * each tier keeping round((1 - s) * n) of them) or that was made for other weights.
 * Each layer's indices come back ascending, whatever order the file has them in.
 */
export function readMaskFile(modelDir: string, weightsSha256: string, shape: MaskShape): MaskFile | null {
  const file = join(modelDir, MASKS_FILE);
  if (!existsSync(file)) return null;
  const masks = parseMaskFile(readJsonFile(file), file, shape);
  if (masks.weightsSha256 !== weightsSha256) {
    throw new Error(
      `${file}: these masks were calibrated for weights ${masks.weightsSha256.slice(0, 12)}…, ` +
        `but the model's weights hash is ${weightsSha256.slice(0, 12)}…; run \`npm run calibrate -- --force\` again for this model`,
    );
  }
  return masks;
}

const SHA256 = /^[0-9a-f]{64}$/;

/** `json` as a MaskFile for a model of `shape`; throws naming `file` and the first bad field. */
export function parseMaskFile(json: unknown, file: string, shape: MaskShape): MaskFile {
  const top = new FieldReader(json, file);
  const format = top.raw('format');
  if (format !== 1) throw new Error(`${file}: unknown format ${describe(format)}, expected 1`);
  const metric = top.string('metric');
  if (!isMetric(metric)) throw top.error('metric', `one of ${METRICS.join(', ')}`, metric);
  const calibration = new FieldReader(top.raw('calibration'), file, 'calibration.');
  const masks: MaskFile = {
    format: 1,
    metric,
    weightsSha256: sha256(top, 'weightsSha256'),
    calibration: {
      file: calibration.string('file'),
      sha256: sha256(calibration, 'sha256'),
      samples: calibration.nonNegativeInt('samples'),
      tokens: calibration.nonNegativeInt('tokens'),
    },
    created: top.string('created'),
    pruneHeads: top.boolean('pruneHeads'),
    scores: array(top, 'scores', '', shape.numLayers, 'one entry per layer', (entry, at) => {
      const layer = new FieldReader(entry, file, `${at}.`);
      return {
        mlp: array(layer, 'mlp', at, shape.intermediateSize, 'one score per neuron', (x, where) => finite(file, where, x)),
        heads: array(layer, 'heads', at, shape.numHeads, 'one score per head', (x, where) => finite(file, where, x)),
      };
    }),
    tiers: [],
  };
  const tiers = top.raw('tiers');
  if (!Array.isArray(tiers)) throw top.error('tiers', 'an array of tiers', tiers);
  const names = new Map<string, number>();
  masks.tiers = tiers.map((entry, i) => {
    const at = `tiers[${i}]`;
    const tier = new FieldReader(entry, file, `${at}.`);
    const sparsity = tier.number('sparsity', 'a number in [0, 1)', (x) => x >= 0 && x < 1);
    const name = tierName(sparsity);
    const same = names.get(name);
    if (same !== undefined) throw new Error(`${file}: ${at} (sparsity ${sparsity}) is tier ${name}, as tiers[${same}] already is`);
    names.set(name, i);
    const mlpKept = keptCount(shape.intermediateSize, sparsity);
    const headsKept = masks.pruneHeads ? keptCount(shape.numHeads, sparsity) : shape.numHeads;
    return {
      sparsity,
      flopSparsity: tier.number('flopSparsity', 'a number in [0, 1]', (x) => x >= 0 && x <= 1),
      layers: array(tier, 'layers', at, shape.numLayers, 'one entry per layer', (l, where) => {
        const layer = new FieldReader(l, file, `${where}.`);
        return {
          mlp: unitIndices(layer, 'mlp', where, shape.intermediateSize, 'intermediate_size', mlpKept, `round((1 - ${sparsity}) * ${shape.intermediateSize})`),
          heads: unitIndices(
            layer,
            'heads',
            where,
            shape.numHeads,
            'num_attention_heads',
            headsKept,
            masks.pruneHeads ? `round((1 - ${sparsity}) * ${shape.numHeads})` : 'every head, as pruneHeads is false',
          ),
        };
      }),
    };
  });
  return masks;
}

function sha256(reader: FieldReader, field: string): string {
  const value = reader.string(field);
  if (!SHA256.test(value)) throw reader.error(field, 'a sha256 of 64 lowercase hex digits', value);
  return value;
}

function finite(file: string, where: string, x: unknown): number {
  if (typeof x !== 'number' || !Number.isFinite(x)) throw new Error(`${file}: field "${where}" must be a finite number, got ${describe(x)}`);
  return x;
}

/** Field `field` of `reader` (at `at`) as an array of exactly `length` items, each read by `item`. */
function array<T>(reader: FieldReader, field: string, at: string, length: number, what: string, item: (x: unknown, where: string) => T): T[] {
  const value = reader.raw(field);
  if (!Array.isArray(value)) throw reader.error(field, `an array (${what})`, value);
  const where = at === '' ? field : `${at}.${field}`;
  if (value.length !== length) throw new Error(`${reader.file}: field "${where}" has ${value.length} entries, expected ${length} (${what})`);
  return value.map((x, i) => item(x, `${where}[${i}]`));
}

/** Distinct integer unit indices in [0, units), `count` of them, returned ascending. */
function unitIndices(reader: FieldReader, field: string, at: string, units: number, unitsName: string, count: number, why: string): number[] {
  const value = reader.raw(field);
  const where = `${at}.${field}`;
  if (!Array.isArray(value)) throw reader.error(field, 'an array of unit indices', value);
  const seen = new Map<number, number>();
  value.forEach((x: unknown, i) => {
    if (typeof x !== 'number' || !Number.isInteger(x))
      throw new Error(`${reader.file}: field "${where}" holds ${describe(x)} at position ${i}, not an integer index`);
    if (x < 0 || x >= units) {
      throw new Error(`${reader.file}: field "${where}" holds index ${x} at position ${i}, outside [0, ${units}) (the model's ${unitsName} is ${units})`);
    }
    const first = seen.get(x);
    if (first !== undefined) throw new Error(`${reader.file}: field "${where}" holds index ${x} twice, at positions ${first} and ${i}`);
    seen.set(x, i);
  });
  if (value.length !== count) throw new Error(`${reader.file}: field "${where}" keeps ${value.length} units, expected ${count} (${why})`);
  return (value as number[]).slice().sort((a, b) => a - b);
}
