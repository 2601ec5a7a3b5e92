/** One ONNX Runtime session of a LLaMA-family graph, with its KV cache threaded through calls. */
import * as ort from 'onnxruntime-node';
import { attendsInPlace, LlamaBuilder, pastKeyName, pastValueName, presentKeyName, presentValueName } from '../arch/llama.js';
import { Graph } from '../graph/graph.js';
import { toOnnx } from '../graph/onnx.js';
import type { Value } from '../graph/types.js';
import type { LlamaConfig, LlamaWeights } from '../model/types.js';
import { KvCache } from './kv-cache.js';

export interface OrtOptions {
  /** Threads one op may use (0: ORT's default, one per core). */
  intraOpThreads?: number;
  interOpThreads?: number;
  /**
   * Let ORT's idle pool threads spin waiting for work (ORT's own default) instead of sleeping.
   * Off by default: every session has its own pool, and a pool left spinning after its run
   * takes the cores that the next session (a tier's decode after a dense prefill), the Node
   * main thread (which runs sessions) and its GC need. Measured on 2 cores (npm run bench, a
   * dense and an s80 session stepped alternately): 26.8 and 19.2 ms/token spinning, 17.4 and
   * 11.9 not.
   */
  spinning?: boolean;
}

/** ORT session options from ours. */
export function sessionOptions(options: OrtOptions): ort.InferenceSession.SessionOptions {
  return {
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
    intraOpNumThreads: options.intraOpThreads ?? 0,
    interOpNumThreads: options.interOpThreads ?? 0,
    ...(options.spinning ? {} : { extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } } }),
  };
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
  /** Whether the graph appends to the cache's buffers itself (GroupQueryAttention). */
  private readonly inPlace: boolean;

  private constructor(
    readonly config: LlamaConfig,
    private readonly session: ort.InferenceSession,
  ) {
    this.inPlace = attendsInPlace(config);
  }

  static async create(config: LlamaConfig, weights: LlamaWeights, options: OrtOptions = {}, graph: ServingGraphOptions = {}): Promise<LlamaSession> {
    const session = await ort.InferenceSession.create(buildLlamaOnnx(config, weights, graph), sessionOptions(options));
    return new LlamaSession(config, session);
  }

  emptyCache(): KvCache {
    return KvCache.empty(this.config);
  }

  /**
   * Runs `tokens` after what `cache` holds; returns logits of the last `logitsToKeep` of them
   * and the cache after them. `inputs` feeds weights the graph takes as inputs (a request's MLP
   * neuron set). With GroupQueryAttention the graph writes the new keys and values straight
   * into the cache's buffers (each present output is bound to its past buffer); the op-table
   * attention takes an exact copy of the cache and its new positions are copied back.
   */
  async forward(tokens: number[], cache: KvCache, logitsToKeep = 1, inputs: Record<string, ort.Tensor> = {}): Promise<ForwardResult> {
    if (tokens.length === 0) throw new Error('forward needs at least one token');
    const n = tokens.length;
    const next = cache.append(n);
    const feeds: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor('int64', BigInt64Array.from(tokens, BigInt), [1, n]),
      position_ids: new ort.Tensor('int64', BigInt64Array.from(tokens, (_, i) => BigInt(cache.length + i)), [1, n]),
      logits_to_keep: new ort.Tensor('int64', BigInt64Array.of(BigInt(Math.min(logitsToKeep, n))), [1]),
      ...inputs,
    };
    const fetches: Record<string, ort.Tensor | null> = { logits: null };
    const past = this.inPlace ? next : cache.contiguous();
    for (let l = 0; l < this.config.numLayers; l++) {
      feeds[pastKeyName(l)] = past.keys[l];
      feeds[pastValueName(l)] = past.values[l];
      fetches[presentKeyName(l)] = this.inPlace ? next.keys[l] : null;
      fetches[presentValueName(l)] = this.inPlace ? next.values[l] : null;
    }
    const out = await this.session.run(feeds, fetches);
    if (!this.inPlace) {
      const layers = Array.from({ length: this.config.numLayers }, (_, l) => l);
      next.write(cache.length, layers.map((l) => out[presentKeyName(l)]), layers.map((l) => out[presentValueName(l)]));
    }
    return { logits: out.logits.data as Float32Array, cache: next };
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
