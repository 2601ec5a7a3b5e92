/** Turning one position's logits into a token: greedy, temperature, top-k, top-p. */
import type { Rng } from '../random.js';

export interface SamplerSettings {
  /** 0 means greedy. */
  temperature: number;
  topP: number;
  /** <= 0 disables it. */
  topK: number;
}

export function argmax(logits: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
  return best;
}

/** log softmax in float64, stable by subtracting the max. */
export function logSoftmax(logits: ArrayLike<number>): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i] > max) max = logits[i];
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i] - max);
  const logZ = max + Math.log(sum);
  const out = new Float64Array(logits.length);
  for (let i = 0; i < logits.length; i++) out[i] = logits[i] - logZ;
  return out;
}

/** Indices of the k largest values, largest first (ties: lower index first). */
export function topIndices(values: ArrayLike<number>, k: number): number[] {
  const n = Math.min(k, values.length);
  const top: number[] = [];
  for (let i = 0; i < values.length; i++) {
    if (top.length === n && values[i] <= values[top[n - 1]]) continue;
    let j = top.length === n ? n - 1 : top.length;
    while (j > 0 && values[top[j - 1]] < values[i]) {
      if (j < n) top[j] = top[j - 1];
      j--;
    }
    top[j] = i;
  }
  return top.slice(0, n);
}

export function sampleToken(logits: ArrayLike<number>, s: SamplerSettings, rand: Rng): number {
  if (s.temperature === 0) return argmax(logits);
  // Candidates most likely first: the top k, or the whole vocabulary.
  const candidates = s.topK > 0 ? topIndices(logits, s.topK) : Array.from({ length: logits.length }, (_, i) => i).sort((a, b) => logits[b] - logits[a]);
  const max = logits[candidates[0]];
  const weights = candidates.map((i) => Math.exp((logits[i] - max) / s.temperature));
  const total = weights.reduce((a, b) => a + b, 0);
  // Nucleus: the smallest prefix whose probability reaches top_p (at least one token).
  let kept = candidates.length;
  if (s.topP < 1) {
    let mass = 0;
    for (let i = 0; i < candidates.length; i++) {
      mass += weights[i] / total;
      if (mass >= s.topP) {
        kept = i + 1;
        break;
      }
    }
  }
  const keptTotal = weights.slice(0, kept).reduce((a, b) => a + b, 0);
  let r = rand() * keptTotal;
  for (let i = 0; i < kept; i++) {
    r -= weights[i];
    if (r < 0) return candidates[i];
  }
  return candidates[kept - 1];
}
