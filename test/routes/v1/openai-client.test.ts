/** The official OpenAI client library calls the server without adaptation, streaming and not. */
import OpenAI from 'openai';
import t from 'tap';
import { listen, testApp } from '../../helpers/app.js';
import { testServedModel } from '../../helpers/served-model.js';

const model = await testServedModel();
t.teardown(() => model.close());

t.test('completions through the openai package', async (t) => {
  const app = await testApp(t, { models: [model] });
  const client = new OpenAI({ baseURL: `${await listen(app)}/v1`, apiKey: 'unused', maxRetries: 0 });

  const models = await client.models.list();
  t.same(
    models.data.map((m) => m.id),
    [model.id],
  );
  const card = await client.models.retrieve(model.id);
  t.same(card, models.data[0], 'retrieve: the card the list holds');
  const unknown = await client.models.retrieve('no/such model').then(
    () => null,
    (err: unknown) => err,
  );
  t.ok(unknown instanceof OpenAI.NotFoundError, `an unknown id: the client's NotFoundError (got ${String(unknown)})`);
  t.match(unknown, { code: 'model_not_found', param: 'model' });

  const completion = await client.completions.create({ model: model.id, prompt: 'the cat', max_tokens: 5, temperature: 0, logprobs: 2 });
  t.equal(completion.object, 'text_completion');
  t.equal(completion.choices.length, 1);
  t.equal(completion.choices[0].finish_reason, 'length');
  t.equal(completion.usage?.completion_tokens, 5);
  t.equal(completion.choices[0].logprobs?.token_logprobs?.length, 5);

  const stream = await client.completions.create({
    model: model.id,
    prompt: 'the cat',
    max_tokens: 5,
    temperature: 0,
    stream: true,
    stream_options: { include_usage: true },
  });
  let text = '';
  let usage: OpenAI.CompletionUsage | undefined;
  let finish: string | null = null;
  for await (const chunk of stream) {
    for (const choice of chunk.choices) {
      text += choice.text;
      finish = choice.finish_reason ?? finish;
    }
    usage = chunk.usage ?? usage;
  }
  t.equal(text, completion.choices[0].text, 'the stream adds up to the same greedy text');
  t.equal(finish, 'length');
  t.equal(usage?.completion_tokens, 5);

  // The client's own error classes: 404 and 400 as OpenAI's API would answer.
  const status = async (body: OpenAI.CompletionCreateParamsNonStreaming) => {
    try {
      await client.completions.create(body);
      return 200;
    } catch (err) {
      return err instanceof OpenAI.APIError ? err.status : -1;
    }
  };
  t.equal(await status({ model: 'nope', prompt: 'x' }), 404);
  t.equal(await status({ model: model.id, prompt: 'x', temperature: 9 }), 400);
});
