/**
 * The LLaMA-family decoder (LLaMA, Mistral, Qwen2, SmolLM, TinyLlama) on the graph builder,
 * forward only. One definition serves prefill and decode: the KV cache comes in as
 * `past_key_values.*` and goes out as `present.*`, and `logits_to_keep` says how many of the
 * last positions get logits (1 when generating, all of the prompt when its logprobs are asked).
 */
import type { Graph } from '../graph/graph.js';
import type { Value } from '../graph/types.js';
import type { HostTensor, LayerWeights, LlamaConfig, LlamaWeights } from '../model/types.js';

const INT64_MAX_SAFE = Number.MAX_SAFE_INTEGER;
/** Added to masked attention scores; exp() of it underflows to exactly 0 in float32. */
const MASKED = -1e9;

export const pastKeyName = (layer: number) => `past_key_values.${layer}.key`;
export const pastValueName = (layer: number) => `past_key_values.${layer}.value`;
export const presentKeyName = (layer: number) => `present.${layer}.key`;
export const presentValueName = (layer: number) => `present.${layer}.value`;

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
export function ropeTables(config: LlamaConfig): { cos: Float32Array; sin: Float32Array } {
  const { headDim, maxPositions, ropeTheta } = config;
  const half = headDim / 2;
  const cos = new Float32Array(maxPositions * headDim);
  const sin = new Float32Array(maxPositions * headDim);
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
  past: { key: Value; value: Value }[];
}

export class LlamaBuilder {
  constructor(
    readonly g: Graph,
    readonly config: LlamaConfig,
  ) {}

  /** y = x @ W^T (+ b), with W stored as a constant in [in, out] layout. */
  linear(x: Value, w: HostTensor, name: string, bias?: HostTensor): Value {
    const [outDim, inDim] = w.shape;
    const y = this.g.matmul(x, this.g.constant(transposed(w), [inDim, outDim], 'float32', name));
    return bias ? this.g.add(y, this.g.constant(bias.data, [outDim], 'float32', `${name}.bias`)) : y;
  }

  rmsNorm(x: Value, weight: HostTensor, name: string): Value {
    const { g } = this;
    const meanSquare = g.reduceMean(g.mul(x, x), [-1]);
    const normed = g.div(x, g.sqrt(g.add(meanSquare, g.const(this.config.rmsNormEps, 'float32'))));
    return g.mul(normed, g.constant(weight.data, weight.shape, 'float32', name));
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
    const k = this.rope(this.splitHeads(this.linear(x, w.k, `${p}.k_proj`, w.kBias), numKvHeads), ctx.cos, ctx.sin);
    const v = this.splitHeads(this.linear(x, w.v, `${p}.v_proj`, w.vBias), numKvHeads);

    const keys = g.concat([ctx.past[layer].key, k], 2);
    const values = g.concat([ctx.past[layer].value, v], 2);
    g.output(keys, presentKeyName(layer));
    g.output(values, presentValueName(layer));

    // Grouped-query attention without copying K/V: query heads are grouped under their KV head
    // ([batch, kvHeads, group, seq, headDim]) and K/V broadcast over the group axis.
    const group = numHeads / numKvHeads;
    const qGrouped = g.reshape(q, [0, numKvHeads, group, -1, headDim]);
    const kT = g.transpose(g.unsqueeze(keys, [2]), [0, 1, 2, 4, 3]);
    const scores = g.add(g.mul(g.matmul(qGrouped, kT), g.const(1 / Math.sqrt(headDim), 'float32')), ctx.mask);
    const context = g.matmul(g.softmax(scores, -1), g.unsqueeze(values, [2]));
    const merged = g.reshape(g.transpose(g.reshape(context, [0, numHeads, -1, headDim]), [0, 2, 1, 3]), [0, 0, numHeads * headDim]);
    return this.linear(merged, w.o, `${p}.o_proj`);
  }

  /** SwiGLU: down(silu(gate(x)) * up(x)). */
  mlp(x: Value, w: LayerWeights, layer: number): Value {
    const { g } = this;
    const p = `model.layers.${layer}.mlp`;
    const gate = this.linear(x, w.gate, `${p}.gate_proj`);
    const act = g.mul(g.mul(gate, g.sigmoid(gate)), this.linear(x, w.up, `${p}.up_proj`));
    return this.linear(act, w.down, `${p}.down_proj`);
  }

  /**
   * Additive causal mask [batch, 1, 1, seq, total]: a query at absolute position p sees cache
   * entries 0..p. Positions come from `position_ids`, so the cache index is the position.
   */
  causalMask(positionIds: Value, total: Value): Value {
    const { g } = this;
    const keyPositions = g.range(g.const(0), total, g.const(1));
    const allowed = g.lessOrEqual(keyPositions, g.unsqueeze(positionIds, [-1]));
    const bias = g.where(allowed, g.const(0, 'float32'), g.const(MASKED, 'float32'));
    return g.unsqueeze(bias, [1, 2]);
  }

  build(weights: LlamaWeights): void {
    const { g, config } = this;
    const inputIds = g.input('input_ids', 'int64', ['batch', 'seq']);
    const positionIds = g.input('position_ids', 'int64', ['batch', 'seq']);
    const logitsToKeep = g.input('logits_to_keep', 'int64', [1]);
    const cacheShape = ['batch', config.numKvHeads, 'past', config.headDim];
    const past = weights.layers.map((_, i) => ({
      key: g.input(pastKeyName(i), 'float32', cacheShape),
      value: g.input(pastValueName(i), 'float32', cacheShape),
    }));

    const tables = ropeTables(config);
    const ropeShape = [config.maxPositions, config.headDim];
    const atPositions = (t: Value) => g.unsqueeze(g.gather(t, positionIds), [1]); // [batch, 1, seq, headDim]
    // Keys attended = past + new tokens.
    const total = g.add(g.gather(g.shape(past[0].key), g.const(2)), g.gather(g.shape(inputIds), g.const(1)));
    const ctx: AttentionContext = {
      cos: atPositions(g.constant(tables.cos, ropeShape, 'float32', 'rope.cos')),
      sin: atPositions(g.constant(tables.sin, ropeShape, 'float32', 'rope.sin')),
      mask: this.causalMask(positionIds, total),
      past,
    };

    const embed = g.constant(weights.embed.data, weights.embed.shape, 'float32', 'model.embed_tokens.weight');
    let h = g.gather(embed, inputIds);
    weights.layers.forEach((w, i) => {
      h = g.add(h, this.attention(this.rmsNorm(h, w.inputNorm, `model.layers.${i}.input_layernorm`), w, i, ctx));
      h = g.add(h, this.mlp(this.rmsNorm(h, w.postNorm, `model.layers.${i}.post_attention_layernorm`), w, i));
    });
    h = this.rmsNorm(h, weights.norm, 'model.norm');
    const kept = g.slice(h, g.neg(logitsToKeep), g.const([INT64_MAX_SAFE]), [1]);
    g.output(this.linear(kept, weights.lmHead, 'lm_head'), 'logits');
  }
}
