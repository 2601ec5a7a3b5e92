/**
 * The paper's central claim, measured: removing a set of neurons changes the loss by about the
 * sum of their attributions, but neurons interact, so the plain first-order estimate (GxO) errs;
 * Corrected GxO adds 0.5 |a| |g| per unit to bound that error. Here we ablate neurons (scale 0
 * at every position), measure the actual change of the loss, and compare it with the sum of
 * the ablated units' scores (each summed over positions: the first-order change of zeroing a
 * neuron everywhere).
 */
import type { Attributor, Targets } from './attribution.js';
import type { Rng } from '../random.js';

export interface AblationTrial {
  layer: number;
  size: number;
  actual: number;
  gxo: number;
  corGxo: number;
}

/** Per-neuron first-order predictions of the loss change when it is zeroed at every position. */
export function neuronPredictions(a: Float32Array, g: Float32Array, units: number): { gxo: Float64Array; corGxo: Float64Array } {
  const gxo = new Float64Array(units);
  const corGxo = new Float64Array(units);
  for (let row = 0; row < a.length; row += units) {
    let norm = 0;
    for (let i = 0; i < units; i++) norm += g[row + i] ** 2;
    norm = Math.sqrt(norm);
    for (let i = 0; i < units; i++) {
      const first = -g[row + i] * a[row + i];
      gxo[i] += first;
      corGxo[i] += first + 0.5 * Math.abs(a[row + i]) * norm;
    }
  }
  return { gxo, corGxo };
}

function sampleSubset(n: number, k: number, rand: Rng): number[] {
  const idx = Array.from({ length: n }, (_, i) => i);
  for (let i = 0; i < k; i++) {
    const j = i + Math.floor(rand() * (n - i));
    [idx[i], idx[j]] = [idx[j], idx[i]];
  }
  return idx.slice(0, k);
}

/** Ablates `sizes` random subsets (`trials` each) and every listed single neuron of each layer. */
export async function ablationTrials(
  attributor: Attributor,
  tokens: number[],
  targets: Targets,
  options: { sizes: number[]; trials: number; singles: number; rand: Rng },
): Promise<AblationTrial[]> {
  const { numLayers, intermediateSize: I } = attributor.config;
  const base = await attributor.run(tokens, targets);
  const ones = () => Array.from({ length: numLayers }, () => new Float32Array(I).fill(1));
  const out: AblationTrial[] = [];
  for (let l = 0; l < numLayers; l++) {
    const pred = neuronPredictions(base.layers[l].mlp.a, base.layers[l].mlp.g, I);
    const subsets = [
      ...options.sizes.flatMap((k) => Array.from({ length: options.trials }, () => sampleSubset(I, k, options.rand))),
      ...sampleSubset(I, Math.min(options.singles, I), options.rand).map((i) => [i]),
    ];
    for (const subset of subsets) {
      const scales = ones();
      for (const i of subset) scales[l][i] = 0;
      const ablated = await attributor.run(tokens, targets, { mlpScales: scales });
      out.push({
        layer: l,
        size: subset.length,
        actual: ablated.loss - base.loss,
        gxo: subset.reduce((s, i) => s + pred.gxo[i], 0),
        corGxo: subset.reduce((s, i) => s + pred.corGxo[i], 0),
      });
    }
  }
  return out;
}

export function pearson(x: number[], y: number[]): number {
  const n = x.length;
  const mx = x.reduce((a, b) => a + b, 0) / n;
  const my = y.reduce((a, b) => a + b, 0) / n;
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (let i = 0; i < n; i++) {
    sxy += (x[i] - mx) * (y[i] - my);
    sxx += (x[i] - mx) ** 2;
    syy += (y[i] - my) ** 2;
  }
  return sxy / Math.sqrt(sxx * syy);
}
