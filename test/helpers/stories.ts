/**
 * stories260K as the tests use it: the repository's own copy (models/stories260K, the same
 * weights as the shared model, sha256 of model.safetensors identical) and the reference outputs
 * of an independent implementation (llama2.c's run.c), kept in test/fixtures so that no test
 * depends on anything outside the repository.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../../src/project.js';

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
