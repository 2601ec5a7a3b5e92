/**
 * Tier masks: for a sparsity s, each layer keeps the top (1 - s) of its units by score. Stored
 * in a model directory's `sparsity/masks.json` with what they came from (metric, calibration
 * set, weights), so masks are never applied to weights they were not computed for.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { LlamaConfig } from '../model/types.js';
import { flopWeightedSparsity } from './flops.js';
import type { Metric } from './metrics.js';

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
  return rankUnits(scores).slice(0, keep).sort((x, y) => x - y);
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

export function tierMask(config: LlamaConfig, scores: LayerUnitScores[], sparsity: number, pruneHeads: boolean): TierMask {
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

/** The model's tier masks, or null when it has none; refuses masks made for other weights. */
export function readMaskFile(modelDir: string, weightsSha256: string): MaskFile | null {
  const file = join(modelDir, MASKS_FILE);
  if (!existsSync(file)) return null;
  const masks = JSON.parse(readFileSync(file, 'utf8')) as MaskFile;
  if (masks.format !== 1) throw new Error(`${file}: unknown format ${String(masks.format)}, expected 1`);
  if (masks.weightsSha256 !== weightsSha256) {
    throw new Error(
      `${file}: these masks were calibrated for weights ${masks.weightsSha256.slice(0, 12)}…, ` +
        `but the model's weights hash is ${weightsSha256.slice(0, 12)}…; run \`npm run calibrate\` again for this model`,
    );
  }
  return masks;
}
