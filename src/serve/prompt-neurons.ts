/**
 * Per-prompt neuron sets (activation "prompt"): the neurons attribution ranks highest on the
 * prompt itself, scored with the model's metric, cached by score in the activation store so that
 * a repeated prompt pays once, and gathered into the MLP weight tensors that the per-prompt
 * graph takes as inputs.
 */
import * as ort from 'onnxruntime-node';
import { mlpInputTensors } from '../arch/decoder.js';
import type { ActivationStore } from '../cache/types.js';
import type { LoadedModel } from '../arch/load.js';
import type { ModelWeights } from '../model/types.js';
import type { Lease, SessionPool } from '../runtime/pool.js';
import type { OrtOptions } from '../runtime/session.js';
import { Attributor, promptTargets } from '../sparsity/attribution.js';
import { keepTop } from '../sparsity/masks.js';
import { meanOverPositions, scoreSequence, type Metric } from '../sparsity/metrics.js';

export interface PromptNeuronSet {
  /** Per layer, the kept neurons. */
  keep: number[][];
  /** Whether the scores came from the store or were computed now. */
  source: 'cache' | 'computed';
}

export class PromptNeurons {
  constructor(
    private readonly model: LoadedModel,
    /** The metric sets are scored with: the calibration's, else Corrected GxO. */
    readonly metric: Metric,
    private readonly pool: SessionPool,
    private readonly ortOptions: OrtOptions,
    /** Bytes of the dense weights as one session holds them (the attribution graph holds about twice). */
    private readonly denseBytes: number,
    private readonly store: ActivationStore | undefined,
  ) {}

  /** The prompt's neurons at `sparsity`. */
  async choose(promptIds: number[], sparsity: number): Promise<PromptNeuronSet> {
    const { scores, source } = await this.scores(promptIds);
    return { keep: scores.map((s) => keepTop(s, sparsity)), source };
  }

  private attributor(): Promise<Lease<Attributor>> {
    return this.pool.acquire(`${this.model.weightsHash}:attribution`, 2 * this.denseBytes, () =>
      Attributor.create(this.model.config, this.model.weights, this.ortOptions),
    );
  }

  /** Per-layer neuron scores of a prompt: from the store, else computed (and stored). */
  private async scores(promptIds: number[]): Promise<{ scores: Float32Array[]; source: 'cache' | 'computed' }> {
    const key = { modelHash: this.model.weightsHash, metric: this.metric, tokens: promptIds };
    const cached = await this.store?.get(key);
    if (cached && cached.length === this.model.config.numLayers) return { scores: cached, source: 'cache' };
    const targets = promptTargets(promptIds);
    const lease = await this.attributor();
    try {
      const scored = await scoreSequence(lease.value, promptIds, targets, this.metric);
      const scores = scored.layers.map((l) => Float32Array.from(meanOverPositions(l.mlp, this.model.config.intermediateSize)));
      await this.store?.set(key, scores);
      return { scores, source: 'computed' };
    } finally {
      lease.done();
    }
  }

  /** The MLP weights of the kept neurons, as the per-prompt graph takes them. */
  gather(keep: number[][]): Record<string, ort.Tensor> {
    return promptSetFeeds(this.model.weights, keep);
  }
}

/** The MLP weights of `keep`'s neurons (per layer) as a per-prompt graph's inputs (`mlpInputs`). */
export function promptSetFeeds(weights: ModelWeights, keep: number[][]): Record<string, ort.Tensor> {
  const inputs = Object.entries(mlpInputTensors(weights, keep));
  return Object.fromEntries(inputs.map(([name, t]) => [name, new ort.Tensor('float32', t.data, t.shape)]));
}
