/** One ONNX Runtime session of a decoder graph (any architecture), with its KV cache threaded through calls. */
import * as ort from 'onnxruntime-node';
import { selectedName, type TokenSelection } from '../arch/token-mlp.js';
import {
  attendsWithGqa,
  DecoderBuilder,
  pastKeyName,
  pastValueName,
  presentKeyName,
  presentValueName,
  projectionsName,
  ropeTables,
  rotateHalf,
  type RopeTables,
} from '../arch/decoder.js';
import { Graph } from '../graph/graph.js';
import type { Value } from '../graph/types.js';
import type { QuantSpec } from '../model/quant.js';
import type { ModelConfig, ModelWeights } from '../model/types.js';
import { createSession } from './create-session.js';
import type { KvArena } from './kv-arena.js';
import { KvCache } from './kv-cache.js';

export interface OrtOptions {
  /** Threads one op may use (0: ORT's default, one per core). */
  intraOpThreads?: number;
  interOpThreads?: number;
  /** When ORT's idle pool threads spin waiting for work instead of sleeping (see `Spinning`). */
  spinning?: Spinning;
}

/**
 * When a session's pool threads spin for work, instead of sleeping until woken:
 * - `run` (default): while a run lasts, and they stop when it returns. Within a run, ops
 *   follow one another every few microseconds, and waking a sleeping thread for each costs
 *   more than a small op; between runs, a pool still spinning would take the cores that the
 *   next session (a tier's decode after a dense prefill), the Node main thread and its GC
 *   need, because every session has its own pool.
 * - `always`: ORT's own default; pools go on spinning for a while after a run.
 * - `never`: pools sleep between ops too.
 * Measured on 2 cores, a dense and an s80 session stepped alternately: `run` decodes 9-11%
 * faster than `never`, and `always` far slower than either (docs/bench.md).
 */
export const SPINNING = ['run', 'always', 'never'] as const;
export type Spinning = (typeof SPINNING)[number];

const SPINNING_CONFIG: Record<Spinning, Record<string, unknown>> = {
  run: { session: { force_spinning_stop: '1' } },
  always: {},
  never: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } },
};

/** ORT session options from ours. */
export function sessionOptions(options: OrtOptions): ort.InferenceSession.SessionOptions {
  return {
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
    intraOpNumThreads: options.intraOpThreads ?? 0,
    interOpNumThreads: options.interOpThreads ?? 0,
    extra: SPINNING_CONFIG[options.spinning ?? 'run'],
  };
}

export interface ForwardResult {
  /** Logits of the last `logitsToKeep` positions, row after row ([logitsToKeep, vocab]). */
  logits: Float32Array;
  cache: KvCache;
  /**
   * With per-token selection and `outputSelected`: per layer, the blocks each new position
   * kept ([positions, kept blocks], row after row).
   */
  selected?: BigInt64Array[];
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
  /** Each position selects its own MLP neurons inside the graph (per-token activation). */
  tokenSelection?: TokenSelection;
  /** Blockwise-quantised constant weights (DecoderGraphOptions.quant). */
  quant?: QuantSpec;
}

/** The serving graph: KV cache in and out, logits of the last `logits_to_keep` positions. */
export function buildServingGraph(config: ModelConfig, weights: ModelWeights, options: ServingGraphOptions = {}): Graph {
  const graph = new Graph('llama');
  const onMlpActivation = options.mlpMask
    ? (layer: number, a: Value) => graph.mul(a, graph.input(mlpMaskName(layer), 'float32', ['batch', 'seq', config.intermediateSize]))
    : undefined;
  graph.output(
    new DecoderBuilder(graph, config, {
      cache: true,
      fused: true,
      mlpInputs: options.mlpInputs,
      onMlpActivation,
      tokenSelection: options.tokenSelection,
      quant: options.quant,
    }).build(weights),
    'logits',
  );
  return graph;
}

export class DecoderSession {
  /** GroupQueryAttention: the graph returns q/k/v projections, and this session caches the keys and values. */
  private readonly gqa: boolean;
  /** With GroupQueryAttention and RoPE, the tables for the keys this session caches. */
  private readonly gqaRope: RopeTables | null;

  private constructor(
    readonly config: ModelConfig,
    private readonly session: ort.InferenceSession,
  ) {
    this.gqa = attendsWithGqa(config);
    this.gqaRope = this.gqa && config.rotaryDim > 0 ? ropeTables(config) : null;
  }

  static async create(config: ModelConfig, weights: ModelWeights, options: OrtOptions = {}, graph: ServingGraphOptions = {}): Promise<DecoderSession> {
    const session = await createSession(buildServingGraph(config, weights, graph), sessionOptions(options));
    return new DecoderSession(config, session);
  }

  emptyCache(): KvCache {
    return KvCache.empty(this.config);
  }

  /**
   * Runs `tokens` after what `cache` holds; returns logits of the last `logitsToKeep` of them
   * and the cache after them. `inputs` feeds weights the graph takes as inputs (a request's MLP
   * neuron set). GroupQueryAttention reads the cache's buffers as they are, and the new keys
   * and values are appended from the projections the graph returns (`appendProjections`);
   * the op-table attention takes an exact copy of the cache and returns it with the new
   * positions, which are copied back.
   */
  async forward(tokens: number[], cache: KvCache, logitsToKeep = 1, inputs: Record<string, ort.Tensor> = {}): Promise<ForwardResult> {
    if (tokens.length === 0) throw new Error('forward needs at least one token');
    const n = tokens.length;
    const next = cache.append(n);
    const feeds: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor('int64', BigInt64Array.from(tokens, BigInt), [1, n]),
      position_ids: new ort.Tensor(
        'int64',
        BigInt64Array.from(tokens, (_, i) => BigInt(cache.length + i)),
        [1, n],
      ),
      logits_to_keep: new ort.Tensor('int64', BigInt64Array.of(BigInt(Math.min(logitsToKeep, n))), [1]),
      ...inputs,
    };
    const past = this.gqa ? next : cache.contiguous();
    for (let l = 0; l < this.config.numLayers; l++) {
      feeds[pastKeyName(l)] = past.keys[l];
      feeds[pastValueName(l)] = past.values[l];
    }
    const out = await this.session.run(feeds);
    const layers = Array.from({ length: this.config.numLayers }, (_, l) => l);
    if (this.gqa) {
      const positions = Array.from({ length: n }, (_, i) => cache.length + i);
      this.appendProjections(out, positions, (layer, i, keys, values) => next.writePosition(layer, positions[i], keys, values));
    } else {
      next.write(
        cache.length,
        layers.map((l) => out[presentKeyName(l)]),
        layers.map((l) => out[presentValueName(l)]),
      );
    }
    const selected = out[selectedName(0)] ? layers.map((l) => out[selectedName(l)].data as BigInt64Array) : undefined;
    return { logits: out.logits.data as Float32Array, cache: next, ...(selected && { selected }) };
  }

  /**
   * One decode step of a batch of sequences whose caches are the first rows of `arena`: row i
   * runs `tokens[i]` at `positions[i]` (its length so far) and gets that position written.
   * Returns the logits, [rows, vocab]. Needs GroupQueryAttention, which reads each row up to
   * its own length; the op-table attention would attend to the other rows' padding.
   */
  async step(tokens: number[], positions: number[], arena: KvArena, inputs: Record<string, ort.Tensor> = {}): Promise<Float32Array> {
    if (!this.gqa) throw new Error('batched decode needs GroupQueryAttention (a head size that is a multiple of 8)');
    const rows = tokens.length;
    arena.reserve(rows, Math.max(...positions) + 1);
    const past = arena.past(rows);
    const feeds: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor('int64', BigInt64Array.from(tokens, BigInt), [rows, 1]),
      position_ids: new ort.Tensor('int64', BigInt64Array.from(positions, BigInt), [rows, 1]),
      logits_to_keep: new ort.Tensor('int64', BigInt64Array.of(1n), [1]),
      ...inputs,
    };
    for (let l = 0; l < this.config.numLayers; l++) {
      feeds[pastKeyName(l)] = past.keys[l];
      feeds[pastValueName(l)] = past.values[l];
    }
    const out = await this.session.run(feeds);
    this.appendProjections(out, positions, (layer, row, keys, values) => arena.writePosition(row, layer, positions[row], keys, values));
    return out.logits.data as Float32Array;
  }

  /**
   * Hands `write` the keys and values of every new position of every layer, from the packed
   * q/k/v projections the graph returns (rows of q + k + v, position after position, `i`
   * counting them): the keys with RoPE at their positions, as the graph's attention used them,
   * and the values as they are.
   */
  private appendProjections(
    out: ort.InferenceSession.ReturnType,
    positions: number[],
    write: (layer: number, i: number, keys: Float32Array, values: Float32Array) => void,
  ): void {
    const rope = this.gqaRope;
    const { numHeads, numKvHeads, headDim, numLayers, rotaryDim } = this.config;
    const qWidth = numHeads * headDim;
    const kvWidth = numKvHeads * headDim;
    const width = qWidth + 2 * kvWidth;
    const key = new Float32Array(kvWidth);
    for (let layer = 0; layer < numLayers; layer++) {
      const y = out[projectionsName(layer)].data as Float32Array;
      for (const [i, position] of positions.entries()) {
        const row = i * width;
        key.set(y.subarray(row + qWidth, row + qWidth + kvWidth));
        if (rope) for (let h = 0; h < numKvHeads; h++) rotateHalf(key, h * headDim, position, rope, rotaryDim);
        write(layer, i, key, y.subarray(row + qWidth + kvWidth, row + width));
      }
    }
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
