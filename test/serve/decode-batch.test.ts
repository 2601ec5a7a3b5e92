/**
 * The run queue every graph run of a model goes through: one run at a time; newcomers' first
 * prompt chunks go first; a long prompt's later chunks take turns with waiting decode steps.
 */
import t from 'tap';
import { RunQueue, type RunKind } from '../../src/serve/decode-batch.js';

t.test('first chunks go first; later chunks alternate with waiting steps', async (t) => {
  const queue = new RunQueue();
  const order: string[] = [];
  let release = () => {};
  const first = queue.run(
    () =>
      new Promise<void>((resolve) => {
        release = () => {
          order.push('running step');
          resolve();
        };
      }),
    'step',
  );
  const job = (name: string, kind: RunKind) =>
    queue.run(async () => {
      order.push(name);
    }, kind);
  const all = [
    job('step A', 'step'),
    job('later chunk 1', 'chunk'),
    job('later chunk 2', 'chunk'),
    job('first chunk X', 'first-chunk'),
    job('step B', 'step'),
    job('first chunk Y', 'first-chunk'),
  ];
  release();
  await Promise.all([first, ...all]);
  t.same(order, ['running step', 'first chunk X', 'first chunk Y', 'step A', 'later chunk 1', 'step B', 'later chunk 2']);
});

t.test('one run at a time, and a failed run neither stops the queue nor leaks into the next', async (t) => {
  const queue = new RunQueue();
  let running = 0;
  let most = 0;
  const job = async () => {
    running++;
    most = Math.max(most, running);
    await new Promise((resolve) => setTimeout(resolve, 2));
    running--;
  };
  const failing = queue.run(async () => {
    throw new Error('boom');
  }, 'first-chunk');
  const kinds = ['step', 'chunk', 'first-chunk'] as const;
  const rest = Array.from({ length: 6 }, (_, i) => queue.run(job, kinds[i % 3]));
  await t.rejects(failing, /boom/);
  await Promise.all(rest);
  t.equal(most, 1);
});
