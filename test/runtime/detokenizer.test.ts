import t from 'tap';
import { ModelTokenizer } from '../../src/model/tokenizer.js';
import { IncrementalDecoder } from '../../src/runtime/detokenizer.js';
import { buildByteLevelTokenizer } from '../../src/model/testtokenizer.js';
import { STORIES_DIR } from '../helpers/stories.js';

function pieces(tok: ModelTokenizer, context: number[], ids: number[]): string[] {
  const d = new IncrementalDecoder((x) => tok.decode(x), context);
  return ids.map((id) => d.push(id));
}

t.test('SentencePiece-style: pieces keep the spaces a lone decode would strip', async (t) => {
  const tok = ModelTokenizer.fromDir(STORIES_DIR);
  const prompt = tok.encode('Once upon a time');
  const rest = tok.encode('Once upon a time, there was a dog', true).slice(prompt.length);
  const out = pieces(tok, prompt, rest);
  t.equal(out.join(''), ', there was a dog');
  t.equal(out[1], ' there');
});

t.test('byte-level: a character split over tokens comes out whole, once', async (t) => {
  const { tokenizerJson, tokenizerConfig } = buildByteLevelTokenizer(300, 64);
  const tok = ModelTokenizer.fromJson(tokenizerJson, tokenizerConfig);
  const ids = tok.encode('naïve café ☕', false);
  const out = pieces(tok, [], ids);
  t.equal(out.join(''), 'naïve café ☕');
  t.ok(out.includes(''), 'the first bytes of a multi-byte character add nothing');
  t.notOk(
    out.some((p) => p.includes('\uFFFD')),
    'never a replacement character',
  );
});
