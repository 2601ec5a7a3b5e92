/**
 * POST /v1/chat/completions through the official openai client, on the shipped default model
 * (its chat template) and on a model without a template. Greedy chat output must equal what
 * /v1/completions gives for the rendered prompt: that proves the template and its tokenization
 * (no second BOS) rather than the text of any particular model.
 */
import OpenAI from 'openai';
import t from 'tap';
import { renderChatTemplate } from '../../../src/openai/chat-template.js';
import type { ChatCompletion } from '../../../src/openai/schemas.js';
import { loadServedModel } from '../../../src/serve/engine.js';
import { listen, testApp } from '../../helpers/app.js';
import { testServedModel } from '../../helpers/served-model.js';

const model = await loadServedModel(new URL('../../../models/default', import.meta.url).pathname, { intraOpThreads: 1 });
const untemplated = await testServedModel();
t.teardown(() => Promise.all([model.close(), untemplated.close()]));
const app = await testApp(t, { models: [model, untemplated] });
const client = new OpenAI({ baseURL: `${await listen(app)}/v1`, apiKey: 'unused', maxRetries: 0 });

const messages: OpenAI.ChatCompletionMessageParam[] = [
  { role: 'system', content: 'You tell short stories.' },
  { role: 'user', content: 'Once upon a time' },
];
const rendered = renderChatTemplate(model.chatTemplate ?? '', {
  messages: [
    { role: 'system', content: 'You tell short stories.' },
    { role: 'user', content: 'Once upon a time' },
  ],
  bosToken: model.bosToken,
  eosToken: model.eosToken,
});

/** The legacy completion of `prompt` as token ids, so that no BOS is added or doubled. */
async function complete(body: Omit<OpenAI.CompletionCreateParamsNonStreaming, 'model' | 'prompt'>): Promise<OpenAI.Completion> {
  return client.completions.create({ model: model.id, prompt: model.encode(rendered, false), ...body });
}

t.test('the shipped model has a template that writes its own BOS', async (t) => {
  t.type(model.chatTemplate, 'string');
  t.ok(rendered.startsWith('<s>system: You tell short stories.\nuser: Once upon a time\nassistant:'));
  t.same(model.encode(rendered, false), model.encode(rendered.slice('<s>'.length), true), 'one BOS, as the tokenizer alone would add');
});

t.test('a greedy chat completion is the completion of the rendered prompt', async (t) => {
  const chat = await client.chat.completions.create({ model: model.id, messages, max_completion_tokens: 12, temperature: 0 });
  const legacy = await complete({ max_tokens: 12, temperature: 0 });
  t.match(chat.id, /^chatcmpl-\w+$/);
  t.equal(chat.object, 'chat.completion');
  t.equal(chat.choices.length, 1);
  t.equal(chat.choices[0].message.role, 'assistant');
  t.equal(chat.choices[0].message.content, legacy.choices[0].text);
  t.ok(legacy.choices[0].text.length > 0, 'something was generated');
  t.equal(chat.choices[0].finish_reason, legacy.choices[0].finish_reason);
  t.equal(chat.choices[0].logprobs, null);
  // Not the whole usage: the second request reuses the first one's prefill (cached_tokens).
  t.same(
    [chat.usage?.prompt_tokens, chat.usage?.completion_tokens, chat.usage?.total_tokens],
    [legacy.usage?.prompt_tokens, legacy.usage?.completion_tokens, legacy.usage?.total_tokens],
  );
  t.equal(chat.usage?.prompt_tokens, model.encode(rendered, false).length);
});

t.test('streamed: role first, content pieces, a finish chunk, usage, [DONE]', async (t) => {
  const whole = await client.chat.completions.create({ model: model.id, messages, max_tokens: 12, temperature: 0 });
  const stream = await client.chat.completions.create({
    model: model.id,
    messages,
    max_tokens: 12,
    temperature: 0,
    stream: true,
    stream_options: { include_usage: true },
  });
  const chunks: OpenAI.ChatCompletionChunk[] = [];
  for await (const chunk of stream) chunks.push(chunk);
  t.ok(chunks.every((c) => c.object === 'chat.completion.chunk' && c.id === chunks[0].id));
  t.same(chunks[0].choices[0].delta, { role: 'assistant', content: '' });
  const finishes = chunks.filter((c) => c.choices[0]?.finish_reason != null);
  t.equal(finishes.length, 1);
  t.same(finishes[0].choices[0].delta, {});
  t.equal(finishes[0].choices[0].finish_reason, whole.choices[0].finish_reason);
  const content = chunks
    .slice(1)
    .flatMap((c) => c.choices.map((choice) => choice.delta.content ?? ''))
    .join('');
  t.equal(content, whole.choices[0].message.content);
  const last = chunks[chunks.length - 1];
  t.same(last.choices, []);
  t.equal(last.usage?.completion_tokens, whole.usage?.completion_tokens);
  t.equal(last.usage?.prompt_tokens, whole.usage?.prompt_tokens);
});

t.test("the client's stream helper assembles the chunks into the same completion", async (t) => {
  const whole = await client.chat.completions.create({ model: model.id, messages, max_completion_tokens: 12, temperature: 0, logprobs: true, top_logprobs: 2 });
  const runner = client.chat.completions.stream({ model: model.id, messages, max_completion_tokens: 12, temperature: 0, logprobs: true, top_logprobs: 2 });
  let deltas = '';
  runner.on('content', (delta) => (deltas += delta));
  const final = await runner.finalChatCompletion();
  t.equal(final.choices[0].message.content, whole.choices[0].message.content);
  t.equal(deltas, whole.choices[0].message.content, 'content events add up to the message');
  t.equal(final.choices[0].finish_reason, whole.choices[0].finish_reason);
  t.same(
    final.choices[0].logprobs?.content?.map((entry) => entry.token),
    whole.choices[0].logprobs?.content?.map((entry) => entry.token),
  );
});

t.test('n choices, stop strings, max_completion_tokens over max_tokens', async (t) => {
  const chat = await client.chat.completions.create({ model: model.id, messages, n: 2, max_tokens: 3, max_completion_tokens: 6, temperature: 0 });
  t.same(
    chat.choices.map((c) => c.index),
    [0, 1],
  );
  t.equal(chat.choices[0].message.content, chat.choices[1].message.content, 'greedy choices agree');
  const six = await client.chat.completions.create({ model: model.id, messages, max_completion_tokens: 6, temperature: 0 });
  t.equal(chat.choices[0].message.content, six.choices[0].message.content, 'max_completion_tokens wins');
  t.equal(chat.usage?.completion_tokens, 2 * (six.usage?.completion_tokens ?? 0), 'both choices counted');

  const free = await client.chat.completions.create({ model: model.id, messages, max_completion_tokens: 12, temperature: 0 });
  const text = free.choices[0].message.content ?? '';
  const stop = text.slice(2, 4);
  t.ok(stop.length === 2, 'a stop string from inside the greedy text');
  const stopped = await client.chat.completions.create({ model: model.id, messages, max_completion_tokens: 12, temperature: 0, stop });
  t.equal(stopped.choices[0].message.content, text.slice(0, text.indexOf(stop)));
  t.equal(stopped.choices[0].finish_reason, 'stop');
});

t.test('logprobs with top_logprobs', async (t) => {
  const chat = await client.chat.completions.create({ model: model.id, messages, max_completion_tokens: 5, temperature: 0, logprobs: true, top_logprobs: 3 });
  const content = chat.choices[0].logprobs?.content ?? [];
  t.equal(content.length, chat.usage?.completion_tokens);
  t.equal(content.map((c) => c.token).join(''), chat.choices[0].message.content);
  for (const entry of content) {
    t.ok(entry.logprob <= 0);
    t.same(entry.bytes, [...Buffer.from(entry.token, 'utf8')]);
    t.equal(entry.top_logprobs.length, 3);
    // Greedy: the chosen token is the most likely one.
    t.equal(entry.top_logprobs[0].logprob, entry.logprob);
  }
  const legacy = await complete({ max_tokens: 5, temperature: 0, logprobs: 3 });
  t.same(
    content.map((c) => c.logprob),
    legacy.choices[0].logprobs?.token_logprobs,
  );
});

t.test('sparsity runs sparse and usage counts the FLOPs', async (t) => {
  const body = { model: model.id, messages, max_completion_tokens: 6, temperature: 0, sparsity: 0.5 };
  const res = await app.inject({ method: 'POST', url: '/v1/chat/completions', payload: body });
  t.equal(res.statusCode, 200);
  const chat = res.json<ChatCompletion>();
  t.equal(chat.object, 'chat.completion');
  t.equal(chat.sparsity?.tier, 's50');
  t.ok((chat.usage.flops_executed ?? Infinity) < (chat.usage.flops_dense ?? 0), 'fewer FLOPs executed than dense');
  t.ok((chat.sparsity?.flop_ratio ?? 1) < 1);
});

/** The 400 the client raises for `body`. */
async function badRequest(body: OpenAI.ChatCompletionCreateParamsNonStreaming): Promise<InstanceType<typeof OpenAI.BadRequestError>> {
  try {
    await client.chat.completions.create(body);
  } catch (err) {
    if (err instanceof OpenAI.BadRequestError) return err;
    throw err;
  }
  throw new Error('expected a 400');
}

t.test('a model without a chat template: 400 chat_template_missing', async (t) => {
  const err = await badRequest({ model: untemplated.id, messages });
  t.equal(err.code, 'chat_template_missing');
  t.match(err.message, /tokenizer_config\.json.*CHAT_TEMPLATE=/);
});

t.test('bad requests name the parameter', async (t) => {
  const image = await badRequest({
    model: model.id,
    messages: [
      {
        role: 'user',
        content: [
          { type: 'text', text: 'Look:' },
          { type: 'image_url', image_url: { url: 'https://example.com/a.png' } },
        ],
      },
    ],
  });
  t.equal(image.param, 'messages[0].content');
  t.equal((await badRequest({ model: model.id, messages, top_logprobs: 2 })).param, 'top_logprobs');
  t.equal((await badRequest({ model: model.id, messages, presence_penalty: 1 })).param, 'presence_penalty');
  t.equal((await badRequest({ model: model.id, messages, response_format: { type: 'json_object' } })).param, 'response_format');
  const tool = { type: 'function' as const, function: { name: 'f', parameters: {} } };
  t.equal((await badRequest({ model: model.id, messages, tools: [tool] })).param, 'tools');
  t.equal((await badRequest({ model: model.id, messages, max_completion_tokens: 100_000 })).code, 'request_too_large');
  t.equal((await badRequest({ model: model.id, messages, max_completion_tokens: 600 })).param, 'max_completion_tokens');
});

t.test('text parts are joined by newlines', async (t) => {
  const parts = await client.chat.completions.create({
    model: model.id,
    messages: [
      {
        role: 'user',
        content: [
          { type: 'text', text: 'Once upon' },
          { type: 'text', text: 'a time' },
        ],
      },
    ],
    max_completion_tokens: 4,
    temperature: 0,
  });
  const joined = await client.chat.completions.create({
    model: model.id,
    messages: [{ role: 'user', content: 'Once upon\na time' }],
    max_completion_tokens: 4,
    temperature: 0,
  });
  t.equal(parts.choices[0].message.content, joined.choices[0].message.content);
  t.equal(parts.usage?.prompt_tokens, joined.usage?.prompt_tokens);
});
