/**
 * Training the per-token neuron predictor (src/sparsity/predictor.ts) on oracle labels
 * (src/sparsity/predictor-data.ts), with the project's graph builder, autodiff and AdamW on
 * ONNX Runtime.
 *
 * One graph serves every layer: A, B and bias are inputs, as are a mini-batch of MLP inputs x
 * [n, hidden] and soft targets y [n, intermediate] (the share of label sparsities that keep
 * each neuron). The loss is the mean binary cross-entropy with logits z = (x @ A) @ B + bias,
 * built stably as softplus(z) - y z with softplus(z) = max(z, 0) + log(1 + exp(-|z|)); with
 * a positive weight w, w y softplus(-z) + (1 - y) softplus(z).
 */
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { grad } from '../graph/autodiff.js';
import { Graph } from '../graph/graph.js';
import { toOnnx } from '../graph/onnx.js';
import type { Value } from '../graph/types.js';
import { readSafetensors, writeSafetensors } from '../model/safetensors.js';
import type { HostTensor } from '../model/types.js';
import { Prng } from '../random.js';
import { ADAMW_DEFAULTS, adamwUpdate, learningRate, newAdamState, type AdamState } from '../train/adamw.js';
import { keptCount, rankUnits } from './masks.js';
import { checkRank, predictorScores, type PredictorLabels, type PredictorLayer } from './predictor.js';
import { setAt, type LabelledData } from './predictor-data.js';
import { recall } from './recall.js';

export interface PredictorLossGraph {
  graph: Graph;
  loss: Value;
  params: { a: Value; b: Value; bias: Value };
}

/** max(z, 0) + log(1 + exp(-|z|)), from ops with VJPs (Where picks the branch). */
export function softplus(g: Graph, z: Value): Value {
  const negative = g.lessOrEqual(z, g.scalar(0, z.dtype));
  const relu = g.where(negative, g.scalar(0, z.dtype), z);
  const abs = g.where(negative, g.neg(z), z);
  return g.add(relu, g.log(g.add(g.scalar(1, z.dtype), g.exp(g.neg(abs)))));
}

/**
 * Inputs `a` [hidden, rank], `b` [rank, F], `bias` [F], `x` [n, hidden], `y` [n, F]; outputs
 * `loss` and, with `gradients`, `grad.a`, `grad.b`, `grad.bias`.
 */
export function buildPredictorLossGraph(
  hidden: number,
  rank: number,
  F: number,
  o: { dtype?: 'float32' | 'float64'; posWeight?: number; gradients?: boolean } = {},
): PredictorLossGraph {
  const dtype = o.dtype ?? 'float32';
  const g = new Graph('predictor');
  const a = g.input('a', dtype, [hidden, rank]);
  const b = g.input('b', dtype, [rank, F]);
  const bias = g.input('bias', dtype, [F]);
  const x = g.input('x', dtype, ['n', hidden]);
  const y = g.input('y', dtype, ['n', F]);
  const z = g.add(g.matmul(g.matmul(x, a), b), bias);
  const sp = softplus(g, z);
  const w = o.posWeight ?? 1;
  // w y (sp - z) + (1 - y) sp = sp + (w - 1) y sp - w y z
  let elem = g.sub(sp, g.mul(y, z));
  if (w !== 1) elem = g.add(g.sub(sp, g.mul(g.mul(y, z), g.scalar(w, dtype))), g.mul(g.mul(y, sp), g.scalar(w - 1, dtype)));
  const loss = g.reduceMean(elem, [0, 1], false);
  g.output(loss, 'loss');
  if (o.gradients !== false) {
    const [da, db, dbias] = grad(g, loss, [a, b, bias]);
    g.output(da, 'grad.a');
    g.output(db, 'grad.b');
    g.output(dbias, 'grad.bias');
  }
  return { graph: g, loss, params: { a, b, bias } };
}

export interface PredictorTrainSettings {
  rank: number;
  /** Optimisation steps per layer. */
  steps: number;
  batch: number;
  peakLr: number;
  warmup: number;
  weightDecay: number;
  posWeight: number;
  seed: number;
}

export const PREDICTOR_TRAIN_DEFAULTS: Omit<PredictorTrainSettings, 'rank'> = {
  steps: 2000,
  batch: 256,
  peakLr: 1e-2,
  warmup: 100,
  weightDecay: 0.01,
  posWeight: 1,
  seed: 1,
};

interface LayerState {
  params: PredictorLayer;
  adam: { a: AdamState; b: AdamState; bias: AdamState };
}

export interface TrainProgress {
  step: number;
  steps: number;
  /** Mean loss over layers of the latest step. */
  loss: number;
  seconds: number;
}

export interface TrainOptions {
  threads?: number;
  /** Checkpoint directory: resumed from when it holds a checkpoint of the same settings. */
  checkpoint?: string;
  checkpointEvery?: number;
  onProgress?(p: TrainProgress): void;
}

/** Initial parameters: A ~ N(0, 1/hidden), B = 0, bias = logit of each neuron's mean target. */
function initLayer(data: LabelledData, l: number, k: PredictorLabels, rank: number, seed: number): PredictorLayer {
  const { hidden: H, intermediate: F, positions: N } = data;
  const rng = Prng.forLabel(seed, `predictor.${l}.a`);
  const a = Float32Array.from({ length: H * rank }, () => rng.normal() / Math.sqrt(H));
  const counts = data.counts[k][l];
  const M = data.sparsities.length;
  const mean = new Float64Array(F);
  for (let p = 0; p < N; p++) for (let i = 0; i < F; i++) mean[i] += counts[p * F + i] / M / N;
  const bias = Float32Array.from(mean, (m) => {
    const c = Math.min(Math.max(m, 1e-3), 1 - 1e-3);
    return Math.log(c / (1 - c));
  });
  return { a, b: new Float32Array(rank * F), bias };
}

/** Trains one predictor per layer on `data`'s `labels`; resumes from `o.checkpoint`. */
export async function trainPredictor(
  data: LabelledData,
  labels: PredictorLabels,
  s: PredictorTrainSettings,
  o: TrainOptions = {},
): Promise<{ layers: PredictorLayer[]; seconds: number; finalLoss: number }> {
  const { hidden: H, intermediate: F, layers: L, positions: N } = data;
  checkRank(s.rank, H, F);
  if (N === 0) throw new Error('no training positions');
  const built = buildPredictorLossGraph(H, s.rank, F, { posWeight: s.posWeight });
  const session = await ort.InferenceSession.create(toOnnx(built.graph), {
    graphOptimizationLevel: 'all',
    intraOpNumThreads: o.threads ?? 0,
    interOpNumThreads: 1,
  });
  const states: LayerState[] = Array.from({ length: L }, (_, l) => {
    const params = initLayer(data, l, labels, s.rank, s.seed);
    return { params, adam: { a: newAdamState(params.a.length), b: newAdamState(params.b.length), bias: newAdamState(F) } };
  });
  let step = 0;
  let seconds = 0;
  const settingsJson = JSON.stringify({ ...s, labels, positions: N });
  if (o.checkpoint && existsSync(join(o.checkpoint, 'state.json'))) {
    const meta = JSON.parse(readFileSync(join(o.checkpoint, 'state.json'), 'utf8')) as { settings: string; step: number; seconds: number };
    if (meta.settings === settingsJson) {
      const t = readSafetensors(join(o.checkpoint, 'state.safetensors'));
      states.forEach((st, l) => {
        for (const part of ['a', 'b', 'bias'] as const) {
          st.params[part].set(t[`${l}.${part}`].data);
          st.adam[part].m.set(t[`${l}.${part}.m`].data);
          st.adam[part].v.set(t[`${l}.${part}.v`].data);
        }
      });
      step = meta.step;
      seconds = meta.seconds;
    }
  }
  const save = () => {
    if (!o.checkpoint) return;
    mkdirSync(o.checkpoint, { recursive: true });
    const tensors: Record<string, HostTensor> = {};
    states.forEach((st, l) => {
      for (const part of ['a', 'b', 'bias'] as const) {
        const data = st.params[part];
        tensors[`${l}.${part}`] = { shape: [data.length], data };
        tensors[`${l}.${part}.m`] = { shape: [data.length], data: st.adam[part].m };
        tensors[`${l}.${part}.v`] = { shape: [data.length], data: st.adam[part].v };
      }
    });
    writeSafetensors(join(o.checkpoint, 'state.safetensors.tmp'), tensors);
    renameSync(join(o.checkpoint, 'state.safetensors.tmp'), join(o.checkpoint, 'state.safetensors'));
    writeFileSync(join(o.checkpoint, 'state.json.tmp'), JSON.stringify({ settings: settingsJson, step, seconds }));
    renameSync(join(o.checkpoint, 'state.json.tmp'), join(o.checkpoint, 'state.json'));
  };

  const B = Math.min(s.batch, N);
  const xb = new Float32Array(B * H);
  const yb = new Float32Array(B * F);
  const M = data.sparsities.length;
  const adamw = { ...ADAMW_DEFAULTS, weightDecay: s.weightDecay };
  let finalLoss = NaN;
  const every = o.checkpointEvery ?? 250;
  while (step < s.steps) {
    const t0 = performance.now();
    const lr = learningRate(step, s.peakLr, s.warmup, s.steps);
    let lossSum = 0;
    for (let l = 0; l < L; l++) {
      const rng = Prng.forLabel(s.seed + step, `batch.${l}`);
      const x = data.x[l];
      const counts = data.counts[labels][l];
      for (let r = 0; r < B; r++) {
        const p = Math.floor(rng.next() * N);
        xb.set(x.subarray(p * H, (p + 1) * H), r * H);
        for (let i = 0; i < F; i++) yb[r * F + i] = counts[p * F + i] / M;
      }
      const st = states[l];
      const out = await session.run({
        a: new ort.Tensor('float32', st.params.a, [H, s.rank]),
        b: new ort.Tensor('float32', st.params.b, [s.rank, F]),
        bias: new ort.Tensor('float32', st.params.bias, [F]),
        x: new ort.Tensor('float32', xb, [B, H]),
        y: new ort.Tensor('float32', yb, [B, F]),
      });
      lossSum += (out.loss.data as Float32Array)[0];
      adamwUpdate(st.params.a, out['grad.a'].data as Float32Array, st.adam.a, lr, step + 1, adamw, true);
      adamwUpdate(st.params.b, out['grad.b'].data as Float32Array, st.adam.b, lr, step + 1, adamw, true);
      adamwUpdate(st.params.bias, out['grad.bias'].data as Float32Array, st.adam.bias, lr, step + 1, adamw, false);
    }
    step++;
    seconds += (performance.now() - t0) / 1000;
    finalLoss = lossSum / L;
    o.onProgress?.({ step, steps: s.steps, loss: finalLoss, seconds });
    if (step % every === 0 || step === s.steps) save();
  }
  await session.release();
  return { layers: states.map((st) => st.params), seconds, finalLoss };
}

/** Per layer and position, a score per neuron: the selection rule under evaluation. */
export type ScoreFn = (layer: number, x: Float32Array) => ArrayLike<number>;

export const predictorScoreFn =
  (layers: PredictorLayer[], rank: number, F: number): ScoreFn =>
  (l, x) =>
    predictorScores(layers[l], rank, F, x);

/**
 * Per sparsity (string key), the mean over layers (of the mean over positions) of the recall
 * of the `oracle` labels' top-k sets by the top-k of `score`.
 */
export function measureRecall(data: LabelledData, score: ScoreFn, oracle: PredictorLabels = 'cor_gxo'): Record<string, number> {
  const { hidden: H, intermediate: F, layers: L, positions: N, sparsities } = data;
  const sums = new Float64Array(sparsities.length);
  for (let l = 0; l < L; l++) {
    const counts = data.counts[oracle][l];
    for (let p = 0; p < N; p++) {
      const order = rankUnits(score(l, data.x[l].subarray(p * H, (p + 1) * H)));
      sparsities.forEach((sp, m) => {
        const truth = setAt(counts, p * F, F, m + 1);
        sums[m] += recall(order.slice(0, keptCount(F, sp)), truth);
      });
    }
  }
  return Object.fromEntries(sparsities.map((sp, m) => [String(sp), N > 0 ? sums[m] / (L * N) : NaN]));
}
