/** src/cache/breaker.ts, on a fake clock: when it opens, what it lets through, how it closes. */
import t from 'tap';
import { CircuitBreaker, type BreakerState } from '../../src/cache/breaker.js';

function fixture(options: { failureThreshold?: number; cooldownMs?: number } = {}) {
  let clock = 1_000;
  const changes: string[] = [];
  const breaker = new CircuitBreaker({
    ...options,
    now: () => clock,
    onStateChange: (to: BreakerState, from: BreakerState) => changes.push(`${from}->${to}`),
  });
  return { breaker, changes, advance: (ms: number) => (clock += ms) };
}

t.test('defaults: 3 failures, 5 s', async (t) => {
  const breaker = new CircuitBreaker();
  t.equal(breaker.failureThreshold, 3);
  t.equal(breaker.cooldownMs, 5000);
  t.equal(breaker.state, 'closed');
});

t.test('opens after the threshold of consecutive failures, not before', async (t) => {
  const { breaker, changes } = fixture();
  breaker.failure();
  breaker.failure();
  t.equal(breaker.state, 'closed');
  t.ok(breaker.allow());
  breaker.failure();
  t.equal(breaker.state, 'open');
  t.equal(breaker.opens, 1);
  t.notOk(breaker.allow(), 'open: nothing goes through');
  t.same(changes, ['closed->open']);
});

t.test('a success between failures starts the count again', async (t) => {
  const { breaker } = fixture();
  breaker.failure();
  breaker.failure();
  breaker.success();
  breaker.failure();
  breaker.failure();
  t.equal(breaker.state, 'closed', 'four failures, never three in a row');
  breaker.failure();
  t.equal(breaker.state, 'open');
});

t.test('after the cool-down exactly one trial goes through; its success closes', async (t) => {
  const { breaker, changes, advance } = fixture({ cooldownMs: 500 });
  for (let i = 0; i < 3; i++) breaker.failure();
  advance(499);
  t.notOk(breaker.allow(), 'still cooling down');
  t.equal(breaker.state, 'open');
  advance(1);
  t.ok(breaker.allow(), 'the trial');
  t.equal(breaker.state, 'half-open');
  t.notOk(breaker.allow(), 'only one trial at a time');
  t.notOk(breaker.allow());
  breaker.success();
  t.equal(breaker.state, 'closed');
  t.ok(breaker.allow());
  t.ok(breaker.allow());
  t.same(changes, ['closed->open', 'open->half-open', 'half-open->closed']);
  t.equal(breaker.opens, 1);
});

t.test('a failed trial reopens for a whole new cool-down', async (t) => {
  const { breaker, changes, advance } = fixture({ cooldownMs: 500 });
  for (let i = 0; i < 3; i++) breaker.failure();
  advance(500);
  t.ok(breaker.allow());
  advance(20);
  breaker.failure();
  t.equal(breaker.state, 'open', 'one failure is enough when half-open');
  t.equal(breaker.opens, 2);
  advance(499);
  t.notOk(breaker.allow(), 'the cool-down counts from the reopening');
  advance(1);
  t.ok(breaker.allow());
  breaker.success();
  t.equal(breaker.state, 'closed');
  t.same(changes, ['closed->open', 'open->half-open', 'half-open->open', 'open->half-open', 'half-open->closed']);
});

t.test('after closing, the threshold applies again from zero', async (t) => {
  const { breaker, advance } = fixture({ cooldownMs: 10 });
  for (let i = 0; i < 3; i++) breaker.failure();
  advance(10);
  breaker.allow();
  breaker.success();
  breaker.failure();
  breaker.failure();
  t.equal(breaker.state, 'closed');
  breaker.failure();
  t.equal(breaker.state, 'open');
});

t.test('reports while open (calls allowed before it opened) change nothing', async (t) => {
  const { breaker, advance } = fixture({ cooldownMs: 100 });
  for (let i = 0; i < 3; i++) breaker.failure();
  breaker.success();
  t.equal(breaker.state, 'open', 'a late success does not close it: the trial decides');
  breaker.failure();
  t.equal(breaker.opens, 1, 'a late failure does not reopen it');
  advance(100);
  t.ok(breaker.allow(), 'nor push the cool-down back');
});

t.test('a trial that never reports does not wedge it half-open', async (t) => {
  const { breaker, advance } = fixture({ cooldownMs: 100 });
  for (let i = 0; i < 3; i++) breaker.failure();
  advance(100);
  t.ok(breaker.allow());
  advance(99);
  t.notOk(breaker.allow());
  advance(1);
  t.ok(breaker.allow(), 'a new trial after another cool-down');
});

t.test('threshold 1 opens on the first failure', async (t) => {
  const { breaker } = fixture({ failureThreshold: 1 });
  breaker.failure();
  t.equal(breaker.state, 'open');
});

t.test('a throwing listener does not break it', async (t) => {
  const breaker = new CircuitBreaker({
    onStateChange: () => {
      throw new Error('listener bug');
    },
  });
  for (let i = 0; i < 3; i++) breaker.failure();
  t.equal(breaker.state, 'open');
});

t.test('bad options are refused', async (t) => {
  t.throws(() => new CircuitBreaker({ failureThreshold: 0 }), RangeError);
  t.throws(() => new CircuitBreaker({ failureThreshold: 1.5 }), RangeError);
  t.throws(() => new CircuitBreaker({ cooldownMs: -1 }), RangeError);
  t.throws(() => new CircuitBreaker({ cooldownMs: Number.NaN }), RangeError);
});
