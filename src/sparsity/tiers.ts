/**
 * Sparsity tiers a model serves: dense, plus one per calibrated mask. A request names a tier
 * or a sparsity; the nearest tier at or below the sparsity runs (never sparser than asked).
 */
import type { ModelConfig } from '../model/types.js';
import { ParameterError } from '../runtime/types.js';
import type { MaskFile } from './masks.js';

export interface Tier {
  /** "dense", or "s" + percent: "s50", "s80". */
  name: string;
  sparsity: number;
  /** Per layer, the calibrated kept MLP neurons (ascending); null for dense. */
  keep: number[][] | null;
  /** Neurons each layer keeps at this sparsity (the same count for static and per-prompt sets). */
  neuronsPerLayer: number;
}

export const MAX_SPARSITY = 0.95;

export const tierName = (sparsity: number) => (sparsity === 0 ? 'dense' : `s${Math.round(sparsity * 100)}`);

export function tiersOf(config: ModelConfig, masks: MaskFile | null): Tier[] {
  const dense: Tier = { name: 'dense', sparsity: 0, keep: null, neuronsPerLayer: config.intermediateSize };
  const sparse = (masks?.tiers ?? [])
    .filter((t) => t.sparsity > 0)
    .map((t) => ({ name: tierName(t.sparsity), sparsity: t.sparsity, keep: t.layers.map((l) => l.mlp), neuronsPerLayer: t.layers[0].mlp.length }));
  return [dense, ...sparse].sort((a, b) => a.sparsity - b.sparsity);
}

/** The tier a request's `sparsity` selects; throws ParameterError('sparsity') when none can. */
export function selectTier(tiers: Tier[], requested: number | string, model: string): Tier {
  if (typeof requested === 'string') {
    const named = tiers.find((t) => t.name === requested);
    if (!named) throw new ParameterError('sparsity', `Model '${model}' has no tier '${requested}'; its tiers are ${tiers.map((t) => t.name).join(', ')}.`);
    return named;
  }
  if (!(requested >= 0 && requested <= MAX_SPARSITY)) {
    throw new ParameterError('sparsity', `'sparsity' must be a number from 0 to ${MAX_SPARSITY} or a tier name; got ${requested}.`);
  }
  if (requested > 0 && tiers.length === 1) {
    throw new ParameterError(
      'sparsity',
      `Model '${model}' has no calibrated sparsity tiers; create them with \`npm run calibrate\` (sparsity/masks.json).`,
      'no_tiers',
    );
  }
  // Small tolerance so that 0.8 selects the tier calibrated at 0.8 whatever its rounding.
  return tiers.filter((t) => t.sparsity <= requested + 1e-9).at(-1)!;
}
