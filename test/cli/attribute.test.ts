import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { writeTestModel } from '../../src/arch/testmodel.js';
import { runCli } from '../helpers/cli.js';
import { STORIES_DIR } from '../helpers/stories.js';

interface AttributeOutput {
  model: string;
  metric: string;
  tokens: number[];
  layers: { mlp: number[]; heads: number[] }[];
  raw?: { a: number[][]; g: number[][] }[];
}

t.test('attribute --json --raw on stories260K: one score per unit, consistent with the raw rows', async (t) => {
  const r = runCli('attribute', ['--model', STORIES_DIR, '--prompt', 'Once upon a time', '--json', '--raw']);
  t.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout) as AttributeOutput;
  t.equal(out.metric, 'cor_gxo', 'Corrected GxO by default');
  t.same(out.tokens, [1, 403, 407, 261, 378], 'the prompt ids of reference.json');
  t.equal(out.layers.length, 5);
  t.ok(out.layers.every((l) => l.mlp.length === 172 && l.heads.length === 8));
  const raw = out.raw!;
  t.equal(raw.length, 5);
  t.ok(raw.every((l) => l.a.length === 5 && l.a[0].length === 172 && l.g.length === 5));
  // The aggregated Corrected-GxO score of a neuron is the mean over positions of
  // -g a + 0.5 |a| |g_layer|: recompute it from the raw rows (float32 inputs, so 1e-6).
  const { a, g } = raw[2];
  const expected = a[0].map((_, i) =>
    a.reduce((sum, row, p) => {
      const norm = Math.hypot(...g[p]);
      return sum + (-g[p][i] * row[i] + 0.5 * Math.abs(row[i]) * norm) / a.length;
    }, 0),
  );
  const worst = Math.max(...expected.map((v, i) => Math.abs(v - out.layers[2].mlp[i])));
  t.ok(worst < 1e-6, `aggregate matches raw rows (max diff ${worst})`);
});

t.test('attribute with a target on a generated model, for every metric', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'attribute-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  await writeTestModel(dir, { hidden: 32, intermediate: 48, layers: 2, heads: 4, kvHeads: 2, headDim: 8, vocab: 300, maxPositions: 64, seed: 5 });
  for (const metric of ['magnitude', 'gradient', 'gxo', 'snip', 'ig', 'cor_gxo']) {
    const r = runCli('attribute', ['--model', dir, '--prompt', 'hello there', '--target', ' friend', '--metric', metric, '--json']);
    t.equal(r.status, 0, `${metric}: ${r.stderr}`);
    const out = JSON.parse(r.stdout) as AttributeOutput;
    t.equal(out.metric, metric);
    t.ok(out.layers.length === 2 && out.layers.every((l) => l.mlp.length === 48 && l.heads.length === 4));
    t.ok(
      out.layers.every((l) => l.mlp.every(Number.isFinite)),
      `${metric}: finite scores`,
    );
    if (metric === 'magnitude')
      t.ok(
        out.layers.every((l) => l.mlp.every((v) => v >= 0)),
        'magnitudes are non-negative',
      );
  }
});

t.test('attribute names what is wrong with its arguments', async (t) => {
  const r = runCli('attribute', ['--model', STORIES_DIR, '--prompt', 'x', '--metric', 'random']);
  t.not(r.status, 0);
  t.match(r.stderr, /--metric.*expected one of magnitude, gradient, gxo, snip, ig, cor_gxo/);
  const missing = runCli('attribute', ['--model', '/nonexistent/model', '--prompt', 'hello there']);
  t.not(missing.status, 0);
  t.match(missing.stderr, /\/nonexistent\/model/);
});
