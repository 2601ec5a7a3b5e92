/**
 * GGUF import end to end: stories260K written as llama.cpp would write it (the test helper's
 * writer, q/k permuted, tokenizer as tokenizer.ggml.*), imported, and served by the real engine
 * against llama2.c's reference continuations; quantised variants against the original's logits;
 * a byte-level ("gpt2") tokenizer; and the refusals.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { readConfig } from '../../src/arch/config.js';
import { dequantize, GgmlType, type SupportedGgmlType } from '../../src/model/gguf.js';
import { importGguf } from '../../src/arch/import-gguf.js';
import { loadModelDir } from '../../src/arch/load.js';
import { readSafetensors } from '../../src/model/safetensors.js';
import { writeTestModel } from '../../src/arch/testmodel.js';
import { ModelTokenizer } from '../../src/model/tokenizer.js';
import { DecoderSession } from '../../src/runtime/session.js';
import { loadServedModel } from '../../src/serve/engine.js';
import { throwsWith } from '../helpers/errors.js';
import { encodeTensor, ggufFromHfDir, kv, type FromHfOptions } from '../helpers/gguf-writer.js';
import { expectStoriesReference, readStoriesReference, STORIES_DIR } from '../helpers/stories.js';

const root = t.testdir();

function imported(name: string, source: string, options: FromHfOptions = {}): string {
  const file = join(root, `${name}.gguf`);
  ggufFromHfDir(source, file, options);
  const out = join(root, name);
  importGguf(file, out);
  return out;
}

const readJson = (path: string): unknown => JSON.parse(readFileSync(path, 'utf8'));

/** Texts for tokenizer comparisons: spaces, punctuation, control characters, multi-byte UTF-8 and literal special tokens. */
const TEXTS = [
  'Once upon a time, there was a little dog named Tom.',
  "Hello , world . I don't know !",
  '  leading and trailing spaces  ',
  'tabs\tand\nnewlines\r\n',
  'digits 0123456789 and symbols ~!@#$%^&*()_+{}|:"<>?`-=[]\\;\',./',
  'héllo wörld, naïve café, 日本語, emoji 😀',
  'a literal <s> and </s> in the text',
  '',
];

function sameTokenizer(t: Test, original: ModelTokenizer, copy: ModelTokenizer): void {
  for (const text of TEXTS) {
    t.same(copy.encode(text), original.encode(text), `encodes ${JSON.stringify(text)} alike`);
    t.same(copy.encode(text, false), original.encode(text, false), `and without special tokens`);
    t.equal(copy.decode(original.encode(text)), original.decode(original.encode(text)), 'decodes alike');
  }
  t.equal(copy.vocabSize, original.vocabSize);
  for (let id = 0; id < original.vocabSize; id++) {
    if (copy.idToToken(id) !== original.idToToken(id) || copy.decode([id], false) !== original.decode([id], false)) {
      t.fail(`id ${id}: ${copy.idToToken(id)} vs ${original.idToToken(id)}`);
      return;
    }
  }
  t.pass(`all ${original.vocabSize} ids have the same token and text`);
  t.equal(copy.bosToken, original.bosToken);
  t.equal(copy.eosToken, original.eosToken);
  t.equal(copy.chatTemplate, original.chatTemplate);
}

t.test('stories260K -> GGUF (F32) -> import: the same files, and the reference continuations', async (t) => {
  const dir = imported('stories-f32', STORIES_DIR);

  const original = readSafetensors(join(STORIES_DIR, 'model.safetensors'));
  const weights = readSafetensors(join(dir, 'model.safetensors'));
  t.same(Object.keys(weights).sort(), Object.keys(original).sort(), 'the same 47 tensors (tied: no lm_head)');
  for (const [name, tensor] of Object.entries(original)) {
    if (!weights[name] || Buffer.compare(Buffer.from(weights[name].data.buffer), Buffer.from(tensor.data.buffer)) !== 0) t.fail(`${name} differs`);
  }
  t.pass('every tensor is bit-identical: the q/k permutation is undone exactly');
  t.same(readConfig(dir), readConfig(STORIES_DIR), 'config.json (and generation_config.json) read the same');
  t.same(readJson(join(dir, 'tokenizer.json')), readJson(join(STORIES_DIR, 'tokenizer.json')), 'tokenizer.json is the original, merges and all');
  t.same(readJson(join(dir, 'tokenizer_config.json')), readJson(join(STORIES_DIR, 'tokenizer_config.json')), 'so is tokenizer_config.json');

  // The serving path, as test/runtime/stories260k.test.ts runs the original.
  const model = await loadServedModel(dir, { intraOpThreads: 1 });
  t.teardown(() => model.close());
  await expectStoriesReference(t, model);
});

t.test('the imported stories260K tokenizer encodes and decodes as the original', async (t) => {
  const dir = join(root, 'stories-f32');
  sameTokenizer(t, ModelTokenizer.fromDir(STORIES_DIR), ModelTokenizer.fromDir(dir));
});

/**
 * Largest |logit difference| from the original over the reference prompts and continuations
 * (280 positions), measured: F16 1.1e-2, BF16 9.1e-2, Q8_0 0.30, Q4_0 8.8, on logits up to 22.
 * F16 keeps 11 significant bits (relative error <= 2^-11); BF16 8 (2^-8, 8x F16's, and 8x is
 * what is measured); Q8_0 errs by up to a half step of max|block| / 127, the same order as BF16
 * relative to each block's largest weight. The tolerances are twice the measured values. Q4_0's
 * 15 steps per block move this 64-wide model's logits by up to 8.8: that is quantisation, not the
 * import, so its check is that the weights are exactly the quantiser's grid (as for every type).
 */
const VARIANTS: { type: SupportedGgmlType; tolerance: number | null }[] = [
  { type: 'F16', tolerance: 0.025 },
  { type: 'BF16', tolerance: 0.2 },
  { type: 'Q8_0', tolerance: 0.6 },
  { type: 'Q4_0', tolerance: null },
];

t.test('F16, BF16, Q8_0 and Q4_0 files import to their dequantised weights, with logits close to the original', async (t) => {
  const reference = readStoriesReference();
  const original = await loadModelDir(STORIES_DIR);
  const base = await DecoderSession.create(original.config, original.weights, { intraOpThreads: 1 });
  const sequences = reference.prompts.map((p) => [...p.prompt_ids, ...p.completion_ids]);
  const baseLogits = await Promise.all(sequences.map(async (ids) => (await base.forward(ids, base.emptyCache(), ids.length)).logits));
  const sourceWeights = readSafetensors(join(STORIES_DIR, 'model.safetensors'));

  for (const { type, tolerance } of VARIANTS) {
    const dir = imported(`stories-${type}`, STORIES_DIR, { type });
    // What the file holds, decoded: 1-D tensors are F32, rows of 172 (down_proj) fall back to F16.
    const weights = readSafetensors(join(dir, 'model.safetensors'));
    let exact = 0;
    for (const [name, w] of Object.entries(sourceWeights)) {
      const stored: SupportedGgmlType = w.shape.length < 2 ? 'F32' : (type === 'Q8_0' || type === 'Q4_0') && w.shape[1] % 32 !== 0 ? 'F16' : type;
      const expected = dequantize(GgmlType[stored], encodeTensor(stored, w.data), w.data.length);
      if (Buffer.compare(Buffer.from(weights[name].data.buffer), Buffer.from(expected.buffer)) === 0) exact++;
      else t.fail(`${type}: ${name} is not the dequantised ${stored} of the original`);
    }
    t.equal(exact, Object.keys(sourceWeights).length, `${type}: every tensor is exactly the dequantised stored value`);

    const model = await loadModelDir(dir);
    const session = await DecoderSession.create(model.config, model.weights, { intraOpThreads: 1 });
    let worst = 0;
    let agree = 0;
    let positions = 0;
    const V = model.config.vocabSize;
    for (const [i, ids] of sequences.entries()) {
      const logits = (await session.forward(ids, session.emptyCache(), ids.length)).logits;
      for (let j = 0; j < logits.length; j++) worst = Math.max(worst, Math.abs(logits[j] - baseLogits[i][j]));
      for (let p = 0; p < ids.length; p++) {
        positions++;
        if (argmax(logits.subarray(p * V, (p + 1) * V)) === argmax(baseLogits[i].subarray(p * V, (p + 1) * V))) agree++;
      }
    }
    if (tolerance !== null) {
      t.ok(worst <= tolerance, `${type}: max |logit difference| ${worst.toExponential(2)} <= ${tolerance}`);
      t.equal(agree, positions, `${type}: the same top token at all ${positions} positions`);
    } else {
      t.ok(Number.isFinite(worst), `${type}: max |logit difference| ${worst.toFixed(2)}; the same top token at ${agree} of ${positions} positions`);
    }
  }
});

t.test('a byte-level ("gpt2") tokenizer, a separate LM head and attention biases round-trip', async (t) => {
  const source = join(root, 'bytelevel-src');
  await writeTestModel(source, {
    hidden: 64,
    intermediate: 96,
    layers: 2,
    heads: 4,
    kvHeads: 2,
    headDim: 16,
    vocab: 400,
    tie: false,
    attentionBias: true,
    seed: 5,
  });
  const dir = imported('bytelevel', source);

  const original = readSafetensors(join(source, 'model.safetensors'));
  const weights = readSafetensors(join(dir, 'model.safetensors'));
  t.ok('lm_head.weight' in weights && 'model.layers.1.self_attn.k_proj.bias' in weights, 'the head and the biases are there');
  t.same(Object.keys(weights).sort(), Object.keys(original).sort());
  for (const [name, tensor] of Object.entries(original)) t.same(weights[name], tensor, name);
  t.same(readConfig(dir), readConfig(source), 'the config reads the same');

  const tokOriginal = readJson(join(source, 'tokenizer.json')) as { model: { vocab: unknown; merges: unknown } };
  const tokImported = readJson(join(dir, 'tokenizer.json')) as typeof tokOriginal;
  t.same(tokImported.model.vocab, tokOriginal.model.vocab, 'the vocabulary');
  const pairs = (merges: unknown) => (merges as (string | string[])[]).map((m) => (typeof m === 'string' ? m : m.join(' ')));
  t.same(pairs(tokImported.model.merges), pairs(tokOriginal.model.merges), 'the merges, in order');
  sameTokenizer(t, ModelTokenizer.fromDir(source), ModelTokenizer.fromDir(dir));
});

t.test('byte-level pre-tokenizers by tokenizer.ggml.pre', async (t) => {
  // A vocabulary large enough to hold digit pairs ("12", "23", "02"), so that where the
  // pre-tokenizer splits shows in the tokens.
  const source = join(root, 'digits-src');
  await writeTestModel(source, { hidden: 32, intermediate: 64, layers: 1, heads: 2, kvHeads: 1, headDim: 16, vocab: 2200, seed: 1 });
  const text = "x 1234567 and 2024, I'VE done";
  const tokens = (pre: string) =>
    ModelTokenizer.fromDir(imported(`pre-${pre}`, source, { metadata: { 'tokenizer.ggml.pre': kv.str(pre) } })).encodeWithTokens(text, false).tokens;

  const gpt2 = tokens('gpt-2');
  t.same(gpt2, ModelTokenizer.fromDir(source).encodeWithTokens(text, false).tokens, 'gpt-2: as the original ByteLevel tokenizer');
  t.ok(gpt2.includes('23'), `gpt-2: digits merge across the whole number (${gpt2.join(' | ')})`);

  const smollm = tokens('smollm');
  t.ok(
    smollm.every((p) => !/\d./u.test(p) && !/.\d/u.test(p)),
    `smollm: every digit is a token of its own (${smollm.join(' | ')})`,
  );

  const llama3 = tokens('llama-bpe');
  // Groups of at most three digits: no token joins digit 3 to 4 or 6 to 7 of "1234567".
  const run = llama3.slice(llama3.indexOf('Ġ') + 1, llama3.indexOf('Ġand'));
  t.equal(run.join(''), '1234567');
  let at = 0;
  for (const p of run) {
    t.ok(Math.floor(at / 3) === Math.floor((at + p.length - 1) / 3), `llama-bpe: "${p}" stays within a group of three`);
    at += p.length;
  }
  t.ok(
    run.some((p) => p.length > 1),
    `llama-bpe: digits still merge within a group (${run.join(' | ')})`,
  );
  t.ok(llama3.includes("'V") && !gpt2.includes("'V"), 'llama-bpe: contractions match case-insensitively ("\'VE" is one piece)');
  for (const s of TEXTS) {
    const tok = ModelTokenizer.fromDir(join(root, 'pre-llama-bpe'));
    t.equal(tok.decode(tok.encode(s, false), false), s, `llama-bpe round-trips ${JSON.stringify(s)}`);
  }
});

t.test('what cannot be imported is refused, naming what and where, before anything is written', async (t) => {
  const source = join(root, 'wide-src');
  // Rows of 256, so that a Q4_K tensor (256-value blocks) fits.
  await writeTestModel(source, { hidden: 256, intermediate: 256, layers: 1, heads: 4, kvHeads: 2, headDim: 64, vocab: 300, seed: 2 });
  const refuse = (name: string, options: FromHfOptions, fragments: string[]) => {
    const file = join(root, `${name}.gguf`);
    ggufFromHfDir(source, file, options);
    const out = join(root, name);
    throwsWith(t, () => importGguf(file, out), [file, ...fragments], name);
    t.notOk(existsSync(out), `${name}: nothing written`);
  };
  refuse('q4k', { tensors: { 'blk.0.ffn_up.weight': { type: 12, bytes: new Uint8Array(256 * 144) } } }, [
    'tensor "blk.0.ffn_up.weight"',
    'type Q4_K',
    'supported: F32, F16, BF16, Q8_0, Q4_0',
  ]);
  refuse('qwen2', { metadata: { 'general.architecture': kv.str('qwen2') } }, ['general.architecture is "qwen2"', 'only "llama"']);
  refuse('no-arch', { metadata: { 'general.architecture': null } }, ['"general.architecture"', 'missing']);
  refuse('rope-scaling', { metadata: { 'llama.rope.scaling.type': kv.str('linear'), 'llama.rope.scaling.factor': kv.f32(4) } }, [
    'rope.scaling.type is "linear"',
    'not supported',
  ]);
  refuse('moe', { metadata: { 'llama.expert_count': kv.u32(8) } }, ['mixture-of-experts']);
  refuse('partial-rope', { metadata: { 'llama.rope.dimension_count': kv.u32(32) } }, ['"llama.rope.dimension_count"', 'partial rotary', 'UINT32 32']);
  refuse('bert', { metadata: { 'tokenizer.ggml.model': kv.str('bert') } }, ['tokenizer.ggml.model is "bert"']);
  refuse('no-tokenizer', { metadata: { 'tokenizer.ggml.model': null } }, ['no tokenizer']);
  refuse('pre', { metadata: { 'tokenizer.ggml.pre': kv.str('qwen2') } }, ['tokenizer.ggml.pre is "qwen2"', 'gpt-2, smollm, llama-bpe']);
  refuse('no-merges', { metadata: { 'tokenizer.ggml.merges': null } }, ['"tokenizer.ggml.merges"', 'missing']);
  refuse('shape', { metadata: { 'llama.feed_forward_length': kv.u32(128) } }, [
    'tensor "blk.0.ffn_gate.weight"',
    'dims [256, 256]',
    'model.layers.0.mlp.gate_proj.weight [128, 256]',
  ]);
  refuse('split', { metadata: { 'split.count': kv.u16(3), 'split.no': kv.u16(0) } }, ['one of 3 split GGUF files', 'llama-gguf-split --merge']);
  refuse('bos', { metadata: { 'tokenizer.ggml.bos_token_id': kv.u32(300) } }, ['"tokenizer.ggml.bos_token_id"', "below the vocabulary's 300 tokens"]);
});

t.test('end-of-turn ids and recommended sampling settings go to generation_config.json', async (t) => {
  const dir = imported('stories-extras', STORIES_DIR, {
    metadata: {
      'tokenizer.ggml.eot_token_id': kv.u32(0),
      'general.sampling.temp': kv.f32(0.7),
      'general.sampling.top_p': kv.f32(0.9),
      'general.sampling.top_k': kv.i32(40),
    },
  });
  t.same(readJson(join(dir, 'generation_config.json')), { bos_token_id: 1, eos_token_id: [2, 0], temperature: 0.7, top_p: 0.9, top_k: 40 });
  const model = await loadModelDir(dir);
  t.same(model.config.eosTokenIds, [2, 0], 'generation stops at either');
  t.same(model.generationDefaults, { temperature: 0.7, topP: 0.9, topK: 40 });
});

t.test('an existing output directory is written only when empty or forced', async (t) => {
  const file = join(root, 'stories-f32.gguf');
  const out = join(root, 'existing');
  mkdirSync(out);
  importGguf(file, out);
  t.ok(existsSync(join(out, 'model.safetensors')), 'an empty directory is used');
  throwsWith(t, () => importGguf(file, out), [out, 'not empty', '--force']);
  writeFileSync(join(out, 'config.json'), '{}');
  writeFileSync(join(out, 'notes.txt'), 'mine');
  importGguf(file, out, { force: true });
  t.same(readConfig(out), readConfig(STORIES_DIR), 'forced: the model files are replaced');
  t.equal(readFileSync(join(out, 'notes.txt'), 'utf8'), 'mine', 'other files are left alone');
  t.notOk(existsSync(join(out, 'model.safetensors.partial')), 'no partial file left behind');
  writeFileSync(join(root, 'a-file'), '');
  throwsWith(t, () => importGguf(file, join(root, 'a-file')), ['a-file', 'not a directory']);
});

function argmax(values: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
  return best;
}
