/**
 * Long texts never stall the server: a text that cannot fit the context is refused before it is
 * tokenized, and long ones are tokenized on a worker thread while the event loop keeps running.
 * Against the real stories260K model (SentencePiece-style BPE, superlinear in the text length).
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import t from 'tap';
import type { ApiErrorBody } from '../../src/openai/errors.js';
import { loadServedModel } from '../../src/serve/engine.js';
import { listen, testApp } from '../helpers/app.js';
import { STORIES_DIR } from '../helpers/stories.js';

const model = await loadServedModel(STORIES_DIR, { intraOpThreads: 1 });
t.teardown(() => model.close());
const app = await testApp(t, { models: [model] });
const url = await listen(app);

/** The longest the event loop was blocked while `work` ran, in ms. */
async function longestStall<T>(work: () => Promise<T>): Promise<{ result: T; stallMs: number }> {
  const histogram = monitorEventLoopDelay({ resolution: 10 });
  histogram.enable();
  const result = await work();
  histogram.disable();
  return { result, stallMs: histogram.max / 1e6 };
}

const post = (path: string, body: unknown): Promise<Response> =>
  fetch(url + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

const STORY = 'Once upon a time, there was a little girl named Lily. She loved to play outside. ';

t.test('/tokenize of 600 KB runs on a worker thread: the event loop keeps turning', async (t) => {
  const text = STORY.repeat(Math.ceil(600_000 / STORY.length));
  const started = performance.now();
  const { result, stallMs } = await longestStall(async () => {
    const res = await post('/tokenize', { prompt: text });
    return { status: res.status, body: (await res.json()) as { count: number } };
  });
  const tookMs = performance.now() - started;
  t.equal(result.status, 200);
  t.ok(result.body.count > text.length / model.maxTokenChars!, `${result.body.count} tokens`);
  // Inline, this text blocks the loop for seconds (its tokenization is superlinear); here the
  // loop's longest pause stays far below the request's own time.
  t.ok(stallMs < Math.max(500, tookMs / 4), `longest event-loop stall ${stallMs.toFixed(0)} ms while the request took ${tookMs.toFixed(0)} ms`);
});

t.test('a prompt that cannot fit the context is refused before tokenizing, on completions and on score', async (t) => {
  const prompt = STORY.repeat(Math.ceil(60_000 / STORY.length));
  const { result, stallMs } = await longestStall(async () => {
    const score = await post('/v1/score', { model: model.id, prompt, continuations: Array.from({ length: 64 }, (_, i) => ` and ${i}`) });
    const completion = await post('/v1/completions', { model: model.id, prompt, max_tokens: 4 });
    return [score, completion];
  });
  for (const res of result) {
    t.equal(res.status, 400);
    const { error } = (await res.json()) as ApiErrorBody;
    t.equal(error.code, 'context_length_exceeded');
    t.equal(error.param, 'prompt');
    t.match(error.message, /maximum context length is 512 tokens; the prompt has \d+ characters, which is at least \d+ tokens/);
  }
  t.ok(stallMs < 500, `longest event-loop stall ${stallMs.toFixed(0)} ms`);
});

t.test('a score prompt that fills the context fails before its continuations are tokenized', async (t) => {
  const res = await post('/v1/score', { model: model.id, prompt: Array.from({ length: 512 }, () => 5), continuations: ['a', 'b'] });
  t.equal(res.status, 400);
  t.match(((await res.json()) as ApiErrorBody).error.message, /the prompt has 512, leaving no room for a continuation/);
});
