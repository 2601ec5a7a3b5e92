import { readFileSync, writeFileSync } from 'node:fs';
import t from 'tap';
import { loadModelDir } from '../../src/arch/load.js';
import { readSafetensors, writeSafetensors } from '../../src/model/safetensors.js';
import { writeTestModel } from '../../src/arch/testmodel.js';
import { loadServedModel } from '../../src/serve/engine.js';
import { gateFirstScores, gateFirstWeights } from '../../src/arch/token-mlp.js';
import { checkRank, defaultRank, predictorFile, predictorScores, readPredictor, writePredictor, type Predictor } from '../../src/sparsity/predictor.js';
import { recall } from '../../src/sparsity/recall.js';
import { rejectsWith, throwsWith } from '../helpers/errors.js';

t.test('recall is |predicted ∩ oracle| / |oracle|', async (t) => {
  t.equal(recall([1, 2, 3, 4], [2, 4, 6, 8]), 0.5);
  t.equal(recall([6, 8, 2, 4], [2, 4, 6, 8]), 1, 'order does not matter');
  t.equal(recall([0, 1], [5]), 0);
  t.equal(recall([3, 3, 3], [3, 7, 9]), 1 / 3, 'a duplicate counts once');
  t.equal(recall([1, 2, 3], [1, 2, 3, 4, 5]), 0.6, 'a smaller predicted set caps recall');
  t.equal(recall([1], []), 1, 'an empty oracle set is covered');
});

t.test('predictorScores is (x @ A) @ B + bias', async (t) => {
  // hidden 2, rank 2, intermediate 3
  const layer = {
    a: Float32Array.of(1, 2, 3, 4), // [[1, 2], [3, 4]]
    b: Float32Array.of(1, 0, -1, 0.5, 2, 1), // [[1, 0, -1], [0.5, 2, 1]]
    bias: Float32Array.of(0.25, -1, 0),
  };
  // x = [1, -2]: x @ A = [1 - 6, 2 - 8] = [-5, -6]; @ B = [-5 - 3, -12, 5 - 6] = [-8, -12, -1]
  t.same(Array.from(predictorScores(layer, 2, 3, Float32Array.of(1, -2))), [-7.75, -13, -1]);
  t.throws(() => predictorScores(layer, 2, 4, Float32Array.of(1, -2)), RangeError, 'shapes are checked');
});

t.test('default rank and the 10% budget', async (t) => {
  t.equal(defaultRank(256), 32);
  t.equal(defaultRank(64), 8);
  t.equal(defaultRank(2048), 256);
  t.doesNotThrow(() => checkRank(32, 256, 704));
  t.doesNotThrow(() => checkRank(8, 64, 172));
  // stories260K: 3 * 64 * 172 = 33024 MLP weights a layer; 10% = 3302.4; rank 13 uses 3068, 14 uses 3304.
  t.doesNotThrow(() => checkRank(13, 64, 172));
  t.throws(() => checkRank(14, 64, 172), /largest rank allowed is 13/);
  t.throws(() => checkRank(0, 64, 172), RangeError);
});

t.test('gateFirstScores is |SiLU(gate_i . x)| * ||up_i|| * ||down[:, i]||', async (t) => {
  // intermediate 2, hidden 2
  const layer = {
    gate: { shape: [2, 2], data: Float32Array.of(1, 0, 0, -1) },
    up: { shape: [2, 2], data: Float32Array.of(3, 4, 0, 2) },
    down: { shape: [2, 2], data: Float32Array.of(1, 0, 0, 3) }, // [hidden, intermediate]: column 0 = [1, 0], column 1 = [0, 3]
  };
  const norms = gateFirstWeights(layer);
  t.same(Array.from(norms), [5, 6]);
  const silu = (z: number) => z / (1 + Math.exp(-z));
  const s = gateFirstScores(layer, norms, [2, 1]);
  t.ok(Math.abs(s[0] - silu(2) * 5) < 1e-5);
  t.ok(Math.abs(s[1] - Math.abs(silu(-1)) * 6) < 1e-5);
});

function predictorFor(hidden: number, intermediate: number, layers: number, rank: number, hash: string): Predictor {
  const fill = (n: number, k: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37 + k));
  return {
    labels: 'cor_gxo',
    rank,
    hidden,
    intermediate,
    layers: Array.from({ length: layers }, (_, l) => ({ a: fill(hidden * rank, l), b: fill(rank * intermediate, l + 10), bias: fill(intermediate, l + 20) })),
    meta: {
      weightsSha256: hash,
      labels: 'cor_gxo',
      rank,
      trainSparsities: [0.5, 0.9],
      steps: 3,
      trainTokens: 10,
      validationTokens: 2,
      recall: { '0.5': 0.75, '0.9': 0.5 },
      gateFirstRecall: { '0.5': 0.7, '0.9': 0.6 },
      createdAt: '2025-01-01T00:00:00.000Z',
    },
  };
}

t.test('writePredictor / readPredictor round-trip, stamped with the weights hash', async (t) => {
  const dir = t.testdir();
  const { config, weightsHash } = await loadModelDir('models/stories260K');
  const p = predictorFor(config.hiddenSize, config.intermediateSize, config.numLayers, 8, weightsHash);
  t.equal(readPredictor(dir, weightsHash, 'cor_gxo'), null, 'null when absent');
  writePredictor(dir, p);
  t.equal(predictorFile(dir, 'cor_gxo'), `${dir}/sparsity/predictor-cor_gxo.safetensors`);
  const back = readPredictor(dir, weightsHash, 'cor_gxo', config);
  t.same(back, p, 'every tensor and the meta come back');
  t.equal(readPredictor(dir, weightsHash, 'magnitude'), null, 'the other label kind is another file');

  t.throws(() => readPredictor(dir, 'f'.repeat(64), 'cor_gxo'), /trained for weights .*npm run train-predictor/, 'a stale predictor is refused');
  t.throws(
    () => readPredictor(dir, weightsHash, 'cor_gxo', { ...config, intermediateSize: config.intermediateSize + 1 }),
    /does not fit the model/,
    'a predictor of other shapes than the model is refused',
  );
});

t.test('readPredictor refuses tensors of the wrong shape and files without its metadata', async (t) => {
  const dir = t.testdir({ sparsity: {} });
  const file = predictorFile(dir, 'cor_gxo');
  const hash = 'a'.repeat(64);
  const p = predictorFor(4, 6, 1, 2, hash);
  writePredictor(dir, p);
  const good = readFileSync(file);
  // Same metadata, but a tensor of another shape.
  writeSafetensors(
    file,
    {
      'layers.0.a': { shape: [2, 4], data: p.layers[0].a },
      'layers.0.b': { shape: [2, 6], data: p.layers[0].b },
      'layers.0.bias': { shape: [6], data: p.layers[0].bias },
    },
    'F32',
    metadataOf(good),
  );
  t.throws(() => readPredictor(dir, hash, 'cor_gxo'), /layers\.0\.a has shape \[2, 4\], expected \[4, 2\]/);
  writeSafetensors(file, { x: { shape: [1], data: Float32Array.of(1) } });
  t.throws(() => readPredictor(dir, hash, 'cor_gxo'), /not a predictor file/);
  writeFileSync(file, good);
  t.ok(readPredictor(dir, hash, 'cor_gxo'));
  t.throws(() => writePredictor(dir, { ...p, rank: 3 }), /do not have shapes/, 'writing checks shapes too');
});

/** The `__metadata__` of a safetensors file's header. */
function metadataOf(bytes: Buffer): Record<string, string> {
  return (JSON.parse(bytes.subarray(8, 8 + Number(bytes.readBigUInt64LE(0))).toString('utf8')) as { __metadata__: Record<string, string> }).__metadata__;
}

t.test('readPredictor refuses non-finite weights and meta the server cannot use, naming the file and the field', async (t) => {
  const dir = t.testdir({ sparsity: {} });
  const file = predictorFile(dir, 'cor_gxo');
  const hash = 'a'.repeat(64);
  const p = predictorFor(4, 6, 2, 2, hash);
  p.layers[1].b[7] = NaN;
  writePredictor(dir, p);
  throwsWith(t, () => readPredictor(dir, hash, 'cor_gxo'), [file, '"layers.1.b"', 'NaN at index 7', '[1, 1] of shape [2, 6]']);
  p.layers[1].b[7] = 0;
  p.layers[0].bias[0] = -Infinity;
  writePredictor(dir, p);
  throwsWith(t, () => readPredictor(dir, hash, 'cor_gxo'), [file, '"layers.0.bias"', '-Infinity at index 0']);
  p.layers[0].bias[0] = 0;
  writePredictor(dir, p);
  t.ok(readPredictor(dir, hash, 'cor_gxo'), 'finite again, it reads');

  const good = readFileSync(file);
  const tensors = readSafetensors(file);
  const withMeta = (edit: (meta: Record<string, unknown>) => void) => {
    const metadata = metadataOf(good);
    const meta = JSON.parse(metadata.meta) as Record<string, unknown>;
    edit(meta);
    writeSafetensors(file, tensors, 'F32', { ...metadata, meta: JSON.stringify(meta) });
  };
  const cases: [string, (m: Record<string, unknown>) => void, string[]][] = [
    ['no weights hash', (m) => delete m.weightsSha256, ['"meta.weightsSha256"', 'must be a string', 'missing']],
    ['a weights hash that is no sha256', (m) => (m.weightsSha256 = 'abc'), ['"meta.weightsSha256"', '64 lowercase hex digits']],
    ['no recall', (m) => delete m.recall, ['"meta.recall"', 'recalls in [0, 1]']],
    ['a recall above 1', (m) => (m.gateFirstRecall = { '0.5': 1.5 }), ['"meta.gateFirstRecall"', 'recalls in [0, 1]']],
    ['an unknown label kind', (m) => (m.labels = 'vibes'), ['"meta.labels"', 'one of cor_gxo, magnitude']],
    ['another rank than the predictor', (m) => (m.rank = 3), ['the meta says rank 3, the predictor rank 2']],
  ];
  for (const [what, edit, fragments] of cases) {
    withMeta(edit);
    throwsWith(t, () => readPredictor(dir, hash, 'cor_gxo'), [file, ...fragments], what);
  }
});

t.test('a served model refuses a predictor that does not fit it, at load', async (t) => {
  const dir = t.testdir();
  const { config } = await writeTestModel(dir, { hidden: 16, intermediate: 32, layers: 2, heads: 2, kvHeads: 1, headDim: 8, vocab: 300 });
  const { weightsHash } = await loadModelDir(dir);
  writePredictor(dir, predictorFor(config.hiddenSize, config.intermediateSize + 8, config.numLayers, 8, weightsHash));
  await rejectsWith(t, loadServedModel(dir, { intraOpThreads: 1, preload: false }), [
    predictorFile(dir, 'cor_gxo'),
    'intermediate 40',
    'does not fit',
    'intermediate 32',
  ]);
});
