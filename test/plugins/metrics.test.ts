/**
 * Requests whose clients hang up are counted too: slm_requests_total gets them under status
 * 499, once each, whether they were streaming or waiting for a plain answer.
 */
import t from 'tap';
import { listen, testApp } from '../helpers/app.js';
import { endlessModel } from '../helpers/models.js';
import { testServedModel } from '../helpers/served-model.js';

const base = await testServedModel();
t.teardown(() => base.close());

async function until(what: string, condition: () => Promise<boolean>, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

t.test('a client that hangs up mid-stream or mid-generation is counted once, as 499', async (t) => {
  const model = endlessModel(base);
  const app = await testApp(t, { models: [model], maxQueuePerModel: 4 });
  const url = await listen(app);
  const requests = async (): Promise<string[]> =>
    ((await app.inject({ method: 'GET', url: '/metrics' })).body.match(/^slm_requests_total\{.*$/gm) ?? []).sort();

  const client = new AbortController();
  const stream = await fetch(`${url}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: model.id, prompt: [1], max_tokens: 20, stream: true }),
    signal: client.signal,
  });
  await stream.body?.getReader().read();
  client.abort();
  await until('the streamed request is counted', async () => (await requests()).length === 1);
  t.same(await requests(), ['slm_requests_total{model="endless",tier="none",endpoint="completions",status="499"} 1']);

  const plain = new AbortController();
  const pending = fetch(`${url}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: model.id, prompt: [1], max_tokens: 20 }),
    signal: plain.signal,
  }).catch(() => null);
  await new Promise((resolve) => setTimeout(resolve, 100));
  plain.abort();
  await pending;
  await until('the plain request is counted', async () => (await requests())[0]?.endsWith(' 2') === true);
  await new Promise((resolve) => setTimeout(resolve, 200));
  t.same(await requests(), ['slm_requests_total{model="endless",tier="none",endpoint="completions",status="499"} 2'], 'once each, nothing else');
});
