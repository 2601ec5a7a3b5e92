/** The in-process LRU: bounded by bytes, expiring by age, and isolated from callers' arrays. */
import t from 'tap';
import type { CacheEventInfo } from '../../src/cache/events.js';
import { cacheKey } from '../../src/cache/key.js';
import { entryBytes, MemoryStore } from '../../src/cache/memory.js';
import type { ActivationKey, CacheEvent, LayerScores } from '../../src/cache/types.js';

const key = (n: number): ActivationKey => ({ modelHash: 'm', metric: 'gxo', tokens: [n] });
const scores = (fill: number, perLayer = 256): LayerScores => [new Float32Array(perLayer).fill(fill), new Float32Array(perLayer).fill(-fill)];

t.test('what was set is served; anything else is a miss; each get reports one event', async (t) => {
  const events: Array<[CacheEvent, CacheEventInfo]> = [];
  const store = new MemoryStore({ onEvent: (e, info) => events.push([e, info]) });
  t.equal(store.kind, 'memory');
  await store.set(key(1), scores(1));
  const got = await store.get(key(1));
  t.same(
    got?.map((l) => Array.from(l)),
    scores(1).map((l) => Array.from(l)),
  );
  t.equal(await store.get(key(2)), null);
  t.same(events, [
    ['hit', { op: 'get', backend: 'memory' }],
    ['miss', { op: 'get', backend: 'memory' }],
  ]);
});

t.test('callers cannot change what is cached through the arrays they pass or get', async (t) => {
  const store = new MemoryStore();
  const given = scores(1);
  await store.set(key(1), given);
  given[0].fill(99);
  const first = await store.get(key(1));
  first?.[1].sort();
  first?.[0].fill(42);
  const second = await store.get(key(1));
  t.equal(second?.[0][0], 1);
  t.equal(second?.[1][0], -1);
});

t.test('the byte budget evicts the least recently used entries', async (t) => {
  const one = entryBytes(cacheKey('', key(1)), scores(1));
  const store = new MemoryStore({ maxBytes: 3 * one });
  for (const n of [1, 2, 3]) await store.set(key(n), scores(n));
  t.equal(store.size, 3);
  t.equal(store.bytes, 3 * one);
  await store.get(key(1)); // 1 is now more recent than 2
  await store.set(key(4), scores(4));
  t.equal(await store.get(key(2)), null, 'the least recently used entry went');
  for (const n of [1, 3, 4]) t.ok(await store.get(key(n)), `entry ${n} stayed`);
  t.ok(store.bytes <= store.maxBytes);

  // A bigger entry (between one and two small ones) evicts as many as it needs, oldest first:
  // the gets above left the recency order 1, 3, 4.
  t.ok(entryBytes(cacheKey('', key(5)), scores(5, 400)) < 2 * one);
  await store.set(key(5), scores(5, 400));
  t.equal(store.size, 2);
  t.ok(store.bytes <= store.maxBytes);
  t.equal(await store.get(key(1)), null);
  t.equal(await store.get(key(3)), null);
  t.ok(await store.get(key(4)));
  t.ok(await store.get(key(5)));
});

t.test('an entry larger than the whole budget is not kept and evicts nothing', async (t) => {
  const store = new MemoryStore({ maxBytes: 10_000 });
  await store.set(key(1), scores(1, 100));
  await store.set(key(2), scores(2, 10_000));
  t.equal(await store.get(key(2)), null);
  t.ok(await store.get(key(1)));
});

t.test('setting a key again replaces it without counting it twice', async (t) => {
  const store = new MemoryStore();
  await store.set(key(1), scores(1));
  const bytes = store.bytes;
  await store.set(key(1), scores(7));
  t.equal(store.bytes, bytes);
  t.equal(store.size, 1);
  t.equal((await store.get(key(1)))?.[0][0], 7);
});

t.test('entries expire after the TTL', async (t) => {
  let now = 1_000_000;
  const store = new MemoryStore({ ttlSeconds: 10, now: () => now });
  await store.set(key(1), scores(1));
  now += 9_999;
  t.ok(await store.get(key(1)), 'still there just before the TTL');
  now += 1;
  t.equal(await store.get(key(1)), null, 'gone at the TTL');
  t.equal(store.size, 0, 'and its memory freed');
  t.equal(store.bytes, 0);
  await store.set(key(1), scores(1));
  t.ok(await store.get(key(1)), 'a new set starts a new lifetime');
});

t.test('a bad key is an error event, never a throw', async (t) => {
  const events: CacheEvent[] = [];
  const store = new MemoryStore({ onEvent: (e) => events.push(e) });
  const bad = { ...key(1), tokens: [0.5] };
  await store.set(bad, scores(1));
  t.equal(await store.get(bad), null);
  t.same(events, ['error', 'error']);
});

t.test('a throwing event listener does not break the store', async (t) => {
  const store = new MemoryStore({
    onEvent: () => {
      throw new Error('broken metrics');
    },
  });
  await store.set(key(1), scores(1));
  t.ok(await store.get(key(1)));
});
