/**
 * stories260K, a real trained LLaMA, against greedy outputs of llama2.c's run.c (an independent
 * C implementation): the engine must reproduce every reference continuation token for token,
 * and its text.
 */
import t from 'tap';
import { loadServedModel } from '../../src/serve/engine.js';
import type { SamplingParams } from '../../src/runtime/types.js';
import { readStoriesReference, STORIES_DIR } from '../helpers/stories.js';

t.test('greedy decoding reproduces llama2.c for every reference prompt', async (t) => {
  const reference = readStoriesReference();
  const model = await loadServedModel(STORIES_DIR, { intraOpThreads: 1 });
  t.teardown(() => model.close());
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
});
