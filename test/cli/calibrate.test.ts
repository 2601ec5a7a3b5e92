import { createHash } from 'node:crypto';
import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { loadModelDir } from '../../src/arch/load.js';
import { writeTestModel } from '../../src/arch/testmodel.js';
import { readMaskFile } from '../../src/sparsity/masks.js';
import { runCli } from '../helpers/cli.js';
import { STORIES_DIR } from '../helpers/stories.js';

const DATA = fileURLToPath(new URL('../../data/calibration/stories.jsonl', import.meta.url));
const sha256 = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

t.test("calibrate replaces a model's masks only with --force, with masks tied to the weights and the calibration set (stories260K)", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'calibrate-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  cpSync(STORIES_DIR, dir, { recursive: true });
  const shipped = join(dir, 'sparsity', 'masks.json');
  const before = sha256(shipped);
  const refused = runCli('calibrate', ['--model', dir, '--data', DATA]);
  t.equal(refused.status, 1);
  t.equal(refused.stderr, `error: ${shipped} exists (the tiers this model serves); pass --force to replace it\n`);
  t.equal(sha256(shipped), before, 'the shipped masks are left as they were');

  const r = runCli('calibrate', ['--model', dir, '--data', DATA, '--force']);
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /FLOP-weighted sparsity/, 'a summary table');
  const model = await loadModelDir(dir);
  const masks = readMaskFile(dir, model.weightsHash, model.config)!;
  t.equal(masks.metric, 'cor_gxo');
  t.equal(masks.calibration.sha256, sha256(DATA));
  t.equal(masks.calibration.samples, 24);
  t.same(
    masks.tiers.map((x) => x.sparsity),
    [0.25, 0.5, 0.7, 0.8, 0.9],
  );
  for (const tier of masks.tiers) {
    t.ok(
      tier.layers.every((l) => l.mlp.length === Math.round((1 - tier.sparsity) * 172)),
      `${tier.sparsity}: kept count`,
    );
  }
  const increasing = masks.tiers.every((x, i) => i === 0 || x.flopSparsity > masks.tiers[i - 1].flopSparsity);
  t.ok(increasing, 'FLOP-weighted sparsity grows with the tier');
});

t.test('masks calibrated for other weights are refused', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'calibrate-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const shape = { hidden: 32, intermediate: 48, layers: 2, heads: 4, kvHeads: 2, headDim: 8, vocab: 300, maxPositions: 64 };
  await writeTestModel(dir, { ...shape, seed: 1 });
  const r = runCli('calibrate', ['--model', dir, '--data', DATA, '--metric', 'gxo', '--tiers', '0.5,0.8', '--prune-heads']);
  t.equal(r.status, 0, r.stderr);
  const before = await loadModelDir(dir);
  const masks = readMaskFile(dir, before.weightsHash, before.config)!;
  t.equal(masks.metric, 'gxo');
  t.ok(masks.pruneHeads);
  t.same(masks.tiers[1].layers[0].heads.length, 1, 'heads pruned at 0.8 of 4');

  await writeTestModel(dir, { ...shape, seed: 2 }); // new weights, old masks
  const after = await loadModelDir(dir);
  t.throws(() => readMaskFile(dir, after.weightsHash, after.config), /calibrated for weights .*npm run calibrate/);
});

t.test('calibrate reports a bad calibration line by its number', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'calibrate-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const bad = join(dir, 'bad.jsonl');
  await import('node:fs').then((fs) => fs.writeFileSync(bad, '{"prompt": "fine"}\n{"completion": "no prompt"}\n'));
  // --force past the shipped masks: the file is read, and refused, before anything is written.
  const r = runCli('calibrate', ['--model', fileURLToPath(new URL('../../models/stories260K', import.meta.url)), '--data', bad, '--force']);
  t.not(r.status, 0);
  t.match(r.stderr, /bad\.jsonl:2: "prompt" must be a non-empty string/);
});
