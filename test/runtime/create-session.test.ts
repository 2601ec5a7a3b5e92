/** A model past protobuf's limit loads from a model file and its data file, and computes what the inline one does. */
import { readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import t from 'tap';
import { Graph } from '../../src/graph/graph.js';
import { createSession } from '../../src/runtime/create-session.js';

function graph(): Graph {
  const g = new Graph('external');
  const x = g.input('x', 'float32', [4, 1]);
  const w = g.constant(
    Float32Array.from({ length: 2048 * 4 }, (_, i) => Math.sin(i)),
    [2048, 4],
    'float32',
    'w',
  );
  const b = g.constant(Float32Array.of(0.5, -0.5), [2], 'float32', 'b');
  g.output(g.matmul(w, x), 'y');
  g.output(g.mul(g.reshape(x, [2, 2]), b), 'z');
  return g;
}

t.test('forced external data: the same outputs as inline, and no temporary files left', async (t) => {
  const ours = () => readdirSync(tmpdir()).filter((f) => f.startsWith('sparse-slm-model-')).length;
  const before = ours();
  const inline = await createSession(graph(), { intraOpNumThreads: 1 });
  const external = await createSession(graph(), { intraOpNumThreads: 1 }, 0);
  t.equal(ours(), before, 'the model and data files are removed once the session holds them');
  const x = new ort.Tensor('float32', Float32Array.of(1, 2, 3, 4), [4, 1]);
  const a = await inline.run({ x });
  const b = await external.run({ x });
  t.same(Array.from(b.y.data as Float32Array), Array.from(a.y.data as Float32Array));
  t.same(Array.from(b.z.data as Float32Array), Array.from(a.z.data as Float32Array));
  t.equal((b.y.data as Float32Array).length, 2048);
  await Promise.all([inline.release(), external.release()]);
});

t.test('only a model past the inline limit goes through files: with TMPDIR missing, it fails and an inline one loads', async (t) => {
  const saved = process.env.TMPDIR;
  process.env.TMPDIR = join(tmpdir(), 'sparse-slm-no-such-dir', 'below');
  t.teardown(() => {
    if (saved === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = saved;
  });
  await t.rejects(createSession(graph(), { intraOpNumThreads: 1 }, 0), /ENOENT/);
  const inline = await createSession(graph(), { intraOpNumThreads: 1 });
  t.ok(inline.inputNames.includes('x'));
  await inline.release();
});
