import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { byteToSymbol } from '../../src/model/bytelevel.js';
import { ModelTokenizer } from '../../src/model/tokenizer.js';
import {
  BOS_TOKEN,
  BpeEncoder,
  bpeTokenizerConfig,
  bpeTokenizerJson,
  EOS_TOKEN,
  preTokenize,
  trainBpe,
  writeBpeTokenizer,
  type BpeModel,
} from '../../src/train/bpe.js';
import { loadCorpus, splitCorpus } from '../../src/train/corpus.js';
import { throwsWith } from '../helpers/errors.js';

const SYMBOLS = byteToSymbol();
const merged = (model: BpeModel): string[] => model.tokens.slice(model.specialTokens.length + 256);

t.test('preTokenize cuts like GPT-2: words keep their leading space, contractions split off', async (t) => {
  t.same(preTokenize("Hello world's  end!\n"), ['Hello', ' world', "'s", ' ', ' end', '!', '\n']);
  t.same(preTokenize("I'll pay 42.50 dollars"), ['I', "'ll", ' pay', ' 42', '.', '50', ' dollars']);
  t.same(preTokenize('Café “naïve”'), ['Café', ' “', 'naïve', '”'], 'letters are Unicode letters');
  const text = 'Any  text,\n\n\tat all: 3x — ok?';
  t.equal(preTokenize(text).join(''), text, 'the words concatenate back to the text');
});

t.test('trainBpe: ids are the specials, the 256 bytes in byte order, then merges', async (t) => {
  const model = trainBpe(['ab ab ab'], { vocabSize: 300 });
  t.same(model.specialTokens, [BOS_TOKEN, EOS_TOKEN]);
  t.equal(model.tokens[0], '<s>', 'BOS is id 0');
  t.equal(model.tokens[1], '</s>', 'EOS is id 1');
  t.equal(model.tokens[2 + 0x41], 'A', 'id 2 + byte');
  t.equal(model.tokens[2 + 0x20], 'Ġ', 'bytes in GPT-2 printable form (space is Ġ)');
  t.same(model.tokens.slice(2, 258), SYMBOLS, 'all 256 bytes, whatever the text');
  t.same(merged(model), ['ab', 'Ġab'], 'then what was learned');
});

t.test('trainBpe: merges the most frequent pair first (hand-checked)', async (t) => {
  // Counts: "ab" x4, "abc" x3, "bc" x2, "cab" x1.
  //   (a,b) = 4 + 3 + 1 = 8 > (b,c) = 5 > (c,a) = 1          -> a+b
  //   then (ab,c) = 3 > (b,c) = 2 > (c,ab) = 1               -> ab+c
  //   then (b,c) = 2 > (c,ab) = 1                            -> b+c
  //   then only (c,ab) = 1 is left, below minFrequency 2.
  const texts = ['ab', 'ab', 'ab', 'ab', 'abc', 'abc', 'abc', 'bc', 'bc', 'cab'];
  const model = trainBpe(texts, { vocabSize: 300 });
  t.same(model.merges, [
    ['a', 'b'],
    ['ab', 'c'],
    ['b', 'c'],
  ]);
  t.same(merged(model), ['ab', 'abc', 'bc']);
  t.equal(model.tokens.length, 261, 'fewer tokens than asked when no pair is frequent enough');

  const all = trainBpe(texts, { vocabSize: 300, minFrequency: 1 });
  t.same(all.merges.at(-1), ['c', 'ab'], 'minFrequency 1 merges a pair seen once');
  const capped = trainBpe(texts, { vocabSize: 259 });
  t.same(capped.merges, [['a', 'b']], 'the vocabulary size caps the merges');
});

t.test('trainBpe: ties go to the smaller left id, then the smaller right id', async (t) => {
  t.same(
    trainBpe(['yz', 'yz', 'xy', 'xy'], { vocabSize: 300 }).merges,
    [
      ['x', 'y'],
      ['y', 'z'],
    ],
    'x before y, whatever the text order',
  );
  t.same(
    trainBpe(['ac', 'ac', 'ab', 'ab'], { vocabSize: 300 }).merges,
    [
      ['a', 'b'],
      ['a', 'c'],
    ],
    'same left: b before c',
  );
  // " the" x3: (Ġ,t), (t,h), (h,e) all 3 -> Ġ (byte 0x20) first; then (Ġt,h) and (h,e) tie again,
  // and h (a byte) has a smaller id than Ġt (a merge).
  t.same(trainBpe([' the the the'], { vocabSize: 300 }).merges, [
    ['Ġ', 't'],
    ['h', 'e'],
    ['Ġt', 'he'],
  ]);
  const texts = ['one two three', 'two three', 'three'];
  t.same(trainBpe(texts, { vocabSize: 280 }), trainBpe([...texts].reverse(), { vocabSize: 280 }), 'text order does not matter');
});

t.test('trainBpe: no merge spells a special token', async (t) => {
  // (#,#) is the most frequent pair (3), but "##" is special: the pairs with the space merge instead.
  const model = trainBpe(['## ## ##'], { vocabSize: 300, specialTokens: ['<s>', '</s>', '##'] });
  t.same(model.merges, [
    ['Ġ', '#'],
    ['Ġ#', '#'],
  ]);
  t.equal(model.tokens.filter((x) => x === '##').length, 1, '"##" keeps its one id');
});

t.test('trainBpe: bad options are refused', async (t) => {
  throwsWith(t, () => trainBpe([], { vocabSize: 257 }), ['vocabSize must be an integer from 258', '257']);
  throwsWith(t, () => trainBpe([], { vocabSize: 300, specialTokens: ['<s>', '<s>'] }), ['special tokens must be distinct']);
  throwsWith(t, () => trainBpe([], { vocabSize: 300, specialTokens: ['a'] }), ['not a single byte symbol']);
  throwsWith(t, () => trainBpe([], { vocabSize: 300, minFrequency: 0 }), ['minFrequency must be an integer >= 1']);
});

// ---- on the real corpus -------------------------------------------------------------------

const split = splitCorpus(loadCorpus());
const validation = split.validation.map((d) => d.text);

/** The first `limit` characters' worth of training documents. */
function trainSample(limit: number): string[] {
  const out: string[] = [];
  let n = 0;
  for (const d of split.train) {
    if (n >= limit) break;
    out.push(d.text);
    n += d.text.length;
  }
  return out;
}

/**
 * The textbook algorithm, for comparison: recount every pair of every word before each merge.
 * Too slow for real use, plainly right.
 */
function naiveMerges(texts: string[], vocabSize: number, minFrequency: number): [string, string][] {
  const tokens = ['<s>', '</s>', ...SYMBOLS];
  const counts = new Map<string, number>();
  for (const text of texts) for (const w of preTokenize(text)) counts.set(w, (counts.get(w) ?? 0) + 1);
  let words = [...counts].map(([w, n]) => ({ sym: [...Buffer.from(w, 'utf8')].map((b) => 2 + b), n }));
  const merges: [string, string][] = [];
  while (tokens.length < vocabSize) {
    const pairs = new Map<string, { a: number; b: number; n: number }>();
    for (const { sym, n } of words) {
      for (let i = 0; i + 1 < sym.length; i++) {
        const k = `${sym[i]},${sym[i + 1]}`;
        const p = pairs.get(k) ?? { a: sym[i], b: sym[i + 1], n: 0 };
        p.n += n;
        pairs.set(k, p);
      }
    }
    const best = [...pairs.values()].sort((x, y) => y.n - x.n || x.a - y.a || x.b - y.b)[0];
    if (best === undefined || best.n < minFrequency) break;
    const text = tokens[best.a] + tokens[best.b];
    let id = tokens.indexOf(text);
    if (id < 0) id = tokens.push(text) - 1;
    merges.push([tokens[best.a], tokens[best.b]]);
    words = words.map(({ sym, n }) => {
      const out: number[] = [];
      for (let i = 0; i < sym.length; i++) {
        if (sym[i] === best.a && sym[i + 1] === best.b) {
          out.push(id);
          i++;
        } else out.push(sym[i]);
      }
      return { sym: out, n };
    });
  }
  return merges;
}

t.test('trainBpe: the incremental pair counts give the same merges as recounting everything', async (t) => {
  const texts = trainSample(40_000);
  const model = trainBpe(texts, { vocabSize: 700 });
  t.equal(model.tokens.length, 700);
  t.same(model.merges, naiveMerges(texts, 700, 2));
});

t.test('the tokenizer on a training subset: loads in @huggingface/tokenizers, adds BOS, round-trips the validation text', async (t) => {
  const started = performance.now();
  const progress: number[] = [];
  const model = trainBpe(trainSample(2_000_000), { vocabSize: 2048, onProgress: (p) => progress.push(p.merges) });
  const seconds = (performance.now() - started) / 1000;
  t.equal(model.tokens.length, 2048, `vocabulary of 2048 trained in ${seconds.toFixed(1)} s`);
  t.same([progress[0], progress[1], progress.at(-1)], [0, 100, 2048 - 258], 'progress: after counting, every 100 merges, at the end');

  const options = { modelMaxLength: 256 };
  const tok = ModelTokenizer.fromJson(bpeTokenizerJson(model, options), bpeTokenizerConfig(model, options));
  t.equal(tok.vocabSize, 2048);
  t.equal(tok.bosToken, '<s>');
  t.equal(tok.eosToken, '</s>');
  t.equal(tok.tokenToId('</s>'), 1);

  const hello = tok.encodeWithTokens('Hello, world');
  t.equal(hello.ids[0], 0, 'encoding prepends BOS');
  t.equal(hello.tokens[0], '<s>');
  t.same(tok.encode('Hello, world', false), hello.ids.slice(1), 'and only BOS: no EOS, nothing else');
  t.ok(hello.tokens.includes('Ġworld'), 'common words are single tokens with their space');

  const ours = new BpeEncoder(model);
  const samples = [
    'The jury said Friday.',
    "  Leading spaces, don't    trip it up;\ttabs\n\nand\r\nCRLF.",
    'Café naïve — “quoted” 日本語 🙂 مرحبا Ελληνικά',
    '1234567890 $3.50 100% a/b/c <tag> ###',
  ];
  for (const s of samples) t.same(ours.encode(s), tok.encode(s, false), `our encoding equals the library's: ${JSON.stringify(s)}`);

  let mismatched = 0;
  let lossy = 0;
  for (const text of validation) {
    const ids = tok.encode(text);
    const mine = ours.encode(text);
    if (mine.length !== ids.length - 1 || mine.some((id, i) => id !== ids[i + 1])) mismatched++;
    if (tok.decode(ids) !== text) lossy++;
  }
  t.ok(
    validation.some((text) => /\P{ASCII}/u.test(text)),
    'the validation text holds non-ASCII characters',
  );
  t.equal(mismatched, 0, `our encoding equals the library's on all ${validation.length} validation documents`);
  t.equal(lossy, 0, 'decode(encode(x)) == x on every validation document');
  for (const s of samples) t.equal(tok.decode(tok.encode(s)), s, `round trip: ${JSON.stringify(s)}`);
  t.equal(tok.decode(tok.encode('x'), false), '<s>x', 'BOS decodes to its text when special tokens are kept');
});

t.test('writeBpeTokenizer: tokenizer.json and tokenizer_config.json that load from a directory', async (t) => {
  const model = trainBpe(trainSample(50_000), { vocabSize: 400 });
  const dir = join(t.testdir(), 'tok');
  writeBpeTokenizer(dir, model, { modelMaxLength: 512 });
  const json = JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8')) as {
    model: { type: string; byte_fallback: boolean; vocab: Record<string, number>; merges: unknown[] };
    pre_tokenizer: { type: string; add_prefix_space: boolean; use_regex: boolean };
    decoder: { type: string };
    post_processor: { type: string };
    added_tokens: { id: number; content: string; special: boolean }[];
  };
  t.equal(json.model.type, 'BPE');
  t.equal(json.model.byte_fallback, false);
  t.equal(Object.keys(json.model.vocab).length, 400);
  t.equal(json.model.merges.length, model.merges.length);
  t.same(json.pre_tokenizer, { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true });
  t.equal(json.decoder.type, 'ByteLevel');
  t.equal(json.post_processor.type, 'TemplateProcessing');
  t.same(
    json.added_tokens.map((a) => [a.id, a.content, a.special]),
    [
      [0, '<s>', true],
      [1, '</s>', true],
    ],
  );
  const config = JSON.parse(readFileSync(join(dir, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;
  t.match(config, { bos_token: '<s>', eos_token: '</s>', model_max_length: 512, clean_up_tokenization_spaces: false });

  const tok = ModelTokenizer.fromDir(dir);
  t.equal(tok.decode(tok.encode('Round trip, from files.')), 'Round trip, from files.');
  throwsWith(t, () => bpeTokenizerJson(model, { bosToken: '<bos>', modelMaxLength: 512 }), ['BOS token "<bos>" is not one of the special tokens']);
  throwsWith(t, () => bpeTokenizerConfig(model, { modelMaxLength: 0 }), ['modelMaxLength must be a positive integer']);
});
