/**
 * Weight-only blockwise quantisation, in the layout ONNX Runtime's `MatMulNBits` and
 * `GatherBlockQuantized` kernels read (docs/quantisation-probe.md):
 * - a matrix W [rows, cols] is quantised along its columns in blocks of `block` (a last short
 *   block is padded with zero codes);
 * - each block has one float scale and is symmetric around zero: w = (code - 2^(bits-1)) * scale,
 *   with the kernels' default zero point, so no zero points are stored;
 * - codes are unsigned and packed low bits first: with 4 bits, element 2j of a block is the low
 *   nibble of its byte j.
 * Symmetric blocks of 32 with one scale each are what llama.cpp's Q8_0 and Q4_0 store; int8
 * serves blocks of 64 (QUANT_SPECS).
 */

import type { HostTensor, ModelWeights } from './types.js';

export type QuantBits = 4 | 8;

export interface QuantSpec {
  bits: QuantBits;
  /** Columns per block: a power of two of at least 16 (MatMulNBits). */
  block: number;
  /**
   * How MatMulNBits multiplies (not how weights are stored): 4 (the default) rounds each block of
   * activations to int8 and uses integer dot products, the fastest; 0 computes in float32 on the
   * dequantised weights, exactly, which only tests need (8-bit weights then dequantise on every
   * call: docs/quantisation-probe.md).
   */
  accuracyLevel?: 0 | 4;
}

/**
 * What QUANT serves. int4 keeps llama.cpp's Q4_0 block of 32, whose finer scales its 16 levels
 * need. int8 takes blocks of 64: MatMulNBits' 8-bit kernel pays per block, and at SmolLM2-135M's
 * shape int8 decode ran 6-10% faster than in blocks of 32 (dense and s80, stepped in lockstep), while
 * 8-bit rounding stays far below what the evaluation can see (docs/eval/quantisation.md).
 * Both divide SmolLM2's hidden size, so the embedding and a tied head share codes.
 */
export const QUANT_SPECS = { int8: { bits: 8, block: 64 }, int4: { bits: 4, block: 32 } } as const satisfies Record<string, QuantSpec>;
export type QuantName = keyof typeof QUANT_SPECS;
/** What QUANT and `eval --quant` accept: a quantisation, or 'none' (float32). */
export type QuantChoice = QuantName | 'none';
export const QUANT_CHOICES: readonly QuantChoice[] = ['none', ...(Object.keys(QUANT_SPECS) as QuantName[])];

export interface QuantizedMatrix extends QuantSpec {
  rows: number;
  cols: number;
  blocksPerRow: number;
  /** [rows, blocksPerRow, block * bits / 8] */
  codes: Uint8Array;
  /** [rows, blocksPerRow] */
  scales: Float32Array;
}

/** Bytes of one block's codes. */
export const blockBytes = (spec: QuantSpec) => (spec.block * spec.bits) / 8;

export function quantize(data: Float32Array, rows: number, cols: number, spec: QuantSpec): QuantizedMatrix {
  const { bits, block } = spec;
  if (data.length !== rows * cols) throw new RangeError(`quantize: ${data.length} values for a [${rows}, ${cols}] matrix`);
  if (block < 16 || (block & (block - 1)) !== 0) throw new RangeError(`quantize: block ${block} is not a power of two of at least 16`);
  const blocksPerRow = Math.ceil(cols / block);
  const bytes = blockBytes(spec);
  const zero = 1 << (bits - 1);
  // The largest code magnitude on both sides: 2^(bits-1) - 1 (so -8..7 uses -7..7 for 4 bits).
  const top = zero - 1;
  const codes = new Uint8Array(rows * blocksPerRow * bytes);
  const scales = new Float32Array(rows * blocksPerRow);
  for (let r = 0; r < rows; r++) {
    for (let b = 0; b < blocksPerRow; b++) {
      const start = r * cols + b * block;
      const end = r * cols + Math.min(cols, (b + 1) * block);
      let maxAbs = 0;
      for (let i = start; i < end; i++) maxAbs = Math.max(maxAbs, Math.abs(data[i]));
      const scale = maxAbs / top;
      scales[r * blocksPerRow + b] = scale;
      const out = (r * blocksPerRow + b) * bytes;
      for (let j = 0; j < block; j++) {
        const i = start + j;
        const code = i < end && scale > 0 ? zero + Math.max(-top, Math.min(top, Math.round(data[i] / scale))) : zero;
        if (bits === 8) codes[out + j] = code;
        else codes[out + (j >> 1)] |= (j & 1) === 0 ? code : code << 4;
      }
    }
  }
  return { rows, cols, bits, block, blocksPerRow, codes, scales };
}

/** The matrix the codes and scales stand for, [rows, cols]. */
export function dequantize(q: QuantizedMatrix): Float32Array {
  const { rows, cols, bits, block, blocksPerRow, codes, scales } = q;
  const bytes = blockBytes(q);
  const zero = 1 << (bits - 1);
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const b = Math.floor(c / block);
      const j = c % block;
      const at = (r * blocksPerRow + b) * bytes;
      const code = bits === 8 ? codes[at + j] : (codes[at + (j >> 1)] >> ((j & 1) * 4)) & 0xf;
      out[r * cols + c] = (code - zero) * scales[r * blocksPerRow + b];
    }
  }
  return out;
}

/**
 * The weights a graph served with `spec` computes with: every linear weight, and the embedding
 * when the block divides the hidden size (DecoderGraphOptions.quant), as their codes stand for
 * them; norms and biases as they are.
 */
export function dequantizedWeights(weights: ModelWeights, spec: QuantSpec): ModelWeights {
  const rounded = (t: HostTensor): HostTensor => ({ shape: t.shape, data: dequantize(quantize(t.data, t.shape[0], t.shape[1], spec)) });
  const embedQuantized = weights.embed.shape[1] % spec.block === 0;
  const embed = embedQuantized ? rounded(weights.embed) : weights.embed;
  return {
    ...weights,
    embed,
    // A tied head reads the embedding's codes; otherwise its own (padded when the block does not divide).
    lmHead: weights.lmHead === weights.embed && embedQuantized ? embed : rounded(weights.lmHead),
    // Every matrix of a layer is a linear weight; vectors (norms, biases) stay as they are.
    layers: weights.layers.map((l) => {
      const out = { ...l };
      for (const [key, t] of Object.entries(l) as [keyof typeof l, HostTensor][]) if (t.shape.length === 2) out[key] = rounded(t);
      return out;
    }),
  };
}
