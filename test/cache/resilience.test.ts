/**
 * Redis slow, down and restarted, on a redis-server of the test's own (never the shared one):
 * the store answers quickly without it, never throws, logs each transition once, and comes
 * back by itself. (hung.test.ts has the circuit breaker in detail.)
 */
import t from 'tap';
import { RedisStore } from '../../src/cache/redis.js';
import type { ActivationKey, CacheEvent, LayerScores } from '../../src/cache/types.js';
import { RedisChild, waitFor } from '../helpers/redis-server.js';

const server = await RedisChild.start(t);
const events: CacheEvent[] = [];
const log: string[] = [];
const store = new RedisStore({
  url: server.url,
  // The default deadlines (get 25 ms, set 250 ms) and breaker threshold (3): what the server
  // runs with; a short cool-down so that recovery is quick to see.
  breakerCooldownMs: 200,
  maxReconnectDelayMs: 500,
  onEvent: (e) => events.push(e),
  logger: { warn: (_obj, msg) => log.push(`warn: ${msg}`), info: (_obj, msg) => log.push(`info: ${msg}`) },
});
t.teardown(() => store.close());

const key = (n: number): ActivationKey => ({ modelHash: 'm', metric: 'gxo', tokens: [n] });
const scores: LayerScores = [Float32Array.from([1, 2, 3])];

/** Runs `f` and returns how long it took, in ms. */
async function timed(f: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await f();
  return performance.now() - started;
}

t.test('works while the server is up', async (t) => {
  t.ok(await store.ready(3000));
  await store.set(key(1), scores);
  t.ok(await store.get(key(1)));
  t.same(log, [], 'a healthy start logs nothing');
});

t.test('a server that stops answering costs a lookup its 25 ms deadline, then nothing once the breaker opens', async (t) => {
  server.signal('SIGSTOP');
  try {
    events.length = 0;
    let got: LayerScores | null = scores;
    const ms = await timed(async () => {
      got = await store.get(key(1));
    });
    t.equal(got, null);
    t.ok(ms < 500, `get gave up after ${ms.toFixed(0)} ms`);
    t.ok((await timed(() => store.set(key(2), scores))) < 500, 'so does set, without throwing');
    await store.get(key(1));
    t.same(events, ['error', 'error', 'error']);
    t.match(store.status(), { connected: true, breaker: 'open', up: false }, 'three failures in a row opened the breaker');
    t.ok((await timed(() => store.get(key(1)))) < store.timeoutMs, 'so the next lookup does not wait at all');
    t.equal(log.filter((l) => l.startsWith('warn')).length, 1, 'one warning for four failures');
  } finally {
    server.signal('SIGCONT');
  }
  t.ok(await waitFor(async () => (await store.get(key(1))) !== null, 3000), 'hits again once it answers');
  t.match(log, [/^warn: Redis unavailable/, /^info: Redis available again/]);
  t.match(store.status(), { connected: true, breaker: 'closed', up: true });
});

t.test('a killed server: fast errors, no throws, one warning', async (t) => {
  log.length = 0;
  await server.stop();
  // The client notices the closed socket at once; give it that moment.
  await waitFor(async () => log.length > 0, 1000, 10);
  events.length = 0;
  for (let i = 0; i < 5; i++) {
    const ms = await timed(async () => t.equal(await store.get(key(1)), null));
    t.ok(ms < 500, `get ${i} returned in ${ms.toFixed(0)} ms`);
    t.ok((await timed(() => store.set(key(1), scores))) < 500, `set ${i} returned quickly`);
  }
  t.same(events, Array(10).fill('error'), 'every get and set counted as an error');
  t.equal(log.length, 1, 'logged once, not per request');
  t.match(log[0], /^warn: Redis unavailable/);
  t.match(store.status(), { connected: false, breaker: 'closed', up: false }, 'down; the breaker is for a Redis that is connected and silent');
});

t.test('a restarted server is used again without any action', async (t) => {
  log.length = 0;
  await server.restart();
  // The restarted server is empty (no persistence): poll with set-then-get until it hits.
  const back = await waitFor(
    async () => {
      await store.set(key(3), scores);
      return (await store.get(key(3))) !== null;
    },
    5000,
    100,
  );
  t.ok(back, 'reconnected and hitting again');
  t.match(log, [/^info: Redis available again/]);
  t.equal(log.length, 1);
  t.equal(store.status().up, true);
});

t.test('closing while Redis is down does not hang', async (t) => {
  const orphan = new RedisStore({ url: 'redis://127.0.0.1:1', maxReconnectDelayMs: 100 });
  t.equal(await orphan.ready(200), false, 'never becomes ready');
  t.equal(await orphan.get(key(1)), null);
  t.ok((await timed(() => orphan.close())) < 500);
});
