/** One ONNX Runtime session of a LLaMA-family graph, with its KV cache threaded through calls. */
import * as ort from 'onnxruntime-node';
import { LlamaBuilder, pastKeyName, pastValueName, presentKeyName, presentValueName } from '../arch/llama.js';
import { Graph } from '../graph/graph.js';
import { toOnnx } from '../graph/onnx.js';
import type { Value } from '../graph/types.js';
import type { LlamaConfig, LlamaWeights } from '../model/types.js';

export interface OrtOptions {
  /** Threads one op may use (0: ORT's default, one per core). */
  intraOpThreads?: number;
  interOpThreads?: number;
}

/** Keys and values of every layer for the tokens seen so far ([1, kvHeads, length, headDim] each). */
export interface KvCache {
  readonly keys: ort.Tensor[];
  readonly values: ort.Tensor[];
  readonly length: number;
}

export interface ForwardResult {
  /** Logits of the last `logitsToKeep` positions, row after row ([logitsToKeep, vocab]). */
  logits: Float32Array;
  cache: KvCache;
}

/** Multiplier of layer l's MLP activations, [batch, seq, intermediate], in a graph built with `mlpMask`. */
export const mlpMaskName = (layer: number) => `mlp_mask.${layer}`;

export interface ServingGraphOptions {
  /** MLP weights are inputs shaped like those in `weights` (per-prompt neuron sets). */
  mlpInputs?: boolean;
  /**
   * Every layer's MLP activations are multiplied by an input `mlp_mask.{l}`: 0 zeroes a neuron
   * at that position. It computes what a pruned graph computes without skipping any work, so
   * evaluation can give every token its own neuron set.
   */
  mlpMask?: boolean;
}

/** The serving graph: KV cache in and out, logits of the last `logits_to_keep` positions. */
export function buildLlamaOnnx(config: LlamaConfig, weights: LlamaWeights, options: ServingGraphOptions = {}): Uint8Array {
  const graph = new Graph('llama');
  const onMlpActivation = options.mlpMask
    ? (layer: number, a: Value) => graph.mul(a, graph.input(mlpMaskName(layer), 'float32', ['batch', 'seq', config.intermediateSize]))
    : undefined;
  graph.output(new LlamaBuilder(graph, config, { cache: true, fused: true, mlpInputs: options.mlpInputs, onMlpActivation }).build(weights), 'logits');
  return toOnnx(graph);
}

export class LlamaSession {
  private constructor(
    readonly config: LlamaConfig,
    private readonly session: ort.InferenceSession,
  ) {}

  static async create(config: LlamaConfig, weights: LlamaWeights, options: OrtOptions = {}, graph: ServingGraphOptions = {}): Promise<LlamaSession> {
    const session = await ort.InferenceSession.create(buildLlamaOnnx(config, weights, graph), {
      graphOptimizationLevel: 'all',
      executionMode: 'sequential',
      intraOpNumThreads: options.intraOpThreads ?? 0,
      interOpNumThreads: options.interOpThreads ?? 0,
    });
    return new LlamaSession(config, session);
  }

  emptyCache(): KvCache {
    const dims = [1, this.config.numKvHeads, 0, this.config.headDim];
    const empty = () => new ort.Tensor('float32', new Float32Array(0), dims);
    return {
      keys: Array.from({ length: this.config.numLayers }, empty),
      values: Array.from({ length: this.config.numLayers }, empty),
      length: 0,
    };
  }

  /**
   * Runs `tokens` after what `cache` holds; returns logits of the last `logitsToKeep` of them.
   * `inputs` feeds weights the graph takes as inputs (a request's MLP neuron set).
   */
  async forward(tokens: number[], cache: KvCache, logitsToKeep = 1, inputs: Record<string, ort.Tensor> = {}): Promise<ForwardResult> {
    if (tokens.length === 0) throw new Error('forward needs at least one token');
    const n = tokens.length;
    const feeds: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor('int64', BigInt64Array.from(tokens, BigInt), [1, n]),
      position_ids: new ort.Tensor('int64', BigInt64Array.from(tokens, (_, i) => BigInt(cache.length + i)), [1, n]),
      logits_to_keep: new ort.Tensor('int64', BigInt64Array.of(BigInt(Math.min(logitsToKeep, n))), [1]),
      ...inputs,
    };
    for (let l = 0; l < this.config.numLayers; l++) {
      feeds[pastKeyName(l)] = cache.keys[l];
      feeds[pastValueName(l)] = cache.values[l];
    }
    const out = await this.session.run(feeds);
    const layers = Array.from({ length: this.config.numLayers }, (_, l) => l);
    return {
      logits: out.logits.data as Float32Array,
      cache: {
        keys: layers.map((l) => out[presentKeyName(l)]),
        values: layers.map((l) => out[presentValueName(l)]),
        length: cache.length + n,
      },
    };
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
