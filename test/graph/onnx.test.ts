/**
 * Serialisation: graph outputs are named on their producing node (no Identity copy) where that
 * is sound, and kernels outside the op table serialise with their domain imported.
 */
import onnxProto from 'onnx-proto';
import t from 'tap';
import { Graph } from '../../src/graph/graph.js';
import { EXTERNAL_DATA_FILE, toOnnx, toOnnxFiles } from '../../src/graph/onnx.js';
import * as ort from 'onnxruntime-node';
import { f64, session } from '../helpers/ort.js';

const decode = (g: Graph) => onnxProto.onnx.ModelProto.decode(toOnnx(g));

t.test("outputs take over their producer's name; Identity only for inputs and repeated outputs", async (t) => {
  const g = new Graph('outputs');
  const x = g.input('x', 'float64', [3]);
  const y = g.mul(x, g.scalar(2, 'float64'));
  g.output(y, 'y');
  g.output(y, 'y_again'); // the same value twice: the second keeps a copy
  g.output(x, 'x_out'); // a graph input: kept as a copy
  const yOut = g.outputs[0];
  g.output(g.add(yOut, g.scalar(1, 'float64')), 'z'); // an output that other nodes read
  const model = decode(g);
  const nodes = model.graph!.node!;
  t.equal(nodes.filter((n) => n.opType === 'Identity').length, 2, 'one Identity per repeated output and per input');
  t.same(nodes.find((n) => n.opType === 'Mul')!.output, ['y'], 'the Mul writes the output directly');
  t.same(nodes.find((n) => n.opType === 'Add')!.input?.[0], 'y', 'readers of the output read it by its name');

  const s = await session(g);
  const out = await s.run({ x: f64([1, 2, 3], [3]) });
  t.same(Array.from(out.y.data as Float64Array), [2, 4, 6]);
  t.same(Array.from(out.y_again.data as Float64Array), [2, 4, 6]);
  t.same(Array.from(out.x_out.data as Float64Array), [1, 2, 3]);
  t.same(Array.from(out.z.data as Float64Array), [3, 5, 7]);
  await s.release();
});

t.test('kernels outside the op table carry their domain; op-table ops are refused', async (t) => {
  const g = new Graph('kernel');
  const x = g.input('x', 'float32', [2, 4]);
  const skip = g.input('skip', 'float32', [2, 4]);
  const gamma = g.constant(Float32Array.of(1, 1, 1, 1), [4], 'float32');
  const [normed, , , sum] = g.kernel(
    'com.microsoft.SkipSimplifiedLayerNormalization',
    [x, skip, gamma],
    [{ dtype: 'float32', shape: [2, 4] }, null, null, { dtype: 'float32', shape: [2, 4] }],
    { epsilon: 1e-6 },
  );
  g.output(normed, 'normed');
  g.output(sum, 'sum');
  t.throws(() => g.kernel('Add', [x, skip], [{ dtype: 'float32', shape: [2, 4] }]));
  const model = decode(g);
  t.ok(
    model.opsetImport!.some((o) => o.domain === 'com.microsoft'),
    'com.microsoft imported',
  );
  t.same(model.graph!.node![0].output, ['normed', '', '', 'sum'], 'optional outputs left out by empty names');

  const s = await session(g);
  const xs = [1, 2, 3, 4, -1, 0, 1, 2];
  const out = await s.run({
    x: new ort.Tensor('float32', Float32Array.from(xs), [2, 4]),
    skip: new ort.Tensor('float32', new Float32Array(8).fill(1), [2, 4]),
  });
  const sums = xs.map((v) => v + 1);
  t.same(Array.from(out.sum.data as Float32Array), sums);
  for (let r = 0; r < 2; r++) {
    const row = sums.slice(4 * r, 4 * r + 4);
    const rms = Math.sqrt(row.reduce((a, v) => a + v * v, 0) / 4 + 1e-6);
    for (const [i, v] of row.entries()) t.ok(Math.abs((out.normed.data as Float32Array)[4 * r + i] - v / rms) < 1e-5);
  }
  await s.release();
});

t.test('int8 constants serialise as INT8 and ONNX Runtime reads them signed', async (t) => {
  const g = new Graph('int8');
  const codes = g.constant(Int8Array.of(-128, -1, 0, 127), [4], 'int8', 'codes');
  g.output(g.cast(codes, 'float32'), 'y');
  t.equal(decode(g).graph!.initializer![0].dataType, onnxProto.onnx.TensorProto.DataType.INT8);
  const s = await session(g);
  const out = await s.run({});
  t.same(Array.from(out.y.data as Float32Array), [-128, -1, 0, 127]);
});

t.test('past the inline limit, initializers of a page or more go to the external data file, page-aligned', async (t) => {
  const g = new Graph('external');
  const x = g.input('x', 'float32', [3, 1]);
  const big = g.constant(
    Float32Array.from({ length: 3000 }, (_, i) => i),
    [1000, 3],
    'float32',
    'big',
  );
  const other = g.constant(
    Float32Array.from({ length: 1500 }, (_, i) => -i),
    [500, 3],
    'float32',
    'other',
  );
  const small = g.constant(Float32Array.of(1, 2, 3), [3], 'float32', 'small');
  g.output(g.matmul(big, x), 'y');
  g.output(g.matmul(other, x), 'w');
  g.output(g.mul(g.reshape(x, [3]), small), 'z');
  t.equal(toOnnxFiles(g).external, null, 'small models stay inline');
  const { model, external } = toOnnxFiles(g, 0);
  const tensors = onnxProto.onnx.ModelProto.decode(model).graph!.initializer!;
  const byName = (name: string) => tensors.find((x) => x.name === name)!;
  const entries = (name: string) => Object.fromEntries(byName(name).externalData!.map((e) => [e.key, e.value]));
  t.equal(byName('big').dataLocation, onnxProto.onnx.TensorProto.DataLocation.EXTERNAL);
  t.same(entries('big'), { location: EXTERNAL_DATA_FILE, offset: '0', length: '12000' });
  t.same(entries('other'), { location: EXTERNAL_DATA_FILE, offset: '12288', length: '6000' }, 'the next page');
  t.equal(byName('small').externalData!.length, 0, 'under a page: inline');
  t.equal(byName('small').rawData!.length, 12);
  t.same(
    external!.map((p) => [p.offset, p.bytes.length]),
    [
      [0, 12000],
      [12288, 6000],
    ],
  );
  const last = external!.at(-1)!;
  t.equal(last.offset + last.bytes.length, 18288, 'the data file ends with the last piece');
});
