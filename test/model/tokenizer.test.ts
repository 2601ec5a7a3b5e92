import { copyFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { writeTestModel } from '../../src/arch/testmodel.js';
import { buildByteLevelTokenizer, BYTE_BASE } from '../../src/model/testtokenizer.js';
import { ModelTokenizer } from '../../src/model/tokenizer.js';
import { throwsWith } from '../helpers/errors.js';
import { readStoriesReference, STORIES_DIR } from '../helpers/stories.js';

t.test('stories260K: encodes like llama2.c run.c', async (t) => {
  const tok = ModelTokenizer.fromDir(STORIES_DIR);
  t.same(tok.encode('Once upon a time'), [1, 403, 407, 261, 378], 'BOS, then the dummy-prefix-space pieces');
  t.same(tok.encodeWithTokens('Once upon a time').tokens, ['<s>', '▁Once', '▁upon', '▁a', '▁time']);
  t.same(tok.encode('Once upon a time', false), [403, 407, 261, 378], 'no BOS without special tokens');
  for (const p of readStoriesReference().prompts) t.same(tok.encode(p.prompt), p.prompt_ids, p.prompt);
});

t.test("stories260K: decodes prompt + completion to run.c's text", async (t) => {
  const tok = ModelTokenizer.fromDir(STORIES_DIR);
  for (const p of readStoriesReference().prompts) {
    t.equal(tok.decode([...p.prompt_ids, ...p.completion_ids]), p.full_text, p.prompt);
  }
  t.equal(tok.decode([1, 403, 407], false), '<s> Once upon', 'special tokens kept when asked');
  t.equal(tok.decode([1, 403, 407]), 'Once upon', 'and skipped by default');
});

t.test('stories260K: vocabulary and special tokens', async (t) => {
  const tok = ModelTokenizer.fromDir(STORIES_DIR);
  t.equal(tok.vocabSize, 512);
  t.equal(tok.bosToken, '<s>');
  t.equal(tok.eosToken, '</s>');
  t.equal(tok.idToToken(403), '▁Once');
  t.equal(tok.tokenToId('</s>'), 2);
  t.equal(tok.idToToken(512), undefined, 'ids past the vocabulary have no token');
  t.equal(tok.tokenToId('no such token'), undefined);
});

t.test("tokenizer_config.json is optional; bos/eos then come from the model's ids", async (t) => {
  const dir = t.testdir();
  copyFileSync(join(STORIES_DIR, 'tokenizer.json'), join(dir, 'tokenizer.json'));
  const bare = ModelTokenizer.fromDir(dir);
  t.same(bare.encode('Once upon a time'), [1, 403, 407, 261, 378], 'tokenizer.json alone encodes the same');
  t.equal(bare.bosToken, null, 'no names without a config or ids');
  const named = ModelTokenizer.fromDir(dir, { bosTokenId: 1, eosTokenIds: [2] });
  t.equal(named.bosToken, '<s>');
  t.equal(named.eosToken, '</s>');
});

t.test('a missing or broken tokenizer.json is named', async (t) => {
  const dir = t.testdir({ 'tokenizer.json': '{"model": 3}' });
  throwsWith(t, () => ModelTokenizer.fromDir(join(dir, 'nowhere')), [join(dir, 'nowhere', 'tokenizer.json'), 'not found']);
  throwsWith(t, () => ModelTokenizer.fromDir(dir), [join(dir, 'tokenizer.json'), '"model"']);
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify({ model: { type: 'NoSuchModel' } }));
  throwsWith(t, () => ModelTokenizer.fromDir(dir), [join(dir, 'tokenizer.json'), 'cannot load tokenizer']);
});

const TEXTS = [
  'Once upon a time, there was a little dog named Tom.',
  "Hello , world . I don't know !", // spaces before punctuation must survive (no "clean-up")
  '  leading and trailing spaces  ',
  'tabs\tand\nnewlines\r\n',
  'digits 0123456789 and symbols ~!@#$%^&*()_+{}|:"<>?`-=[]\\;\',./',
  'héllo wörld, naïve café, 日本語, emoji 😀',
];

t.test("the generated test model's byte-level tokenizer round-trips text", async (t) => {
  const dir = t.testdir();
  await writeTestModel(dir, { vocab: 400 });
  const tok = ModelTokenizer.fromDir(dir);
  for (const text of TEXTS) {
    const ids = tok.encode(text);
    t.equal(ids[0], 1, 'BOS first');
    t.ok(
      ids.every((id) => id >= 0 && id < 400),
      "ids within the model's vocabulary",
    );
    t.equal(tok.decode(ids), text, JSON.stringify(text));
  }
  t.ok(tok.encode('Once upon a time').length <= 5, 'common words are merged into single tokens');
  t.equal(tok.vocabSize, 400, "the tokenizer fills the model's vocabulary exactly");
  t.equal(tok.bosToken, '<s>');
  t.equal(tok.eosToken, '</s>');
  for (let id = 0; id < 400; id++) if (tok.idToToken(id) === undefined) t.fail(`id ${id} has no token`);
});

t.test('byte tokens sit at 3 + byte value', async (t) => {
  const { tokenizerJson, tokenizerConfig } = buildByteLevelTokenizer(259, 64);
  const tok = ModelTokenizer.fromJson(tokenizerJson, tokenizerConfig);
  t.same(tok.encode('A\n', false), [BYTE_BASE + 0x41, BYTE_BASE + 0x0a]);
  t.same(tok.encode('é', false), [BYTE_BASE + 0xc3, BYTE_BASE + 0xa9], 'UTF-8 bytes');
  throwsWith(t, () => buildByteLevelTokenizer(100, 64), ['>= 259']);
});

t.test('decode tolerates empty input and ids without a token', async (t) => {
  const { tokenizerJson, tokenizerConfig } = buildByteLevelTokenizer(300, 64);
  const tok = ModelTokenizer.fromJson(tokenizerJson, tokenizerConfig);
  t.equal(tok.decode([]), '');
  const ids = tok.encode('hi', false);
  t.equal(tok.decode([ids[0], 5000, ...ids.slice(1)]), 'hi', 'an id beyond the tokenizer (padded model vocabulary) has no text');
  t.equal(tok.decode([1, 2]), '', 'only special tokens');
});

t.test('decode does not "clean up" spaces unless tokenizer_config.json asks for it', async (t) => {
  // @huggingface/tokenizers defaults clean_up_tokenization_spaces to true, which turns " ." into
  // "." and "do n't" into "don't": text would no longer round-trip.
  const { tokenizerJson } = buildByteLevelTokenizer(300, 64);
  const text = "Hello , world . I do n't !";
  const bare = ModelTokenizer.fromJson(tokenizerJson, {});
  t.equal(bare.decode(bare.encode(text)), text, 'no config: lossless');
  const asked = ModelTokenizer.fromJson(tokenizerJson, { clean_up_tokenization_spaces: true });
  t.equal(asked.decode(asked.encode(text)), "Hello, world. I don't!", 'an explicit true is honoured, as transformers does');
});
