/** Calibration: attribution over a set of samples, aggregated into one score per unit. */
import { readJsonLines } from '../model/json.js';
import type { ModelTokenizer } from '../model/tokenizer.js';
import { continuationTargets, selfTargets, type Attributor, type Targets } from './attribution.js';
import type { LayerUnitScores } from './masks.js';
import { meanOverPositions, scoreSequence, type Metric } from './metrics.js';

export interface CalibrationSample {
  prompt: string;
  completion?: string;
}

export interface CalibrationSet {
  file: string;
  sha256: string;
  samples: CalibrationSample[];
}

/** Reads JSON lines of {"prompt", "completion"?}; a bad line fails naming its number. */
export function readCalibrationFile(file: string): CalibrationSet {
  const { rows: samples, sha256 } = readJsonLines(file, (value): CalibrationSample => {
    const v = value as Partial<CalibrationSample> | null;
    if (typeof v?.prompt !== 'string' || v.prompt === '') throw new Error('"prompt" must be a non-empty string');
    if (v.completion !== undefined && typeof v.completion !== 'string') throw new Error('"completion" must be a string');
    return { prompt: v.prompt, completion: v.completion };
  });
  if (samples.length === 0) throw new Error(`${file}: no samples`);
  return { file, sha256, samples };
}

/**
 * Prompt + continuation as ids, and how many belong to the prompt. The text is encoded whole:
 * encoding the continuation alone would give SentencePiece tokenizers a second dummy-prefix
 * space. When the whole's ids do not begin with the prompt's (a merge across the boundary),
 * the two encodings are joined instead.
 */
export function encodeContinuation(tokenizer: ModelTokenizer, prompt: string, continuation: string): { tokens: number[]; promptLength: number } {
  const promptIds = tokenizer.encode(prompt);
  const whole = tokenizer.encode(prompt + continuation);
  if (whole.length > promptIds.length && promptIds.every((id, i) => whole[i] === id)) return { tokens: whole, promptLength: promptIds.length };
  return { tokens: [...promptIds, ...tokenizer.encode(continuation, false)], promptLength: promptIds.length };
}

/** The sample as token ids and the positions whose loss counts. */
export function sampleTokens(tokenizer: ModelTokenizer, sample: CalibrationSample, maxLength: number): { tokens: number[]; targets: Targets } {
  if (!sample.completion) {
    const tokens = tokenizer.encode(sample.prompt).slice(0, maxLength);
    return { tokens, targets: selfTargets(tokens) };
  }
  const encoded = encodeContinuation(tokenizer, sample.prompt, sample.completion);
  const tokens = encoded.tokens.slice(0, maxLength);
  return { tokens, targets: continuationTargets(tokens, Math.min(encoded.promptLength, tokens.length - 1)) };
}

/** Mean over samples of each unit's mean score over positions. */
export class ScoreAccumulator {
  private sums: { mlp: Float64Array; heads: Float64Array }[] | null = null;
  count = 0;

  add(layers: { mlp: Float64Array; heads: Float64Array }[], neurons: number, heads: number): void {
    const perUnit = layers.map((l) => ({ mlp: meanOverPositions(l.mlp, neurons), heads: meanOverPositions(l.heads, heads) }));
    this.sums ??= perUnit.map((l) => ({ mlp: new Float64Array(l.mlp.length), heads: new Float64Array(l.heads.length) }));
    perUnit.forEach((l, i) => {
      l.mlp.forEach((v, j) => {
        this.sums![i].mlp[j] += v;
      });
      l.heads.forEach((v, j) => {
        this.sums![i].heads[j] += v;
      });
    });
    this.count++;
  }

  mean(): LayerUnitScores[] {
    if (!this.sums) throw new Error('no samples were scored');
    return this.sums.map((l) => ({ mlp: l.mlp.map((v) => v / this.count), heads: l.heads.map((v) => v / this.count) }));
  }
}

export async function calibrate(
  attributor: Attributor,
  tokenizer: ModelTokenizer,
  set: CalibrationSet,
  metric: Metric,
  options: { maxLength: number; igSteps?: number; onSample?: (tokens: number) => void },
): Promise<{ scores: LayerUnitScores[]; tokens: number }> {
  const acc = new ScoreAccumulator();
  const { intermediateSize, numHeads } = attributor.config;
  let total = 0;
  for (const sample of set.samples) {
    const { tokens, targets } = sampleTokens(tokenizer, sample, options.maxLength);
    if (tokens.length < 2) continue; // nothing to predict
    const scored = await scoreSequence(attributor, tokens, targets, metric, { igSteps: options.igSteps });
    acc.add(scored.layers, intermediateSize, numHeads);
    total += tokens.length;
    options.onSample?.(tokens.length);
  }
  return { scores: acc.mean(), tokens: total };
}
