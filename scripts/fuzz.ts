/**
 * Seeded fuzzing of every route of the real server (a child process).
 *
 *   npm run fuzz -- [--seed 1] [--count 10000] [--model models/stories260K] [--concurrency 8] [--index 17,203] [--violations FILE]
 *
 * The same seed gives the same requests (src/random.ts's PRNG, one stream per case), so a
 * violation is reproduced by `--seed S --index I`. Exits 1 on any violation, after writing
 * each, with its request, to the violations file (JSON lines).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, relative } from 'node:path';
import { Command } from 'commander';
import { parseModelDir, parseNonNegativeInt, parsePositiveInt, runCli } from '../src/cli/options.js';
import { FUZZ_SERVER_ENV } from './lib/fuzz-env.js';
import { runFuzz, type FuzzSummary } from './lib/fuzz.js';
import { ROOT, startServer } from './lib/server-process.js';

interface Options {
  seed: number;
  count: number;
  model: string;
  concurrency: number;
  index?: number[];
  violations?: string;
}

const program = new Command('fuzz')
  .description(
    'Send seeded, mutated requests to every route of the server and check that none gets a 5xx, a malformed error or an unbounded message, and that /health keeps answering',
  )
  .option('--seed <n>', 'seed of the run', parseNonNegativeInt, 1)
  .option('--count <n>', 'requests to send', parsePositiveInt, 10_000)
  .option('--model <dir>', 'model directory to serve', parseModelDir, 'models/stories260K')
  .option('--concurrency <n>', 'requests in flight at once', parsePositiveInt, 8)
  .option('--index <list>', 'only these cases of the run (comma-separated), to reproduce a violation', (v) =>
    v.split(',').map((i) => parseNonNegativeInt(i.trim())),
  )
  .option('--violations <file>', 'where violations go, with their requests (default .cache/fuzz/violations-seed-<seed>.jsonl)')
  .action(async (opts: Options) => {
    const server = await startServer({ modelDir: opts.model, maxQueue: 32, maxConcurrent: 1, env: FUZZ_SERVER_ENV });
    let summary: FuzzSummary;
    try {
      const info = (await (await fetch(`${server.url}/tokenizer_info`)).json()) as { model: string; vocab_size: number; max_model_len: number };
      const context = { model: info.model, vocabSize: info.vocab_size, contextLength: info.max_model_len };
      process.stderr.write(`fuzzing ${server.url} (model ${context.model}) with seed ${opts.seed}\n`);
      let last = 0;
      summary = await runFuzz({
        url: server.url,
        seed: opts.seed,
        count: opts.count,
        indices: opts.index,
        context,
        concurrency: opts.concurrency,
        onProgress: (done, total) => {
          if (done === total || Date.now() - last > 5000) {
            last = Date.now();
            process.stderr.write(`  ${done} / ${total}\n`);
          }
        },
      });
    } finally {
      const code = await server.stop();
      if (code !== 0) process.stderr.write(`the server exited with ${code}\n`);
    }
    if (summary.violations.some((v) => v.kind === '5xx')) process.stderr.write(`the server's last output:\n${server.output()}\n`);
    console.log(report(opts.seed, summary));
    if (summary.violations.length > 0) {
      const file = opts.violations ?? `${ROOT}/.cache/fuzz/violations-seed-${opts.seed}.jsonl`;
      mkdirSync(dirname(file), { recursive: true });
      writeFileSync(file, `${summary.violations.map((v) => JSON.stringify(v)).join('\n')}\n`);
      console.log(`\n${summary.violations.length} violations; their requests are in ${relative(process.cwd(), file)}`);
      process.exitCode = 1;
    }
  });

function report(seed: number, s: FuzzSummary): string {
  const lines = [`${s.requests} requests in ${s.durationS.toFixed(1)} s (seed ${seed})`, '', '| route | answers by status |', '|---|---|'];
  for (const [route, statuses] of Object.entries(s.byRoute).sort()) {
    lines.push(
      `| ${route} | ${Object.entries(statuses)
        .sort()
        .map(([status, n]) => `${status}: ${n}`)
        .join(', ')} |`,
    );
  }
  const h = s.health;
  lines.push('', `/health: ${h.probes} probes, p50 ${h.p50Ms.toFixed(1)} ms, p99 ${h.p99Ms.toFixed(1)} ms, max ${h.maxMs.toFixed(1)} ms, ${h.failures} failed`);
  const longest = s.longestErrorMessage;
  lines.push(
    longest === null
      ? 'no error message'
      : `longest error message: ${longest.length} characters (#${longest.index} ${longest.route}: ${longest.notes.join('; ')})`,
  );
  if (s.violations.length > 0) {
    lines.push('', 'violations:');
    for (const v of s.violations)
      lines.push(`- seed ${v.seed} #${v.index} ${v.route} ${v.kind}${v.status !== undefined ? ` (${v.status})` : ''} [${v.notes.join('; ')}]: ${v.detail}`);
  } else {
    lines.push('', 'no violations');
  }
  return lines.join('\n');
}

await runCli(program);
