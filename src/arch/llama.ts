/**
 * The LLaMA-family decoder (LLaMA, Mistral, Qwen2, SmolLM, TinyLlama) on the graph builder,
 * forward only. One definition yields every graph the product runs:
 * - serving: KV cache in as `past_key_values.*`, out as `present.*`; `logits_to_keep` says
 *   how many of the last positions get logits (1 when generating, the whole prompt for its
 *   logprobs);
 * - attribution and training: no cache, logits at every position, and hooks on each layer's
 *   MLP activations and attention heads through which autodiff takes gradients.
 */
import type { Graph } from '../graph/graph.js';
import type { DType, Value } from '../graph/types.js';
import type { HostTensor, LayerWeights, LlamaConfig, LlamaWeights } from '../model/types.js';

const INT64_MAX_SAFE = Number.MAX_SAFE_INTEGER;
/** Added to masked attention scores; exp() of it underflows to exactly 0. */
const MASKED = -1e9;

export const pastKeyName = (layer: number) => `past_key_values.${layer}.key`;
export const pastValueName = (layer: number) => `past_key_values.${layer}.value`;
export const presentKeyName = (layer: number) => `present.${layer}.key`;
export const presentValueName = (layer: number) => `present.${layer}.value`;

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
  /** Called with each layer's per-head attention output ([batch, seq, heads, headDim]). */
  onHeadOutput?(layer: number, o: Value): Value;
  /**
   * Weights as graph inputs (training: their gradients are taken and new values fed each
   * step) instead of constants. Linear weights are inputs in [in, out] layout.
   */
  trainable?: boolean;
  /**
   * MLP gate/up/down weights as graph inputs (per-prompt neuron sets: the request gathers its
   * neurons' rows once and feeds them to every step). Shapes come from the weights given.
   */
  mlpInputs?: boolean;
}

const MLP_WEIGHT = /\.mlp\.(gate|up|down)_proj\.weight$/;

/** A weight the graph takes as an input, with its initial value in the graph's layout. */
export interface Parameter {
  value: Value;
  init: Float32Array;
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

/** cos and sin of every position for the rotate-half RoPE convention: [maxPositions, headDim]. */
export function ropeTables(config: LlamaConfig): { cos: Float64Array; sin: Float64Array } {
  const { headDim, maxPositions, ropeTheta } = config;
  const half = headDim / 2;
  const cos = new Float64Array(maxPositions * headDim);
  const sin = new Float64Array(maxPositions * headDim);
  for (let p = 0; p < maxPositions; p++) {
    for (let i = 0; i < half; i++) {
      const angle = p * Math.pow(ropeTheta, (-2 * i) / headDim);
      // Dimension i and i + half form one rotating pair.
      cos[p * headDim + i] = cos[p * headDim + i + half] = Math.cos(angle);
      sin[p * headDim + i] = sin[p * headDim + i + half] = Math.sin(angle);
    }
  }
  return { cos, sin };
}

/** What every layer's attention shares: RoPE at the input positions, the mask, the cache inputs. */
interface AttentionContext {
  cos: Value;
  sin: Value;
  mask: Value;
  past: { key: Value; value: Value }[] | null;
}

export class LlamaBuilder {
  readonly dtype: 'float32' | 'float64';
  /** With `trainable`, the weights as inputs, by Hugging Face tensor name. */
  readonly parameters = new Map<string, Parameter>();

  constructor(
    readonly g: Graph,
    readonly config: LlamaConfig,
    readonly options: LlamaGraphOptions = {},
  ) {
    this.dtype = options.dtype ?? 'float32';
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
  weight(data: Float32Array, shape: number[], name: string): Value {
    if (!this.options.trainable && !(this.options.mlpInputs && MLP_WEIGHT.test(name))) return this.constant(data, shape, name);
    const value = this.g.input(name, this.dtype, shape);
    this.parameters.set(name, { value, init: data });
    return value;
  }

  scalar(v: number): Value {
    return this.g.scalar(v, this.dtype as DType);
  }

  /** y = x @ W^T (+ b) for the module `name`, with W stored in [in, out] layout. */
  linear(x: Value, w: HostTensor, name: string, bias?: HostTensor): Value {
    const [outDim, inDim] = w.shape;
    const y = this.g.matmul(x, this.weight(transposed(w), [inDim, outDim], `${name}.weight`));
    return bias ? this.g.add(y, this.weight(bias.data, [outDim], `${name}.bias`)) : y;
  }

  rmsNorm(x: Value, weight: HostTensor, name: string): Value {
    const { g } = this;
    const meanSquare = g.reduceMean(g.mul(x, x), [-1]);
    const normed = g.div(x, g.sqrt(g.add(meanSquare, this.scalar(this.config.rmsNormEps))));
    return g.mul(normed, this.weight(weight.data, weight.shape, `${name}.weight`));
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

  attention(x: Value, w: LayerWeights, layer: number, ctx: AttentionContext): Value {
    const { g } = this;
    const { numHeads, numKvHeads, headDim } = this.config;
    const p = `model.layers.${layer}.self_attn`;
    const q = this.rope(this.splitHeads(this.linear(x, w.q, `${p}.q_proj`, w.qBias), numHeads), ctx.cos, ctx.sin);
    let keys = this.rope(this.splitHeads(this.linear(x, w.k, `${p}.k_proj`, w.kBias), numKvHeads), ctx.cos, ctx.sin);
    let values = this.splitHeads(this.linear(x, w.v, `${p}.v_proj`, w.vBias), numKvHeads);
    if (ctx.past) {
      keys = g.concat([ctx.past[layer].key, keys], 2);
      values = g.concat([ctx.past[layer].value, values], 2);
      g.output(keys, presentKeyName(layer));
      g.output(values, presentValueName(layer));
    }

    // Grouped-query attention without copying K/V: query heads are grouped under their KV head
    // ([batch, kvHeads, group, seq, headDim]) and K/V broadcast over the group axis.
    const group = numHeads / numKvHeads;
    const qGrouped = g.reshape(q, [0, numKvHeads, group, -1, headDim]);
    const kT = g.transpose(g.unsqueeze(keys, [2]), [0, 1, 2, 4, 3]);
    const scores = g.add(g.mul(g.matmul(qGrouped, kT), this.scalar(1 / Math.sqrt(headDim))), ctx.mask);
    const context = g.matmul(g.softmax(scores, -1), g.unsqueeze(values, [2]));
    let heads = g.transpose(g.reshape(context, [0, numHeads, -1, headDim]), [0, 2, 1, 3]); // [batch, seq, heads, headDim]
    if (this.options.onHeadOutput) heads = this.options.onHeadOutput(layer, heads);
    return this.linear(g.reshape(heads, [0, 0, numHeads * headDim]), w.o, `${p}.o_proj`);
  }

  /** SwiGLU: down(silu(gate(x)) * up(x)). */
  mlp(x: Value, w: LayerWeights, layer: number): Value {
    const { g } = this;
    const p = `model.layers.${layer}.mlp`;
    const gate = this.linear(x, w.gate, `${p}.gate_proj`);
    let a = g.mul(g.mul(gate, g.sigmoid(gate)), this.linear(x, w.up, `${p}.up_proj`));
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
    // Keys attended = what the cache holds + the new tokens.
    const seq = g.gather(g.shape(inputIds), g.const(1));
    const total = past ? g.add(g.gather(g.shape(past[0].key), g.const(2)), seq) : seq;
    const ctx: AttentionContext = {
      cos: atPositions(this.constant(tables.cos, ropeShape, 'rope.cos')),
      sin: atPositions(this.constant(tables.sin, ropeShape, 'rope.sin')),
      mask: this.causalMask(positionIds, total),
      past,
    };

    const embed = this.weight(weights.embed.data, weights.embed.shape, 'model.embed_tokens.weight');
    let h = g.gather(embed, inputIds);
    weights.layers.forEach((w, i) => {
      h = g.add(h, this.attention(this.rmsNorm(h, w.inputNorm, `model.layers.${i}.input_layernorm`), w, i, ctx));
      h = g.add(h, this.mlp(this.rmsNorm(h, w.postNorm, `model.layers.${i}.post_attention_layernorm`), w, i));
    });
    h = this.rmsNorm(h, weights.norm, 'model.norm');
    if (logitsToKeep) h = g.slice(h, g.neg(logitsToKeep), g.const([INT64_MAX_SAFE]), [1]);
    // A tied head trains as the embedding itself; served, it is a transposed constant copy.
    if (this.options.trainable && config.tieWordEmbeddings) return g.matmul(h, g.transpose(embed, [1, 0]));
    return this.linear(h, weights.lmHead, 'lm_head');
  }
}
