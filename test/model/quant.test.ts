/**
 * Blockwise quantisation in MatMulNBits' layout: every value comes back within half a step of
 * its block's scale, the codes sit where the kernel reads them, and a short last block is
 * padded with zero codes.
 */
import t from 'tap';
import { blockBytes, dequantize, dequantizedWeights, quantize, QUANT_SPECS } from '../../src/model/quant.js';
import { writeTestModel } from '../../src/arch/testmodel.js';
import { loadModelDir } from '../../src/arch/load.js';
import { createRng } from '../../src/random.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';

const random = (n: number, seed = 1) => {
  const rand = createRng(seed);
  return Float32Array.from({ length: n }, () => 2 * rand() - 1);
};

for (const [name, spec] of Object.entries(QUANT_SPECS)) {
  t.test(`${name}: every value within half a step of its block's scale`, async (t) => {
    const rows = 5;
    const cols = 3 * spec.block + 7; // a short last block
    const w = random(rows * cols);
    w[2 * cols + 3] = 1.5; // one large value sets its block's scale
    const q = quantize(w, rows, cols, spec);
    t.equal(q.blocksPerRow, 4);
    t.equal(q.codes.length, rows * 4 * blockBytes(spec));
    t.equal(q.scales.length, rows * 4);
    const back = dequantize(q);
    let worst = 0;
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < cols; c++) {
        const scale = q.scales[r * q.blocksPerRow + Math.floor(c / spec.block)];
        worst = Math.max(worst, Math.abs(back[r * cols + c] - w[r * cols + c]) / scale);
      }
    }
    // Rounding to the nearest code: at most half a step (plus float32 rounding of the product).
    t.ok(worst <= 0.5 + 1e-5, `largest error ${worst.toFixed(6)} steps`);
    // The block's largest magnitude is exactly representable: it sets the scale.
    t.equal(back[2 * cols + 3], Math.fround(q.scales[2 * q.blocksPerRow] * ((1 << (spec.bits - 1)) - 1)));
    t.ok(Math.abs(back[2 * cols + 3] - 1.5) < 1e-6);
  });
}

t.test('codes are unsigned around 2^(bits-1), packed low nibble first with 4 bits', async (t) => {
  const spec = { bits: 4, block: 16 } as const;
  // One row, one block: scale = 7 / 7 = 1, so each value is its own code offset.
  const w = Float32Array.from([1, -2, 3, 7, -7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5]);
  const q = quantize(w, 1, 16, spec);
  t.equal(q.scales[0], 1);
  t.equal(q.codes.length, 8);
  t.equal(q.codes[0], (8 + 1) | ((8 - 2) << 4), 'element 0 low, element 1 high');
  t.equal(q.codes[1], (8 + 3) | ((8 + 7) << 4));
  t.equal(q.codes[2], (8 - 7) | (8 << 4));
  t.equal(q.codes[7], 8 | ((8 + 5) << 4));
  const q8 = quantize(w, 1, 16, { bits: 8, block: 16 });
  t.same([...q8.codes.subarray(0, 5)], [128 + 18, 128 - 36, 128 + 54, 128 + 127, 128 - 127], 'int8: scale 7 / 127');
});

t.test('a zero block and padding get the zero code', async (t) => {
  const q = quantize(new Float32Array(20), 1, 20, { bits: 8, block: 16 });
  t.same([...q.scales], [0, 0]);
  t.ok(q.codes.every((c) => c === 128));
  t.same([...dequantize(q)], new Array(20).fill(0));
});

t.test('bad shapes and blocks are refused', async (t) => {
  t.throws(() => quantize(new Float32Array(10), 2, 4, QUANT_SPECS.int8), /10 values for a \[2, 4\] matrix/);
  t.throws(() => quantize(new Float32Array(48), 1, 48, { bits: 8, block: 24 }), /block 24 is not a power of two/);
  t.throws(() => quantize(new Float32Array(8), 1, 8, { bits: 8, block: 8 }), /block 8/);
});

t.test('dequantizedWeights rounds every linear weight, keeps norms, and keeps a tied head tied', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'quant-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  await writeTestModel(dir, { tie: true, seed: 3 });
  const { weights } = await loadModelDir(dir);
  const d = dequantizedWeights(weights, QUANT_SPECS.int4);
  t.equal(d.lmHead, d.embed, 'tied');
  t.not(d.embed.data, weights.embed.data);
  t.equal(d.layers[0].inputNorm, weights.layers[0].inputNorm, 'norms as they are');
  for (const name of ['q', 'k', 'v', 'o', 'gate', 'up', 'down'] as const) {
    const before = weights.layers[1][name]!;
    const after = d.layers[1][name]!;
    t.same(after.shape, before.shape, `${name}: shape`);
    t.same(after.data, dequantize(quantize(before.data, before.shape[0], before.shape[1], QUANT_SPECS.int4)), `${name}: rounded`);
  }
});
