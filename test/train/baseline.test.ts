import t from 'tap';
import { BigramModel, bitsPerByte } from '../../src/train/baseline.js';

t.test('the bigram model is a distribution and learns pairs', async (t) => {
  const stream = Int32Array.from([0, 1, 2, 0, 1, 2, 0, 1, 3]);
  const m = new BigramModel(5, stream);
  for (const v of [0, 1, 4]) {
    const sum = [0, 1, 2, 3, 4].reduce((s, w) => s + m.prob(v, w), 0);
    t.ok(Math.abs(sum - 1) < 1e-12, `p(. | ${v}) sums to 1`);
  }
  t.ok(m.prob(0, 1) > m.prob(0, 2), 'seen pairs are more likely');
  t.ok(m.prob(4, 4) > 0, 'unseen pairs keep probability');
  const lambda = m.tune(Int32Array.from([0, 1, 2, 0, 1, 2]));
  t.ok(lambda > 0.5, `held-out text like the training text favours the bigram (lambda ${lambda})`);
});

t.test('bits per byte converts nats over bytes', async (t) => {
  t.equal(bitsPerByte(Math.LN2 * 10, 5), 2);
});
