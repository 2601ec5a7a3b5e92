/**
 * KvCache: append-only buffers seen through immutable snapshots. The serving graph writes new
 * positions into the buffers in place; these tests play the graph's part by writing
 * recognisable values at the positions an append claims.
 */
import t, { type Test } from 'tap';
import { KvCache } from '../../src/runtime/kv-cache.js';

const shape = { numLayers: 2, numKvHeads: 3, headDim: 4, maxPositions: 40 };

/** The value a token at `position` leaves in layer l, head h, dimension d (keys; values negated). */
const mark = (token: number, l: number, h: number, position: number, d: number) => token * 1000 + l * 100 + h * 10 + d + position / 64;

/** Appends `tokens` as a graph would: claims their positions, then writes them. */
function run(cache: KvCache, tokens: number[]): KvCache {
  const next = cache.append(tokens.length);
  tokens.forEach((token, i) => {
    const p = cache.length + i;
    for (let l = 0; l < shape.numLayers; l++) {
      for (let h = 0; h < shape.numKvHeads; h++) {
        for (let d = 0; d < shape.headDim; d++) {
          const at = (h * next.capacity + p) * shape.headDim + d;
          (next.keys[l].data as Float32Array)[at] = mark(token, l, h, p, d);
          (next.values[l].data as Float32Array)[at] = -mark(token, l, h, p, d);
        }
      }
    }
  });
  return next;
}

/** Checks that `cache` holds exactly `tokens`, read through its contiguous copy. */
function holds(t: Test, cache: KvCache, tokens: number[], what: string): void {
  const { keys, values } = cache.contiguous();
  const expected = (l: number, sign: number) =>
    Array.from({ length: shape.numKvHeads * tokens.length * shape.headDim }, (_, i) => {
      const d = i % shape.headDim;
      const p = Math.floor(i / shape.headDim) % tokens.length;
      const h = Math.floor(i / (shape.headDim * tokens.length));
      return Math.fround(sign * mark(tokens[p], l, h, p, d));
    });
  t.same(keys[0].dims, [1, shape.numKvHeads, tokens.length, shape.headDim], `${what}: [1, kvHeads, length, headDim]`);
  t.same(
    [...keys, ...values].map((x) => Array.from(x.data as Float32Array)),
    [...[0, 1].map((l) => expected(l, 1)), ...[0, 1].map((l) => expected(l, -1))],
    `${what}: every layer's keys and values, position by position`,
  );
}

t.test('the newest snapshot appends in place; each snapshot keeps what it held', async (t) => {
  const empty = KvCache.empty(shape, 8);
  t.equal(empty.length, 0);
  const a = run(empty, [1, 2, 3]);
  const b = run(a, [4]);
  t.equal(b.keys[0], a.keys[0], 'same buffers: nothing copied');
  t.same([a.length, b.length, b.capacity], [3, 4, 8]);
  holds(t, a, [1, 2, 3], 'the older snapshot');
  holds(t, b, [1, 2, 3, 4], 'the newer snapshot');
});

t.test('continuing an older snapshot copies it first and leaves the other continuation alone', async (t) => {
  const prompt = run(KvCache.empty(shape, 8), [1, 2]);
  const first = run(prompt, [3, 4]);
  const second = run(prompt, [5]);
  t.not(second.keys[0], first.keys[0], 'new buffers for the second continuation');
  t.equal(second.capacity, 8, 'of the same capacity');
  holds(t, first, [1, 2, 3, 4], 'first continuation');
  holds(t, second, [1, 2, 5], 'second continuation');
  holds(t, run(first, [6]), [1, 2, 3, 4, 6], 'first continuation, still appendable in place');
});

t.test('the buffers grow by doubling, up to the context length', async (t) => {
  let cache = run(KvCache.empty(shape), [1, 2, 3]);
  t.equal(cache.capacity, 3, 'an empty cache without a capacity grows to what its first append needs');
  cache = run(cache, [4]);
  t.equal(cache.capacity, 6, 'then doubles');
  holds(t, cache, [1, 2, 3, 4], 'after growing');
  cache = run(cache, Array.from({ length: 30 }, (_, i) => 10 + i));
  t.equal(cache.capacity, 34, 'or grows to what one append needs when that is more');
  cache = run(cache, [5]);
  t.equal(cache.capacity, 40, 'and never past the context length');
  t.throws(() => cache.append(6), RangeError, 'a cache cannot outgrow the context');
  t.equal(KvCache.empty(shape, 1000).capacity, 40, 'nor start past it');
});

t.test('write copies positions [from, length) from tensors holding the whole sequence', async (t) => {
  const whole = run(KvCache.empty(shape, 4), [1, 2, 3]).contiguous();
  const before = run(KvCache.empty(shape, 4), [1, 9]);
  const next = before.append(1);
  next.write(before.length, whole.keys, whole.values);
  holds(t, next, [1, 9, 3], 'the new position from the tensors, the earlier ones as they were');
});

t.test('reserve gives a cache room for a request, copying only when it must', async (t) => {
  const prompt = run(KvCache.empty(shape), [1, 2, 3]);
  const reserved = prompt.reserve(10);
  t.not(reserved.keys[0], prompt.keys[0], 'a copy when the buffers are too small');
  t.same([reserved.length, reserved.capacity], [3, 10]);
  t.equal(reserved.reserve(8), reserved, 'itself when it has the room');
  t.equal(run(reserved, [4]).keys[0], reserved.keys[0], 'then appends in place');
  const other = prompt.reserve(10);
  t.not(other.keys[0], reserved.keys[0], 'each reservation of one snapshot gets its own buffers');
  holds(t, run(other, [5]), [1, 2, 3, 5], 'a second reservation, continued');
  holds(t, run(reserved, [6]), [1, 2, 3, 6], 'the first, continued again from its own snapshot (copied)');
  t.equal(prompt.reserve(1000).capacity, 40, 'no more than the context length');
});
