import t from 'tap';
import { createRng } from '../../src/random.js';
import { argmax, logSoftmax, sampleToken, topIndices } from '../../src/runtime/sampling.js';

const logits = Float32Array.from([1, 3, 2, 0.5, 3.5, -1]);

t.test('greedy is the argmax', async (t) => {
  t.equal(argmax(logits), 4);
  t.equal(sampleToken(logits, { temperature: 0, topP: 1, topK: -1 }, createRng(1)), 4);
});

t.test('logSoftmax normalises and keeps order', async (t) => {
  const lp = logSoftmax(logits);
  t.ok(Math.abs(Array.from(lp).reduce((s, v) => s + Math.exp(v), 0) - 1) < 1e-12);
  t.ok(Math.abs(lp[1] - lp[2] - 1) < 1e-12, 'differences of logits are kept');
  t.ok(Number.isFinite(logSoftmax(Float32Array.from([1000, 0]))[1]), 'stable for large logits');
});

t.test('topIndices returns the k largest, largest first', async (t) => {
  t.same(topIndices(logits, 3), [4, 1, 2]);
  t.same(topIndices(logits, 10), [4, 1, 2, 0, 3, 5]);
  t.same(topIndices([1, 1, 1], 2), [0, 1], 'ties keep the lower index');
});

t.test('the same seed draws the same tokens', async (t) => {
  const draw = (seed: number) => {
    const rand = createRng(seed);
    return Array.from({ length: 50 }, () => sampleToken(logits, { temperature: 1, topP: 1, topK: -1 }, rand));
  };
  t.same(draw(7), draw(7));
  t.not(draw(7).join(), draw(8).join(), 'another seed draws differently');
});

t.test('top_k and top_p restrict the candidates', async (t) => {
  const rand = createRng(3);
  const seen = (settings: { temperature: number; topP: number; topK: number }) =>
    new Set(Array.from({ length: 2000 }, () => sampleToken(logits, settings, rand)));
  t.same([...seen({ temperature: 1, topP: 1, topK: 2 })].sort(), [1, 4], 'top_k 2: the two most likely');
  t.same([...seen({ temperature: 1, topP: 1, topK: 1 })], [4], 'top_k 1 is greedy');
  // p(4) = 0.49, p(1) = 0.30: 0.6 needs both, 0.3 only the first.
  t.same([...seen({ temperature: 1, topP: 0.6, topK: -1 })].sort(), [1, 4]);
  t.same([...seen({ temperature: 1, topP: 0.3, topK: -1 })], [4]);
  t.equal(seen({ temperature: 1, topP: 1, topK: -1 }).size, 6, 'no restriction: every token appears');
});

t.test('sampling follows the softmax of logits / temperature', async (t) => {
  const rand = createRng(11);
  const n = 20000;
  const counts = new Array(6).fill(0);
  for (let i = 0; i < n; i++) counts[sampleToken(logits, { temperature: 2, topP: 1, topK: -1 }, rand)]++;
  const p = Array.from(logSoftmax(Array.from(logits, (v) => v / 2)), Math.exp);
  // Binomial standard error at n = 20000 is <= 0.0036; 5 sigma.
  t.ok(
    counts.every((c, i) => Math.abs(c / n - p[i]) < 0.018),
    `frequencies ${counts.map((c) => (c / n).toFixed(3))} vs ${p.map((x) => x.toFixed(3))}`,
  );
});
