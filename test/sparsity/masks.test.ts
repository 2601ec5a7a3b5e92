import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { loadModelDir } from '../../src/arch/load.js';
import { writeTestModel } from '../../src/arch/testmodel.js';
import type { ModelConfig } from '../../src/model/types.js';
import { loadServedModel } from '../../src/serve/engine.js';
import { neuronFlops } from '../../src/arch/neurons.js';
import { flopWeightedSparsity, headFlops, tokenFlops } from '../../src/sparsity/flops.js';
import { keepTop, MASKS_FILE, readMaskFile, tierMask, writeMaskFile, type MaskFile } from '../../src/sparsity/masks.js';
import { rejectsWith, throwsWith } from '../helpers/errors.js';

const config: ModelConfig = {
  architecture: 'LlamaForCausalLM',
  hiddenSize: 8,
  intermediateSize: 10,
  numLayers: 2,
  numHeads: 4,
  numKvHeads: 2,
  headDim: 2,
  norm: 'rms',
  normEps: 1e-5,
  mlp: 'swiglu',
  rotaryDim: 2,
  ropeTheta: 10000,
  tieWordEmbeddings: false,
  attentionBias: false,
  vocabSize: 20,
  maxPositions: 16,
  bosTokenId: 1,
  eosTokenIds: [2],
};

t.test('keepTop keeps the top (1 - s) by score, ascending by index', async (t) => {
  const scores = [0.1, 0.9, -1, 0.5, 0.3, 0.7, 0, 0.2, 0.8, 0.4];
  t.same(keepTop(scores, 0), [...Array(10).keys()], 'sparsity 0 keeps all');
  t.same(keepTop(scores, 0.5), [1, 3, 5, 8, 9]);
  t.same(keepTop(scores, 0.8), [1, 8]);
  t.same(keepTop(scores, 0.99), [1], 'at least one unit stays');
  t.throws(() => keepTop(scores, 1), RangeError);
  t.throws(() => keepTop(scores, -0.1), RangeError);
});

t.test('token FLOPs count every matrix product by its shape', async (t) => {
  const f = tokenFlops(config, 3);
  // Per layer: q and o 2*8*8 each, k and v 2*8*4 each; context 4 heads * (2*2*3 + 2*2*3); MLP 3 * 2*8*10.
  t.equal(f.attentionProjections, 2 * (2 * 8 * 8 * 2 + 2 * 8 * 4 * 2));
  t.equal(f.attentionContext, 2 * 4 * (2 * 2 * 3 * 2));
  t.equal(f.mlp, 2 * 3 * 2 * 8 * 10);
  t.equal(f.lmHead, 2 * 8 * 20);
  t.equal(f.total, f.attentionProjections + f.attentionContext + f.mlp + f.lmHead);
  const half = tokenFlops(config, 3, [{ mlp: 5 }, { mlp: 5, heads: 2 }]);
  t.equal(half.mlp, f.mlp / 2);
  t.equal(half.attentionContext, (f.attentionContext * 3) / 4);
});

t.test('FLOP-weighted sparsity weighs neurons and heads by their cost', async (t) => {
  t.equal(flopWeightedSparsity(config, 3, []), 0);
  const n = neuronFlops(config);
  const h = headFlops(config, 3);
  const dense = 2 * (10 * n + 4 * h);
  const pruned = 2 * (5 * n) + h; // half the neurons in each layer, one head in one layer
  t.ok(Math.abs(flopWeightedSparsity(config, 3, [{ mlp: 5, heads: 3 }, { mlp: 5 }]) - pruned / dense) < 1e-12);
});

t.test('mask files refuse weights they were not calibrated for', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'masks-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const scores = [0, 1].map(() => ({ mlp: Array.from({ length: 10 }, (_, i) => i), heads: [4, 3, 2, 1] }));
  const tier = tierMask(config, scores, 0.5, false);
  t.same(tier.layers[0].mlp, [5, 6, 7, 8, 9]);
  t.same(tier.layers[0].heads, [0, 1, 2, 3], 'heads all kept unless pruned');
  t.same(tierMask(config, scores, 0.5, true).layers[1].heads, [0, 1]);
  const masks: MaskFile = {
    format: 1,
    metric: 'cor_gxo',
    weightsSha256: 'a'.repeat(64),
    calibration: { file: 'c.jsonl', sha256: 'b'.repeat(64), samples: 1, tokens: 3 },
    created: new Date(0).toISOString(),
    pruneHeads: false,
    scores,
    tiers: [tier],
  };
  writeMaskFile(dir, masks);
  t.same(readMaskFile(dir, 'a'.repeat(64), config), masks);
  t.throws(() => readMaskFile(dir, 'c'.repeat(64), config), /calibrated for weights aaaaaaaaaaaa.*calibrate/);
  t.equal(readMaskFile(join(dir, 'nothing-here'), 'a', config), null);
});

/** A valid mask file for `config` with tiers 0.5 and 0.8 (heads pruned when asked). */
function validMasks(pruneHeads = false): MaskFile {
  const scores = [0, 1].map((l) => ({ mlp: Array.from({ length: 10 }, (_, i) => (i * 7 + l) % 10), heads: [4, 3, 2, 1] }));
  return {
    format: 1,
    metric: 'cor_gxo',
    weightsSha256: 'a'.repeat(64),
    calibration: { file: 'c.jsonl', sha256: 'b'.repeat(64), samples: 1, tokens: 3 },
    created: new Date(0).toISOString(),
    pruneHeads,
    scores,
    tiers: [0.5, 0.8].map((s) => tierMask(config, scores, s, pruneHeads)),
  };
}

t.test('a mask file is checked field by field; each problem is named with the file and the field', async (t) => {
  const dir = t.testdir();
  const file = join(dir, MASKS_FILE);
  const read = () => readMaskFile(dir, 'a'.repeat(64), config);
  writeMaskFile(dir, validMasks());
  t.ok(read(), 'the valid file reads');
  // The edits write values of wrong types on purpose, so the clone's leaves are unknown.
  type Units = { mlp: unknown[]; heads: unknown[] };
  type Json = {
    format?: unknown;
    metric?: unknown;
    weightsSha256?: unknown;
    pruneHeads?: unknown;
    calibration: { sha256?: unknown };
    scores: Units[];
    tiers: { sparsity: unknown; layers: Units[] }[];
  };
  const cases: [string, (m: Json) => void, string[]][] = [
    [
      'an index past the intermediate size',
      (m) => (m.tiers[0].layers[1].mlp[2] = 99999),
      ['"tiers[0].layers[1].mlp"', 'index 99999 at position 2', 'outside [0, 10)'],
    ],
    ['a negative index', (m) => (m.tiers[1].layers[0].mlp[0] = -1), ['"tiers[1].layers[0].mlp"', 'index -1 at position 0', 'outside [0, 10)']],
    ['a repeated index', (m) => (m.tiers[0].layers[0].mlp[3] = m.tiers[0].layers[0].mlp[1]), ['"tiers[0].layers[0].mlp"', 'twice, at positions 1 and 3']],
    ['a fractional index', (m) => (m.tiers[0].layers[0].mlp[0] = 2.5), ['"tiers[0].layers[0].mlp"', '2.5 at position 0', 'not an integer index']],
    ['an index as a string', (m) => (m.tiers[0].layers[0].mlp[0] = '3'), ['"tiers[0].layers[0].mlp"', '"3" at position 0', 'not an integer index']],
    ['a head index out of range', (m) => (m.tiers[0].layers[0].heads[0] = 4), ['"tiers[0].layers[0].heads"', 'index 4', 'outside [0, 4)']],
    ['too few kept neurons', (m) => m.tiers[0].layers[1].mlp.pop(), ['"tiers[0].layers[1].mlp"', 'keeps 4 units, expected 5', 'round((1 - 0.5) * 10)']],
    ['a missing weights hash', (m) => delete m.weightsSha256, ['"weightsSha256"', 'must be a string', 'missing']],
    ['a weights hash that is no sha256', (m) => (m.weightsSha256 = 'abc'), ['"weightsSha256"', '64 lowercase hex digits', '"abc"']],
    ['one layer too few', (m) => m.tiers[1].layers.pop(), ['"tiers[1].layers"', 'has 1 entries, expected 2']],
    ['one layer too many', (m) => m.tiers[0].layers.push(m.tiers[0].layers[0]), ['"tiers[0].layers"', 'has 3 entries, expected 2']],
    ['scores for the wrong number of layers', (m) => m.scores.pop(), ['"scores"', 'has 1 entries, expected 2']],
    ['scores for the wrong number of neurons', (m) => m.scores[1].mlp.push(0), ['"scores[1].mlp"', 'has 11 entries, expected 10']],
    ['a score that is not a number', (m) => (m.scores[0].heads[2] = null), ['"scores[0].heads[2]"', 'finite number', 'null']],
    ['a sparsity of 1', (m) => (m.tiers[1].sparsity = 1), ['"tiers[1].sparsity"', 'a number in [0, 1)', 'got 1']],
    ['a negative sparsity', (m) => (m.tiers[0].sparsity = -0.5), ['"tiers[0].sparsity"', 'a number in [0, 1)']],
    ['two tiers of one name', (m) => (m.tiers[1] = { ...m.tiers[0], sparsity: 0.501 }), ['tiers[1] (sparsity 0.501) is tier s50, as tiers[0] already is']],
    ['an unknown metric', (m) => (m.metric = 'vibes'), ['"metric"', 'one of magnitude', '"vibes"']],
    ['an unknown format', (m) => (m.format = 2), ['unknown format 2, expected 1']],
    ['no tiers array', (m) => delete (m as Partial<Json>).tiers, ['"tiers"', 'an array of tiers']],
    ['a calibration without its hash', (m) => delete m.calibration.sha256, ['"calibration.sha256"', 'must be a string']],
    ['pruneHeads that is not a boolean', (m) => (m.pruneHeads = 'no'), ['"pruneHeads"', 'true or false']],
  ];
  for (const [what, edit, fragments] of cases) {
    const masks = JSON.parse(JSON.stringify(validMasks())) as Json;
    edit(masks);
    writeFileSync(file, JSON.stringify(masks));
    throwsWith(t, read, [file, ...fragments], what);
  }
  writeFileSync(file, '{"format": 1,');
  throwsWith(t, read, [file, 'invalid JSON'], 'a truncated file');

  // Without pruned heads every head stays; with them, a tier keeps round((1 - s) * heads).
  const keptHeads = validMasks(false);
  keptHeads.tiers[0].layers[0].heads = [0, 1];
  writeFileSync(file, JSON.stringify(keptHeads));
  throwsWith(t, read, [file, '"tiers[0].layers[0].heads"', 'keeps 2 units, expected 4', 'every head'], 'heads dropped without pruneHeads');
  writeMaskFile(dir, validMasks(true));
  t.same(read()!.tiers[1].layers[0].heads, [0], 'pruned heads read');
});

t.test('indices in any order read back ascending', async (t) => {
  const dir = t.testdir();
  const masks = validMasks();
  const shuffled = structuredClone(masks);
  shuffled.tiers[0].layers[1].mlp.reverse();
  writeMaskFile(dir, shuffled);
  t.not(shuffled.tiers[0].layers[1].mlp[0], masks.tiers[0].layers[1].mlp[0], 'the file really holds them out of order');
  t.same(readMaskFile(dir, 'a'.repeat(64), config), masks);
});

t.test('a model whose masks are bad is refused at load, naming the file', async (t) => {
  const dir = t.testdir();
  const { config: tiny } = await writeTestModel(dir, { hidden: 16, intermediate: 32, layers: 2, heads: 2, kvHeads: 1, headDim: 8, vocab: 300 });
  const { weightsHash } = await loadModelDir(dir);
  const scores = Array.from({ length: tiny.numLayers }, () => ({ mlp: Array.from({ length: tiny.intermediateSize }, (_, i) => i), heads: [1, 0] }));
  const masks: MaskFile = {
    format: 1,
    metric: 'cor_gxo',
    weightsSha256: weightsHash,
    calibration: { file: 'c.jsonl', sha256: 'b'.repeat(64), samples: 1, tokens: 3 },
    created: new Date(0).toISOString(),
    pruneHeads: false,
    scores,
    tiers: [tierMask(tiny, scores, 0.5, false)],
  };
  const file = writeMaskFile(dir, masks);
  const model = await loadServedModel(dir, { intraOpThreads: 1, preload: false });
  t.same(
    model.tiers().map((x) => x.name),
    ['dense', 's50'],
    'the valid masks serve',
  );
  await model.close();

  masks.tiers[0].layers[1].mlp[0] = tiny.intermediateSize;
  writeFileSync(file, JSON.stringify(masks));
  await rejectsWith(t, loadServedModel(dir, { intraOpThreads: 1, preload: false }), [
    file,
    '"tiers[0].layers[1].mlp"',
    `index ${tiny.intermediateSize}`,
    `outside [0, ${tiny.intermediateSize})`,
  ]);

  const { weightsSha256: _, ...unstamped } = JSON.parse(readFileSync(file, 'utf8')) as MaskFile;
  writeFileSync(file, JSON.stringify(unstamped));
  await rejectsWith(t, loadServedModel(dir, { intraOpThreads: 1, preload: false }), [file, '"weightsSha256"', 'missing']);
});
