import t from 'tap';
import { isMetric, meanOverPositions, METRICS, unitScores } from '../../src/sparsity/metrics.js';

// Two positions of a three-unit layer.
const a = Float32Array.from([1, -2, 0.5, 3, 0, -1]);
const g = Float32Array.from([0.5, 0.25, -2, 0, 4, -3]);
const norm0 = Math.sqrt(0.5 ** 2 + 0.25 ** 2 + 2 ** 2);
const norm1 = Math.sqrt(0 + 16 + 9);

t.test('each metric follows its formula, per position and unit', async (t) => {
  const close = (actual: Float64Array, expected: number[], name: string) =>
    t.ok(
      expected.every((v, i) => Math.abs(actual[i] - v) < 1e-6),
      `${name}: ${Array.from(actual)} vs ${expected}`,
    );
  close(unitScores('magnitude', { a, g }, 3), [1, 2, 0.5, 3, 0, 1], 'magnitude');
  close(unitScores('gradient', { a, g }, 3), [-0.5, -0.25, 2, -0, -4, 3], 'gradient');
  close(unitScores('gxo', { a, g }, 3), [-0.5, 0.5, 1, -0, -0, -3], 'gxo');
  close(unitScores('snip', { a, g }, 3), [0.5, 0.5, 1, 0, 0, 3], 'snip');
  close(
    unitScores('cor_gxo', { a, g }, 3),
    [-0.5 + 0.5 * 1 * norm0, 0.5 + 0.5 * 2 * norm0, 1 + 0.5 * 0.5 * norm0, 0 + 0.5 * 3 * norm1, 0, -3 + 0.5 * 1 * norm1],
    'cor_gxo',
  );
});

t.test('scores aggregate to one per unit as the mean over positions', async (t) => {
  t.same(Array.from(meanOverPositions(Float64Array.from([1, 2, 3, 3, 4, 5]), 3)), [2, 3, 4]);
});

t.test('metric names are the six of the paper', async (t) => {
  t.same([...METRICS], ['magnitude', 'gradient', 'gxo', 'snip', 'ig', 'cor_gxo']);
  t.ok(isMetric('cor_gxo'));
  t.notOk(isMetric('random'));
});
