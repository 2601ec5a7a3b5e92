/** Running the attribution graph: activations and loss gradients of every MLP neuron and head. */
import * as ort from 'onnxruntime-node';
import { createSession } from '../runtime/create-session.js';
import type { ModelConfig, ModelWeights } from '../model/types.js';
import { pastKeyName, pastValueName } from '../arch/decoder.js';
import type { KvCache } from '../runtime/kv-cache.js';
import { sessionOptions, type OrtOptions } from '../runtime/session.js';
import { buildAttributionGraph, headGateName, mlpScaleName } from './attribution-graph.js';

/** What each position should predict, and how much its loss counts (0: not at all). */
export interface Targets {
  ids: number[];
  weights: number[];
}

/** Self-attribution: each position predicts the next prompt token; needs no label. */
export function selfTargets(tokens: number[]): Targets {
  return {
    ids: tokens.map((_, p) => tokens[p + 1] ?? 0),
    weights: tokens.map((_, p) => (p + 1 < tokens.length ? 1 : 0)),
  };
}

/**
 * What a served prompt's neuron set is attributed against: its own next tokens. A one-token
 * prompt predicts nothing of itself, so it is scored as its own target.
 */
export function promptTargets(tokens: number[]): Targets {
  return tokens.length > 1 ? selfTargets(tokens) : { ids: tokens, weights: [1] };
}

/** Teacher forcing: `tokens` is prompt + continuation; only the continuation's tokens are targets. */
export function continuationTargets(tokens: number[], promptLength: number): Targets {
  if (promptLength < 1 || promptLength >= tokens.length) throw new RangeError('the continuation must have at least one token after a non-empty prompt');
  return {
    ids: tokens.map((_, p) => tokens[p + 1] ?? 0),
    weights: tokens.map((_, p) => (p >= promptLength - 1 && p + 1 < tokens.length ? 1 : 0)),
  };
}

/** One layer's units at every position, row-major [position][unit]. */
export interface UnitActivity {
  /** The unit's output: the MLP activation, or the L2 norm of a head's output. */
  a: Float32Array;
  /**
   * dL/da. For a head, the derivative along its output's direction: dL/dgate / |output|, so
   * that g * a is the head's first-order loss change, as for a neuron.
   */
  g: Float32Array;
}

export interface LayerAttribution {
  mlp: UnitActivity;
  heads: UnitActivity;
}

export interface Attribution {
  positions: number;
  loss: number;
  layers: LayerAttribution[];
  /** Per layer, the MLP's input ([position][hidden]); only from an attributor created with `mlpInputs`. */
  mlpInputs?: Float32Array[];
}

export interface RunOptions {
  /** Multiplies every MLP activation and head output (Integrated Gradients' path). Default 1. */
  scale?: number;
  /** Per-layer multipliers of MLP neurons (0 ablates a neuron); overrides `scale` for the MLP. */
  mlpScales?: Float32Array[];
}

export class Attributor {
  private constructor(
    readonly config: ModelConfig,
    private readonly session: ort.InferenceSession,
    /** Whether the graph takes a KV cache: then `step` runs, and `run` does not. */
    readonly cached: boolean,
    /** Whether runs also return each layer's MLP input (`Attribution.mlpInputs`). */
    readonly withMlpInputs = false,
  ) {}

  static async create(
    config: ModelConfig,
    weights: ModelWeights,
    options: OrtOptions = {},
    graph: { cache?: boolean; mlpInputs?: boolean } = {},
  ): Promise<Attributor> {
    const { graph: built } = buildAttributionGraph(config, weights, { cache: graph.cache, mlpInputs: graph.mlpInputs });
    const session = await createSession(built, sessionOptions(options));
    return new Attributor(config, session, graph.cache === true, graph.mlpInputs === true);
  }

  /** Attribution over the whole sequence `tokens`. */
  async run(tokens: number[], targets: Targets, options: RunOptions = {}): Promise<Attribution> {
    if (this.cached) throw new Error('this attributor takes a KV cache: use step()');
    return this.execute(tokens, 0, targets, options, {});
  }

  /**
   * Attribution of one decode step: `token` at position `cache.length` after what `cache`
   * holds, with the loss of predicting `target`. The cache is held constant, as it is when
   * the step is served, so the gradients are those of this position's own prediction.
   */
  async step(token: number, cache: KvCache, target: number, options: RunOptions = {}): Promise<Attribution> {
    if (!this.cached) throw new Error('this attributor was built without a KV cache: use run()');
    const past: Record<string, ort.Tensor> = {};
    const { keys, values } = cache.contiguous();
    for (let l = 0; l < this.config.numLayers; l++) {
      past[pastKeyName(l)] = keys[l];
      past[pastValueName(l)] = values[l];
    }
    return this.execute([token], cache.length, { ids: [target], weights: [1] }, options, past);
  }

  private async execute(tokens: number[], start: number, targets: Targets, options: RunOptions, past: Record<string, ort.Tensor>): Promise<Attribution> {
    const { numLayers, numHeads, intermediateSize } = this.config;
    const S = tokens.length;
    const scale = options.scale ?? 1;
    const feeds: Record<string, ort.Tensor> = {
      ...past,
      input_ids: new ort.Tensor('int64', BigInt64Array.from(tokens, BigInt), [1, S]),
      position_ids: new ort.Tensor(
        'int64',
        BigInt64Array.from(tokens, (_, i) => BigInt(start + i)),
        [1, S],
      ),
      target_ids: new ort.Tensor('int64', BigInt64Array.from(targets.ids, BigInt), [1, S]),
      target_weights: new ort.Tensor('float32', Float32Array.from(targets.weights), [1, S]),
    };
    for (let l = 0; l < numLayers; l++) {
      const mlp = options.mlpScales?.[l] ?? new Float32Array(intermediateSize).fill(scale);
      feeds[mlpScaleName(l)] = new ort.Tensor('float32', mlp, [intermediateSize]);
      feeds[headGateName(l)] = new ort.Tensor('float32', new Float32Array(S * numHeads).fill(scale), [1, S, numHeads]);
    }
    const out = await this.session.run(feeds);
    const layers = Array.from({ length: numLayers }, (_, l): LayerAttribution => {
      const norm = out[`heads.${l}.norm`].data as Float32Array;
      const gate = out[`heads.${l}.g`].data as Float32Array;
      return {
        mlp: { a: out[`mlp.${l}.a`].data as Float32Array, g: out[`mlp.${l}.g`].data as Float32Array },
        heads: { a: norm, g: gate.map((d, i) => (norm[i] > 0 ? d / norm[i] : 0)) },
      };
    });
    const mlpInputs = this.withMlpInputs ? layers.map((_, l) => out[`mlp.${l}.x`].data as Float32Array) : undefined;
    return { positions: S, loss: (out.loss.data as Float32Array)[0], layers, mlpInputs };
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
