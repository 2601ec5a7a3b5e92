/**
 * POST /v1/completions with `stream: true`: OpenAI-style server-sent events, and what happens
 * when the client goes away (its generation is aborted, streaming or not).
 */
import { request as httpRequest } from 'node:http';
import t from 'tap';
import type { Completion, CompletionChunk } from '../../../src/openai/schemas.js';
import { listen, parseSse, testApp } from '../../helpers/app.js';
import { endlessModel, failingLateModel, failingModel } from '../../helpers/models.js';
import { testServedModel } from '../../helpers/served-model.js';

const model = await testServedModel();
t.teardown(() => model.close());
const app = await testApp(t, { models: [model, failingModel(model), failingLateModel(model)] });

async function stream(body: Record<string, unknown>): Promise<{ chunks: CompletionChunk[]; done: boolean; wellFramed: boolean }> {
  const res = await app.inject({ method: 'POST', url: '/v1/completions', payload: { model: model.id, stream: true, ...body } });
  t.equal(res.statusCode, 200);
  t.match(res.headers['content-type'], /^text\/event-stream/);
  const { events, done, wellFramed } = parseSse(res.body);
  return { chunks: events as CompletionChunk[], done, wellFramed };
}

/** Concatenated text and finish_reason of each choice, from the chunks. */
function assemble(chunks: CompletionChunk[]): Map<number, { text: string; finish: string | null; finishes: number }> {
  const choices = new Map<number, { text: string; finish: string | null; finishes: number }>();
  for (const chunk of chunks) {
    for (const c of chunk.choices) {
      const choice = choices.get(c.index) ?? { text: '', finish: null, finishes: 0 };
      if (choice.finish !== null) throw new Error(`choice ${c.index} got a chunk after its finish_reason`);
      choice.text += c.text;
      if (c.finish_reason !== null) {
        choice.finish = c.finish_reason;
        choice.finishes++;
      }
      choices.set(c.index, choice);
    }
  }
  return choices;
}

t.test('events are `data: <json>` chunks of one completion, ending with data: [DONE]', async (t) => {
  const { chunks, done, wellFramed } = await stream({ prompt: 'Once upon a time', max_tokens: 6 });
  t.ok(wellFramed, 'every event is one data line and a blank line');
  t.ok(done, 'the last event is [DONE]');
  t.ok(chunks.length >= 1);
  const id = chunks[0].id;
  t.match(id, /^cmpl-\w+$/);
  for (const chunk of chunks) {
    t.equal(chunk.id, id, 'one id for the whole stream');
    t.equal(chunk.object, 'text_completion');
    t.equal(chunk.model, model.id);
    t.equal(chunk.choices.length, 1, 'one choice per chunk');
    t.notOk('usage' in chunk, 'no usage field unless asked for');
  }
  const choice = assemble(chunks).get(0);
  t.ok(choice !== undefined && (choice.finish === 'stop' || choice.finish === 'length'), 'ends with a finish_reason');
});

t.test('the streamed text is the text of the same completion unstreamed', async (t) => {
  const body = { prompt: 'Once upon a time', max_tokens: 10, temperature: 0 };
  const whole = (await app.inject({ method: 'POST', url: '/v1/completions', payload: { model: model.id, ...body } })).json<Completion>();
  const { chunks } = await stream(body);
  const choice = assemble(chunks).get(0);
  t.equal(choice?.text, whole.choices[0].text);
  t.equal(choice?.finish, whole.choices[0].finish_reason);
});

t.test('every choice of every prompt streams, each finishing exactly once', async (t) => {
  const { chunks, done } = await stream({ prompt: ['One day', 'The dog'], n: 2, max_tokens: 3 });
  t.ok(done);
  const choices = assemble(chunks);
  t.same([...choices.keys()].sort(), [0, 1, 2, 3]);
  for (const choice of choices.values()) t.equal(choice.finishes, 1);
});

t.test('stream_options.include_usage adds a last chunk with usage and no choices', async (t) => {
  const { chunks, done } = await stream({ prompt: 'Once upon a time', max_tokens: 4, stream_options: { include_usage: true } });
  t.ok(done);
  const last = chunks[chunks.length - 1];
  t.same(last.choices, []);
  const usage = last.usage;
  if (usage == null) throw new Error('usage missing');
  t.equal(usage.prompt_tokens, model.encode('Once upon a time').length);
  t.ok(usage.completion_tokens <= 4);
  t.equal(usage.total_tokens, usage.prompt_tokens + usage.completion_tokens);
  for (const chunk of chunks.slice(0, -1)) t.equal(chunk.usage, null, 'other chunks carry usage: null');
});

t.test('streamed logprobs continue their text offsets across chunks', async (t) => {
  const { chunks } = await stream({ prompt: 'Once upon a time', max_tokens: 6, logprobs: 2, echo: true });
  const tokens: string[] = [];
  const offsets: number[] = [];
  let text = '';
  for (const chunk of chunks) {
    const [c] = chunk.choices;
    text += c.text;
    if (c.logprobs !== null) {
      tokens.push(...c.logprobs.tokens);
      offsets.push(...c.logprobs.text_offset);
    }
  }
  t.equal(tokens.join(''), text);
  let offset = 0;
  tokens.forEach((token, i) => {
    t.equal(offsets[i], offset);
    offset += [...token].length;
  });
  t.ok(text.startsWith(model.decode(model.encode('Once upon a time'))), 'echo comes first');
});

t.test('an engine failure before the first token is a plain 500 error', async (t) => {
  const res = await app.inject({ method: 'POST', url: '/v1/completions', payload: { model: 'failing', prompt: 'Hi', stream: true } });
  t.equal(res.statusCode, 500);
  t.equal(res.json().error.type, 'server_error');
});

t.test('an engine failure mid-stream ends the stream with an error event and [DONE]', async (t) => {
  const res = await app.inject({ method: 'POST', url: '/v1/completions', payload: { model: 'failing-late', prompt: 'Hi', stream: true } });
  t.equal(res.statusCode, 200);
  const { events, done } = parseSse(res.body);
  t.ok(done);
  const last = events[events.length - 1] as { error?: { type: string } };
  t.equal(last.error?.type, 'server_error');
  const after = await app.inject({ method: 'POST', url: '/v1/completions', payload: { model: model.id, prompt: 'Hi', max_tokens: 1 } });
  t.equal(after.statusCode, 200, 'the server keeps serving');
});

t.test('the response carries the request id, taken from x-request-id when given', async (t) => {
  const res = await app.inject({
    method: 'POST',
    url: '/v1/completions',
    headers: { 'x-request-id': 'trace-42' },
    payload: { model: model.id, prompt: 'Hi', max_tokens: 1, stream: true },
  });
  t.equal(res.headers['x-request-id'], 'trace-42');
});

t.test('a client that disconnects aborts its generation', async (t) => {
  t.test('while streaming', async (t) => {
    const endless = endlessModel(model);
    const url = await listen(await testApp(t, { models: [endless] }));
    const client = new AbortController();
    const res = await fetch(`${url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: endless.id, prompt: 'Hi', stream: true, max_tokens: room('Hi') }),
      signal: client.signal,
    });
    t.equal(res.status, 200);
    const reader = res.body?.getReader();
    if (reader === undefined) throw new Error('no body');
    const first = await reader.read();
    t.notOk(first.done, 'tokens arrive');
    client.abort();
    const signal = await endless.started;
    await within(endless.ended, 2000, 'the generation ends after the client hangs up');
    t.ok(signal?.aborted, 'the engine was given a signal, and it aborted');
  });

  t.test('while waiting for a whole completion', async (t) => {
    const endless = endlessModel(model);
    const url = await listen(await testApp(t, { models: [endless] }));
    const req = httpRequest(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' } });
    req.on('error', () => {}); // the socket is destroyed on purpose
    req.end(JSON.stringify({ model: endless.id, prompt: 'Hi', max_tokens: room('Hi') }));
    const signal = await endless.started;
    req.destroy();
    await within(endless.ended, 2000, 'the generation ends after the client hangs up');
    t.ok(signal?.aborted, 'the engine was given a signal, and it aborted');
  });
});

/** The most tokens a prompt leaves room for in the context window. */
function room(prompt: string): number {
  return model.contextLength - model.encode(prompt).length;
}

async function within(promise: Promise<void>, ms: number, what: string): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), ms);
  });
  try {
    await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
