/**
 * The load test, in short (scripts/loadtest.ts runs the full forms):
 * - its overload invariants: a server with a small queue, a 1x baseline, then 20x as many
 *   clients that ignore 429 and Retry-After. Under that overload the server must answer only 200
 *   or 429, keep serving, and keep answering /health;
 * - a smoke run of its concurrency sweep (--sweep): the rows it reports, with tokens and timings
 *   measured, from the library and from the command line.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { badOutcomes, runPhase, warmUp } from '../../scripts/lib/load.js';
import { startServer } from '../../scripts/lib/server-process.js';
import {
  checkTargets,
  median,
  pairedRatio,
  parseMode,
  percentile,
  runSweep,
  summarisePoint,
  sweepTable,
  uniquePrompt,
  withRatios,
} from '../../scripts/lib/sweep.js';
import { runEntryPoint } from '../helpers/cli.js';

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
  for (const [phase, result] of [
    ['baseline', baseline],
    ['overload', overload],
  ] as const) {
    t.equal(result.health.failures, 0, `${phase}: every /health probe answered 200 within 1 s`, {
      health: { ...result.health, failed: result.health.failed.slice(0, 10) },
    });
    t.ok(result.health.probes > 0, `${phase}: /health was probed (${result.health.probes} probes)`);
  }
});

t.test('sweep: one row per mode and concurrency, tokens generated, TTFT and latency measured, the mode that ran reported', async (t) => {
  const server = await startServer({ modelDir: 'models/stories260K', maxConcurrent: 2, env: { ORT_INTRA_OP_THREADS: '1' } });
  t.teardown(() => server.stop());
  const modes = [parseMode('dense'), parseMode('token:s50')];
  const { rows, promptWords } = await runSweep({
    targets: [{ server: 'this server', url: server.url, model: 'stories260K', modes }],
    concurrencies: [1, 2],
    requestsPerStream: 2,
    maxTokens: 4,
    promptTokens: 16,
    cycles: 1,
  });
  t.ok(promptWords > 0, `prompts of ${promptWords} words`);
  t.same(
    rows.map((r) => [r.server, r.mode, r.concurrency]),
    [
      ['this server', 'dense', 1],
      ['this server', 'dense', 2],
      ['this server', 'token:s50', 1],
      ['this server', 'token:s50', 2],
    ],
  );
  for (const row of rows) {
    const at = `${row.mode} c=${row.concurrency}`;
    t.equal(row.requests, 2 * row.concurrency, `${at}: every stream sent its requests`);
    t.ok(row.tokensPerS > 0, `${at}: positive tokens/s (${row.tokensPerS.toFixed(1)})`);
    t.ok(row.meanTokens > 0 && row.meanTokens <= 4, `${at}: 1 to max_tokens tokens per request (${row.meanTokens})`);
    t.ok(row.meanPromptTokens !== null && row.meanPromptTokens > 0, `${at}: prompt tokens from the usage`);
    t.ok(row.ttftMs.p50 > 0 && row.ttftMs.p95 >= row.ttftMs.p50, `${at}: TTFT measured`);
    t.ok(row.latencyMs.p50 >= row.ttftMs.p50 && row.latencyMs.p99 >= row.latencyMs.p95, `${at}: latency measured`);
    if (row.concurrency === 1) t.equal(row.ratio, 1, `${at}: the baseline of its ratios`);
    else t.ok(row.ratio > 0, `${at}: a ratio to c=1`);
  }
  t.same(Object.keys(rows[0].ran), ['dense/dense'], 'dense ran dense');
  t.same(Object.keys(rows[2].ran), ['s50/token'], 'token:s50 ran per-token activation at s50');
  const table = sweepTable(rows).split('\n');
  t.equal(table.length, 2 + rows.length, 'the table has a header, a rule and one line per row');
  t.match(table[2], /^\| this server \| dense \| 1 \| 2 \| /);
});

t.test('sweep from the command line: the table is printed and written, a mode the model lacks is skipped, hand-written notes are kept', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sweep-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const out = join(dir, 'batching.md');
  writeFileSync(out, 'old\n<!-- Written by hand below this line; `npm run loadtest -- --sweep --out` keeps it. -->\nmy notes\n');
  const args = [
    '--sweep',
    '--model',
    'models/stories260K',
    '--concurrency',
    '1,2',
    '--modes',
    'dense,s50,s99',
    '--max-tokens',
    '4',
    '--requests-per-stream',
    '1',
    '--threads',
    '1',
    '--no-llama-server',
    // The suite runs test files side by side: a smoke test must not wait for a quiet machine.
    '--max-other-load',
    '1000',
    '--out',
    out,
  ];
  const r = await runEntryPoint('scripts/loadtest.ts', args);
  t.equal(r.status, 0, 'exits 0', { stderr: r.stderr.slice(-2000) });
  const lines = r.stdout.split('\n').filter((l) => l.startsWith('| this server |'));
  t.same(
    lines.map((l) =>
      l
        .split('|')
        .slice(2, 4)
        .map((c) => c.trim()),
    ),
    [
      ['dense', '1'],
      ['dense', '2'],
      ['s50', '1'],
      ['s50', '2'],
    ],
    'a row per mode and concurrency',
  );
  for (const line of lines) t.ok(Number(line.split('|')[6].trim().split(' ')[0]) > 0, `positive tokens/s: ${line}`);
  t.match(r.stderr, /skipping mode s99/, 'the missing tier is named');
  const doc = readFileSync(out, 'utf8');
  t.match(doc, /^# Continuous batching under load/, 'the report is written');
  t.match(doc, /\| this server \| s50 \| 2 \|/);
  t.ok(doc.endsWith('-->\nmy notes\n'), 'what was written by hand below the marker is kept');
  t.notMatch(doc, /^old$/m, 'the generated part is replaced');
});

t.test("sweep summaries: percentiles, ratios and the issue's targets", async (t) => {
  t.equal(percentile([5, 1, 4, 2, 3], 50), 3);
  t.equal(percentile([5, 1, 4, 2, 3], 95), 5);
  t.equal(percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 90), 9);
  t.ok(Number.isNaN(percentile([], 50)));
  t.equal(median([4, 1, 3, 2]), 2.5, 'the median of an even count is the mean of the middle two');
  t.same(pairedRatio([30, 50, 44], [10, 20, 11]), { median: 3, range: [2.5, 4] }, 'ratios are taken cycle by cycle');
  t.not(uniquePrompt(1, 8), uniquePrompt(2, 8), 'prompts differ');
  t.equal(uniquePrompt(3, 8), uniquePrompt(3, 8), 'and are reproducible');
  t.throws(() => parseMode('s50:token'), /expected dense, sNN/);
  // One stream: 10 tokens a second; four: 30; eight: 32. TTFT p95 100 ms alone, 350 ms at four.
  const sample = (ttftMs: number, latencyMs: number) => ({ ttftMs, latencyMs, completionTokens: 10, promptTokens: 8, finishReason: 'length' });
  const point = (c: number, wallS: number, ttftMs: number) =>
    summarisePoint('this server', 'dense', c, [
      { wallS, samples: Array.from({ length: c }, () => sample(ttftMs, 1000)), errors: c === 8 ? ['500', '500'] : [] },
    ]);
  const rows = withRatios([point(1, 1, 100), point(4, 4 / 3, 350), point(8, 2.5, 400)]);
  t.same(
    rows.map((r) => Number(r.ratio.toFixed(2))),
    [1, 3, 3.2],
  );
  t.same(
    rows.map((r) => [r.failed, r.failures]),
    [
      [0, []],
      [0, []],
      [2, ['500']],
    ],
    'failed requests are counted, each message once',
  );
  t.ok(Number.isNaN(rows[0].otherCoresMax), 'the other load is not known when not measured');
  const checks = checkTargets(rows, 'this server');
  // A stream decodes its 9 tokens after the first in 1000 ms - TTFT: 10 tokens/s alone, 4 x 9 / 0.65 s at four, 8 x 9 / 0.6 s at eight.
  t.same(
    rows.map((r) => Number(r.decodeRatio.toFixed(2))),
    [1, 5.54, 12],
  );
  t.same(
    checks.map((c) => c.holds),
    [true, true, false, true, true],
    '4 streams reach 2.5x; 8 reach 3.5x in decode tokens/s only; 350 ms < 2 x 100 + 3 x 100',
  );
});
