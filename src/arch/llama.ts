/**
 * The LLaMA-family decoder (LLaMA, Mistral, Qwen2, SmolLM, TinyLlama) on the graph builder,
 * forward only. One definition yields every graph the product runs:
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
import type { HostTensor, LayerWeights, LlamaConfig, LlamaWeights } from '../model/types.js';
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

export interface LlamaGraphOptions {
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
   * RMSNorm after it are one SkipSimplifiedLayerNormalization; q/k/v are one MatMul, and so are
   * gate/up; with a cache, attention is GroupQueryAttention (`attendsWithGqa`), else RoPE is
   * RotaryEmbedding and the query and attention-output layouts take one Transpose each. The
   * weight products are the same as without it.
   */
  fused?: boolean;
  /**
   * MLP gate/up/down weights as graph inputs (per-prompt neuron sets: the request gathers its
   * neurons' rows once and feeds them to every step). Shapes come from the weights given.
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

const MLP_WEIGHT = /\.mlp\.(gate|up|down|gate_up)_proj\.weight$/;

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

/** Module name of layer l's MLP: its weights are `${mlpModule(l)}.{gate_up,down}_proj.weight` in a serving graph. */
const mlpModule = (layer: number) => `model.layers.${layer}.mlp`;

/**
 * The inputs of a graph built with `mlpInputs` for the neurons in `keep` (per layer, any
 * order: the given order is the graph's): the kept gate and up columns side by side, as the
 * fused product takes them ([hidden, 2 * kept]), and the kept down rows ([kept, hidden]),
 * gathered in one pass without a pruned copy in between (a per-prompt request does this for
 * every layer).
 */
export function mlpInputTensors(weights: LlamaWeights, keep: readonly (readonly number[])[]): Record<string, HostTensor> {
  const inputs: Record<string, HostTensor> = {};
  for (const [l, w] of weights.layers.entries()) {
    const kept = keep[l];
    const k = kept.length;
    const [intermediate, hidden] = w.gate.shape;
    // gate/up are [intermediate, hidden]: neuron kept[j]'s row becomes column j (gate) and k + j (up).
    const gateUp = new Float32Array(hidden * 2 * k);
    kept.forEach((n, j) => {
      for (let h = 0; h < hidden; h++) {
        gateUp[h * 2 * k + j] = w.gate.data[n * hidden + h];
        gateUp[h * 2 * k + k + j] = w.up.data[n * hidden + h];
      }
    });
    // down is [hidden, intermediate]: neuron kept[j]'s column becomes row j.
    const down = new Float32Array(k * hidden);
    kept.forEach((n, j) => {
      for (let h = 0; h < hidden; h++) down[j * hidden + h] = w.down.data[h * intermediate + n];
    });
    inputs[`${mlpModule(l)}.gate_up_proj.weight`] = { shape: [hidden, 2 * k], data: gateUp };
    inputs[`${mlpModule(l)}.down_proj.weight`] = { shape: [k, hidden], data: down };
  }
  return inputs;
}

/** cos and sin of every position for the rotate-half RoPE convention: [maxPositions, headDim] each. */
export interface RopeTables {
  readonly cos: Float64Array;
  readonly sin: Float64Array;
}

/**
 * One set per model config, shared by every graph built for it and by its sessions, which
 * cache keys with them (8 MB at 8k positions); nothing writes to them.
 */
const ropeTablesOf = new WeakMap<LlamaConfig, RopeTables>();

export function ropeTables(config: LlamaConfig): RopeTables {
  let tables = ropeTablesOf.get(config);
  if (!tables) {
    tables = computeRopeTables(config);
    ropeTablesOf.set(config, tables);
  }
  return tables;
}

function computeRopeTables(config: LlamaConfig): RopeTables {
  const { headDim, maxPositions, ropeTheta } = config;
  const half = headDim / 2;
  const cos = new Float64Array(maxPositions * headDim);
  const sin = new Float64Array(maxPositions * headDim);
  for (let p = 0; p < maxPositions; p++) {
    for (let i = 0; i < half; i++) {
      const angle = p * ropeTheta ** ((-2 * i) / headDim);
      // Dimension i and i + half form one rotating pair.
      cos[p * headDim + i] = cos[p * headDim + i + half] = Math.cos(angle);
      sin[p * headDim + i] = sin[p * headDim + i + half] = Math.sin(angle);
    }
  }
  return { cos, sin };
}

/**
 * RoPE in place on one head's vector (`headDim` values of `x` from `offset`) at `position`,
 * from `ropeTables`: what the graph's RoPE does, for keys the caller caches itself.
 */
export function rotateHalf(x: Float32Array, offset: number, position: number, tables: RopeTables, headDim: number): void {
  const half = headDim / 2;
  const row = position * headDim;
  for (let i = 0; i < half; i++) {
    const a = x[offset + i];
    const b = x[offset + i + half];
    x[offset + i] = a * tables.cos[row + i] - b * tables.sin[row + i];
    x[offset + i + half] = b * tables.cos[row + i + half] + a * tables.sin[row + i + half];
  }
}

/** What every layer's attention shares: RoPE at the input positions, the mask, the cache inputs. */
interface AttentionContext {
  /** cos and sin at the input positions ([batch, 1, seq, headDim]); null when fused. */
  cos: Value | null;
  sin: Value | null;
  /** Fused instead of cos/sin: RotaryEmbedding's inputs (positions, half-width cos/sin tables). */
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
export const attendsWithGqa = (config: LlamaConfig) => config.headDim % 8 === 0;
/** GroupQueryAttention applies RoPE itself (on packed q/k/v) when the head size is a multiple of 16. */
const gqaRotates = (config: LlamaConfig) => config.headDim % 16 === 0;

export class LlamaBuilder {
  readonly dtype: 'float32' | 'float64';
  /** ONNX Runtime's fused kernels (`fused`, float32 only). */
  readonly fused: boolean;
  /** With `trainable`, the weights as inputs, by Hugging Face tensor name. */
  readonly parameters = new Map<string, Parameter>();
  /** With `tokenSelection`, its inputs (how many blocks, and candidates, each layer keeps per token). */
  private tokenInputs: TokenInputs | null = null;

  constructor(
    readonly g: Graph,
    readonly config: LlamaConfig,
    readonly options: LlamaGraphOptions = {},
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
    if (!this.options.trainable && !(this.options.mlpInputs && MLP_WEIGHT.test(name))) return this.constant(data, shape, name);
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
    return this.fused && this.options.quant !== undefined && !(this.options.mlpInputs && MLP_WEIGHT.test(name));
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

  rmsNorm(x: Value, weight: HostTensor, name: string): Value {
    const { g } = this;
    const meanSquare = g.reduceMean(g.mul(x, x), [-1]);
    const normed = g.div(x, g.sqrt(g.add(meanSquare, this.scalar(this.config.rmsNormEps))));
    return g.mul(normed, this.weight(weight.data, weight.shape, `${name}.weight`));
  }

  /**
   * `residual + x` (x alone, without a residual) and its RMSNorm: returns the normalised value
   * and the sum, which carries on as the residual stream. Fused, both are one kernel.
   */
  addNorm(x: Value, residual: Value | null, weight: HostTensor, name: string): { normed: Value; sum: Value } {
    if (!this.fused) {
      const sum = residual ? this.g.add(residual, x) : x;
      return { normed: this.rmsNorm(sum, weight, name), sum };
    }
    const { g } = this;
    const type = { dtype: x.dtype, shape: x.shape };
    const scale = this.weight(weight.data, weight.shape, `${name}.weight`);
    const epsilon = this.config.rmsNormEps;
    if (!residual) {
      const [normed] = g.kernel('SimplifiedLayerNormalization', [x, scale], [type], { axis: -1, epsilon, stash_type: 1 });
      return { normed, sum: x };
    }
    const [normed, , , sum] = g.kernel('com.microsoft.SkipSimplifiedLayerNormalization', [residual, x, scale], [type, null, null, type], { epsilon });
    return { normed, sum };
  }

  /** x * cos + rotate_half(x) * sin, where rotate_half(x) = [-x2, x1]. */
  rope(x: Value, cos: Value, sin: Value): Value {
    const { g } = this;
    const half = this.config.headDim / 2;
    const x1 = g.slice(x, [0], [half], [-1]);
    const x2 = g.slice(x, [half], [this.config.headDim], [-1]);
    const rotated = g.concat([g.neg(x2), x1], -1);
    return g.add(g.mul(x, cos), g.mul(rotated, sin));
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
  gateUp(x: Value, w: LayerWeights, p: string): Value[] {
    const [width, inDim] = w.gate.shape;
    const name = `${p}.gate_up_proj.weight`;
    const y = this.quantizes(name)
      ? this.matMulNBits(x, [w.gate, w.up], name)
      : this.g.matmul(x, this.weight(sideBySide([w.gate, w.up]), [inDim, 2 * width], name));
    const type = { dtype: y.dtype, shape: [...y.shape.slice(0, -1), width] };
    return this.g.kernel('Split', [y, this.g.const([width, width])], [type, type], { axis: -1 });
  }

  /** Fused: RoPE on [batch, seq, heads*headDim] by ONNX Runtime's RotaryEmbedding kernel (rotate-half pairing). */
  rotary(x: Value, rotary: NonNullable<AttentionContext['rotary']>): Value {
    return this.g.kernel('com.microsoft.RotaryEmbedding', [x, rotary.positions, rotary.cos, rotary.sin], [{ dtype: x.dtype, shape: x.shape }], {
      interleaved: 0,
    })[0];
  }

  /**
   * Fused: one GroupQueryAttention kernel attends causally over the cache and the new
   * positions, heads flat ([batch, seq, heads * headDim] in and out). With head sizes that are
   * multiples of 16 it also applies RoPE, to the packed q/k/v product.
   *
   * The graph returns the packed product (`qkv.{l}`), not the kernel's present cache: the
   * session applies RoPE to the new keys and appends them and the values to its own buffers
   * (`LlamaSession.appendProjections`). ONNX Runtime's Node binding copies every output it
   * returns into a new ArrayBuffer, even one the caller preallocated, so returning the cache
   * would cost a copy of its whole capacity, and the garbage collections those buffers bring,
   * on every step.
   * The kernel's own present, left unread, costs a copy of the filled positions in native
   * memory.
   */
  gqaAttention(x: Value, w: LayerWeights, layer: number, ctx: AttentionContext): Value {
    const { g } = this;
    const { numHeads, numKvHeads, headDim } = this.config;
    const { gqa, rotary, past } = ctx;
    if (!gqa || !rotary || !past) throw new Error('GroupQueryAttention needs the fused graph with a cache');
    const p = `model.layers.${layer}.self_attn`;
    const packed = this.packedQkv(x, w, p);
    g.output(packed.y, projectionsName(layer));
    let qkv: (Value | null)[];
    if (gqa.rotates) {
      qkv = [packed.y, null, null, past[layer].key, past[layer].value, gqa.seqlensK, gqa.total, rotary.cos, rotary.sin];
    } else {
      const [q, k, v] = this.qkv(x, w, p, packed);
      qkv = [this.rotary(q, rotary), this.rotary(k, rotary), v, past[layer].key, past[layer].value, gqa.seqlensK, gqa.total];
    }
    const cacheType = { dtype: x.dtype, shape: [past[layer].key.shape[0], numKvHeads, 'capacity', headDim] };
    const [out] = g.kernel(
      'com.microsoft.GroupQueryAttention',
      qkv,
      [{ dtype: x.dtype, shape: [...x.shape.slice(0, -1), numHeads * headDim] }, cacheType, cacheType],
      { num_heads: numHeads, kv_num_heads: numKvHeads, ...(gqa.rotates ? { do_rotary: 1, rotary_interleaved: 0 } : {}) },
    );
    return this.linear(out, w.o, `${p}.o_proj`);
  }

  attention(x: Value, w: LayerWeights, layer: number, ctx: AttentionContext): Value {
    const { g } = this;
    const { numHeads, numKvHeads, headDim } = this.config;
    const p = `model.layers.${layer}.self_attn`;
    // Grouped-query attention without copying K/V: query heads are grouped under their KV head
    // ([batch, kvHeads, group, seq, headDim]) and K/V broadcast over the group axis.
    const group = numHeads / numKvHeads;
    let qGrouped: Value;
    let keys: Value;
    let values: Value;
    if (ctx.gqa) return this.gqaAttention(x, w, layer, ctx);
    if (ctx.rotary) {
      // One MatMul for q, k and v; rotated before the heads are split; queries reach the
      // grouped layout in one Transpose.
      const [qFlat, kFlat, vFlat] = this.qkv(x, w, p);
      const q = this.rotary(qFlat, ctx.rotary);
      qGrouped = g.transpose(g.reshape(q, [0, 0, numKvHeads, group, headDim]), [0, 2, 3, 1, 4]);
      keys = this.splitHeads(this.rotary(kFlat, ctx.rotary), numKvHeads);
      values = this.splitHeads(vFlat, numKvHeads);
    } else {
      const q = this.rope(this.splitHeads(this.linear(x, w.q, `${p}.q_proj`, w.qBias), numHeads), ctx.cos!, ctx.sin!);
      qGrouped = g.reshape(q, [0, numKvHeads, group, -1, headDim]);
      keys = this.rope(this.splitHeads(this.linear(x, w.k, `${p}.k_proj`, w.kBias), numKvHeads), ctx.cos!, ctx.sin!);
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
      return this.linear(g.reshape(g.transpose(context, [0, 3, 1, 2, 4]), [0, 0, numHeads * headDim]), w.o, `${p}.o_proj`);
    }
    let heads = g.transpose(g.reshape(context, [0, numHeads, -1, headDim]), [0, 2, 1, 3]); // [batch, seq, heads, headDim]
    if (this.options.onHeadOutput) heads = this.options.onHeadOutput(layer, heads);
    return this.linear(g.reshape(heads, [0, 0, numHeads * headDim]), w.o, `${p}.o_proj`);
  }

  /**
   * SwiGLU: down(silu(gate(x)) * up(x)). Fused, gate and up are one MatMul on their weights
   * side by side ([in, 2 * intermediate], `{p}.gate_up_proj.weight`) and a Split: one weight
   * product per layer fewer, each of which costs about 12 us on top of its bytes at two threads
   * (docs/bench.md).
   */
  mlp(x: Value, w: LayerWeights, layer: number): Value {
    const { g } = this;
    const p = mlpModule(layer);
    if (this.options.onMlpInput) x = this.options.onMlpInput(layer, x);
    const selection = this.options.tokenSelection;
    if (selection) {
      this.tokenInputs ??= {
        blocks: g.input(TOKEN_BLOCKS, 'int64', [1]),
        candidates: selection.selector === 'gate' && selection.rerank ? g.input(TOKEN_CANDIDATES, 'int64', [1]) : null,
      };
      return tokenMlp(g, this.config, x, w, layer, selection, this.tokenInputs, (v) => this.linear(v, w.gate, `${p}.gate_proj`));
    }
    const [gate, up] = this.fused ? this.gateUp(x, w, p) : [this.linear(x, w.gate, `${p}.gate_proj`), this.linear(x, w.up, `${p}.up_proj`)];
    let a = g.mul(g.mul(gate, g.sigmoid(gate)), up);
    if (this.options.onMlpActivation) a = this.options.onMlpActivation(layer, a);
    return this.linear(a, w.down, `${p}.down_proj`);
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
  build(weights: LlamaWeights): Value {
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

    const tables = ropeTables(config);
    const ropeShape = [config.maxPositions, config.headDim];
    const atPositions = (t: Value) => g.unsqueeze(g.gather(t, positionIds), [1]); // [batch, 1, seq, headDim]
    // RotaryEmbedding's tables hold each rotating pair once: [maxPositions, headDim / 2].
    const halfDim = config.headDim / 2;
    const halfTable = (t: Float64Array, name: string) =>
      this.constant(
        Float32Array.from({ length: config.maxPositions * halfDim }, (_, i) => t[Math.floor(i / halfDim) * config.headDim + (i % halfDim)]),
        [config.maxPositions, halfDim],
        name,
      );
    const ctx: AttentionContext = {
      cos: this.fused ? null : atPositions(this.constant(tables.cos, ropeShape, 'rope.cos')),
      sin: this.fused ? null : atPositions(this.constant(tables.sin, ropeShape, 'rope.sin')),
      rotary: this.fused ? { positions: positionIds, cos: halfTable(tables.cos, 'rope.cos_half'), sin: halfTable(tables.sin, 'rope.sin_half') } : null,
      gqa: null,
      mask: null,
      past,
    };
    if (this.fused && past && attendsWithGqa(config)) {
      // One sequence per batch row, each at its own length (a batch of decode steps): seqlens_k
      // is [batch], the index of each row's last key, which is its last position; the kernel's
      // total length is the longest row's.
      const last = g.gather(positionIds, g.const(-1), 1);
      ctx.gqa = { seqlensK: g.cast(last, 'int32'), total: g.cast(g.add(g.reduceMax(last, [0]), g.const(1)), 'int32'), rotates: gqaRotates(config) };
    } else {
      // Keys attended = what the cache holds (all of it, here) + the new tokens.
      const seq = g.gather(g.shape(inputIds), g.const(1));
      ctx.mask = this.causalMask(positionIds, past ? g.add(g.gather(g.shape(past[0].key), g.const(2)), seq) : seq);
    }

    const quantEmbed = this.quantizedEmbedding(weights.embed);
    const embed = quantEmbed ? null : this.weight(weights.embed.data, weights.embed.shape, 'model.embed_tokens.weight');
    let h = quantEmbed ? quantEmbed.lookup(inputIds) : g.gather(embed!, inputIds);
    // Each residual add and the norm after it (the next layer's, or the final one) are one step.
    let { normed, sum } = this.addNorm(h, null, weights.layers[0].inputNorm, 'model.layers.0.input_layernorm');
    weights.layers.forEach((w, i) => {
      ({ normed, sum } = this.addNorm(this.attention(normed, w, i, ctx), sum, w.postNorm, `model.layers.${i}.post_attention_layernorm`));
      const next = weights.layers[i + 1];
      const mlp = this.mlp(normed, w, i);
      ({ normed, sum } = next
        ? this.addNorm(mlp, sum, next.inputNorm, `model.layers.${i + 1}.input_layernorm`)
        : this.addNorm(mlp, sum, weights.norm, 'model.norm'));
    });
    h = normed;
    if (logitsToKeep) h = g.slice(h, g.neg(logitsToKeep), g.const([INT64_MAX_SAFE]), [1]);
    // A tied head trains as the embedding itself; served, it is a transposed constant copy.
    if (this.options.trainable && config.tieWordEmbeddings) return g.matmul(h, g.transpose(embed!, [1, 0]));
    if (quantEmbed && weights.lmHead === weights.embed) return this.matMulNBits(h, [weights.lmHead], 'lm_head.weight', quantEmbed.codes);
    return this.linear(h, weights.lmHead, 'lm_head');
  }
}
