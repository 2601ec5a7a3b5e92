/**
 * Writes the evaluation data in data/eval/ from the validation split of the default model's
 * corpus (src/train/corpus.ts): `npx tsx scripts/eval-data.ts`. Deterministic: the same corpus
 * packages give the same files byte for byte (a test checks the committed files against it).
 *
 * - validation-prompts.jsonl: the prose openings of 32 validation documents.
 * - instruct-prompts.jsonl: 32 questions from validation documents, as "Instruct: ...\nOutput:".
 * - heldout-text.jsonl: 16 passages from other validation documents, for perplexity.
 *
 * data/eval/README.md states the selection rules; keep it in step with this file.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadCorpus, splitCorpus, type CorpusDocument } from '../src/train/corpus.js';

export const EVAL_DIR = fileURLToPath(new URL('../data/eval/', import.meta.url));

export const VALIDATION_PROMPTS = 30;
export const INSTRUCT_PROMPTS = 30;
export const HELDOUT_PASSAGES = 16;

/** Prompt and passage lengths, in characters (UTF-16 code units). */
const PROMPT_CHARS = { min: 120, max: 240 };
const PASSAGE_CHARS = { min: 600, max: 900 };
const QUESTION_WORDS = { min: 6, max: 25 };
/** A question asks something: it opens with a question word or an auxiliary verb. */
const INTERROGATIVE =
  /^(What|Who|Whom|Whose|Which|When|Where|Why|How|Is|Are|Was|Were|Am|Do|Does|Did|Can|Could|Will|Would|Shall|Should|May|Might|Must|Have|Has|Had|Won(?=[’']t))(n[’']t)?\b/;

/**
 * nlp-corpus is offensive in places by design (src/train/corpus.ts); evaluation text shown in
 * reports should not be. Sentences and passages with these words are left out.
 */
const UNSUITABLE =
  /\b(dildos?|suicide|\w*fuck\w*|shit\w*|bitch\w*|cunts?|nigg\w*|rape[ds]?|rapist|porn\w*|sex|sexy|shoot|kill(s|ed)?|blind|retard\w*|whores?|sluts?|dick|cock|pussy|fags?|damn|bastards?|ass|asshole)\b/i;

/** A period after these (or after a single letter, or inside `U.S.`) does not end a sentence. */
const ABBREVIATIONS = new Set(
  (
    'Mr Mrs Ms Dr St Jr Sr Mt Ft Gen Gov Sen Rep Col Lt Capt Sgt Rev Prof Co Inc Corp Ltd No vs etc ' + 'Jan Feb Mar Apr Aug Sept Sep Oct Nov Dec Ave Fig Vol'
  ).split(' '),
);

/**
 * Offsets just past each sentence of `text`: at every line break (Brown paragraphs and headlines,
 * nlp-corpus sentences) and after . ! or ? (and any closing quote or bracket) that is followed
 * by a space and a capital letter or an opening quote, unless the period ends an abbreviation.
 */
export function sentenceEnds(text: string): number[] {
  const ends = new Set<number>();
  for (const m of text.matchAll(/\S*?([.!?]+)["'”’)]*(?= +["“']?[A-Z])/g)) {
    const word = m[0].replace(/^["“'(]+/, '');
    if (m[1] === '.' && /^[A-Za-z](\.[A-Za-z])*\.$|^[A-Za-z]+\.[A-Za-z.]+$/.test(word)) continue; // S. U.S.
    if (m[1] === '.' && ABBREVIATIONS.has(word.slice(0, -1))) continue;
    ends.add(m.index + m[0].length);
  }
  for (const m of text.matchAll(/\S(?=\s*\n)/g)) ends.add(m.index + 1);
  ends.add(text.trimEnd().length);
  return [...ends].sort((a, b) => a - b);
}

/** The shortest opening of `text` that ends a sentence and is min..max long, or null. */
function openingAtSentence(text: string, { min, max }: { min: number; max: number }): string | null {
  const end = sentenceEnds(text).find((e) => e >= min);
  return end !== undefined && end <= max ? text.slice(0, end) : null;
}

/** That opening, or else the longest one of at most max that ends a word (min..max long). */
function opening(text: string, range: { min: number; max: number }): { text: string; sentence: boolean } | null {
  const atSentence = openingAtSentence(text, range);
  if (atSentence !== null) return { text: atSentence, sentence: true };
  const space = text.slice(0, range.max + 1).search(/\s\S*$/);
  const cut = text.slice(0, space).trimEnd();
  return cut.length >= range.min ? { text: cut, sentence: false } : null;
}

/**
 * Normal prose: every line starts with a capital letter (after an opening quote) and ends a
 * sentence (the last may stop at a word boundary), no list or markup characters, and at least
 * 80% of the non-space characters are letters. Rules out titles, datelines, lists, headlines,
 * song lyrics and Brown's `**yc` formula placeholders.
 */
function isProse(text: string, lastLineComplete: boolean): boolean {
  const lines = text.split(/\n+/);
  const complete = lastLineComplete ? lines : lines.slice(0, -1);
  const chars = text.replace(/\s/g, '');
  return (
    lines.every((l) => /^["“']?[A-Z]/.test(l)) &&
    complete.every((l) => /[\p{L}\d)"”’'][.!?]+["'”’)]*$/u.test(l)) &&
    !/[*#|<>_=\\{}[\]~^@]/.test(text) &&
    (chars.match(/\p{L}/gu)?.length ?? 0) >= 0.8 * chars.length
  );
}

/**
 * The text after a leading title: a first paragraph (Brown's headlines and datelines stand alone,
 * followed by a blank line) of at most 8 words that does not end a sentence.
 */
function withoutTitle(text: string): string {
  const title = /^([^\n]*)\n\n+/.exec(text);
  const isTitle = title !== null && title[1].split(/\s+/).length <= 8 && !/[.!?]["'”’)]*$/.test(title[1]);
  return isTitle ? text.slice(title[0].length) : text;
}

/** Questions of a document: its sentences that end with `?`, cleaned, in document order. */
export function questions(text: string): string[] {
  const found: string[] = [];
  let start = 0;
  for (const end of sentenceEnds(text)) {
    const sentence = text.slice(start, end).trim();
    start = end;
    // Brown prints every ? ! and ; twice (`career??`); a question reads better with one.
    let q = sentence.replace(/([?!;])\1+/g, '$1');
    // Strip one pair of surrounding quotes, or a closing quote left after the question mark.
    const paired = /^(["“'])(.*)(["”'])$/s.exec(q);
    if (paired !== null && (paired[1] === paired[3] || (paired[1] === '“' && paired[3] === '”'))) q = paired[2];
    if (!/^[A-Z][^\n]*\w\?$/.test(q) || !INTERROGATIVE.test(q) || UNSUITABLE.test(q)) continue;
    const words = q.split(/\s+/).length;
    if (words < QUESTION_WORDS.min || words > QUESTION_WORDS.max) continue;
    const count = (c: string): number => q.split(c).length - 1;
    if (count('"') % 2 !== 0 || count('“') !== count('”') || /^'|'$/.test(q.slice(0, -1))) continue;
    found.push(q);
  }
  return found;
}

/** n items spread evenly over `items` (the first, then every items.length/n-th). */
function spread<T>(items: readonly T[], n: number, what: string): T[] {
  if (items.length < n) throw new Error(`eval data: only ${items.length} ${what}, need ${n}`);
  return Array.from({ length: n }, (_, i) => items[Math.floor((i * items.length) / n)]);
}

export interface EvalFiles {
  'validation-prompts.jsonl': string;
  'instruct-prompts.jsonl': string;
  'heldout-text.jsonl': string;
}

/** The three files' contents, from the whole corpus (only its validation split is used). */
export function evalData(corpus: readonly CorpusDocument[]): EvalFiles {
  const docs = [...splitCorpus(corpus).validation].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const jsonl = (rows: object[]): string => rows.map((r) => `${JSON.stringify(r)}\n`).join('');

  const openings = docs.flatMap((d) => {
    const o = opening(withoutTitle(d.text), PROMPT_CHARS);
    return o !== null && isProse(o.text, o.sentence) && !UNSUITABLE.test(o.text) ? [{ prompt: o.text, source: d.id }] : [];
  });
  const prompts = spread(openings, VALIDATION_PROMPTS, 'validation documents open with prose');

  // Questions round-robin (each document's first, then each one's second, ...), without repeats;
  // one per document when enough documents have one, spread over all of them.
  const perDoc = docs.map((d) => ({ source: d.id, questions: questions(d.text) }));
  const rounds: { prompt: string; source: string }[] = [];
  const seen = new Set<string>();
  for (let k = 0; perDoc.some((d) => d.questions.length > k); k++) {
    for (const { source, questions: qs } of perDoc) {
      if (k >= qs.length || seen.has(qs[k])) continue;
      seen.add(qs[k]);
      rounds.push({ prompt: `Instruct: ${qs[k]}\nOutput:`, source });
    }
  }
  const withQuestions = perDoc.filter((d) => d.questions.length > 0).length;
  const instruct = spread(rounds.slice(0, Math.max(withQuestions, INSTRUCT_PROMPTS)), INSTRUCT_PROMPTS, 'questions');

  const promptSources = new Set(prompts.map((p) => p.source));
  const passages = docs.flatMap((d) => {
    const text = promptSources.has(d.id) ? null : openingAtSentence(d.text, PASSAGE_CHARS);
    return text !== null && !UNSUITABLE.test(text) ? [{ text, source: d.id }] : [];
  });
  return {
    'validation-prompts.jsonl': jsonl(prompts),
    'instruct-prompts.jsonl': jsonl(instruct),
    'heldout-text.jsonl': jsonl(spread(passages, HELDOUT_PASSAGES, 'other validation documents have a passage')),
  };
}

// Only write when run as a script, so the test can import the generator.
if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  mkdirSync(EVAL_DIR, { recursive: true });
  for (const [name, content] of Object.entries(evalData(loadCorpus()))) {
    writeFileSync(join(EVAL_DIR, name), content);
    console.log(`wrote ${join(EVAL_DIR, name)} (${content.split('\n').length - 1} lines)`);
  }
}
