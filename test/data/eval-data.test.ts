/** The committed evaluation sets in data/eval/ (written by scripts/eval-data.ts). */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { EVAL_DIR, evalData, HELDOUT_PASSAGES, INSTRUCT_PROMPTS, VALIDATION_PROMPTS } from '../../scripts/eval-data.js';
import { loadCorpus, splitCorpus } from '../../src/train/corpus.js';

const corpus = loadCorpus();
const validationIds = new Set(splitCorpus(corpus).validation.map((d) => d.id));

const read = (name: string): string => readFileSync(join(EVAL_DIR, name), 'utf8');

/** The lines of a committed file, each an object of string fields. */
function rows(name: string, field: 'prompt' | 'text'): { value: string; source: string }[] {
  const lines = read(name).split('\n');
  if (lines.pop() !== '') throw new Error(`${name}: does not end with a newline`);
  return lines.map((line, i) => {
    const row = JSON.parse(line) as Record<string, unknown>;
    const value = row[field];
    if (typeof value !== 'string' || typeof row.source !== 'string' || Object.keys(row).length !== 2) {
      throw new Error(`${name}:${i + 1}: expected {"${field}": string, "source": string}, got ${line}`);
    }
    return { value, source: row.source };
  });
}

const prompts = rows('validation-prompts.jsonl', 'prompt');
const instruct = rows('instruct-prompts.jsonl', 'prompt');
const heldout = rows('heldout-text.jsonl', 'text');

t.test('each file has the stated number of lines', async (t) => {
  t.equal(prompts.length, VALIDATION_PROMPTS);
  t.equal(instruct.length, INSTRUCT_PROMPTS);
  t.equal(heldout.length, HELDOUT_PASSAGES);
});

t.test('every source is a validation-split document', async (t) => {
  const files = { 'validation prompts': prompts, 'instruct prompts': instruct, 'held-out text': heldout };
  for (const [name, list] of Object.entries(files)) {
    const outside = list.map((r) => r.source).filter((id) => !validationIds.has(id));
    t.same(outside, [], `${name}: sources outside the validation split`);
  }
});

t.test('validation prompts come from different documents, held-out text from others', async (t) => {
  const promptSources = new Set(prompts.map((r) => r.source));
  t.equal(promptSources.size, prompts.length, 'one prompt per document');
  t.equal(new Set(heldout.map((r) => r.source)).size, heldout.length, 'one passage per document');
  t.same(
    heldout.map((r) => r.source).filter((id) => promptSources.has(id)),
    [],
    'no passage from a prompt document',
  );
});

t.test('instruct prompts are questions in the Instruct/Output format', async (t) => {
  const bad = instruct.map((r) => r.value).filter((p) => !/^Instruct: .+\?\nOutput:$/s.test(p));
  t.same(bad, []);
  t.equal(new Set(instruct.map((r) => r.value)).size, instruct.length, 'no question twice');
});

t.test('the committed files are what scripts/eval-data.ts writes', async (t) => {
  for (const [name, content] of Object.entries(evalData(corpus))) {
    t.equal(read(name), content, `${name} is out of date: run \`npx tsx scripts/eval-data.ts\``);
  }
});
