/**
 * The load test's overload invariants, in short (scripts/loadtest.ts runs the full form):
 * a server with a small queue, a 1x baseline, then 20x as many clients that ignore 429 and
 * Retry-After. Under that overload the server must answer only 200 or 429, keep serving, and
 * keep answering /health.
 */
import t from 'tap';
import { badOutcomes, runPhase, warmUp } from '../../scripts/lib/load.js';
import { startServer } from '../../scripts/lib/server-process.js';

const QUEUE = 4;
const SECONDS = 4;
const MULTIPLIER = 20;

t.test(`${MULTIPLIER}x overload from clients that do not back off: only 200 and 429, throughput kept, /health answered`, async (t) => {
  const server = await startServer({ modelDir: 'models/stories260K', maxQueue: QUEUE, maxConcurrent: 1 });
  t.teardown(() => server.stop());
  const model = 'stories260K';
  const unit = 1 + QUEUE;
  await warmUp(server.url, model);

  const baseline = await runPhase({ url: server.url, model, connections: unit, durationS: SECONDS });
  t.same(badOutcomes(baseline), { statuses: {}, errors: {} }, 'the baseline has only 200s and 429s');
  t.ok(baseline.okPerSecond > 0, 'the baseline completes requests', { baseline: baseline.okPerSecond });

  // Requests still queued from the baseline are abandoned when its clients close; let them go.
  await new Promise((r) => setTimeout(r, 1000));
  const overload = await runPhase({ url: server.url, model, connections: MULTIPLIER * unit, durationS: SECONDS });
  t.same(badOutcomes(overload), { statuses: {}, errors: {} }, 'overload answers only 200 or 429: no 5xx, no reset, no timeout');
  t.ok((overload.statuses['429'] ?? 0) > 0, 'overload is rejected with 429', { statuses: overload.statuses });
  // 50% on purpose: this machine's 2 cores are shared with the load generator and with other
  // test files running in parallel, so short phases are noisy. The full 50x run of
  // `npm run loadtest` (docs/loadtest.md) is held to the real target, 70%.
  const ratio = overload.okPerSecond / baseline.okPerSecond;
  t.ok(ratio >= 0.5, `overload keeps at least 50% of the baseline's successful throughput (kept ${(ratio * 100).toFixed(0)}%)`, {
    baseline: baseline.okPerSecond,
    overload: overload.okPerSecond,
  });
  for (const [phase, result] of [['baseline', baseline], ['overload', overload]] as const) {
    t.equal(result.health.failures, 0, `${phase}: every /health probe answered 200 within 1 s`, { health: { ...result.health, failed: result.health.failed.slice(0, 10) } });
    t.ok(result.health.probes > 0, `${phase}: /health was probed (${result.health.probes} probes)`);
  }
});
