/**
 * Where each activation mode's neuron sets come from, scored by every metric at once:
 * - static: the calibration set, exactly as `npm run calibrate` scores it for tier masks;
 * - prompt: the prompt's own next tokens, exactly as the engine scores a per-prompt set;
 * - oracle: each decode step on its own, against the dense model's prediction at that step
 *   (the paper's setting: it knows the dense output, which serving cannot).
 * A neuron set at sparsity s keeps each layer's top round((1 - s) * n) neurons by score.
 */
import type { ModelTokenizer } from '../model/tokenizer.js';
import { promptTargets, type Attributor } from '../sparsity/attribution.js';
import { calibrate, type CalibrationSet } from '../sparsity/calibration.js';
import { keptCount, rankUnits } from '../sparsity/masks.js';
import { meanOverPositions, METRICS, scoreEveryMetric, type Metric } from '../sparsity/metrics.js';
import type { MaskedModel } from './masked-model.js';

/** Per metric, per layer, one score per MLP neuron. */
export type MetricScores = Record<Metric, Float64Array[]>;

export async function calibratedScores(
  attributor: Attributor,
  tokenizer: ModelTokenizer,
  set: CalibrationSet,
  options: { maxLength: number; igSteps: number },
): Promise<MetricScores> {
  const out = {} as MetricScores;
  for (const metric of METRICS) {
    const { scores } = await calibrate(attributor, tokenizer, set, metric, options);
    out[metric] = scores.map((l) => Float64Array.from(l.mlp));
  }
  return out;
}

export async function promptScores(attributor: Attributor, prompt: number[], igSteps: number): Promise<MetricScores> {
  const I = attributor.config.intermediateSize;
  const perPosition = await scoreEveryMetric((o) => attributor.run(prompt, promptTargets(prompt), o), I, igSteps);
  return mapScores(perPosition, (layer) => meanOverPositions(layer, I));
}

/**
 * Scores for each position j of `tokens` from `start` on: the attribution of the step that
 * reads tokens[j] (after a dense cache of everything before it) against the dense model's
 * greedy prediction there, which is also returned.
 */
export async function oracleScores(
  stepper: Attributor,
  dense: MaskedModel,
  tokens: number[],
  start: number,
  igSteps: number,
): Promise<{ scores: MetricScores[]; predictions: number[] }> {
  if (start < 1) throw new RangeError('the oracle needs at least one token of context');
  const I = stepper.config.intermediateSize;
  let { cache } = await dense.denseStep(tokens.slice(0, start), dense.emptyCache());
  const scores: MetricScores[] = [];
  const predictions: number[] = [];
  for (let j = start; j < tokens.length; j++) {
    const next = await dense.denseStep([tokens[j]], cache);
    const before = cache;
    scores.push(await scoreEveryMetric((o) => stepper.step(tokens[j], before, next.next, o), I, igSteps));
    predictions.push(next.next);
    cache = next.cache;
  }
  return { scores, predictions };
}

/** Each layer's neurons from the highest score down; cut a prefix for any sparsity. */
export type Ranking = number[][];

export function rankings(scores: MetricScores): Record<Metric, Ranking> {
  const out = {} as Record<Metric, Ranking>;
  for (const metric of METRICS) out[metric] = scores[metric].map((layer) => rankUnits(layer));
  return out;
}

/** The neurons each layer keeps at `sparsity`. */
export function neuronsAt(ranking: Ranking, sparsity: number): number[][] {
  return ranking.map((order) => order.slice(0, keptCount(order.length, sparsity)));
}

function mapScores(scores: MetricScores, f: (layer: Float64Array) => Float64Array): MetricScores {
  const out = {} as MetricScores;
  for (const metric of METRICS) out[metric] = scores[metric].map(f);
  return out;
}
