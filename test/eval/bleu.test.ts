import t, { type Test } from 'tap';
import { corpusBleu, sentenceBleu, tokenize13a, type BleuScore } from '../../src/eval/bleu.js';

// Expected values come from sacreBLEU itself (github.com/mjpost/sacrebleu, read at commit
// f615c7286d4d813370efb824d94fc2bfcd3a6b94) unless a comment says otherwise.

/** |actual - expected| <= eps */
function near(t: Test, actual: number, expected: number, eps: number, what: string): void {
  t.ok(Math.abs(actual - expected) <= eps, `${what}: ${actual} is within ${eps} of ${expected}`);
}

/** Checks a score against the line sacreBLEU prints for it, e.g. "48.53 82.4/50.0/45.5/37.5 (BP = 0.943 ratio = 0.944 hyp_len = 17 ref_len = 18)". */
function printsAs(t: Test, b: BleuScore, line: string): void {
  const m = /^([\d.]+) ([\d.]+)\/([\d.]+)\/([\d.]+)\/([\d.]+) \(BP = ([\d.]+) ratio = ([\d.]+) hyp_len = (\d+) ref_len = (\d+)\)$/.exec(line);
  if (!m) throw new Error(`not a sacreBLEU summary: ${line}`);
  t.equal(b.score.toFixed(2), m[1], 'score');
  t.same(
    b.precisions.map((p) => p.toFixed(1)),
    m.slice(2, 6),
    'precisions',
  );
  t.equal(b.bp.toFixed(3), m[6], 'brevity penalty');
  t.equal(b.ratio.toFixed(3), m[7], 'length ratio');
  t.same([b.hypLen, b.refLen], [Number(m[8]), Number(m[9])], 'lengths');
}

// The example of mjpost/sacrebleu README.md ("Using SacreBLEU from Python"), also the
// `_hyps`/`_refs` fixture of test/test_bleu.py. refs[k][i]: k-th reference of sentence i.
const HYPS = ['The dog bit the man.', "It wasn't surprising.", 'The man had just bitten him.'];
const REFS = [
  ['The dog bit the man.', 'It was not unexpected.', 'The man bit him first.'],
  ['The dog had bit the man.', 'No one was surprised.', 'The man had bitten the dog.'],
];

t.test('tokenize13a follows mteval-v13a as sacreBLEU implements it', async (t) => {
  // sbintuitions/flexeval tests/core/metric/tokenizer/test_sacrebleu_tokenizer.py, which calls
  // sacreBLEU's own '13a' tokenizer.
  t.equal(tokenize13a("I'm a student."), "I'm a student .", 'final period splits off, the apostrophe stays');

  // mjpost/sacrebleu has no unit test of the 13a tokenizer. The cases below follow the rules of
  // sacrebleu/tokenizers/tokenizer_13a.py and tokenizer_re.py one by one; each expected string is
  // what that source (Tokenizer13a()(line), commit above) returns for the input.
  const cases: [line: string, tokenized: string, rule: string][] = [
    ['a <skipped> b', 'a b', '<skipped> markers are removed'],
    ['state-\nment', 'statement', 'a hyphen at a line break joins the halves'],
    ['one\ntwo', 'one two', 'other line breaks are spaces'],
    ['He said &quot;hi&quot; &amp; left &lt;3 &gt;', 'He said " hi " & left < 3 >', 'the four SGML entities are unescaped, then tokenized as symbols'],
    ['&amp;lt;', '<', '&amp; is unescaped before &lt;, so &amp;lt; ends as <'],
    [
      '(a) [b] {c} x/y a+b=c? yes! #1 $5 50% a;b: ~`^_|\\@',
      '( a ) [ b ] { c } x / y a + b = c ? yes ! # 1 $ 5 50 % a ; b : ~ ` ^ _ | \\ @',
      'every ASCII symbol but apostrophe, comma, dash and period is a token',
    ],
    ['3.5 1,000 a.b end. ,x 2.', '3.5 1,000 a . b end . , x 2 .', 'period and comma split off unless a digit is on both sides'],
    ['.5 and 5.', '. 5 and 5 .', 'a period at either end of the line splits off'],
    ['U.S.A.', 'U . S . A .', 'abbreviations are split'],
    ['Pages 10-20 and well-known - ok', 'Pages 10 - 20 and well-known - ok', 'a dash after a digit splits off, a hyphen between letters does not'],
    ["don't", "don't", 'apostrophes are not split'],
    ['  a \t b  ', 'a b', 'whitespace is collapsed and trimmed'],
    ['a\u00a0b\u3000c', 'a b c', 'Unicode spaces separate tokens (Python str.split)'],
    ['', '', 'an empty line has no tokens'],
  ];
  for (const [line, tokenized, rule] of cases) t.equal(tokenize13a(line), tokenized, rule);
});

t.test('corpusBleu reproduces the sacreBLEU README example', async (t) => {
  const b = corpusBleu(HYPS, REFS);
  // test/test_bleu.py test_corpus_bleu_cases: 48.530827 (checked there to 1e-8).
  near(t, b.score, 48.530827, 1e-6, 'score');
  // README.md: "BLEU = 48.53 82.4/50.0/45.5/37.5 (BP = 0.943 ratio = 0.944 hyp_len = 17 ref_len = 18)"
  printsAs(t, b, '48.53 82.4/50.0/45.5/37.5 (BP = 0.943 ratio = 0.944 hyp_len = 17 ref_len = 18)');
  // The published precisions are 14/17, 7/14, 5/11, 3/8: 17 tokens give 14 bigrams, 11 trigrams
  // and 8 4-grams over 3 sentences.
  t.same(b.counts, [14, 7, 5, 3]);
  t.same(b.totals, [17, 14, 11, 8]);
});

t.test('an empty reference is a reference of length 0 (variable number of references)', async (t) => {
  // README.md "Variable Number of References": the first reference of sentence 1 replaced by ''
  // gives "BLEU = 29.44 82.4/42.9/27.3/12.5 (BP = 0.889 ratio = 0.895 hyp_len = 17 ref_len = 19)".
  const refs = [['', ...REFS[0].slice(1)], REFS[1]];
  printsAs(t, corpusBleu(HYPS, refs), '29.44 82.4/42.9/27.3/12.5 (BP = 0.889 ratio = 0.895 hyp_len = 17 ref_len = 19)');

  // With only empty references the length ratio is 0, not a division by zero (bleu.py BLEUScore:
  // ratio = sys_len / ref_len if ref_len else 0); nothing matches, so the score is 0.
  const none = corpusBleu(['a'], [['']]);
  t.equal(none.refLen, 0);
  t.equal(none.ratio, 0);
  t.equal(none.score, 0);
});

t.test('empty hypotheses score 0 with a zero brevity penalty', async (t) => {
  // test/test_bleu.py test_corpus_bleu_cases: (('', '', ''), _refs, {}, 0.0)
  const b = corpusBleu(['', '', ''], REFS);
  t.equal(b.score, 0);
  t.equal(b.bp, 0, 'bleu.py compute_bleu: BP is 0 when the hypothesis length is 0');
  t.equal(b.hypLen, 0);
  t.same(b.totals, [0, 0, 0, 0]);
  t.same(b.precisions, [0, 0, 0, 0]);
});

t.test('identical hypothesis and reference give 100', async (t) => {
  // exp(mean of log 100) is 100.00000000000004 in doubles, in sacreBLEU (Python) as here.
  const b = corpusBleu(HYPS, [HYPS]);
  near(t, b.score, 100, 1e-9, 'corpus score');
  t.equal(b.bp, 1);
  t.same(b.precisions, [100, 100, 100, 100]);
  // test/test_bleu.py test_case_effective_order: (["a test"], [["a test"]], 1.0)
  near(t, sentenceBleu('a test', ['a test']).score, 100, 1e-9, 'sentence score');
});

t.test('a hypothesis sharing no 4-gram gets an exp-smoothed, small but non-zero score', async (t) => {
  // test/test_bleu.py test_case_statistics: counts [4, 2, 1, 0], totals [6, 5, 4, 3] (computed there
  // with tokenize='none'; 13a leaves these punctuation-free lines as they are).
  const b = corpusBleu(['am I am a character sequence'], [['I am a symbol string sequence a a']]);
  t.same(b.counts, [4, 2, 1, 0]);
  t.same(b.totals, [6, 5, 4, 3]);
  t.equal(b.hypLen, 6);
  t.equal(b.refLen, 8);
  // 'exp' smoothing (bleu.py compute_bleu): the first order without a match gets 100 / (2 * total).
  near(t, b.precisions[3], 100 / (2 * 3), 1e-12, 'smoothed 4-gram precision');
  // BLEU = BP * geometric mean of the precisions, BP = exp(1 - ref/hyp) as hyp < ref.
  const expected = Math.exp(1 - 8 / 6) * ((400 / 6) * (200 / 5) * (100 / 4) * (100 / 6)) ** (1 / 4);
  near(t, b.score, expected, 1e-9, 'score');
  t.ok(b.score > 0 && b.score < 30, 'small but not 0');
});

t.test('sentenceBleu matches sacreBLEU test/test_sentence_bleu.py', async (t) => {
  // Example from sacreBLEU issue #98; ('exp', None, False, '13a', 8.493), checked there to 1e-3.
  const b = sentenceBleu('Producția de zahăr primă va fi exprimată în ceea ce privește zahărul alb;', ['producţia de zahăr brut se exprimă în zahăr alb;']);
  near(t, b.score, 8.493, 1e-3, 'score');
  // No 3-gram and no 4-gram matches: the first gets 100 / (2 * total), the second 100 / (4 * total).
  t.same(b.counts.slice(2), [0, 0]);
  near(t, b.precisions[2], 100 / (2 * b.totals[2]), 1e-12, '3-gram precision, first unmatched order');
  near(t, b.precisions[3], 100 / (4 * b.totals[3]), 1e-12, '4-gram precision, second unmatched order');

  // Example from sacreBLEU issue #141 (test_cases_zero_bleu): no n-gram matches at all gives 0,
  // smoothing or not.
  const zero = sentenceBleu('this is a cat', ['okay thanks']);
  t.equal(zero.score, 0);
  t.same(zero.precisions, [0, 0, 0, 0]);
});

t.test('effective order: sentence BLEU stops at the longest order the hypothesis has, corpus BLEU does not', async (t) => {
  // test/test_bleu.py test_case_effective_order: ["test"] vs [["a test"]] -> 0.3678794411714425 (as a
  // fraction; there via raw_corpus_bleu, i.e. floor smoothing and no tokenization, which change
  // nothing here: the only order used matched and the line has no punctuation). Unigram precision
  // 100, BP = exp(1 - 2/1).
  const s = sentenceBleu('test', ['a test']);
  near(t, s.score, 36.78794411714425, 1e-9, 'sentence score');
  t.same(s.totals, [1, 0, 0, 0]);
  // Without effective order (corpus_bleu's default), the missing bigrams leave a precision of 0 and
  // the score is 0 (bleu.py compute_bleu: log(0) is floored at -9999999999).
  t.equal(corpusBleu(['test'], [['a test']]).score, 0, 'corpus score');
});

t.test('matches are clipped by the largest count in any one reference', async (t) => {
  // Papineni et al. 2002's example, which bleu.py implements as min(hyp count, max over refs).
  t.equal(corpusBleu(['the the the the'], [['the cat']]).counts[0], 1, 'one "the" in the reference');
  t.equal(
    corpusBleu(['the the the the'], [['the cat'], ['the the mat']]).counts[0],
    2,
    'the reference with two "the" sets the limit; counts do not add across references',
  );
});

t.test('the brevity penalty uses the closest reference length, the shorter on a tie', async (t) => {
  // bleu.py _get_closest_ref_len.
  t.equal(corpusBleu(['a b c'], [['a b'], ['a b c d']]).refLen, 2, 'tie between 2 and 4 tokens');
  t.equal(corpusBleu(['a b c'], [['a'], ['a b c d']]).refLen, 4, '4 is closer than 1');
  t.equal(sentenceBleu('a b c', ['a b c d e', 'a b c d']).refLen, 4);
});

t.test('trailing whitespace is stripped before tokenizing, as sacreBLEU does', async (t) => {
  // bleu.py _preprocess_segment: tokenizer(sent.rstrip()); so a final "-\n" is not joined away.
  t.equal(corpusBleu(['well-\n'], [['well-']]).score, 0, 'one token: no bigrams, so 0 as corpus BLEU');
  near(t, sentenceBleu('well-\n', ['well-']).score, 100, 1e-9, '"well-" matches "well-"');
  t.equal(sentenceBleu('well-\n', ['well']).score, 0, 'and does not match "well"');
});

t.test('mismatched or missing streams are errors', async (t) => {
  t.throws(() => corpusBleu(HYPS, [REFS[0].slice(1)]), RangeError);
  t.throws(() => corpusBleu([], [[]]), RangeError);
  t.throws(() => corpusBleu(HYPS, []), RangeError);
  t.throws(() => sentenceBleu('a', []), RangeError);
});
