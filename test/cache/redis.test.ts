/**
 * RedisStore against the real Redis on 127.0.0.1:6379 (REDIS_URL's usual home in development
 * and CI), under a unique key prefix per run that is deleted at the end.
 */
import t from 'tap';
import { Redis } from 'ioredis';
import type { CacheEventInfo } from '../../src/cache/events.js';
import { encodeScores } from '../../src/cache/codec.js';
import { cacheKey } from '../../src/cache/key.js';
import { RedisStore } from '../../src/cache/redis.js';
import type { ActivationKey, CacheEvent, LayerScores } from '../../src/cache/types.js';
import { SHARED_REDIS_URL, uniquePrefix } from '../helpers/redis-server.js';

const prefix = uniquePrefix(t);
const raw = new Redis(SHARED_REDIS_URL);
t.teardown(() => raw.disconnect());

const events: Array<[CacheEvent, CacheEventInfo]> = [];
const warnings: string[] = [];
const store = new RedisStore({
  url: SHARED_REDIS_URL,
  prefix,
  ttlSeconds: 120,
  onEvent: (e, info) => events.push([e, info]),
  logger: { warn: (_obj, msg) => warnings.push(msg), info: () => {} },
});
t.teardown(() => store.close());
t.ok(await store.ready(2000), 'connects to the Redis on 6379 (is one running?)');

const key = (n: number): ActivationKey => ({ modelHash: 'cafe01', metric: 'corrected-gxo', tokens: [n, 7, 7] });
// SmolLM2-135M's shape would be 30 x 1536; smaller keeps the test light, same code path.
const scores: LayerScores = Array.from({ length: 4 }, (_, l) => Float32Array.from({ length: 96 }, (_, i) => Math.sin(l * 100 + i)));
const asArrays = (s: LayerScores | null): number[][] | null => s?.map((l) => Array.from(l)) ?? null;

t.beforeEach(() => {
  events.length = 0;
});

t.test('a set value is served back exactly, as a hit', async (t) => {
  await store.set(key(1), scores);
  t.same(asArrays(await store.get(key(1))), asArrays(scores));
  t.same(events, [['hit', { op: 'get', backend: 'redis' }]]);
});

t.test('an unknown prompt is a miss', async (t) => {
  t.equal(await store.get(key(2)), null);
  t.same(events, [['miss', { op: 'get', backend: 'redis' }]]);
});

t.test('the value lives under the namespaced key, with the TTL set', async (t) => {
  await store.set(key(3), scores);
  const id = cacheKey(prefix, key(3));
  t.match(id, new RegExp(`^${prefix}v1:cafe01:corrected-gxo:[0-9a-f]{64}$`));
  const pttl = await raw.pttl(id);
  t.ok(pttl > 0 && pttl <= 120_000, `PTTL ${pttl} ms is within the 120 s TTL`);
});

t.test('the value is compact: 4 bytes per score plus the small header', async (t) => {
  await store.set(key(4), scores);
  const values = 4 * 96;
  const header = 8 + 4 * 4;
  t.equal(await raw.strlen(cacheKey(prefix, key(4))), 4 * values + header);
});

t.test('a value the codec rejects is an error and a miss, never returned', async (t) => {
  const id = cacheKey(prefix, key(5));
  await raw.set(id, 'definitely not scores', 'EX', 60);
  t.equal(await store.get(key(5)), null);
  await raw.set(id, encodeScores(scores).subarray(0, 50), 'EX', 60);
  t.equal(await store.get(key(5)), null, 'a truncated value too');
  t.same(
    events.map(([e]) => e),
    ['error', 'error'],
  );
  t.same(warnings, [], 'a bad value is not an outage: nothing is logged as one');

  await store.set(key(5), scores);
  t.same(asArrays(await store.get(key(5))), asArrays(scores), 'the next set repairs it');
});

t.test('a bad key is an error, not a throw', async (t) => {
  const bad = { ...key(6), tokens: [Infinity] };
  await store.set(bad, scores);
  t.equal(await store.get(bad), null);
  t.same(
    events.map(([e, info]) => `${info.op}:${e}`),
    ['set:error', 'get:error'],
  );
});

t.test('nothing is logged while Redis is healthy', async (t) => {
  t.same(warnings, []);
});

t.test('after close, get and set neither throw nor hang', async (t) => {
  const other = new RedisStore({ url: SHARED_REDIS_URL, prefix });
  t.ok(await other.ready(2000));
  await other.close();
  await other.close(); // closing twice is harmless
  t.equal(await other.get(key(1)), null);
  await other.set(key(1), scores);
});
