/**
 * The run queue every graph run of a model goes through: one run at a time; a prompt chunk goes
 * before a waiting decode step, but never two chunks in a row while a step waits.
 */
import t from 'tap';
import { RunQueue, type RunKind } from '../../src/serve/decode-batch.js';

t.test('prompt chunks go first, alternating with waiting steps', async (t) => {
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
  const all = [job('step A', 'step'), job('chunk 1', 'prefill'), job('chunk 2', 'prefill'), job('step B', 'step'), job('chunk 3', 'prefill')];
  release();
  await Promise.all([first, ...all]);
  t.same(order, ['running step', 'chunk 1', 'step A', 'chunk 2', 'step B', 'chunk 3']);
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
  }, 'prefill');
  const rest = Array.from({ length: 6 }, (_, i) => queue.run(job, i % 2 === 0 ? 'step' : 'prefill'));
  await t.rejects(failing, /boom/);
  await Promise.all(rest);
  t.equal(most, 1);
});
