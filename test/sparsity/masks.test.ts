import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import type { LlamaConfig } from '../../src/model/types.js';
import { flopWeightedSparsity, headFlops, neuronFlops, tokenFlops } from '../../src/sparsity/flops.js';
import { keepTop, readMaskFile, tierMask, writeMaskFile, type MaskFile } from '../../src/sparsity/masks.js';

const config: LlamaConfig = {
  architecture: 'LlamaForCausalLM', hiddenSize: 8, intermediateSize: 10, numLayers: 2, numHeads: 4, numKvHeads: 2,
  headDim: 2, rmsNormEps: 1e-5, ropeTheta: 10000, tieWordEmbeddings: false, attentionBias: false, vocabSize: 20,
  maxPositions: 16, bosTokenId: 1, eosTokenIds: [2],
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
  t.equal(half.attentionContext, f.attentionContext * 3 / 4);
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
    format: 1, metric: 'cor_gxo', weightsSha256: 'a'.repeat(64),
    calibration: { file: 'c.jsonl', sha256: 'b'.repeat(64), samples: 1, tokens: 3 },
    created: new Date(0).toISOString(), pruneHeads: false, scores, tiers: [tier],
  };
  writeMaskFile(dir, masks);
  t.same(readMaskFile(dir, 'a'.repeat(64)), masks);
  t.throws(() => readMaskFile(dir, 'c'.repeat(64)), /calibrated for weights aaaaaaaaaaaa.*calibrate/);
  t.equal(readMaskFile(join(dir, 'nothing-here'), 'a'), null);
});
