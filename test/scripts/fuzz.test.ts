/**
 * A short seeded run of the fuzzer (scripts/fuzz.ts) against the real server in a child
 * process: the same invariants as the 10,000-request run, on a few hundred requests.
 */
import t from 'tap';
import { FUZZ_SERVER_ENV } from '../../scripts/lib/fuzz-env.js';
import { runFuzz } from '../../scripts/lib/fuzz.js';
import { generateCase } from '../../scripts/lib/fuzz-cases.js';
import { startServer } from '../../scripts/lib/server-process.js';

const SEED = 13;
const COUNT = 400;

t.test('the same seed and index give the same request', async (t) => {
  const context = { model: 'stories260K', vocabSize: 512, contextLength: 512 };
  for (const index of [0, 1, 57, 399]) {
    const a = generateCase(SEED, index, context);
    const b = generateCase(SEED, index, context);
    t.same({ ...a, body: a.body?.toString('base64') }, { ...b, body: b.body?.toString('base64') }, `case ${index}`);
  }
  t.not(generateCase(SEED, 0, context).body?.toString('base64'), generateCase(SEED + 1, 0, context).body?.toString('base64'), 'another seed, another request');
});

t.test(`${COUNT} seeded requests: no 5xx, errors in OpenAI's shape with bounded messages, /health within 1 s`, async (t) => {
  const server = await startServer({ modelDir: 'models/stories260K', env: FUZZ_SERVER_ENV });
  t.teardown(() => server.stop());
  const info = (await (await fetch(`${server.url}/tokenizer_info`)).json()) as { model: string; vocab_size: number; max_model_len: number };
  const summary = await runFuzz({
    url: server.url,
    seed: SEED,
    count: COUNT,
    context: { model: info.model, vocabSize: info.vocab_size, contextLength: info.max_model_len },
  });

  t.equal(summary.requests, COUNT, 'every request was sent');
  const statuses = Object.values(summary.byRoute).flatMap((byStatus) => Object.keys(byStatus));
  // A run that only ever saw 200 or only errors would not be exercising the validation paths.
  t.ok(statuses.includes('200') && statuses.includes('400') && statuses.includes('404'), 'the run saw successes and client errors', { statuses });
  for (const kind of ['5xx', 'internal error in a stream', 'error shape', 'long error message', 'no answer', '/health']) {
    const found = summary.violations.filter((v) => v.kind === kind);
    t.same(
      found.map((v) => `#${v.index} ${v.route} [${v.notes.join('; ')}]: ${v.detail.slice(0, 300)}`),
      [],
      `no violation: ${kind}`,
    );
  }
  t.ok(summary.health.probes > 0, '/health was probed', { health: summary.health });
});
