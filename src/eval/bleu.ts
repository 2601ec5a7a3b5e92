/**
 * BLEU (Papineni et al., 2002) as sacreBLEU 2.x computes it with its defaults, so that scores
 * reported by this project can be compared with published sacreBLEU numbers: the '13a' tokenizer
 * (mteval-v13a.pl), n-grams up to 4, mixed case, 'exp' smoothing (NIST's, Chen & Cherry 2014
 * method 3), the closest reference length for the brevity penalty.
 *
 * Where sacreBLEU relies on Python's idea of whitespace (`str.split()`, `str.rstrip()`), so do we:
 * JavaScript's `\s` differs from it (it adds U+FEFF and lacks U+001C-U+001F and U+0085), and a
 * different split would change token counts.
 */

const MAX_ORDER = 4;

/** The characters for which Python's `str.isspace()` is true. */
const PY_SPACE = '\\t-\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const SPACES = new RegExp(`[${PY_SPACE}]+`, 'u');
const TRAILING_SPACES = new RegExp(`[${PY_SPACE}]+$`, 'u');

/** Python's `s.split()`: runs of whitespace separate, no empty tokens. */
function pySplit(s: string): string[] {
  return s.split(SPACES).filter((t) => t !== '');
}

/**
 * The rules of mteval-v13a for Western languages, in sacreBLEU's order (its TokenizerRegexp).
 * Flags 'u' so that characters outside the BMP count as one character, as in Python.
 */
const RULES: [RegExp, string][] = [
  // Every ASCII symbol except ' , - . becomes a token of its own: { | } ~ [ \ ] ^ _ ` space ! " # $
  // % & ( ) * + : ; < = > ? @ /  (written as code-point ranges, which sacreBLEU writes as
  // escaped-character ranges).
  [/([\x7b-\x7e\x5b-\x60\x20-\x26\x28-\x2b\x3a-\x40\x2f])/gu, ' $1 '],
  // Period and comma split off unless between digits (3.5 and 1,000 stay whole): first when the
  // previous character is not a digit, then when the next one is not.
  [/([^0-9])([.,])/gu, '$1 $2 '],
  [/([.,])([^0-9])/gu, ' $1 $2'],
  // A dash after a digit splits off (2-3 -> 2 - 3), a hyphen between letters stays.
  [/([0-9])(-)/gu, '$1 $2 '],
];

/** sacreBLEU's default '13a' tokenizer (mteval-v13a): returns the tokenized line (tokens joined by single spaces). */
export function tokenize13a(line: string): string {
  let s = line
    .replaceAll('<skipped>', '')
    // A hyphen at a line break joins the word's halves; other line breaks are spaces.
    .replaceAll('-\n', '')
    .replaceAll('\n', ' ')
    // mteval's input may be SGML-escaped; in this order, so '&amp;lt;' ends as '<' like sacreBLEU.
    .replaceAll('&quot;', '"')
    .replaceAll('&amp;', '&')
    .replaceAll('&lt;', '<')
    .replaceAll('&gt;', '>');
  // The padding lets the period/comma rules see a non-digit before the first and after the last
  // character.
  s = ` ${s} `;
  for (const [pattern, replacement] of RULES) s = s.replace(pattern, replacement);
  return pySplit(s).join(' ');
}

export interface BleuScore {
  /** BLEU, 0..100. */
  score: number;
  /** The n-gram precisions (n = 1..4) in percent, after smoothing; all 0 when nothing matched. */
  precisions: number[];
  /** Brevity penalty. */
  bp: number;
  /** hypLen / refLen (0 when refLen is 0). */
  ratio: number;
  hypLen: number;
  refLen: number;
  /** Matched (clipped) n-grams per order. */
  counts: number[];
  /** Hypothesis n-grams per order. */
  totals: number[];
}

/** Sufficient statistics: they add up over segments, and BLEU is computed once from the sums. */
interface Stats {
  hypLen: number;
  refLen: number;
  counts: number[];
  totals: number[];
}

/** Tokens as sacreBLEU's BLEU sees them: trailing whitespace stripped before tokenizing. */
function tokens(segment: string): string[] {
  return pySplit(tokenize13a(segment.replace(TRAILING_SPACES, '')));
}

/** Counts of the n-grams of each order 1..4 (index n - 1); tokens hold no spaces, so the key is unambiguous. */
function ngramCounts(toks: string[]): Map<string, number>[] {
  const byOrder: Map<string, number>[] = [];
  for (let n = 1; n <= MAX_ORDER; n++) {
    const counts = new Map<string, number>();
    for (let i = 0; i + n <= toks.length; i++) {
      const key = toks.slice(i, i + n).join(' ');
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
    byOrder.push(counts);
  }
  return byOrder;
}

/** The reference length closest to the hypothesis length; of two equally close, the shorter. */
function closestRefLen(hypLen: number, refLens: number[]): number {
  let best = refLens[0];
  for (const len of refLens) {
    const d = Math.abs(hypLen - len);
    const bestD = Math.abs(hypLen - best);
    if (d < bestD || (d === bestD && len < best)) best = len;
  }
  return best;
}

function segmentStats(hypothesis: string, references: string[]): Stats {
  // A hypothesis n-gram is credited at most as often as it occurs in any single reference.
  const maxRef: Map<string, number>[] = Array.from({ length: MAX_ORDER }, () => new Map());
  const refLens: number[] = [];
  for (const ref of references) {
    const toks = tokens(ref);
    refLens.push(toks.length);
    ngramCounts(toks).forEach((counts, i) => {
      for (const [gram, c] of counts) maxRef[i].set(gram, Math.max(maxRef[i].get(gram) ?? 0, c));
    });
  }
  const hyp = tokens(hypothesis);
  const counts = new Array<number>(MAX_ORDER).fill(0);
  const totals = new Array<number>(MAX_ORDER).fill(0);
  ngramCounts(hyp).forEach((grams, i) => {
    for (const [gram, c] of grams) {
      totals[i] += c;
      counts[i] += Math.min(c, maxRef[i].get(gram) ?? 0);
    }
  });
  return { hypLen: hyp.length, refLen: closestRefLen(hyp.length, refLens), counts, totals };
}

/** sacreBLEU's BLEU.compute_bleu with smooth_method 'exp'. */
function bleuFromStats({ hypLen, refLen, counts, totals }: Stats, effectiveOrder: boolean): BleuScore {
  let bp = 1;
  if (hypLen < refLen) bp = hypLen > 0 ? Math.exp(1 - refLen / hypLen) : 0;
  const ratio = refLen > 0 ? hypLen / refLen : 0;
  const precisions = new Array<number>(MAX_ORDER).fill(0);
  const result = { score: 0, precisions, bp, ratio, hypLen, refLen, counts, totals };

  // Not a single matching n-gram: sacreBLEU returns 0 with all precisions 0, whatever the smoothing.
  if (counts.every((c) => c === 0)) return result;

  let order = MAX_ORDER;
  let smooth = 1;
  for (let n = 0; n < MAX_ORDER; n++) {
    // No hypothesis n-grams of this order (a hypothesis shorter than n tokens) and none longer.
    // Its precision stays 0, so the score is 0, unless effective order stops the mean before it.
    if (totals[n] === 0) break;
    if (effectiveOrder) order = n + 1;
    if (counts[n] === 0) {
      // 'exp': each successive order without a match gets half the previous pseudo-count.
      smooth *= 2;
      precisions[n] = 100 / (smooth * totals[n]);
    } else {
      precisions[n] = (100 * counts[n]) / totals[n];
    }
  }

  const used = precisions.slice(0, order);
  // sacreBLEU floors log(0) at -9999999999, which makes exp(...) exactly 0.
  if (used.some((p) => p === 0)) return result;
  let logSum = 0;
  for (const p of used) logSum += Math.log(p);
  result.score = bp * Math.exp(logSum / order);
  return result;
}

/**
 * Corpus BLEU like sacrebleu.corpus_bleu(hyps, refs) with defaults: 13a, 4-gram, smooth 'exp', no
 * lowercase, closest reference length (ties: the shorter), use_effective_order false.
 * refs[k][i] is the k-th reference of hypothesis i (sacreBLEU's layout). An empty reference string
 * is kept as a reference of length 0, as sacreBLEU does.
 */
export function corpusBleu(hypotheses: string[], references: string[][]): BleuScore {
  // sacreBLEU's API silently zips (truncates) mismatched streams; a mismatch is a bug upstream,
  // so it is an error here.
  if (hypotheses.length === 0) throw new RangeError('corpusBleu: no hypotheses');
  if (references.length === 0) throw new RangeError('corpusBleu: no reference streams');
  references.forEach((stream, k) => {
    if (stream.length !== hypotheses.length) {
      throw new RangeError(`corpusBleu: reference stream ${k} has ${stream.length} segments, hypotheses ${hypotheses.length}`);
    }
  });
  const sum: Stats = {
    hypLen: 0,
    refLen: 0,
    counts: new Array<number>(MAX_ORDER).fill(0),
    totals: new Array<number>(MAX_ORDER).fill(0),
  };
  hypotheses.forEach((hyp, i) => {
    const s = segmentStats(
      hyp,
      references.map((stream) => stream[i]),
    );
    sum.hypLen += s.hypLen;
    sum.refLen += s.refLen;
    for (let n = 0; n < MAX_ORDER; n++) {
      sum.counts[n] += s.counts[n];
      sum.totals[n] += s.totals[n];
    }
  });
  return bleuFromStats(sum, false);
}

/**
 * sacrebleu.sentence_bleu(hyp, refs) defaults: smooth 'exp', use_effective_order true (the
 * geometric mean stops at the longest n-gram order the hypothesis has, so a short hypothesis
 * can still score).
 */
export function sentenceBleu(hypothesis: string, references: string[]): BleuScore {
  if (references.length === 0) throw new RangeError('sentenceBleu: no references');
  return bleuFromStats(segmentStats(hypothesis, references), true);
}
