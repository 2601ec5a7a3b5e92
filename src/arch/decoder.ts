/**
 * The shared decoder base on the graph builder, forward only, for every architecture served: the
 * LLaMA family (LLaMA, Mistral, Qwen2, SmolLM, TinyLlama, Phi-3, MobiLlama), Phi (Phi-1.5, Phi-2) and GPT-2.
 * The base owns what every decoder has (embeddings and positions, the KV cache inputs and
 * outputs, the attention kernel, `logits_to_keep`, the head) and the primitives a layer is
 * written with: `addNorm` (RMSNorm or LayerNorm), `attention` (RoPE on whole heads, part of them,
 * or none), `mlp` (SwiGLU or GELU), each choosing its fused kernels and its variant from the
 * config. Each family writes its layer once on them (`Family.layer`: llama.ts, phi.ts, gpt2.ts),
 * and `build` runs the one layer loop. One definition yields every graph the product runs:
 * - serving: KV cache in as `past_key_values.*` and out as `present.*` (past and new
 *   positions), or with GroupQueryAttention only each layer's q/k/v projections out (`qkv.*`,
 *   see `gqaAttention`); `logits_to_keep` says how many of the last positions get logits (1 when
 *   generating, the whole prompt for its logprobs);
 * - attribution and training: no cache, logits at every position, and hooks on each layer's
 *   MLP activations and attention heads through which autodiff takes gradients.
 */
import type { Graph } from '../graph/graph.js';
import type { DType, Value } from '../graph/types.js';
import { blockBytes, quantize, type QuantSpec } from '../model/quant.js';
import type { HostTensor, LayerWeights, ModelConfig, ModelWeights } from '../model/types.js';
import { familyOf } from './families.js';
import { TOKEN_BLOCKS, TOKEN_CANDIDATES, tokenMlp, type TokenInputs, type TokenSelection } from './token-mlp.js';

const INT64_MAX_SAFE = Number.MAX_SAFE_INTEGER;
/** Added to masked attention scores; exp() of it underflows to exactly 0. */
const MASKED = -1e9;

export const pastKeyName = (layer: number) => `past_key_values.${layer}.key`;
export const pastValueName = (layer: number) => `past_key_values.${layer}.value`;
export const presentKeyName = (layer: number) => `present.${layer}.key`;
export const presentValueName = (layer: number) => `present.${layer}.value`;
/** Layer l's packed q/k/v projections ([batch, seq, q + k + v], before RoPE), out of a GroupQueryAttention graph. */
export const projectionsName = (layer: number) => `qkv.${layer}`;

export interface DecoderGraphOptions {
  /** float32 to serve; float64 for finite-difference checks of gradients. */
  dtype?: 'float32' | 'float64';
  /** Take and return a KV cache (serving). Without it the graph sees the whole sequence. */
  cache?: boolean;
  /**
   * Take `logits_to_keep` and return logits of only that many last positions. Default: with
   * `cache`. Off for a cached attribution step, whose gradient cannot pass a run-time slice.
   */
  logitsToKeep?: boolean;
  /**
   * Called with each layer's MLP activation (the input of the down projection, [batch, seq,
   * intermediate]); what it returns flows on. Attribution scales and records it here.
   */
  onMlpActivation?(layer: number, a: Value): Value;
  /**
   * Called with each layer's MLP input (the normalised hidden state, [batch, seq, hidden]);
   * what it returns flows on. Per-token selectors read it, and their training records it.
   */
  onMlpInput?(layer: number, x: Value): Value;
  /** Called with each layer's per-head attention output ([batch, seq, heads, headDim]). */
  onHeadOutput?(layer: number, o: Value): Value;
  /**
   * Weights as graph inputs (training: their gradients are taken and new values fed each
   * step) instead of constants. Linear weights are inputs in [in, out] layout.
   */
  trainable?: boolean;
  /**
   * Serving only, float32 (no gradient flows through them): ONNX Runtime's fused kernels where
   * the op table spells an op out in many nodes, so a decode step runs fewer kernels (a step's
   * fixed cost is per kernel, and does not shrink with pruning). Each residual add and the
   * norm after it are one SkipSimplifiedLayerNormalization (RMSNorm) or SkipLayerNormalization;
   * q/k/v are one MatMul, and so are gate/up; GELU is FastGelu; with a cache, attention is
   * GroupQueryAttention (`attendsWithGqa`), else RoPE is RotaryEmbedding and the query and
   * attention-output layouts take one Transpose each. The weight products are the same as
   * without it.
   */
  fused?: boolean;
  /**
   * MLP gate/up/down weights (and a GELU MLP's up bias) as graph inputs (per-prompt neuron sets:
   * the request gathers its neurons' rows once and feeds them to every step). Shapes come from
   * the weights given.
   */
  mlpInputs?: boolean;
  /**
   * Serving: each position of each layer selects its own MLP neurons before the MLP runs, and
   * only those are read (src/arch/token-mlp.ts). Adds the input `token_blocks`.
   */
  tokenSelection?: TokenSelection;
  /**
   * Serving (fused) only: every projection whose weight is a constant, and the LM head, reads
   * blockwise-quantised weights through MatMulNBits, and the embedding through
   * GatherBlockQuantized (src/model/quant.ts). Weights fed as inputs (`mlpInputs`) and the
   * rows per-token selection gathers stay float32: ONNX Runtime's MatMulNBits dequantises a
   * B that is not a constant on every call (docs/quantisation-probe.md).
   */
  quant?: QuantSpec;
}

/** What one MLP neuron owns, by graph name: fed per request with `mlpInputs` (the down bias is every neuron's). */
const MLP_INPUT = /\.mlp\.((gate|up|down|gate_up)_proj\.weight|up_proj\.bias)$/;
/** gelu_new's constant: sqrt(2 / pi). */
const GELU_TANH_SCALE = Math.sqrt(2 / Math.PI);

/** A weight the graph takes as an input, with its initial value in the graph's layout. */
export interface Parameter {
  value: Value;
  init: Float32Array;
  /** The checkpoint tensor's transpose: a linear weight, [in, out] in the graph, [out, in] as Hugging Face stores it. */
  transposed: boolean;
}

/** [out, in] as Hugging Face stores it -> [in, out] so that y = x @ W. */
export function transposed(t: HostTensor): Float32Array {
  const [rows, cols] = t.shape;
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) out[c * rows + r] = t.data[r * cols + c];
  }
  return out;
}

/**
 * Linear weights ([out, in] each, one input size) as one [in, sum of outs] matrix, each one's
 * transpose in turn: x times it is the outputs of each, side by side.
 */
export function sideBySide(ts: HostTensor[]): Float32Array {
  const inDim = ts[0].shape[1];
  const width = ts.reduce((a, t) => a + t.shape[0], 0);
  const out = new Float32Array(inDim * width);
  let offset = 0;
  for (const t of ts) {
    const [rows] = t.shape;
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < inDim; c++) out[c * width + offset + r] = t.data[r * inDim + c];
    }
    offset += rows;
  }
  return out;
}

/** Rows of several matrices ([out, in] each, one input size) one after the other: [sum of outs, in]. */
function concatRows(ts: HostTensor[]): Float32Array {
  const out = new Float32Array(ts.reduce((n, t) => n + t.data.length, 0));
  let offset = 0;
  for (const t of ts) {
    out.set(t.data, offset);
    offset += t.data.length;
  }
  return out;
}

/**
 * Module name of layer l's MLP in a graph: its weights are `${mlpModule(l)}.{gate_up,up,down}_proj.*`
 * whatever the checkpoint calls them.
 */
const mlpModule = (layer: number) => `model.layers.${layer}.mlp`;

/**
 * The inputs of a graph built with `mlpInputs` for the neurons in `keep` (per layer, any
 * order: the given order is the graph's): SwiGLU's kept gate and up columns side by side, as the
 * fused product takes them ([hidden, 2 * kept]), or a GELU MLP's kept up columns and biases; and
 * the kept down rows ([kept, hidden]), gathered in one pass without a pruned copy in between (a
 * per-prompt request does this for every layer).
 */
export function mlpInputTensors(weights: ModelWeights, keep: readonly (readonly number[])[]): Record<string, HostTensor> {
  const inputs: Record<string, HostTensor> = {};
  for (const [l, w] of weights.layers.entries()) {
    const kept = keep[l];
    const k = kept.length;
    const [intermediate, hidden] = w.up.shape;
    // gate/up are [intermediate, hidden]: neuron kept[j]'s row becomes column j (gate; up in a GELU MLP) and k + j (SwiGLU's up).
    const ins = w.gate ? [w.gate, w.up] : [w.up];
    const width = ins.length * k;
    const inProj = new Float32Array(hidden * width);
    kept.forEach((n, j) => {
      for (let h = 0; h < hidden; h++) for (const [i, t] of ins.entries()) inProj[h * width + i * k + j] = t.data[n * hidden + h];
    });
    // down is [hidden, intermediate]: neuron kept[j]'s column becomes row j.
    const down = new Float32Array(k * hidden);
    kept.forEach((n, j) => {
      for (let h = 0; h < hidden; h++) down[j * hidden + h] = w.down.data[h * intermediate + n];
    });
    inputs[`${mlpModule(l)}.${w.gate ? 'gate_up' : 'up'}_proj.weight`] = { shape: [hidden, width], data: inProj };
    if (w.upBias) inputs[`${mlpModule(l)}.up_proj.bias`] = { shape: [k], data: Float32Array.from(kept, (n) => w.upBias!.data[n]) };
    inputs[`${mlpModule(l)}.down_proj.weight`] = { shape: [k, hidden], data: down };
  }
  return inputs;
}

/** cos and sin of every position for the rotate-half RoPE convention: [maxPositions, rotaryDim] each. */
export interface RopeTables {
  readonly cos: Float64Array;
  readonly sin: Float64Array;
}

/**
 * One set per model config, shared by every graph built for it and by its sessions, which
 * cache keys with them (8 MB at 8k positions); nothing writes to them.
 */
const ropeTablesOf = new WeakMap<ModelConfig, RopeTables>();

export function ropeTables(config: ModelConfig): RopeTables {
  let tables = ropeTablesOf.get(config);
  if (!tables) {
    tables = computeRopeTables(config);
    ropeTablesOf.set(config, tables);
  }
  return tables;
}

/** Each head's first `rotaryDim` dimensions rotate (all of them but in Phi); the frequencies are over that width. */
function computeRopeTables(config: ModelConfig): RopeTables {
  const { rotaryDim: dim, maxPositions, ropeTheta } = config;
  const half = dim / 2;
  const cos = new Float64Array(maxPositions * dim);
  const sin = new Float64Array(maxPositions * dim);
  for (let p = 0; p < maxPositions; p++) {
    for (let i = 0; i < half; i++) {
      const angle = p * ropeTheta ** ((-2 * i) / dim);
      // Dimension i and i + half form one rotating pair.
      cos[p * dim + i] = cos[p * dim + i + half] = Math.cos(angle);
      sin[p * dim + i] = sin[p * dim + i + half] = Math.sin(angle);
    }
  }
  return { cos, sin };
}

/**
 * RoPE in place on one head's vector (its first `rotaryDim` values of `x` from `offset` rotate)
 * at `position`, from `ropeTables`: what the graph's RoPE does, for keys the caller caches itself.
 */
export function rotateHalf(x: Float32Array, offset: number, position: number, tables: RopeTables, rotaryDim: number): void {
  const half = rotaryDim / 2;
  const row = position * rotaryDim;
  for (let i = 0; i < half; i++) {
    const a = x[offset + i];
    const b = x[offset + i + half];
    x[offset + i] = a * tables.cos[row + i] - b * tables.sin[row + i];
    x[offset + i + half] = b * tables.cos[row + i + half] + a * tables.sin[row + i + half];
  }
}

/**
 * The residual stream `sum` and its normalisation `normed`: what a layer takes (the stream after
 * the previous layer, normalised by this layer's input norm) and what `addNorm` returns.
 */
export interface Residual {
  normed: Value;
  sum: Value;
}

/**
 * One decoder layer, written by each family (src/arch/family.ts): from the stream `x` (with its
 * input norm applied), `out`, what the layer adds to the stream, and `residual`, the stream it
 * adds to. The caller makes that last add, fused with the norm after it.
 */
export type DecoderLayer = (b: DecoderBuilder, x: Residual, w: LayerWeights, layer: number) => { out: Value; residual: Value };

/** What every layer's attention shares: RoPE at the input positions, the mask, the cache inputs. */
interface AttentionContext {
  /** cos and sin at the input positions ([batch, 1, seq, rotaryDim]); null when fused or without RoPE. */
  cos: Value | null;
  sin: Value | null;
  /** Fused instead of cos/sin: RotaryEmbedding's inputs (positions, half-width cos/sin tables); null without RoPE. */
  rotary: { positions: Value; cos: Value; sin: Value } | null;
  /** Fused with a cache: attention is GroupQueryAttention (see `gqaAttention`). */
  gqa: GqaContext | null;
  /** The additive causal mask of the op-table attention (null with GroupQueryAttention). */
  mask: Value | null;
  past: { key: Value; value: Value }[] | null;
}

/**
 * GroupQueryAttention's lengths (int32, one sequence per batch), and whether it applies RoPE
 * itself. The lengths come from the positions, not from the cache's shape: the cache inputs
 * are buffers of any capacity whose first `total - seq` positions are filled.
 */
interface GqaContext {
  seqlensK: Value;
  total: Value;
  rotates: boolean;
}

/**
 * Whether the fused serving graph's attention is ONNX Runtime's GroupQueryAttention (its CPU
 * kernel needs a head size that is a multiple of 8), which reads the cache from buffers of
 * any capacity; otherwise the op-table attention concatenates the cache, which must then be
 * fed exactly.
 */
export const attendsWithGqa = (config: ModelConfig) => config.headDim % 8 === 0;
/**
 * GroupQueryAttention applies RoPE itself (on packed q/k/v) when the head size is a multiple of
 * 16, and so is the part of each head that rotates (its CPU kernel wants cos_cache's width, half
 * of it, a multiple of 8: Phi-2's 32 of 80 qualifies).
 */
const gqaRotates = (config: ModelConfig) => config.headDim % 16 === 0 && config.rotaryDim % 16 === 0;

export class DecoderBuilder {
  readonly dtype: 'float32' | 'float64';
  /** ONNX Runtime's fused kernels (`fused`, float32 only). */
  readonly fused: boolean;
  /** With `trainable`, the weights as inputs, by Hugging Face tensor name. */
  readonly parameters = new Map<string, Parameter>();
  /** With `tokenSelection`, its inputs (how many blocks, and candidates, each layer keeps per token). */
  private tokenInputs: TokenInputs | null = null;
  /** What every layer's attention shares, once `build` has recorded it. */
  private ctx: AttentionContext | null = null;

  constructor(
    readonly g: Graph,
    readonly config: ModelConfig,
    readonly options: DecoderGraphOptions = {},
  ) {
    this.dtype = options.dtype ?? 'float32';
    this.fused = options.fused === true && this.dtype === 'float32' && !options.trainable;
  }

  /** A constant of the graph's dtype. */
  constant(data: ArrayLike<number>, shape: number[], name: string): Value {
    const typed = this.dtype === 'float64' ? Float64Array.from(data) : data instanceof Float32Array ? data : Float32Array.from(data);
    return this.g.constant(typed, shape, this.dtype, name);
  }

  /**
   * A model weight: a constant when serving (ORT pre-packs constant matmul operands), a graph
   * input when training.
   */
  weight(data: Float32Array, shape: number[], name: string, transposed = false): Value {
    if (!this.options.trainable && !(this.options.mlpInputs && MLP_INPUT.test(name))) return this.constant(data, shape, name);
    const value = this.g.input(name, this.dtype, shape);
    this.parameters.set(name, { value, init: data, transposed });
    return value;
  }

  scalar(v: number): Value {
    return this.g.scalar(v, this.dtype as DType);
  }

  /** y = x @ W^T (+ b) for the module `name`, with W stored in [in, out] layout. */
  linear(x: Value, w: HostTensor, name: string, bias?: HostTensor): Value {
    const [outDim, inDim] = w.shape;
    const y = this.quantizes(`${name}.weight`)
      ? this.matMulNBits(x, [w], `${name}.weight`)
      : this.g.matmul(x, this.weight(transposed(w), [inDim, outDim], `${name}.weight`, true));
    return bias ? this.g.add(y, this.weight(bias.data, [outDim], `${name}.bias`)) : y;
  }

  /** Whether the weight `name` is served quantised: with `quant`, when it is a constant. */
  private quantizes(name: string): boolean {
    return this.fused && this.options.quant !== undefined && !(this.options.mlpInputs && MLP_INPUT.test(name));
  }

  /**
   * x @ W^T for W the rows of `ws` ([out, in] each, as Hugging Face stores them) one after the
   * other, by MatMulNBits on W's blockwise codes; `B` may be given (a tied head's codes).
   */
  private matMulNBits(x: Value, ws: HostTensor[], name: string, codes?: { B: Value; scales: Value }): Value {
    const spec = this.options.quant!;
    const inDim = ws[0].shape[1];
    const outDim = ws.reduce((n, w) => n + w.shape[0], 0);
    if (!codes) {
      const rows = ws.length === 1 ? ws[0].data : concatRows(ws);
      const q = quantize(rows, outDim, inDim, spec);
      codes = {
        B: this.g.constant(q.codes, [outDim, q.blocksPerRow, blockBytes(spec)], 'uint8', `${name}.quant`),
        scales: this.g.constant(q.scales, [outDim, q.blocksPerRow], 'float32', `${name}.scales`),
      };
    }
    return this.g.kernel('com.microsoft.MatMulNBits', [x, codes.B, codes.scales], [{ dtype: x.dtype, shape: [...x.shape.slice(0, -1), outDim] }], {
      K: inDim,
      N: outDim,
      bits: spec.bits,
      block_size: spec.block,
      accuracy_level: spec.accuracyLevel ?? 4,
    })[0];
  }

  /**
   * Serving quantised: the embedding's codes, looked up by GatherBlockQuantized, which reads the
   * same bytes as MatMulNBits when the block divides the hidden size (so a tied head reads them
   * too, reshaped); null otherwise (a float32 table).
   */
  private quantizedEmbedding(embed: HostTensor): { lookup(ids: Value): Value; codes: { B: Value; scales: Value } } | null {
    const spec = this.options.quant;
    const name = 'model.embed_tokens.weight';
    const [vocab, hidden] = embed.shape;
    if (!spec || !this.quantizes(name) || hidden % spec.block !== 0) return null;
    const { g } = this;
    const q = quantize(embed.data, vocab, hidden, spec);
    const table = g.constant(q.codes, [vocab, q.blocksPerRow * blockBytes(spec)], 'uint8', `${name}.quant`);
    const scales = g.constant(q.scales, [vocab, q.blocksPerRow], 'float32', `${name}.scales`);
    return {
      lookup: (ids) =>
        g.kernel('com.microsoft.GatherBlockQuantized', [table, ids, scales], [{ dtype: 'float32', shape: [...ids.shape, hidden] }], {
          bits: spec.bits,
          block_size: spec.block,
          gather_axis: 0,
          quantize_axis: 1,
        })[0],
      codes: { B: g.reshape(table, [vocab, q.blocksPerRow, blockBytes(spec)]), scales },
    };
  }

  /**
   * RMSNorm, x / sqrt(mean(x^2) + eps) * w (the LLaMA family), or LayerNorm,
   * (x - mean(x)) / sqrt(var(x) + eps) * w + b (Phi, GPT-2).
   */
  norm(x: Value, weight: HostTensor, bias: HostTensor | undefined, name: string): Value {
    const { g } = this;
    const eps = this.scalar(this.config.normEps);
    const scale = this.weight(weight.data, weight.shape, `${name}.weight`);
    if (this.config.norm === 'rms') return g.mul(g.div(x, g.sqrt(g.add(g.reduceMean(g.mul(x, x), [-1]), eps))), scale);
    const centred = g.sub(x, g.reduceMean(x, [-1]));
    const normed = g.div(centred, g.sqrt(g.add(g.reduceMean(g.mul(centred, centred), [-1]), eps)));
    return g.add(g.mul(normed, scale), this.weight(bias!.data, bias!.shape, `${name}.bias`));
  }

  /**
   * `residual + x` (x alone, without a residual) and its norm: returns the normalised value and
   * the sum, which carries on as the residual stream. Fused, both are one kernel.
   */
  addNorm(x: Value, residual: Value | null, weight: HostTensor, bias: HostTensor | undefined, name: string): Residual {
    if (!this.fused) {
      const sum = residual ? this.g.add(residual, x) : x;
      return { normed: this.norm(sum, weight, bias, name), sum };
    }
    const { g } = this;
    const type = { dtype: x.dtype, shape: x.shape };
    const scale = this.weight(weight.data, weight.shape, `${name}.weight`);
    const epsilon = this.config.normEps;
    if (this.config.norm === 'layer') {
      const beta = this.weight(bias!.data, bias!.shape, `${name}.bias`);
      if (!residual) return { normed: g.kernel('LayerNormalization', [x, scale, beta], [type], { axis: -1, epsilon })[0], sum: x };
      const [normed, , , sum] = g.kernel('com.microsoft.SkipLayerNormalization', [residual, x, scale, beta], [type, null, null, type], { epsilon });
      return { normed, sum };
    }
    if (!residual) {
      const [normed] = g.kernel('SimplifiedLayerNormalization', [x, scale], [type], { axis: -1, epsilon, stash_type: 1 });
      return { normed, sum: x };
    }
    const [normed, , , sum] = g.kernel('com.microsoft.SkipSimplifiedLayerNormalization', [residual, x, scale], [type, null, null, type], { epsilon });
    return { normed, sum };
  }

  /**
   * RoPE on the first `rotaryDim` dimensions of each head ([..., headDim]), the rest passing
   * through: x * cos + rotate_half(x) * sin, where rotate_half(x) = [-x2, x1].
   */
  rope(x: Value, cos: Value, sin: Value): Value {
    const { g } = this;
    const { headDim, rotaryDim } = this.config;
    const rot = rotaryDim === headDim ? x : g.slice(x, [0], [rotaryDim], [-1]);
    const half = rotaryDim / 2;
    const x1 = g.slice(rot, [0], [half], [-1]);
    const x2 = g.slice(rot, [half], [rotaryDim], [-1]);
    const rotated = g.add(g.mul(rot, cos), g.mul(g.concat([g.neg(x2), x1], -1), sin));
    return rotaryDim === headDim ? rotated : g.concat([rotated, g.slice(x, [rotaryDim], [headDim], [-1])], -1);
  }

  /** [batch, seq, heads*headDim] -> [batch, heads, seq, headDim] */
  splitHeads(x: Value, heads: number): Value {
    return this.g.transpose(this.g.reshape(x, [0, 0, heads, this.config.headDim]), [0, 2, 1, 3]);
  }

  /**
   * Fused: the q, k and v projections as one MatMul on the three weights side by side ([in,
   * q + k + v], `{p}.qkv_proj.weight`), split after it; the same products as three linears.
   */
  qkv(x: Value, w: LayerWeights, p: string, packed = this.packedQkv(x, w, p)): Value[] {
    const { y, widths } = packed;
    const types = widths.map((width) => ({ dtype: y.dtype, shape: [...y.shape.slice(0, -1), width] }));
    return this.g.kernel('Split', [y, this.g.const(widths)], types, { axis: -1 });
  }

  /** The q, k and v projections side by side: [batch, seq, q + k + v] and the three widths. */
  packedQkv(x: Value, w: LayerWeights, p: string): { y: Value; widths: number[] } {
    const { g } = this;
    const widths = [w.q, w.k, w.v].map((t) => t.shape[0]);
    const width = widths.reduce((a, b) => a + b, 0);
    let y = this.quantizes(`${p}.qkv_proj.weight`)
      ? this.matMulNBits(x, [w.q, w.k, w.v], `${p}.qkv_proj.weight`)
      : g.matmul(x, this.constant(sideBySide([w.q, w.k, w.v]), [w.q.shape[1], width], `${p}.qkv_proj.weight`));
    const biases = [w.qBias, w.kBias, w.vBias];
    if (biases.some(Boolean)) {
      const bias = new Float32Array(width);
      let offset = 0;
      widths.forEach((n, i) => {
        if (biases[i]) bias.set(biases[i]!.data, offset);
        offset += n;
      });
      y = g.add(y, this.constant(bias, [width], `${p}.qkv_proj.bias`));
    }
    return { y, widths };
  }

  /** Fused: the gate and up projections as one MatMul, split after it. */
  gateUp(x: Value, gate: HostTensor, up: HostTensor, p: string): Value[] {
    const [width, inDim] = gate.shape;
    const name = `${p}.gate_up_proj.weight`;
    const y = this.quantizes(name) ? this.matMulNBits(x, [gate, up], name) : this.g.matmul(x, this.weight(sideBySide([gate, up]), [inDim, 2 * width], name));
    const type = { dtype: y.dtype, shape: [...y.shape.slice(0, -1), width] };
    return this.g.kernel('Split', [y, this.g.const([width, width])], [type, type], { axis: -1 });
  }

  /**
   * Fused: RoPE on [batch, seq, heads*headDim] by ONNX Runtime's RotaryEmbedding kernel
   * (rotate-half pairing); on part of each head it needs the head count.
   */
  rotary(x: Value, rotary: NonNullable<AttentionContext['rotary']>, heads: number): Value {
    const { headDim, rotaryDim } = this.config;
    const attributes: Record<string, number> = { interleaved: 0 };
    if (rotaryDim !== headDim) Object.assign(attributes, { rotary_embedding_dim: rotaryDim, num_heads: heads });
    return this.g.kernel('com.microsoft.RotaryEmbedding', [x, rotary.positions, rotary.cos, rotary.sin], [{ dtype: x.dtype, shape: x.shape }], attributes)[0];
  }

  /**
   * Fused: one GroupQueryAttention kernel attends causally over the cache and the new
   * positions, heads flat ([batch, seq, heads * headDim] in and out). With head sizes that are
   * multiples of 16 it also applies RoPE, to the packed q/k/v product.
   *
   * The graph returns the packed product (`qkv.{l}`), not the kernel's present cache: the
   * session applies RoPE to the new keys and appends them and the values to its own buffers
   * (`DecoderSession.appendProjections`). ONNX Runtime's Node binding copies every output it
   * returns into a new ArrayBuffer, even one the caller preallocated, so returning the cache
   * would cost a copy of its whole capacity, and the garbage collections those buffers bring,
   * on every step.
   * The kernel's own present, left unread, costs a copy of the filled positions in native
   * memory.
   */
  gqaAttention(x: Value, w: LayerWeights, layer: number): Value {
    const { g } = this;
    const { numHeads, numKvHeads, headDim } = this.config;
    const { gqa, rotary, past } = this.attentionContext();
    if (!gqa || !past) throw new Error('GroupQueryAttention needs the fused graph with a cache');
    const p = `model.layers.${layer}.self_attn`;
    const packed = this.packedQkv(x, w, p);
    g.output(packed.y, projectionsName(layer));
    let qkv: (Value | null)[];
    if (gqa.rotates && rotary) {
      qkv = [packed.y, null, null, past[layer].key, past[layer].value, gqa.seqlensK, gqa.total, rotary.cos, rotary.sin];
    } else {
      const [q, k, v] = this.qkv(x, w, p, packed);
      const rotate = (t: Value, heads: number) => (rotary ? this.rotary(t, rotary, heads) : t);
      qkv = [rotate(q, numHeads), rotate(k, numKvHeads), v, past[layer].key, past[layer].value, gqa.seqlensK, gqa.total];
    }
    const cacheType = { dtype: x.dtype, shape: [past[layer].key.shape[0], numKvHeads, 'capacity', headDim] };
    const [out] = g.kernel(
      'com.microsoft.GroupQueryAttention',
      qkv,
      [{ dtype: x.dtype, shape: [...x.shape.slice(0, -1), numHeads * headDim] }, cacheType, cacheType],
      { num_heads: numHeads, kv_num_heads: numKvHeads, ...(gqa.rotates ? { do_rotary: 1, rotary_interleaved: 0 } : {}) },
    );
    return this.linear(out, w.o, `${p}.o_proj`, w.oBias);
  }

  attention(x: Value, w: LayerWeights, layer: number): Value {
    const { g } = this;
    const ctx = this.attentionContext();
    const { numHeads, numKvHeads, headDim } = this.config;
    const p = `model.layers.${layer}.self_attn`;
    // Grouped-query attention without copying K/V: query heads are grouped under their KV head
    // ([batch, kvHeads, group, seq, headDim]) and K/V broadcast over the group axis.
    const group = numHeads / numKvHeads;
    let qGrouped: Value;
    let keys: Value;
    let values: Value;
    if (ctx.gqa) return this.gqaAttention(x, w, layer);
    if (this.fused) {
      // One MatMul for q, k and v; rotated before the heads are split; queries reach the
      // grouped layout in one Transpose.
      const [qFlat, kFlat, vFlat] = this.qkv(x, w, p);
      const rotate = (t: Value, heads: number) => (ctx.rotary ? this.rotary(t, ctx.rotary, heads) : t);
      qGrouped = g.transpose(g.reshape(rotate(qFlat, numHeads), [0, 0, numKvHeads, group, headDim]), [0, 2, 3, 1, 4]);
      keys = this.splitHeads(rotate(kFlat, numKvHeads), numKvHeads);
      values = this.splitHeads(vFlat, numKvHeads);
    } else {
      const rope = (t: Value) => (ctx.cos && ctx.sin ? this.rope(t, ctx.cos, ctx.sin) : t);
      const q = rope(this.splitHeads(this.linear(x, w.q, `${p}.q_proj`, w.qBias), numHeads));
      qGrouped = g.reshape(q, [0, numKvHeads, group, -1, headDim]);
      keys = rope(this.splitHeads(this.linear(x, w.k, `${p}.k_proj`, w.kBias), numKvHeads));
      values = this.splitHeads(this.linear(x, w.v, `${p}.v_proj`, w.vBias), numKvHeads);
    }
    if (ctx.past) {
      keys = g.concat([ctx.past[layer].key, keys], 2);
      values = g.concat([ctx.past[layer].value, values], 2);
      g.output(keys, presentKeyName(layer));
      g.output(values, presentValueName(layer));
    }

    const kT = g.transpose(g.unsqueeze(keys, [2]), [0, 1, 2, 4, 3]);
    if (!ctx.mask) throw new Error('the op-table attention needs the causal mask');
    const scores = g.add(g.mul(g.matmul(qGrouped, kT), this.scalar(1 / Math.sqrt(headDim))), ctx.mask);
    const context = g.matmul(g.softmax(scores, -1), g.unsqueeze(values, [2]));
    if (this.fused && !this.options.onHeadOutput) {
      // [batch, kvHeads, group, seq, headDim] -> [batch, seq, heads * headDim] in one Transpose.
      return this.linear(g.reshape(g.transpose(context, [0, 3, 1, 2, 4]), [0, 0, numHeads * headDim]), w.o, `${p}.o_proj`, w.oBias);
    }
    let heads = g.transpose(g.reshape(context, [0, numHeads, -1, headDim]), [0, 2, 1, 3]); // [batch, seq, heads, headDim]
    if (this.options.onHeadOutput) heads = this.options.onHeadOutput(layer, heads);
    return this.linear(g.reshape(heads, [0, 0, numHeads * headDim]), w.o, `${p}.o_proj`, w.oBias);
  }

  /**
   * SwiGLU, down(silu(gate(x)) * up(x)), or GELU, down(gelu(up(x))) with biases. Fused, gate and
   * up are one MatMul on their weights side by side ([in, 2 * intermediate],
   * `{p}.gate_up_proj.weight`) and a Split: one weight product per layer fewer, each of which
   * costs about 12 us on top of its bytes at two threads (docs/bench.md).
   */
  mlp(x: Value, w: LayerWeights, layer: number): Value {
    const { g } = this;
    const p = mlpModule(layer);
    if (this.options.onMlpInput) x = this.options.onMlpInput(layer, x);
    const selection = this.options.tokenSelection;
    if (selection) {
      this.tokenInputs ??= {
        blocks: g.input(TOKEN_BLOCKS, 'int64', [1]),
        candidates: selection.selector === 'gate' && selection.rerank && w.gate ? g.input(TOKEN_CANDIDATES, 'int64', [1]) : null,
      };
      const selectorActivation = (v: Value) => {
        if (!w.gate) return this.geluUp(v, w, p);
        const gate = this.linear(v, w.gate, `${p}.gate_proj`);
        return g.mul(gate, g.sigmoid(gate));
      };
      return tokenMlp(g, this.config, x, w, layer, selection, this.tokenInputs, selectorActivation);
    }
    let a: Value;
    if (w.gate) {
      const [gate, up] = this.fused ? this.gateUp(x, w.gate, w.up, p) : [this.linear(x, w.gate, `${p}.gate_proj`), this.linear(x, w.up, `${p}.up_proj`)];
      a = g.mul(g.mul(gate, g.sigmoid(gate)), up);
    } else {
      a = this.geluUp(x, w, p);
    }
    if (this.options.onMlpActivation) a = this.options.onMlpActivation(layer, a);
    return this.linear(a, w.down, `${p}.down_proj`, w.downBias);
  }

  /**
   * gelu_new(up(x) + b) = 0.5 y (1 + tanh(sqrt(2/pi) (y + 0.044715 y^3))) for y = up(x) + b.
   * Fused, ONNX Runtime's FastGelu computes the same formula and adds the bias.
   */
  private geluUp(x: Value, w: LayerWeights, p: string): Value {
    const { g } = this;
    if (!this.fused) {
      const y = this.linear(x, w.up, `${p}.up_proj`, w.upBias);
      const inner = g.mul(this.scalar(GELU_TANH_SCALE), g.add(y, g.mul(this.scalar(0.044715), g.mul(y, g.mul(y, y)))));
      return g.mul(g.mul(this.scalar(0.5), y), g.add(this.scalar(1), g.tanh(inner)));
    }
    const y = this.linear(x, w.up, `${p}.up_proj`);
    const bias = w.upBias ? [this.weight(w.upBias.data, w.upBias.shape, `${p}.up_proj.bias`)] : [];
    return g.kernel('com.microsoft.FastGelu', [y, ...bias], [{ dtype: y.dtype, shape: y.shape }])[0];
  }

  private attentionContext(): AttentionContext {
    if (!this.ctx) throw new Error('attention is recorded inside build()');
    return this.ctx;
  }

  /**
   * Additive causal mask [batch, 1, 1, seq, total]: a query at absolute position p sees cache
   * entries 0..p. Positions come from `position_ids`, so the cache index is the position.
   */
  causalMask(positionIds: Value, total: Value): Value {
    const { g } = this;
    const keyPositions = g.range(g.const(0), total, g.const(1));
    const allowed = g.lessOrEqual(keyPositions, g.unsqueeze(positionIds, [-1]));
    return g.unsqueeze(g.where(allowed, this.scalar(0), this.scalar(MASKED)), [1, 2]);
  }

  /** Records the whole decoder; returns the logits ([batch, positions, vocab]) before any output. */
  build(weights: ModelWeights): Value {
    const { g, config } = this;
    const inputIds = g.input('input_ids', 'int64', ['batch', 'seq']);
    const positionIds = g.input('position_ids', 'int64', ['batch', 'seq']);
    const logitsToKeep = (this.options.logitsToKeep ?? this.options.cache) ? g.input('logits_to_keep', 'int64', [1]) : null;
    const cacheShape = ['batch', config.numKvHeads, 'past', config.headDim];
    const past = this.options.cache
      ? weights.layers.map((_, i) => ({
          key: g.input(pastKeyName(i), this.dtype, cacheShape),
          value: g.input(pastValueName(i), this.dtype, cacheShape),
        }))
      : null;

    const ctx: AttentionContext = { cos: null, sin: null, rotary: null, gqa: null, mask: null, past };
    this.ctx = ctx;
    if (config.rotaryDim > 0) {
      const { rotaryDim: dim, maxPositions } = config;
      const tables = ropeTables(config);
      if (this.fused) {
        // RotaryEmbedding's tables hold each rotating pair once: [maxPositions, rotaryDim / 2].
        const half = dim / 2;
        const halfTable = (t: Float64Array, name: string) =>
          this.constant(
            Float32Array.from({ length: maxPositions * half }, (_, i) => t[Math.floor(i / half) * dim + (i % half)]),
            [maxPositions, half],
            name,
          );
        ctx.rotary = { positions: positionIds, cos: halfTable(tables.cos, 'rope.cos_half'), sin: halfTable(tables.sin, 'rope.sin_half') };
      } else {
        const atPositions = (t: Value) => g.unsqueeze(g.gather(t, positionIds), [1]); // [batch, 1, seq, rotaryDim]
        ctx.cos = atPositions(this.constant(tables.cos, [maxPositions, dim], 'rope.cos'));
        ctx.sin = atPositions(this.constant(tables.sin, [maxPositions, dim], 'rope.sin'));
      }
    }
    if (this.fused && past && attendsWithGqa(config)) {
      // One sequence per batch row, each at its own length (a batch of decode steps): seqlens_k
      // is [batch], the index of each row's last key, which is its last position; the kernel's
      // total length is the longest row's.
      const last = g.gather(positionIds, g.const(-1), 1);
      const total = g.cast(g.add(g.reduceMax(last, [0]), g.const(1)), 'int32');
      ctx.gqa = { seqlensK: g.cast(last, 'int32'), total, rotates: ctx.rotary !== null && gqaRotates(config) };
    } else {
      // Keys attended = what the cache holds (all of it, here) + the new tokens.
      const seq = g.gather(g.shape(inputIds), g.const(1));
      ctx.mask = this.causalMask(positionIds, past ? g.add(g.gather(g.shape(past[0].key), g.const(2)), seq) : seq);
    }

    const quantEmbed = this.quantizedEmbedding(weights.embed);
    const embed = quantEmbed ? null : this.weight(weights.embed.data, weights.embed.shape, 'model.embed_tokens.weight');
    let h = quantEmbed ? quantEmbed.lookup(inputIds) : g.gather(embed!, inputIds);
    if (weights.positions) h = g.add(h, g.gather(this.weight(weights.positions.data, weights.positions.shape, 'model.embed_positions.weight'), positionIds));
    // Each residual add and the norm after it (the next layer's, or the final one) are one step.
    const first = weights.layers[0];
    let x = this.addNorm(h, null, first.inputNorm, first.inputNormBias, 'model.layers.0.input_layernorm');
    const { layer } = familyOf(config.architecture);
    weights.layers.forEach((w, i) => {
      const { out, residual } = layer(this, x, w, i);
      const next = weights.layers[i + 1];
      x = next
        ? this.addNorm(out, residual, next.inputNorm, next.inputNormBias, `model.layers.${i + 1}.input_layernorm`)
        : this.addNorm(out, residual, weights.norm, weights.normBias, 'model.norm');
    });
    const { normed } = x;
    h = normed;
    if (logitsToKeep) h = g.slice(h, g.neg(logitsToKeep), g.const([INT64_MAX_SAFE]), [1]);
    // A tied head trains as the embedding itself; served, it is a transposed constant copy.
    if (this.options.trainable && config.tieWordEmbeddings) return g.matmul(h, g.transpose(embed!, [1, 0]));
    if (quantEmbed && weights.lmHead === weights.embed) return this.matMulNBits(h, [weights.lmHead], 'lm_head.weight', quantEmbed.codes);
    return this.linear(h, weights.lmHead, 'lm_head', weights.lmHeadBias);
  }
}
