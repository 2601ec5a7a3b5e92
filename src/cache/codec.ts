/**
 * Compact binary encoding of LayerScores, the value stored in Redis.
 *
 * Layout (all integers little-endian):
 *
 *   offset 0  'S' 'A'            magic: this is a sparse-activation score blob
 *          2  version (uint8)    FORMAT_VERSION; bumped when the layout changes
 *          3  dtype (uint8)      0 = float32 (room for float16 later without a new version)
 *          4  layers (uint32)
 *          8  length of each layer (uint32 each)
 *   8 + 4*layers  the scores, layer after layer, float32
 *
 * The header is a multiple of 4 bytes, so the data starts 4-byte aligned. Decoding checks
 * every field and the exact total length, and throws on anything else: a cache that served a
 * truncated or foreign value would silently pick the wrong neurons, which is worse than a miss.
 */
import { endianness } from 'node:os';
import type { LayerScores } from './types.js';

export const FORMAT_VERSION = 1;
const MAGIC_0 = 0x53; // 'S'
const MAGIC_1 = 0x41; // 'A'
const DTYPE_FLOAT32 = 0;
const FIXED_HEADER_BYTES = 8;
/** Far above any real model (LLaMA-70B has 80 layers); stops a corrupt count from allocating. */
export const MAX_LAYERS = 65_536;

// Float32Array uses the host's byte order; on a little-endian host (every platform Node ships
// for in practice) the bytes can be copied as they are, otherwise they go through a DataView.
const HOST_IS_LE = endianness() === 'LE';

/** Bytes that encodeScores produces for these scores. */
export function encodedSize(scores: LayerScores): number {
  let values = 0;
  for (const layer of scores) values += layer.length;
  return FIXED_HEADER_BYTES + 4 * scores.length + 4 * values;
}

export function encodeScores(scores: LayerScores): Buffer {
  if (scores.length > MAX_LAYERS) throw new RangeError(`Cannot encode ${scores.length} layers (at most ${MAX_LAYERS})`);
  const buf = Buffer.allocUnsafe(encodedSize(scores));
  buf[0] = MAGIC_0;
  buf[1] = MAGIC_1;
  buf[2] = FORMAT_VERSION;
  buf[3] = DTYPE_FLOAT32;
  buf.writeUInt32LE(scores.length, 4);
  let offset = FIXED_HEADER_BYTES;
  for (const layer of scores) {
    buf.writeUInt32LE(layer.length, offset);
    offset += 4;
  }
  for (const layer of scores) {
    if (HOST_IS_LE) {
      buf.set(new Uint8Array(layer.buffer, layer.byteOffset, layer.byteLength), offset);
    } else {
      for (let i = 0; i < layer.length; i++) buf.writeFloatLE(layer[i], offset + 4 * i);
    }
    offset += layer.byteLength;
  }
  return buf;
}

/** Decodes a value written by encodeScores; throws an Error saying what is wrong otherwise. */
export function decodeScores(buf: Uint8Array): LayerScores {
  const fail = (why: string): never => {
    throw new Error(`Not a valid activation-score value: ${why}`);
  };
  if (buf.length < FIXED_HEADER_BYTES) fail(`${buf.length} bytes is shorter than the ${FIXED_HEADER_BYTES}-byte header`);
  if (buf[0] !== MAGIC_0 || buf[1] !== MAGIC_1) fail('wrong magic bytes');
  if (buf[2] !== FORMAT_VERSION) fail(`format version ${buf[2]}, expected ${FORMAT_VERSION}`);
  if (buf[3] !== DTYPE_FLOAT32) fail(`unknown dtype ${buf[3]}`);

  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const layers = view.getUint32(4, true);
  if (layers > MAX_LAYERS) fail(`${layers} layers (at most ${MAX_LAYERS})`);
  const dataStart = FIXED_HEADER_BYTES + 4 * layers;
  if (buf.length < dataStart) fail(`truncated header (${buf.length} bytes, ${layers} layers need ${dataStart})`);

  const lengths: number[] = [];
  let expected = dataStart;
  for (let l = 0; l < layers; l++) {
    const n = view.getUint32(FIXED_HEADER_BYTES + 4 * l, true);
    lengths.push(n);
    expected += 4 * n;
  }
  if (buf.length !== expected) fail(`${buf.length} bytes, the header describes ${expected}`);

  const scores: LayerScores = [];
  let offset = dataStart;
  for (const n of lengths) {
    const layer = new Float32Array(n);
    if (HOST_IS_LE) {
      // A copy, not a view: the source may be unaligned (pooled Buffers) and must not be kept alive.
      new Uint8Array(layer.buffer).set(buf.subarray(offset, offset + 4 * n));
    } else {
      for (let i = 0; i < n; i++) layer[i] = view.getFloat32(offset + 4 * i, true);
    }
    scores.push(layer);
    offset += 4 * n;
  }
  return scores;
}
