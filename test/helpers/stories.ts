/**
 * stories260K as the tests use it: the repository's own copy (models/stories260K, the same
 * weights as the shared model, sha256 of model.safetensors identical) and the reference outputs
 * of an independent implementation (llama2.c's run.c), kept in test/fixtures so that no test
 * depends on anything outside the repository.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Test } from 'tap';
import { PROJECT_ROOT } from '../../src/project.js';
import type { SamplingParams, ServedModel } from '../../src/runtime/types.js';

export const STORIES_DIR = join(PROJECT_ROOT, 'models', 'stories260K');

/** The parts of the reference outputs (greedy outputs of llama2.c run.c) the tests use. */
export interface StoriesReference {
  max_new_tokens: number;
  prompts: { prompt: string; prompt_ids: number[]; completion_ids: number[]; full_text: string; completion_text: string }[];
  logits_check: { prompt_ids: number[]; position: number; top5: [number, number][] };
}

export function readStoriesReference(): StoriesReference {
  return JSON.parse(readFileSync(join(PROJECT_ROOT, 'test', 'fixtures', 'stories260K-reference.json'), 'utf8')) as StoriesReference;
}

/** Greedy decoding of every reference prompt through `model`: its encoding, tokens, text and finish as run.c's. */
export async function expectStoriesReference(t: Test, model: ServedModel): Promise<void> {
  const reference = readStoriesReference();
  const greedy: SamplingParams = { maxTokens: reference.max_new_tokens, temperature: 0, topP: 1, topK: -1, stop: [], logprobs: null, echo: false };
  t.ok(reference.prompts.length >= 7);
  for (const p of reference.prompts) {
    t.same(model.encode(p.prompt), p.prompt_ids, `"${p.prompt}" encodes as run.c does`);
    const ids: number[] = [];
    let text = '';
    const it = model.generate(p.prompt_ids, greedy);
    let r = await it.next();
    for (; !r.done; r = await it.next()) {
      ids.push(...r.value.tokens.map((x) => x.id));
      text += r.value.text;
    }
    t.same(ids, p.completion_ids, `"${p.prompt}": ${p.completion_ids.length} tokens as run.c`);
    t.equal(p.prompt + text, p.full_text, `"${p.prompt}": text`);
    t.match(r.value, { finishReason: 'length', promptTokens: p.prompt_ids.length, completionTokens: p.completion_ids.length });
  }
}
