import t from 'tap';
import { SessionPool } from '../../src/runtime/pool.js';

class Thing {
  released = false;
  constructor(readonly name: string) {}
  async release() {
    this.released = true;
  }
}

t.test('builds once per key and reports the bytes it holds', async (t) => {
  const pool = new SessionPool();
  let builds = 0;
  const build = async () => new Thing(`a${++builds}`);
  const [x, y] = await Promise.all([pool.acquire('a', 10, build), pool.acquire('a', 10, build)]);
  t.equal(builds, 1, 'concurrent first uses share one build');
  t.equal(x.value, y.value);
  t.equal(pool.bytes, 10);
  t.equal(pool.bytesOf('a'), 10);
  t.equal(pool.bytesOf('b'), 0);
  x.done();
  y.done();
});

t.test('over budget, the least recently used idle session is released', async (t) => {
  const pool = new SessionPool(25);
  const a = await pool.acquire('a', 10, async () => new Thing('a'));
  const b = await pool.acquire('b', 10, async () => new Thing('b'));
  a.done();
  b.done();
  (await pool.acquire('a', 10, async () => new Thing('a again'))).done(); // a is now more recent than b
  const c = await pool.acquire('c', 10, async () => new Thing('c'));
  t.same(
    pool
      .info()
      .map((e) => e.key)
      .sort(),
    ['a', 'c'],
    'b, least recently used, went',
  );
  await new Promise((r) => setImmediate(r));
  t.ok(b.value.released, 'and was released');
  t.notOk(a.value.released);
  c.done();
});

t.test('a session in use is never evicted; the budget is restored when uses end', async (t) => {
  const pool = new SessionPool(15);
  const a = await pool.acquire('a', 10, async () => new Thing('a'));
  const b = await pool.acquire('b', 10, async () => new Thing('b'));
  t.equal(pool.bytes, 20, 'over budget while both are in use');
  a.done();
  t.same(
    pool.info().map((e) => e.key),
    ['b'],
  );
  b.done();
  t.equal(pool.bytes, 10);
});

t.test('a failed build leaves nothing behind, and the next use builds again', async (t) => {
  const pool = new SessionPool();
  await t.rejects(
    pool.acquire('x', 5, async () => {
      throw new Error('no memory');
    }),
    /no memory/,
  );
  t.notOk(pool.has('x'));
  const ok = await pool.acquire('x', 5, async () => new Thing('x'));
  t.equal(ok.value.name, 'x');
  ok.done();
  await pool.close();
  t.ok(ok.value.released, 'close releases everything');
});
