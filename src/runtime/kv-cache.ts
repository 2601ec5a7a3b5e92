/**
 * A sequence's keys and values, appended in place.
 *
 * Each layer's keys and values live in a [1, kvHeads, capacity, headDim] buffer of which the
 * first `length` positions are filled. The serving graph reads the past from these buffers as
 * they are (ONNX Runtime's Node binding feeds inputs without copying them), and a step's new
 * positions are written into them after it. A KvCache is a snapshot, (buffers, length): what
 * it describes never changes, because appends only write at or after the buffers' newest
 * length. Only the newest snapshot of its buffers appends in place; appending from an older
 * one (n choices continuing one prompt, a prompt pass shared by requests) first copies its
 * positions into new buffers.
 */
import * as ort from 'onnxruntime-node';
import type { ModelConfig } from '../model/types.js';

/**
 * The capacity buffers grow to when `need` positions do not fit. A step costs a little per
 * position of capacity, filled or not (about 2 us at SmolLM2-135M's shape: GroupQueryAttention
 * allocates its present cache at the past buffer's size; s80 decode at capacity 256 and 2048
 * took 17.3-19.2 and 21.8-22.1 ms), and growing copies the `need` positions (46 KB each:
 * about 6.6 us at the 7 GB/s a typed-array copy reached on this machine): copying a position
 * costs about 3 times what a step pays for a spare one. With s spare positions, a step pays for s/2 of them on average and for a growth's copy
 * every s steps: s = sqrt(2 * 3 * need) minimises the sum.
 */
export function grownCapacity(need: number, maxPositions: number): number {
  return Math.min(need + Math.ceil(Math.sqrt(6 * need)), maxPositions);
}

export type CacheShape = Pick<ModelConfig, 'numLayers' | 'numKvHeads' | 'headDim' | 'maxPositions'>;

/** What the snapshots of one sequence share. */
class KvBuffers {
  readonly keys: ort.Tensor[];
  readonly values: ort.Tensor[];
  /** Positions claimed so far: the snapshot of this length is the one that may append. */
  claimed = 0;

  constructor(
    readonly shape: CacheShape,
    readonly capacity: number,
  ) {
    const dims = [1, shape.numKvHeads, capacity, shape.headDim];
    const buffer = () => new ort.Tensor('float32', new Float32Array(shape.numKvHeads * capacity * shape.headDim), dims);
    this.keys = Array.from({ length: shape.numLayers }, buffer);
    this.values = Array.from({ length: shape.numLayers }, buffer);
  }
}

/** Copies positions [from, to) of every head from one [1, kvHeads, *, headDim] tensor into another. */
function copyPositions(src: ort.Tensor, dst: ort.Tensor, from: number, to: number): void {
  const [, heads, srcLength, headDim] = src.dims;
  const dstLength = dst.dims[2];
  const s = src.data as Float32Array;
  const d = dst.data as Float32Array;
  for (let h = 0; h < heads; h++) {
    d.set(s.subarray((h * srcLength + from) * headDim, (h * srcLength + to) * headDim), (h * dstLength + from) * headDim);
  }
}

export class KvCache {
  private constructor(
    private readonly buffers: KvBuffers,
    readonly length: number,
  ) {}

  /** No positions yet, with room for `capacity` before the buffers grow. */
  static empty(shape: CacheShape, capacity = 0): KvCache {
    return new KvCache(new KvBuffers(shape, Math.min(capacity, shape.maxPositions)), 0);
  }

  get capacity(): number {
    return this.buffers.capacity;
  }

  /** Per layer, the whole buffer ([1, kvHeads, capacity, headDim]); its first `length` positions are this cache's. */
  get keys(): readonly ort.Tensor[] {
    return this.buffers.keys;
  }

  get values(): readonly ort.Tensor[] {
    return this.buffers.values;
  }

  /**
   * The snapshot after `n` more positions, claimed now (before any await, so that a second
   * append from this snapshot copies instead): on these buffers when this is their newest
   * snapshot and they have room, else on new buffers holding a copy of this cache's positions
   * (as large, or grown when they lack room). The caller then writes positions
   * [length, length + n) of the returned cache's buffers.
   */
  append(n: number): KvCache {
    const need = this.length + n;
    const { maxPositions } = this.buffers.shape;
    if (need > maxPositions) throw new RangeError(`a cache of ${need} positions exceeds the context length ${maxPositions}`);
    const room = need > this.capacity ? this.copy(grownCapacity(need, maxPositions)) : this.appendsInPlace() ? this : this.copy(this.capacity);
    room.buffers.claimed = need;
    return new KvCache(room.buffers, need);
  }

  private appendsInPlace(): boolean {
    return this.buffers.claimed === this.length;
  }

  /** This cache's positions in new buffers of `capacity` positions. */
  private copy(capacity: number): KvCache {
    const buffers = new KvBuffers(this.buffers.shape, capacity);
    for (let l = 0; l < buffers.shape.numLayers; l++) {
      copyPositions(this.buffers.keys[l], buffers.keys[l], 0, this.length);
      copyPositions(this.buffers.values[l], buffers.values[l], 0, this.length);
    }
    buffers.claimed = this.length;
    return new KvCache(buffers, this.length);
  }

  /** Exact copies of this cache's positions ([1, kvHeads, length, headDim] per layer), for graphs that take the cache as it is. */
  contiguous(): { keys: ort.Tensor[]; values: ort.Tensor[] } {
    const { numKvHeads, headDim } = this.buffers.shape;
    const copy = (t: ort.Tensor) => {
      const out = new ort.Tensor('float32', new Float32Array(numKvHeads * this.length * headDim), [1, numKvHeads, this.length, headDim]);
      copyPositions(t, out, 0, this.length);
      return out;
    };
    return { keys: this.buffers.keys.map(copy), values: this.buffers.values.map(copy) };
  }

  /**
   * Writes one position of one layer, a position this snapshot claimed (in [length - n,
   * length) after `append(n)`): its keys and its values, each [kvHeads * headDim], head after
   * head.
   */
  writePosition(layer: number, position: number, keys: Float32Array, values: Float32Array): void {
    const { numKvHeads, headDim } = this.buffers.shape;
    const k = this.buffers.keys[layer].data as Float32Array;
    const v = this.buffers.values[layer].data as Float32Array;
    for (let h = 0; h < numKvHeads; h++) {
      const at = (h * this.capacity + position) * headDim;
      k.set(keys.subarray(h * headDim, (h + 1) * headDim), at);
      v.set(values.subarray(h * headDim, (h + 1) * headDim), at);
    }
  }

  /** Writes positions [from, length) of each layer from tensors holding positions [0, length) or more. */
  write(from: number, keys: ort.Tensor[], values: ort.Tensor[]): void {
    for (let l = 0; l < keys.length; l++) {
      copyPositions(keys[l], this.buffers.keys[l], from, this.length);
      copyPositions(values[l], this.buffers.values[l], from, this.length);
    }
  }
}
