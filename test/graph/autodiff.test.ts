/**
 * Every op's VJP against central finite differences, in float64.
 *
 * Each case builds y = op(x...), the scalar loss L = sum(y * R) with a fixed random R, and
 * compares autodiff's dL/dx with (L(x + h e_i) - L(x - h e_i)) / 2h for every element. With
 * h = 1e-5 in float64 the truncation error is O(h^2 * f''') ~ 1e-10 and rounding ~ 1e-16/h ~
 * 1e-11, so a tolerance of 1e-6 (relative to max(1, |grad|)) fails on any wrong VJP yet never
 * on a right one.
 */
import t from 'tap';
import { grad } from '../../src/graph/autodiff.js';
import { Graph } from '../../src/graph/graph.js';
import type { Shape, Value } from '../../src/graph/types.js';
import { f64, session, uniform } from '../helpers/ort.js';

interface Case {
  name: string;
  inputs: { shape: number[]; declared?: Shape; positive?: boolean }[];
  build(g: Graph, xs: Value[]): Value;
  /** The output's concrete shape, where it has symbolic dims. */
  yShape?: number[];
  h?: number;
  tol?: number;
}

const STEP = 1e-5;
const TOL = 1e-6;

async function checkCase(c: Case, seed: number) {
  const H = c.h ?? STEP;
  const g = new Graph(c.name);
  const xs = c.inputs.map((inp, i) => g.input(`x${i}`, 'float64', inp.declared ?? inp.shape));
  const y = c.build(g, xs);
  const shape =
    c.yShape ??
    y.shape.map((d) => {
      if (typeof d !== 'number') throw new Error(`${c.name}: give yShape for a symbolic output`);
      return d;
    });
  const size = shape.reduce((p, d) => p * d, 1);
  const r = g.constant(Float64Array.from(uniform(size, seed + 99)), shape, 'float64');
  const loss = g.reduceSum(g.mul(y, r), [...shape.keys()], false);
  g.output(loss, 'loss');
  for (const [i, d] of grad(g, loss, xs).entries()) g.output(d, `grad${i}`);
  const s = await session(g);

  const values = c.inputs.map((inp, i) =>
    uniform(
      inp.shape.reduce((p, d) => p * d, 1),
      seed + i,
      inp.positive ? 0.5 : -1,
      inp.positive ? 2 : 1,
    ),
  );
  const feeds = () => Object.fromEntries(values.map((v, i) => [`x${i}`, f64(v, c.inputs[i].shape)]));
  const out = await s.run(feeds());
  const lossAt = async () => ((await s.run(feeds())).loss.data as Float64Array)[0];

  let worst = 0;
  for (let i = 0; i < values.length; i++) {
    const analytic = out[`grad${i}`].data as Float64Array;
    t.equal(analytic.length, values[i].length, `${c.name}: grad ${i} has the input's size`);
    for (let j = 0; j < values[i].length; j++) {
      const x0 = values[i][j];
      values[i][j] = x0 + H;
      const up = await lossAt();
      values[i][j] = x0 - H;
      const down = await lossAt();
      values[i][j] = x0;
      const numeric = (up - down) / (2 * H);
      worst = Math.max(worst, Math.abs(numeric - analytic[j]) / Math.max(1, Math.abs(numeric)));
    }
  }
  t.ok(worst < (c.tol ?? TOL), `${c.name}: max relative error ${worst.toExponential(2)}`);
}

const cases: Case[] = [
  { name: 'Add (broadcast)', inputs: [{ shape: [2, 1, 3] }, { shape: [4, 1] }], build: (g, [a, b]) => g.add(a, b) },
  { name: 'Sub (broadcast)', inputs: [{ shape: [2, 3] }, { shape: [2, 1] }], build: (g, [a, b]) => g.sub(a, b) },
  { name: 'Mul (broadcast)', inputs: [{ shape: [2, 3] }, { shape: [3] }], build: (g, [a, b]) => g.mul(a, b) },
  { name: 'Mul (same input twice)', inputs: [{ shape: [2, 3] }], build: (g, [a]) => g.mul(a, a) },
  { name: 'Div (broadcast)', inputs: [{ shape: [2, 3] }, { shape: [1, 3], positive: true }], build: (g, [a, b]) => g.div(a, b) },
  { name: 'Neg', inputs: [{ shape: [5] }], build: (g, [a]) => g.neg(a) },
  { name: 'Sqrt', inputs: [{ shape: [5], positive: true }], build: (g, [a]) => g.sqrt(a) },
  { name: 'Reciprocal', inputs: [{ shape: [5], positive: true }], build: (g, [a]) => g.reciprocal(a) },
  { name: 'Exp', inputs: [{ shape: [5] }], build: (g, [a]) => g.exp(a) },
  { name: 'Log', inputs: [{ shape: [5], positive: true }], build: (g, [a]) => g.log(a) },
  { name: 'Sigmoid', inputs: [{ shape: [2, 3] }], build: (g, [a]) => g.sigmoid(a) },
  { name: 'Tanh', inputs: [{ shape: [2, 3] }], build: (g, [a]) => g.tanh(a) },
  { name: 'Softmax (last axis)', inputs: [{ shape: [2, 4] }], build: (g, [a]) => g.softmax(a, -1) },
  { name: 'Softmax (axis 0)', inputs: [{ shape: [3, 2] }], build: (g, [a]) => g.softmax(a, 0) },
  // Through float32 and back, linear so that a large step is exact: the float32 rounding
  // (~6e-8) over 2h = 2e-2 bounds the error by ~3e-6.
  { name: 'Cast', inputs: [{ shape: [4] }], build: (g, [a]) => g.cast(g.cast(a, 'float32'), 'float64'), h: 1e-2, tol: 1e-4 },
  {
    name: 'Where (broadcast branches)',
    inputs: [{ shape: [2, 3] }, { shape: [3] }],
    build: (g, [a, b]) => g.where(g.lessOrEqual(a, g.scalar(0, 'float64')), a, b),
  },
  { name: 'ReduceSum (keepdims)', inputs: [{ shape: [2, 3, 2] }], build: (g, [a]) => g.reduceSum(a, [1], true) },
  { name: 'ReduceSum (two axes, no keepdims)', inputs: [{ shape: [2, 3, 2] }], build: (g, [a]) => g.reduceSum(a, [0, 2], false) },
  { name: 'ReduceMean (keepdims)', inputs: [{ shape: [2, 3] }], build: (g, [a]) => g.reduceMean(a, [-1], true) },
  { name: 'ReduceMean (no keepdims)', inputs: [{ shape: [2, 3] }], build: (g, [a]) => g.reduceMean(a, [0], false) },
  {
    name: 'ReduceMean (over a symbolic dim)',
    inputs: [{ shape: [3, 2], declared: ['n', 2] }],
    build: (g, [a]) => g.reduceMean(a, [0], true),
    yShape: [1, 2],
  },
  { name: 'MatMul', inputs: [{ shape: [2, 3] }, { shape: [3, 4] }], build: (g, [a, b]) => g.matmul(a, b) },
  { name: 'MatMul (batched @ shared)', inputs: [{ shape: [2, 2, 3] }, { shape: [3, 2] }], build: (g, [a, b]) => g.matmul(a, b) },
  { name: 'MatMul (broadcast batches)', inputs: [{ shape: [2, 1, 2, 3] }, { shape: [3, 3, 2] }], build: (g, [a, b]) => g.matmul(a, b) },
  { name: 'Transpose', inputs: [{ shape: [2, 3, 4] }], build: (g, [a]) => g.transpose(a, [2, 0, 1]) },
  { name: 'Reshape', inputs: [{ shape: [2, 6] }], build: (g, [a]) => g.reshape(a, [3, -1]) },
  { name: 'Unsqueeze', inputs: [{ shape: [2, 3] }], build: (g, [a]) => g.unsqueeze(a, [1]) },
  { name: 'Concat', inputs: [{ shape: [2, 2] }, { shape: [2, 3] }], build: (g, [a, b]) => g.concat([a, b], 1) },
  {
    name: 'Concat (symbolic dim)',
    inputs: [{ shape: [2, 2], declared: [2, 'p'] }, { shape: [2, 1] }],
    build: (g, [a, b]) => g.concat([a, b], -1),
    yShape: [2, 3],
  },
  { name: 'Slice', inputs: [{ shape: [3, 5] }], build: (g, [a]) => g.slice(a, [1, -3], [3, 4], [0, 1]) },
  {
    name: 'Gather (repeated rows)',
    inputs: [{ shape: [5, 3] }],
    build: (g, [a]) => g.gather(a, g.const([1, 3, 1]), 0),
  },
  {
    name: 'StopGradient (logsumexp with a detached max)',
    inputs: [{ shape: [2, 4] }],
    build: (g, [a]) => {
      const m = g.stopGradient(g.reduceMax(a, [-1], true));
      return g.add(m, g.log(g.reduceSum(g.exp(g.sub(a, m)), [-1], true)));
    },
  },
];

t.test('each VJP matches central finite differences', async (t) => {
  let seed = 1;
  for (const c of cases) {
    await t.test(c.name, () => {
      seed += 10;
      return checkCase(c, seed);
    });
  }
});

t.test('grad refuses a non-scalar loss and a loss that ignores wrt', async (t) => {
  const g = new Graph();
  const x = g.input('x', 'float64', [2]);
  const z = g.input('z', 'float64', [2]);
  t.throws(() => grad(g, g.mul(x, x), [x]), /scalar/);
  t.throws(() => grad(g, g.reduceSum(g.mul(z, z), [0], false), [x]), /does not depend/);
});
