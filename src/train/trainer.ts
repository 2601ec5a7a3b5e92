/**
 * The training loop's state and step: parameters (in the graph's layout), AdamW moments, and
 * one ONNX Runtime session that returns the loss and every gradient; a second, forward-only
 * session evaluates. Checkpoints hold everything a resumed run needs.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { toOnnx } from '../graph/onnx.js';
import { readSafetensors, writeSafetensors } from '../model/safetensors.js';
import type { HostTensor, ModelConfig, ModelWeights } from '../model/types.js';
import { adamwUpdate, globalNorm, learningRate, newAdamState, type AdamState, type AdamWSettings } from './adamw.js';
import type { Batch } from './data.js';
import { buildTrainingGraph, gradName } from './graph.js';

export interface TrainSettings {
  steps: number;
  batch: number;
  seq: number;
  peakLr: number;
  warmup: number;
  clip: number;
  seed: number;
  adamw: AdamWSettings;
}

export interface HistoryPoint {
  step: number;
  tokens: number;
  loss: number;
  lr: number;
  gradNorm: number;
  valLoss?: number;
  seconds: number;
}

interface Param {
  shape: number[];
  data: Float32Array;
  adam: AdamState;
  /** Weight decay applies to matrices, not to norm gains or biases. */
  decay: boolean;
  /** Held as the checkpoint tensor's transpose (a linear weight: [in, out] in the graph). */
  transposed: boolean;
}

const feedShape = (b: Batch) => [b.batch, b.seq];

export class Trainer {
  step = 0;
  tokens = 0;
  seconds = 0;
  history: HistoryPoint[] = [];

  private constructor(
    readonly config: ModelConfig,
    readonly settings: TrainSettings,
    private readonly params: Map<string, Param>,
    private readonly train: ort.InferenceSession,
    private readonly evaluate: ort.InferenceSession,
  ) {}

  static async create(config: ModelConfig, init: ModelWeights, settings: TrainSettings, threads = 0): Promise<Trainer> {
    const training = buildTrainingGraph(config, init);
    const evaluation = buildTrainingGraph(config, init, false);
    const options: ort.InferenceSession.SessionOptions = { graphOptimizationLevel: 'all', intraOpNumThreads: threads, interOpNumThreads: 1 };
    const params = new Map<string, Param>();
    for (const [name, p] of training.parameters) {
      const shape = p.value.shape as number[];
      params.set(name, { shape, data: Float32Array.from(p.init), adam: newAdamState(p.init.length), decay: shape.length >= 2, transposed: p.transposed });
    }
    return new Trainer(
      config,
      settings,
      params,
      await ort.InferenceSession.create(toOnnx(training.graph), options),
      await ort.InferenceSession.create(toOnnx(evaluation.graph), options),
    );
  }

  get parameterCount(): number {
    let n = 0;
    for (const p of this.params.values()) n += p.data.length;
    return n;
  }

  private feeds(b: Batch): Record<string, ort.Tensor> {
    const positions = BigInt64Array.from({ length: b.batch * b.seq }, (_, i) => BigInt(i % b.seq));
    const feeds: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor('int64', b.inputs, feedShape(b)),
      position_ids: new ort.Tensor('int64', positions, feedShape(b)),
      target_ids: new ort.Tensor('int64', b.targets, feedShape(b)),
      target_weights: new ort.Tensor('float32', new Float32Array(b.batch * b.seq).fill(1), feedShape(b)),
    };
    for (const [name, p] of this.params) feeds[name] = new ort.Tensor('float32', p.data, p.shape);
    return feeds;
  }

  /** One optimisation step: gradients, global-norm clipping, AdamW. */
  async trainStep(b: Batch): Promise<HistoryPoint> {
    const t0 = performance.now();
    const out = await this.train.run(this.feeds(b));
    const grads = new Map([...this.params.keys()].map((n) => [n, out[gradName(n)].data as Float32Array]));
    const norm = globalNorm(grads.values());
    const scale = norm > this.settings.clip ? this.settings.clip / norm : 1;
    const { peakLr, warmup, steps } = this.settings;
    const lr = learningRate(this.step, peakLr, warmup, steps);
    this.step++;
    for (const [name, p] of this.params) {
      const g = grads.get(name)!;
      if (scale !== 1) for (let i = 0; i < g.length; i++) g[i] *= scale;
      adamwUpdate(p.data, g, p.adam, lr, this.step, this.settings.adamw, p.decay);
    }
    this.tokens += b.batch * b.seq;
    this.seconds += (performance.now() - t0) / 1000;
    const point = { step: this.step, tokens: this.tokens, loss: (out.loss.data as Float32Array)[0], lr, gradNorm: norm, seconds: this.seconds };
    this.history.push(point);
    return point;
  }

  /** Summed next-token loss (nats) and the number of predicted tokens over `batches`. */
  async evaluateLoss(batches: Batch[]): Promise<{ nats: number; tokens: number }> {
    let nats = 0;
    let tokens = 0;
    for (const b of batches) {
      const out = await this.evaluate.run(this.feeds(b));
      nats += (out.loss.data as Float32Array)[0] * b.batch * b.seq;
      tokens += b.batch * b.seq;
    }
    return { nats, tokens };
  }

  /** The weights in Hugging Face layout ([out, in] linear weights), by tensor name. */
  exportTensors(): Record<string, HostTensor> {
    const out: Record<string, HostTensor> = {};
    for (const [name, p] of this.params) {
      if (p.transposed) {
        const [rows, cols] = p.shape;
        const t = new Float32Array(rows * cols);
        for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) t[c * rows + r] = p.data[r * cols + c];
        out[name] = { shape: [cols, rows], data: t };
      } else {
        out[name] = { shape: p.shape, data: p.data };
      }
    }
    return out;
  }

  /** Writes the checkpoint atomically (a crash mid-write leaves the previous one). */
  saveCheckpoint(dir: string, extra: Record<string, unknown> = {}): void {
    mkdirSync(dir, { recursive: true });
    const tensors: Record<string, HostTensor> = {};
    for (const [name, p] of this.params) {
      tensors[`param/${name}`] = { shape: p.shape, data: p.data };
      tensors[`m/${name}`] = { shape: p.shape, data: p.adam.m };
      tensors[`v/${name}`] = { shape: p.shape, data: p.adam.v };
    }
    writeSafetensors(join(dir, 'state.safetensors.tmp'), tensors);
    renameSync(join(dir, 'state.safetensors.tmp'), join(dir, 'state.safetensors'));
    const meta = { step: this.step, tokens: this.tokens, seconds: this.seconds, settings: this.settings, history: this.history, ...extra };
    writeFileSync(join(dir, 'state.json.tmp'), JSON.stringify(meta));
    renameSync(join(dir, 'state.json.tmp'), join(dir, 'state.json'));
  }

  /** Restores a checkpoint made with the same settings; false when there is none. */
  loadCheckpoint(dir: string): boolean {
    if (!existsSync(join(dir, 'state.json'))) return false;
    const meta = JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')) as { step: number; tokens: number; seconds: number; history: HistoryPoint[] };
    const tensors = readSafetensors(join(dir, 'state.safetensors'));
    for (const [name, p] of this.params) {
      for (const [prefix, into] of [
        ['param', p.data],
        ['m', p.adam.m],
        ['v', p.adam.v],
      ] as const) {
        const t = tensors[`${prefix}/${name}`];
        if (!t || t.data.length !== into.length) throw new Error(`${dir}: checkpoint lacks ${prefix}/${name} of the model's shape`);
        into.set(t.data);
      }
    }
    Object.assign(this, { step: meta.step, tokens: meta.tokens, seconds: meta.seconds, history: meta.history });
    return true;
  }

  async release(): Promise<void> {
    await this.train.release();
    await this.evaluate.release();
  }
}
