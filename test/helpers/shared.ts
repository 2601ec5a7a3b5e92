/**
 * Where the shared test assets live: the `shared` directory beside the repository root.
 * Tests that need them skip (saying why) when it is absent, e.g. in a bare clone.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const SHARED_DIR = fileURLToPath(new URL('../../../shared', import.meta.url));
export const STORIES_DIR = join(SHARED_DIR, 'models', 'stories260K');

/** For `t.test(name, { skip: storiesSkip }, ...)`: false when the model is there, else the reason. */
export const storiesSkip: string | false = existsSync(join(STORIES_DIR, 'reference.json'))
  ? false
  : `stories260K not found at ${STORIES_DIR}`;

/** The parts of stories260K/reference.json (greedy outputs of llama2.c run.c) the tests use. */
export interface StoriesReference {
  max_new_tokens: number;
  prompts: { prompt: string; prompt_ids: number[]; completion_ids: number[]; full_text: string; completion_text: string }[];
  logits_check: { prompt_ids: number[]; position: number; top5: [number, number][] };
}

export function readStoriesReference(): StoriesReference {
  return JSON.parse(readFileSync(join(STORIES_DIR, 'reference.json'), 'utf8')) as StoriesReference;
}
