/**
 * The keys and values of a batch of sequences that decode together, one row per sequence.
 *
 * Each layer's keys and values live in one [rows, kvHeads, capacity, headDim] buffer, row after
 * row, so the first `n` rows are themselves a [n, kvHeads, capacity, headDim] tensor: the
 * GroupQueryAttention kernel reads them as they are, each row up to its own length
 * (`seqlens_k`). A sequence joins by copying its prompt's cache into a free row and leaves by
 * having the last row moved into its own, so that the rows in use stay the first ones.
 * Rows and capacity grow by copying, as KvCache's buffers do.
 */
import * as ort from 'onnxruntime-node';
import { grownCapacity, type CacheShape, type KvCache } from './kv-cache.js';

export class KvArena {
  private keys: Float32Array[] = [];
  private values: Float32Array[] = [];
  private rows = 0;
  private capacity = 0;

  constructor(private readonly shape: CacheShape) {}

  private get rowSize(): number {
    return this.shape.numKvHeads * this.capacity * this.shape.headDim;
  }

  /** Makes room for `rows` rows of `positions` positions each, keeping what the rows hold. */
  reserve(rows: number, positions: number): void {
    if (positions > this.shape.maxPositions) throw new RangeError(`a cache of ${positions} positions exceeds the context length ${this.shape.maxPositions}`);
    if (rows <= this.rows && positions <= this.capacity) return;
    const capacity = positions <= this.capacity ? this.capacity : grownCapacity(positions, this.shape.maxPositions);
    // Rows double, so that sequences joining one by one copy the arena a few times only.
    const newRows = rows <= this.rows ? this.rows : Math.max(rows, 2 * this.rows);
    const { numLayers, numKvHeads, headDim } = this.shape;
    const regrow = (old: Float32Array[]) =>
      Array.from({ length: numLayers }, (_, l) => {
        const next = new Float32Array(newRows * numKvHeads * capacity * headDim);
        const before = old[l];
        if (before !== undefined) {
          // Each (row, head) run of positions moves to its place at the new capacity.
          for (let rh = 0; rh < this.rows * numKvHeads; rh++) {
            next.set(before.subarray(rh * this.capacity * headDim, (rh + 1) * this.capacity * headDim), rh * capacity * headDim);
          }
        }
        return next;
      });
    this.keys = regrow(this.keys);
    this.values = regrow(this.values);
    this.rows = newRows;
    this.capacity = capacity;
  }

  /** The first `rows` rows, per layer, as the graph's past key and value inputs. */
  past(rows: number): { keys: ort.Tensor[]; values: ort.Tensor[] } {
    const dims = [rows, this.shape.numKvHeads, this.capacity, this.shape.headDim];
    const view = (buffer: Float32Array) => new ort.Tensor('float32', buffer.subarray(0, rows * this.rowSize), dims);
    return { keys: this.keys.map(view), values: this.values.map(view) };
  }

  /** Copies a sequence's cache (its `length` positions) into `row`, reserved beforehand. */
  load(row: number, cache: KvCache): void {
    const { numKvHeads, headDim } = this.shape;
    for (let l = 0; l < this.shape.numLayers; l++) {
      for (const [from, to] of [
        [cache.keys[l], this.keys[l]],
        [cache.values[l], this.values[l]],
      ] as const) {
        const src = from.data as Float32Array;
        const srcCapacity = from.dims[2];
        for (let h = 0; h < numKvHeads; h++) {
          to.set(src.subarray(h * srcCapacity * headDim, (h * srcCapacity + cache.length) * headDim), (row * numKvHeads + h) * this.capacity * headDim);
        }
      }
    }
  }

  /** Moves the first `length` positions of row `from` into row `to`. */
  move(from: number, to: number, length: number): void {
    const { numKvHeads, headDim } = this.shape;
    for (const buffers of [this.keys, this.values]) {
      for (const buffer of buffers) {
        for (let h = 0; h < numKvHeads; h++) {
          const src = (from * numKvHeads + h) * this.capacity * headDim;
          buffer.copyWithin((to * numKvHeads + h) * this.capacity * headDim, src, src + length * headDim);
        }
      }
    }
  }

  /** Writes one position of one layer of a row: its keys and values, each [kvHeads * headDim], head after head. */
  writePosition(row: number, layer: number, position: number, keys: Float32Array, values: Float32Array): void {
    const { numKvHeads, headDim } = this.shape;
    for (let h = 0; h < numKvHeads; h++) {
      const at = ((row * numKvHeads + h) * this.capacity + position) * headDim;
      this.keys[layer].set(keys.subarray(h * headDim, (h + 1) * headDim), at);
      this.values[layer].set(values.subarray(h * headDim, (h + 1) * headDim), at);
    }
  }
}
