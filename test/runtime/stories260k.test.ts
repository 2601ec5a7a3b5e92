/**
 * stories260K, a real trained LLaMA, against greedy outputs of llama2.c's run.c (an independent
 * C implementation): the engine must reproduce every reference continuation token for token,
 * and its text.
 */
import t from 'tap';
import { loadServedModel } from '../../src/serve/engine.js';
import { expectStoriesReference, STORIES_DIR } from '../helpers/stories.js';

t.test('greedy decoding reproduces llama2.c for every reference prompt', async (t) => {
  const model = await loadServedModel(STORIES_DIR, { intraOpThreads: 1 });
  t.teardown(() => model.close());
  await expectStoriesReference(t, model);
});
