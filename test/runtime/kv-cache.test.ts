/**
 * KvCache: append-only buffers seen through immutable snapshots. The session writes each
 * step's new positions into the buffers in place; these tests play its part by writing
 * recognisable values at the positions an append claims.
 */
import t, { type Test } from 'tap';
import { KvCache } from '../../src/runtime/kv-cache.js';

const shape = { numLayers: 2, numKvHeads: 3, headDim: 4, maxPositions: 40 };

/** The value a token at `position` leaves in layer l, head h, dimension d (keys; values negated). */
const mark = (token: number, l: number, h: number, position: number, d: number) => token * 1000 + l * 100 + h * 10 + d + position / 64;

/** Appends `tokens` as a session would: claims their positions, then writes them. */
function run(cache: KvCache, tokens: number[]): KvCache {
  const next = cache.append(tokens.length);
  tokens.forEach((token, i) => {
    const p = cache.length + i;
    for (let l = 0; l < shape.numLayers; l++) {
      const keys = Float32Array.from({ length: shape.numKvHeads * shape.headDim }, (_, j) =>
        mark(token, l, Math.floor(j / shape.headDim), p, j % shape.headDim),
      );
      next.writePosition(
        l,
        p,
        keys,
        keys.map((x) => -x),
      );
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

t.test('the buffers grow by sqrt(6 * need) spare positions, up to the context length', async (t) => {
  const long = { ...shape, maxPositions: 200 };
  const prompt = Array.from({ length: 50 }, (_, i) => 10 + i);
  let cache = run(KvCache.empty(long), prompt);
  t.equal(cache.capacity, 68, '50 positions and 18 spare');
  const filled = cache.keys[0];
  const spare = Array.from({ length: 18 }, (_, i) => 100 + i);
  cache = run(cache, spare);
  t.equal(cache.keys[0], filled, 'the spare positions fill in place');
  cache = run(cache, [4]);
  t.same([cache.capacity, cache.keys[0] === filled], [69 + 21, false], 'the next one moves them into new buffers with room to spare again');
  holds(t, cache, [...prompt, ...spare, 4], 'after growing');
  cache = run(
    cache,
    Array.from({ length: 131 }, (_, i) => 200 + i),
  );
  t.equal(cache.capacity, 200, 'never more than the context length');
  t.throws(() => cache.append(15), RangeError, 'a cache cannot outgrow the context');
  t.equal(KvCache.empty(shape, 1000).capacity, 40, 'nor start past it');
});

t.test('write copies positions [from, length) from tensors holding the whole sequence', async (t) => {
  const whole = run(KvCache.empty(shape, 4), [1, 2, 3]).contiguous();
  const before = run(KvCache.empty(shape, 4), [1, 9]);
  const next = before.append(1);
  next.write(before.length, whole.keys, whole.values);
  holds(t, next, [1, 9, 3], 'the new position from the tensors, the earlier ones as they were');
});
