import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { loadModelDir } from '../../src/arch/load.js';
import { writeTestModel } from '../../src/arch/testmodel.js';
import { rejectsWith } from '../helpers/errors.js';
import { STORIES_DIR } from '../helpers/stories.js';

t.test('a model directory loads whole', async (t) => {
  const dir = t.testdir();
  const written = await writeTestModel(dir, { seed: 2, tie: true });
  const model = await loadModelDir(dir);
  t.equal(model.dir, dir);
  t.same(model.config, written.config);
  t.equal(model.weights.layers.length, written.config.numLayers);
  t.equal(model.weights.lmHead, model.weights.embed);
  t.same(model.tokenizer.encode('Once'), [1, model.tokenizer.tokenToId('Once')]);
  t.same(model.generationDefaults, {});
  t.match(model.weightsHash, /^[0-9a-f]{64}$/, 'a sha256 in hex');
});

t.test('generation_config.json gives sampling defaults and more eos ids', async (t) => {
  const dir = t.testdir();
  await writeTestModel(dir);
  writeFileSync(join(dir, 'generation_config.json'), JSON.stringify({ eos_token_id: [2, 5], temperature: 0.7, top_p: 0.9, top_k: 50 }));
  const model = await loadModelDir(dir);
  t.same(model.generationDefaults, { temperature: 0.7, topP: 0.9, topK: 50 });
  t.same(model.config.eosTokenIds, [2, 5]);
});

t.test("without any eos id, the tokenizer's eos token is used", async (t) => {
  const dir = t.testdir();
  await writeTestModel(dir);
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...config, eos_token_id: null }));
  rmSync(join(dir, 'generation_config.json'));
  t.same((await loadModelDir(dir)).config.eosTokenIds, [2]);
});

t.test('the hash identifies config and weights', async (t) => {
  const root = t.testdir();
  const a = join(root, 'a');
  const b = join(root, 'b');
  await writeTestModel(a, { seed: 1 });
  await writeTestModel(b, { seed: 1 });
  const hashA = (await loadModelDir(a)).weightsHash;
  t.equal((await loadModelDir(b)).weightsHash, hashA, 'same files, same hash');

  await writeTestModel(b, { seed: 2 });
  t.not((await loadModelDir(b)).weightsHash, hashA, 'other weights, other hash');

  await writeTestModel(b, { seed: 1 });
  const config = JSON.parse(readFileSync(join(b, 'config.json'), 'utf8')) as Record<string, unknown>;
  writeFileSync(join(b, 'config.json'), JSON.stringify({ ...config, rope_theta: 20000 }));
  t.not((await loadModelDir(b)).weightsHash, hashA, 'same weights, other config, other hash');

  await writeTestModel(b, { seed: 1 });
  writeFileSync(join(b, 'tokenizer_config.json'), '{}');
  t.equal((await loadModelDir(b)).weightsHash, hashA, 'the tokenizer files are not part of it');
});

t.test('stories260K loads, and its hash is stable', async (t) => {
  const model = await loadModelDir(STORIES_DIR);
  t.equal(model.config.vocabSize, 512);
  t.same(model.config.eosTokenIds, [2]);
  t.equal(model.weights.lmHead, model.weights.embed, 'tied');
  // Caches are keyed by this value: if the definition of the hash changes, they all go stale.
  t.equal(model.weightsHash, '9ec832e971b5df4a3ef92fb84f14d6768b18454d0c76c6c73b946440aa0c759a');
});

t.test('a missing directory or file is named', async (t) => {
  const root = t.testdir();
  await rejectsWith(t, loadModelDir(join(root, 'nope')), [join(root, 'nope'), 'model directory not found']);

  const dir = join(root, 'm');
  await writeTestModel(dir);
  rmSync(join(dir, 'tokenizer.json'));
  await rejectsWith(t, loadModelDir(dir), [join(dir, 'tokenizer.json'), 'not found']);

  await writeTestModel(dir);
  rmSync(join(dir, 'model.safetensors'));
  await rejectsWith(t, loadModelDir(dir), [dir, 'model.safetensors']);

  await writeTestModel(dir);
  rmSync(join(dir, 'config.json'));
  await rejectsWith(t, loadModelDir(dir), [join(dir, 'config.json'), 'not found']);
});

t.test("a tokenizer larger than the model's vocabulary is refused", async (t) => {
  const dir = t.testdir();
  await writeTestModel(dir, { vocab: 300 });
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...config, vocab_size: 280 }));
  await rejectsWith(t, loadModelDir(dir), [join(dir, 'tokenizer.json'), '300 ids', 'vocab_size 280']);
});
