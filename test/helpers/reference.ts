/**
 * An independent decoder forward in plain TypeScript, for checking the ONNX graphs: the LLaMA
 * family, Phi and GPT-2. Written from the math with no shared code beyond the weight types: one
 * token at a time with a KV cache (as llama2.c's run.c does), every sum in float64. Slow, and
 * meant to be read.
 *
 *   x = embed[token] (+ positions[pos], GPT-2)
 *   per layer:  h = norm(x)                       RMSNorm, or LayerNorm with a bias (Phi, GPT-2)
 *               q, k, v = Wq h + bq, Wk h + bk, Wv h + bv;  q, k rotated by RoPE at `pos`
 *                                                  (the first rotaryDim dims of each head; none in GPT-2)
 *               att = Wo concat_heads( softmax(q_h . k_{<=pos} / sqrt(d)) v_{<=pos} ) + bo   (GQA)
 *    LLaMA, GPT-2:  x += att;  x += mlp(norm2(x))
 *    Phi:           x += att + mlp(h)
 *               mlp(h) = Wdown( silu(Wgate h) * (Wup h) )      SwiGLU
 *                      = Wdown gelu_tanh(Wup h + bup) + bdown  GELU
 *   logits = Whead norm_final(x) + bhead
 */
import type { HostTensor, ModelConfig, ModelWeights } from '../../src/model/types.js';

/** out = W x for W stored [rows, cols] row-major (PyTorch's Linear layout: [out, in]). */
function matvec(w: HostTensor, x: Float64Array, bias?: HostTensor): Float64Array {
  const [rows, cols] = w.shape;
  if (cols !== x.length) throw new Error(`matvec: weight [${w.shape.join(', ')}] against a vector of ${x.length}`);
  const out = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let sum = bias === undefined ? 0 : bias.data[r];
    const base = r * cols;
    for (let c = 0; c < cols; c++) sum += w.data[base + c] * x[c];
    out[r] = sum;
  }
  return out;
}

/** x / sqrt(mean(x^2) + eps) * weight */
function rmsnorm(x: Float64Array, weight: HostTensor, eps: number): Float64Array {
  let ss = 0;
  for (const v of x) ss += v * v;
  const scale = 1 / Math.sqrt(ss / x.length + eps);
  return x.map((v, i) => v * scale * weight.data[i]);
}

/** (x - mean) / sqrt(variance + eps) * weight + bias */
function layernorm(x: Float64Array, weight: HostTensor, bias: HostTensor, eps: number): Float64Array {
  const mean = x.reduce((a, v) => a + v, 0) / x.length;
  const variance = x.reduce((a, v) => a + (v - mean) ** 2, 0) / x.length;
  const scale = 1 / Math.sqrt(variance + eps);
  return x.map((v, i) => (v - mean) * scale * weight.data[i] + bias.data[i]);
}

/**
 * Rotary embedding, Hugging Face's "rotate half" pairing on the first `dim` dimensions of each
 * head (the rest pass unchanged): dimension i is rotated together with i + dim/2 by the angle
 * pos * theta^(-2i/dim).
 */
function rope(vec: Float64Array, numHeads: number, headDim: number, dim: number, pos: number, theta: number): void {
  const half = dim / 2;
  for (let h = 0; h < numHeads; h++) {
    const base = h * headDim;
    for (let i = 0; i < half; i++) {
      const angle = pos * theta ** ((-2 * i) / dim);
      const cos = Math.cos(angle);
      const sin = Math.sin(angle);
      const a = vec[base + i];
      const b = vec[base + i + half];
      vec[base + i] = a * cos - b * sin;
      vec[base + i + half] = b * cos + a * sin;
    }
  }
}

function silu(x: number): number {
  return x / (1 + Math.exp(-x));
}

/** GELU, tanh approximation (transformers' gelu_new). */
function geluTanh(x: number): number {
  return 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
}

/** Feeds tokens one by one; keeps each layer's keys and values of all earlier positions. */
export class ReferenceLlama {
  private readonly keys: Float64Array[][];
  private readonly values: Float64Array[][];
  private pos = 0;

  constructor(
    private readonly config: ModelConfig,
    private readonly weights: ModelWeights,
  ) {
    this.keys = weights.layers.map(() => []);
    this.values = weights.layers.map(() => []);
  }

  /** Logits (float64) for the token after `token`, which sits at the next position. */
  step(token: number): Float64Array {
    const c = this.config;
    const w = this.weights;
    const d = c.headDim;
    if (!Number.isInteger(token) || token < 0 || token >= c.vocabSize) throw new Error(`token ${token} outside the vocabulary`);
    const pos = this.pos++;

    const x = new Float64Array(c.hiddenSize);
    for (let i = 0; i < c.hiddenSize; i++) x[i] = w.embed.data[token * c.hiddenSize + i];
    if (w.positions) for (let i = 0; i < c.hiddenSize; i++) x[i] += w.positions.data[pos * c.hiddenSize + i];
    // Phi's block is parallel: attention and MLP both read the input norm's output.
    const parallel = c.architecture === 'PhiForCausalLM';
    const norm = (v: Float64Array, weight: HostTensor, bias: HostTensor | undefined) =>
      c.norm === 'rms' ? rmsnorm(v, weight, c.normEps) : layernorm(v, weight, bias!, c.normEps);

    const groupSize = c.numHeads / c.numKvHeads;
    for (let l = 0; l < c.numLayers; l++) {
      const layer = w.layers[l];

      // Attention block.
      const h = norm(x, layer.inputNorm, layer.inputNormBias);
      const q = matvec(layer.q, h, layer.qBias);
      const k = matvec(layer.k, h, layer.kBias);
      const v = matvec(layer.v, h, layer.vBias);
      if (c.rotaryDim > 0) {
        rope(q, c.numHeads, d, c.rotaryDim, pos, c.ropeTheta);
        rope(k, c.numKvHeads, d, c.rotaryDim, pos, c.ropeTheta);
      }
      this.keys[l].push(k);
      this.values[l].push(v);

      const attnOut = new Float64Array(c.numHeads * d);
      for (let head = 0; head < c.numHeads; head++) {
        const kvHead = Math.floor(head / groupSize); // query heads share KV heads in groups
        const qOff = head * d;
        const kvOff = kvHead * d;
        // Causal: this position attends to itself and everything before it.
        const scores = new Float64Array(pos + 1);
        let max = -Infinity;
        for (let t = 0; t <= pos; t++) {
          let dot = 0;
          for (let i = 0; i < d; i++) dot += q[qOff + i] * this.keys[l][t][kvOff + i];
          scores[t] = dot / Math.sqrt(d);
          max = Math.max(max, scores[t]);
        }
        let total = 0;
        for (let t = 0; t <= pos; t++) {
          scores[t] = Math.exp(scores[t] - max);
          total += scores[t];
        }
        for (let t = 0; t <= pos; t++) {
          const p = scores[t] / total;
          for (let i = 0; i < d; i++) attnOut[qOff + i] += p * this.values[l][t][kvOff + i];
        }
      }
      const o = matvec(layer.o, attnOut, layer.oBias);

      // MLP block: on the same normalised input in a parallel block (Phi), after the attention's add otherwise.
      let mlpIn = h;
      if (!parallel) {
        for (let i = 0; i < c.hiddenSize; i++) x[i] += o[i];
        mlpIn = norm(x, layer.postNorm!, layer.postNormBias);
      }
      let act: Float64Array;
      if (c.mlp === 'swiglu') {
        const gate = matvec(layer.gate!, mlpIn);
        const up = matvec(layer.up, mlpIn);
        act = gate.map((g, i) => silu(g) * up[i]);
      } else {
        act = matvec(layer.up, mlpIn, layer.upBias).map(geluTanh);
      }
      const down = matvec(layer.down, act, layer.downBias);
      for (let i = 0; i < c.hiddenSize; i++) x[i] += down[i] + (parallel ? o[i] : 0);
    }

    return matvec(w.lmHead, norm(x, w.norm, w.normBias), w.lmHeadBias);
  }
}

/** Logits at every position of `tokenIds` (entry t predicts token t + 1). */
export function referenceLogits(config: ModelConfig, weights: ModelWeights, tokenIds: number[]): Float32Array[] {
  const model = new ReferenceLlama(config, weights);
  return tokenIds.map((t) => Float32Array.from(model.step(t)));
}

/** Index of the largest value; the lowest index wins a tie. */
export function argmax(values: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
  return best;
}

/** `n` greedy tokens after `promptIds` (argmax of the float64 logits; never stops early). */
export function referenceGreedy(config: ModelConfig, weights: ModelWeights, promptIds: number[], n: number): number[] {
  if (promptIds.length === 0) throw new Error('referenceGreedy needs at least one prompt token');
  const model = new ReferenceLlama(config, weights);
  let logits: Float64Array = new Float64Array(0);
  for (const t of promptIds) logits = model.step(t);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const next = argmax(logits);
    out.push(next);
    if (i + 1 < n) logits = model.step(next);
  }
  return out;
}
