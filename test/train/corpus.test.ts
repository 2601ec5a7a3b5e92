import t from 'tap';
import { brownToText, DEFAULT_SPLIT, loadCorpus, splitCorpus, splitOf, splitSizes, type CorpusDocument } from '../../src/train/corpus.js';
import { throwsWith } from '../helpers/errors.js';

// Loaded once: ~15 M characters from the two dev-dependency packages.
const docs = loadCorpus();
const brown = docs.filter((d) => d.source === 'brown');
const nlp = docs.filter((d) => d.source === 'nlp-corpus');
const chars = (list: readonly CorpusDocument[]): number => list.reduce((n, d) => n + d.text.length, 0);
const doc = (id: string): CorpusDocument => {
  const found = docs.find((d) => d.id === id);
  if (found === undefined) throw new Error(`no document ${id}`);
  return found;
};

t.test('the corpus: 500 Brown samples and 1000 nlp-corpus documents of plain English', async (t) => {
  t.equal(brown.length, 500, 'one document per Brown sample file');
  t.equal(nlp.length, 1000, '100 nlp-corpus files cut into 10 documents each');
  t.equal(docs.length, brown.length + nlp.length, 'nothing from elsewhere');
  t.equal(new Set(docs.map((d) => d.id)).size, docs.length, 'ids are unique');
  t.ok(
    docs.every((d) => d.text.trim() !== ''),
    'no empty document',
  );
  // Brown is ~1 M words (~6 M characters once untagged); nlp-corpus 100,000 sentences of ~88 characters.
  t.ok(chars(brown) > 5_500_000 && chars(brown) < 6_500_000, `Brown has ${chars(brown)} characters`);
  t.ok(chars(nlp) > 8_500_000 && chars(nlp) < 9_300_000, `nlp-corpus has ${chars(nlp)} characters`);
  t.equal(doc('brown/ca01').source, 'brown');
  t.equal(doc('nlp-corpus/doc-99/9').source, 'nlp-corpus');
});

t.test('Brown: no part-of-speech tags or tokenizer quotes remain', async (t) => {
  const text = brown.map((d) => d.text).join('\n');
  for (const tag of ['/at ', '/nn', '/np', '/vbd', '/jj', '/cc ', '/pps', '-hl', '-tl']) {
    t.notOk(text.includes(tag), `no "${tag}"`);
  }
  t.notOk(text.includes('``'), 'no `` (opening quotes are ")');
  t.notOk(text.includes("''"), "no '' (closing quotes and inch marks are \")");
  t.notMatch(text, / [,.;?!)]/, 'no space before , . ; ? ! )');
  t.notMatch(text, /\( /, 'no space after (');
  t.ok(text.includes('and/or'), 'slashes inside words stay (`and/or/cc` is the word "and/or")');
});

t.test('Brown ca01: sentences read as printed, paragraphs as in the file', async (t) => {
  const paragraphs = doc('brown/ca01').text.split('\n\n');
  t.equal(
    paragraphs[0],
    'The Fulton County Grand Jury said Friday an investigation of Atlanta\'s recent primary election produced "no evidence" that any irregularities took place.',
  );
  t.equal(
    paragraphs[3],
    '"Only a relative handful of such reports was received", the jury said, "considering the widespread interest in the election, the number of voters and the size of this city".',
    'quotes open and close around their words; commas attach to the word before',
  );
  t.ok(paragraphs[2].endsWith('won by Mayor-nominate Ivan Allen Jr.'), 'the split-off period after "Jr." is not doubled');
  t.equal(paragraphs[7], 'Merger proposed', 'a headline is a paragraph of its own');
  t.ok(paragraphs[8].startsWith('However, the jury said it believes "these two offices'), 'and the text after it another');
  t.match(
    doc('brown/ca01').text,
    /personnel policies"\. It urged that the city "take steps to remedy" this problem\./,
    'sentence lines of one paragraph join with a space',
  );
});

t.test("Brown: a lone ' is an inner quotation mark that opens and closes", async (t) => {
  t.ok(doc('brown/ca16').text.includes(`"We are back with the 'Met' again now that the 'Met' is back in Chicago", bulletins`));
  t.ok(doc('brown/ca15').text.includes(`would say, 'Don't worry, Coach -- we'll get 'em all right'".`), "and 'em stays a word");
});

t.test('brownToText: the detokenizing rules on a small tagged text', async (t) => {
  const tagged = [
    '',
    '',
    "\tHe/pps said/vbd ``/`` no/at ''/'' ,/, then/rb (/( slowly/rb )/) left/vbd ./.",
    "It/pps was/bedz 1/2''/nn thick/jj ;/. wasn't/bedz* it/pps ?/.",
    '',
    '',
    '',
    'Rain/nn-hl today/nr-hl ',
    'Mr./np Allen/np Jr./np ./.',
    '',
  ].join('\n');
  t.equal(brownToText(tagged), 'He said "no", then (slowly) left. It was 1/2" thick; wasn\'t it?\n\nRain today\n\nMr. Allen Jr.');
});

t.test('nlp-corpus: sentences one per line, Unicode kept', async (t) => {
  const first = doc('nlp-corpus/doc-0/0').text;
  t.ok(first.startsWith('Creakiness and atmosphere this film has, but so unfortunately does the print I just viewed.\nParticularly sought'));
  t.ok(first.split('\n').length >= 100, '100 sentences (a few hold line breaks of their own)');
  t.ok(
    nlp.every((d) => d.text === d.text.trim()),
    'sentences are trimmed',
  );
  t.ok(nlp.some((d) => d.text.includes('’')) && nlp.some((d) => /[\u0600-\u06ff]/.test(d.text)), 'curly quotes and Arabic script survive');
});

t.test('split: by document, deterministic, disjoint, roughly the requested fractions', async (t) => {
  const split = splitCorpus(docs, DEFAULT_SPLIT);
  const again = splitCorpus(docs, { validation: 0.05, calibration: 0.02, seed: 0 });
  const ids = (list: CorpusDocument[]): string[] => list.map((d) => d.id);
  t.same(ids(again.train), ids(split.train), 'same input, same split');
  t.same(ids(again.validation), ids(split.validation));
  t.same(ids(again.calibration), ids(split.calibration));

  const all = [...split.train, ...split.validation, ...split.calibration];
  t.equal(all.length, docs.length, 'every document is in a split');
  t.equal(new Set(ids(all)).size, docs.length, 'and in only one');

  const sizes = splitSizes(split);
  t.equal(sizes.train.characters + sizes.validation.characters + sizes.calibration.characters, chars(docs));
  const docFraction = (n: number): number => n / docs.length;
  const charFraction = (n: number): number => n / chars(docs);
  // 1500 documents: the binomial spread of a 5% split is +-0.6 points, of a 2% split +-0.4.
  t.ok(Math.abs(docFraction(sizes.validation.documents) - 0.05) < 0.015, `validation holds ${sizes.validation.documents} documents`);
  t.ok(Math.abs(docFraction(sizes.calibration.documents) - 0.02) < 0.01, `calibration holds ${sizes.calibration.documents} documents`);
  t.ok(Math.abs(charFraction(sizes.validation.characters) - 0.05) < 0.02, `validation holds ${sizes.validation.characters} characters`);
  t.ok(Math.abs(charFraction(sizes.calibration.characters) - 0.02) < 0.01, `calibration holds ${sizes.calibration.characters} characters`);
  t.ok(split.validation.some((d) => d.source === 'brown') && split.validation.some((d) => d.source === 'nlp-corpus'), 'validation draws on both corpora');

  // Pinned: a changed split would put validation text into the training data of a resumed run.
  t.same(
    { train: sizes.train.documents, validation: sizes.validation.documents, calibration: sizes.calibration.documents },
    { train: 1412, validation: 61, calibration: 27 },
    'the default split of this corpus does not change',
  );
});

t.test('split: a document keeps its split when others are added; the seed reshuffles', async (t) => {
  const extra: CorpusDocument[] = Array.from({ length: 300 }, (_, i) => ({ id: `extra/${i}`, source: 'brown', text: 'x' }));
  const before = splitCorpus(docs);
  const after = splitCorpus([...extra, ...docs]);
  for (const name of ['train', 'validation', 'calibration'] as const) {
    t.same(
      after[name].filter((d) => !d.id.startsWith('extra/')).map((d) => d.id),
      before[name].map((d) => d.id),
      `${name}: same documents, same order`,
    );
  }
  t.equal(splitOf('brown/ca01'), splitOf('brown/ca01', DEFAULT_SPLIT), 'splitOf is the per-document decision');
  const other = splitCorpus(docs, { ...DEFAULT_SPLIT, seed: 1 });
  t.not(other.validation.map((d) => d.id).join(), before.validation.map((d) => d.id).join(), 'another seed, another validation set');
  const none = splitCorpus(docs, { validation: 0, calibration: 0, seed: 0 });
  t.equal(none.train.length, docs.length, 'zero fractions hold nothing out');
});

t.test('split: bad fractions and duplicate ids are refused', async (t) => {
  throwsWith(t, () => splitCorpus(docs, { validation: 0.6, calibration: 0.4, seed: 0 }), ['leave some training data', '0.6', '0.4']);
  throwsWith(t, () => splitCorpus(docs, { validation: -0.1, calibration: 0, seed: 0 }), ['fractions >= 0']);
  throwsWith(t, () => splitCorpus(docs, { validation: 0.05, calibration: 0.02, seed: 1.5 }), ['seed must be an integer']);
  throwsWith(t, () => splitCorpus([docs[0], docs[0]]), ['"brown/ca01" appears twice']);
});
