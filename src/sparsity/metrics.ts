/**
 * Neuron-attribution metrics of Song et al., "Achieving Sparse Activation in Small Language
 * Models" (arXiv 2406.06562). For unit i at one position, with activation a_i and loss gradient
 * g_i = dL/da_i (higher score = keep):
 *
 *   magnitude  |a_i|
 *   gradient   -g_i
 *   gxo        -g_i a_i                      first-order loss increase when i is removed
 *   snip       |g_i a_i|
 *   ig         -a_i mean_k g_i(k/n)          g at activations scaled by k/n, k = 1..n
 *   cor_gxo    -g_i a_i + 0.5 |a_i| |g|_2    |g|_2 over all units of the layer at that position
 *
 * The correction term bounds the error that interdependency between layers adds to the
 * first-order estimate.
 */
import type { Attribution, Attributor, RunOptions, Targets, UnitActivity } from './attribution.js';

export const METRICS = ['magnitude', 'gradient', 'gxo', 'snip', 'ig', 'cor_gxo'] as const;
export type Metric = (typeof METRICS)[number];

export function isMetric(name: string): name is Metric {
  return (METRICS as readonly string[]).includes(name);
}

/**
 * Scores of every unit at every position ([position][unit]). For `ig`, `g` is the mean of the
 * gradients along the path; for every other metric the gradient at the activations themselves.
 */
export function unitScores(metric: Metric, { a, g }: UnitActivity, units: number): Float64Array {
  const out = new Float64Array(a.length);
  for (let row = 0; row < a.length; row += units) {
    let norm = 0;
    if (metric === 'cor_gxo') {
      for (let i = row; i < row + units; i++) norm += g[i] * g[i];
      norm = Math.sqrt(norm);
    }
    for (let i = row; i < row + units; i++) {
      switch (metric) {
        case 'magnitude':
          out[i] = Math.abs(a[i]);
          break;
        case 'gradient':
          out[i] = -g[i];
          break;
        case 'gxo':
        case 'ig':
          out[i] = -g[i] * a[i];
          break;
        case 'snip':
          out[i] = Math.abs(g[i] * a[i]);
          break;
        case 'cor_gxo':
          out[i] = -g[i] * a[i] + 0.5 * Math.abs(a[i]) * norm;
          break;
      }
    }
  }
  return out;
}

/**
 * One score per unit: the mean over positions. Every position counts, not only those with a
 * target: a neuron's activity at a position shapes every later prediction through attention,
 * and its gradient there already carries that. Samples are aggregated by averaging these.
 */
export function meanOverPositions(scores: Float64Array, units: number): Float64Array {
  const out = new Float64Array(units);
  const positions = scores.length / units;
  for (let p = 0; p < positions; p++) {
    for (let i = 0; i < units; i++) out[i] += scores[p * units + i] / positions;
  }
  return out;
}

export interface LayerScores {
  /** [position][neuron] */
  mlp: Float64Array;
  /** [position][head] */
  heads: Float64Array;
}

export interface ScoredAttribution {
  attribution: Attribution;
  layers: LayerScores[];
}

/** Averages the gradients of several runs (Integrated Gradients' path), keeping the last run's activations. */
function averageGradients(runs: Attribution[]): Attribution {
  const last = runs[runs.length - 1];
  const mean = (pick: (r: Attribution) => Float32Array) => {
    const out = new Float32Array(pick(last).length);
    for (const r of runs) {
      pick(r).forEach((v, i) => {
        out[i] += v / runs.length;
      });
    }
    return out;
  };
  return {
    ...last,
    layers: last.layers.map((layer, l) => ({
      mlp: { a: layer.mlp.a, g: mean((r) => r.layers[l].mlp.g) },
      heads: { a: layer.heads.a, g: mean((r) => r.layers[l].heads.g) },
    })),
  };
}

/** Integrated Gradients' path: n runs at scales k/n, the last one (k = n) unscaled. */
async function igPath(run: (options: RunOptions) => Promise<Attribution>, n: number): Promise<Attribution[]> {
  const runs: Attribution[] = [];
  for (let k = 1; k <= n; k++) runs.push(await run({ scale: k / n }));
  return runs;
}

/**
 * Every metric's MLP scores, per layer [position][neuron], from one IG path: its last run is
 * the plain one that the other five metrics read, so all six cost n runs, not n + 5.
 * `run` is an attribution of the same tokens and targets at the scale it is given.
 */
export async function scoreEveryMetric(
  run: (options: RunOptions) => Promise<Attribution>,
  intermediateSize: number,
  igSteps = 8,
): Promise<Record<Metric, Float64Array[]>> {
  const runs = await igPath(run, igSteps);
  const plain = runs[runs.length - 1];
  const ig = averageGradients(runs);
  const scores = {} as Record<Metric, Float64Array[]>;
  for (const metric of METRICS) {
    const source = metric === 'ig' ? ig : plain;
    scores[metric] = source.layers.map((layer) => unitScores(metric, layer.mlp, intermediateSize));
  }
  return scores;
}

/** Runs attribution (n runs along the path for `ig`) and scores every unit at every position. */
export async function scoreSequence(
  attributor: Attributor,
  tokens: number[],
  targets: Targets,
  metric: Metric,
  options: { igSteps?: number } & Pick<RunOptions, 'mlpScales'> = {},
): Promise<ScoredAttribution> {
  let attribution: Attribution;
  if (metric === 'ig') {
    // k = n last, so that the activations kept are the unscaled ones.
    attribution = averageGradients(await igPath((o) => attributor.run(tokens, targets, o), options.igSteps ?? 8));
  } else {
    attribution = await attributor.run(tokens, targets, { mlpScales: options.mlpScales });
  }
  const { intermediateSize, numHeads } = attributor.config;
  return {
    attribution,
    layers: attribution.layers.map((layer) => ({
      mlp: unitScores(metric, layer.mlp, intermediateSize),
      heads: unitScores(metric, layer.heads, numHeads),
    })),
  };
}
