/**
 * GET /metrics: Prometheus text with what the generating routes recorded, agreeing with what
 * their responses reported (FLOPs, tokens), per model and tier.
 */
import t from 'tap';
import type { Completion, ScoreResponse } from '../../src/openai/schemas.js';
import { loadServedModel } from '../../src/serve/engine.js';
import { parseSse, testApp, type SseStream } from '../helpers/app.js';
import { calibratedModelDir } from '../helpers/calibrated-model.js';
import { metricSample } from '../helpers/metrics.js';

const model = await loadServedModel(await calibratedModelDir(), { intraOpThreads: 1 });
t.teardown(() => model.close());

/** A sample's value, by metric name and exact labels (in any order); 0 when absent. */
const sample = (text: string, name: string, labels: Record<string, string> = {}): number => metricSample(text, name, labels) ?? 0;

async function scrape(app: Awaited<ReturnType<typeof testApp>>): Promise<string> {
  const res = await app.inject({ method: 'GET', url: '/metrics' });
  t.equal(res.statusCode, 200);
  t.match(res.headers['content-type'], /^text\/plain; version=0\.0\.4/);
  return res.body;
}

t.test('the exposition has the slm_ metrics and the default process metrics', async (t) => {
  const app = await testApp(t, { models: [model] });
  const text = await scrape(app);
  for (const name of [
    'slm_flops_dense_total',
    'slm_flops_executed_total',
    'slm_tokens_generated_total',
    'slm_prompt_tokens_total',
    'slm_requests_total',
    'slm_time_to_first_token_seconds',
    'slm_time_per_output_token_seconds',
    'slm_activation_cache_events_total',
    'slm_activation_cache_errors_total',
    'slm_queue_depth',
    'process_cpu_user_seconds_total',
    'nodejs_heap_size_used_bytes',
  ]) {
    t.match(text, new RegExp(`^# TYPE ${name} `, 'm'), `has ${name}`);
  }
  t.match(text, new RegExp(`^slm_queue_depth\\{model="${model.id}"\\} 0$`, 'm'), 'every model has a queue depth from the start');
});

t.test('a completion is counted under its model and tier, as its response reports', async (t) => {
  const app = await testApp(t, { models: [model] });
  const res = await app.inject({
    method: 'POST',
    url: '/v1/completions',
    payload: { model: model.id, prompt: 'the cat sat', max_tokens: 5, temperature: 0, sparsity: 0.8 },
  });
  t.equal(res.statusCode, 200);
  const completion = res.json<Completion>();
  const text = await scrape(app);
  const labels = { model: model.id, tier: 's80' };
  t.equal(sample(text, 'slm_flops_dense_total', labels), completion.usage.flops_dense);
  t.equal(sample(text, 'slm_flops_executed_total', labels), completion.usage.flops_executed);
  t.ok(sample(text, 'slm_flops_executed_total', labels) < sample(text, 'slm_flops_dense_total', labels));
  t.equal(sample(text, 'slm_tokens_generated_total', labels), completion.usage.completion_tokens);
  t.equal(sample(text, 'slm_prompt_tokens_total', labels), completion.usage.prompt_tokens);
  t.equal(sample(text, 'slm_requests_total', { ...labels, endpoint: 'completions', status: '200' }), 1);
  t.equal(sample(text, 'slm_time_to_first_token_seconds_count', labels), 1);
  t.ok(sample(text, 'slm_time_to_first_token_seconds_sum', labels) > 0);
  if (completion.usage.completion_tokens >= 2) t.equal(sample(text, 'slm_time_per_output_token_seconds_count', labels), 1);
  t.equal(sample(text, 'slm_flops_dense_total', { model: model.id, tier: 'dense' }), 0, 'nothing under other tiers');
});

t.test('decode steps and the sequences they stepped: concurrent completions share steps', async (t) => {
  const app = await testApp(t, { models: [model] });
  const before = await scrape(app);
  const labels = { model: model.id };
  const bodies = ['the cat sat', 'a dog ran far', 'once'].map((prompt) => ({ model: model.id, prompt, max_tokens: 8, temperature: 0 }));
  const answers = await Promise.all(bodies.map((payload) => app.inject({ method: 'POST', url: '/v1/completions', payload })));
  const generated = answers.map((res) => res.json<Completion>().usage.completion_tokens);
  const after = await scrape(app);
  const delta = (name: string) => sample(after, name, labels) - sample(before, name, labels);
  // A completion of c tokens steps c - 1 times (the first comes from the prompt pass), unless it stopped at EOS.
  t.equal(
    delta('slm_decode_sequence_steps_total'),
    generated.reduce((sum, c) => sum + c - 1, 0),
    `completions of ${generated.join(', ')} tokens`,
  );
  t.ok(delta('slm_decode_steps_total') < delta('slm_decode_sequence_steps_total'), `fewer runs (${delta('slm_decode_steps_total')}) than sequence steps`);
});

t.test('streamed completions, scores and refusals are counted too', async (t) => {
  const app = await testApp(t, { models: [model] });
  const streamed = await app.inject({
    method: 'POST',
    url: '/v1/completions',
    payload: { model: model.id, prompt: 'the cat', max_tokens: 3, stream: true, n: 2, stream_options: { include_usage: true } },
  });
  const { events }: SseStream = parseSse(streamed.body);
  const usage = (events[events.length - 1] as Completion).usage;
  const scored = await app.inject({
    method: 'POST',
    url: '/v1/score',
    payload: { model: model.id, prompt: 'the cat', continuations: [' sat', ' ran'], sparsity: 's50' },
  });
  const score = scored.json<ScoreResponse>();
  await app.inject({ method: 'POST', url: '/v1/completions', payload: { model: model.id, prompt: 'x', sparsity: 's99' } });
  await app.inject({ method: 'POST', url: '/v1/completions', payload: { model: 'no-such-model', prompt: 'x' } });
  const text = await scrape(app);
  const dense = { model: model.id, tier: 'dense' };
  t.equal(sample(text, 'slm_requests_total', { ...dense, endpoint: 'completions', status: '200' }), 1, 'the stream, once');
  t.equal(sample(text, 'slm_tokens_generated_total', dense), usage.completion_tokens, 'both choices');
  t.equal(sample(text, 'slm_flops_dense_total', dense), usage.flops_dense);
  const s50 = { model: model.id, tier: 's50' };
  t.equal(sample(text, 'slm_requests_total', { ...s50, endpoint: 'score', status: '200' }), 1);
  t.equal(sample(text, 'slm_flops_executed_total', s50), score.usage.flops_executed);
  t.equal(sample(text, 'slm_tokens_generated_total', s50), 0, 'scoring generates nothing');
  t.equal(sample(text, 'slm_time_to_first_token_seconds_count', s50), 0, 'and has no first token');
  t.equal(sample(text, 'slm_requests_total', { model: model.id, tier: 'none', endpoint: 'completions', status: '400' }), 1, 'a refusal: no tier ran');
  t.equal(sample(text, 'slm_requests_total', { model: 'unknown', tier: 'none', endpoint: 'completions', status: '404' }), 1, 'unknown models share one label');
  t.equal(sample(text, 'slm_request_duration_seconds_count', { model: model.id, endpoint: 'completions' }), 2);
});

t.test('activation-cache events are counted by kind and operation, errors by reason too', async (t) => {
  const app = await testApp(t, { models: [model] });
  app.metrics.recordCacheEvent('hit');
  app.metrics.recordCacheEvent('hit', { op: 'get' });
  app.metrics.recordCacheEvent('error', { op: 'get', reason: 'timeout' });
  app.metrics.recordCacheEvent('error', { op: 'set', reason: 'breaker_open' });
  app.metrics.recordCacheEvent('error', { op: 'set', reason: 'breaker_open' });
  // And through the activation cache the app created (no REDIS_URL: the in-process LRU).
  await app.activationStore.get({ modelHash: 'h', metric: 'cor_gxo', tokens: [1, 2, 3] });
  const text = await scrape(app);
  t.equal(sample(text, 'slm_activation_cache_events_total', { event: 'hit', op: 'get' }), 2);
  t.equal(sample(text, 'slm_activation_cache_events_total', { event: 'error', op: 'get' }), 1);
  t.equal(sample(text, 'slm_activation_cache_events_total', { event: 'error', op: 'set' }), 2);
  t.equal(sample(text, 'slm_activation_cache_errors_total', { op: 'get', reason: 'timeout' }), 1);
  t.equal(sample(text, 'slm_activation_cache_errors_total', { op: 'set', reason: 'breaker_open' }), 2);
  t.equal(sample(text, 'slm_activation_cache_events_total', { event: 'miss', op: 'get' }), 1, "the store's miss reached the counter");
  t.notMatch(text, /^slm_cache_up/m, 'no Redis configured: no slm_cache_up sample (test/plugins/activation-cache.test.ts has it with Redis)');
});

t.test('each app has its own registry', async (t) => {
  const a = await testApp(t, { models: [model] });
  const b = await testApp(t, { models: [model] });
  a.metrics.recordCacheEvent('miss');
  t.equal(sample(await scrape(a), 'slm_activation_cache_events_total', { event: 'miss', op: 'get' }), 1);
  t.equal(sample(await scrape(b), 'slm_activation_cache_events_total', { event: 'miss', op: 'get' }), 0);
});
