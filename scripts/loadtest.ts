/**
 * Load test of the real server (a child process): a baseline at 1x load, then overload phases
 * from clients that never back off, with /health probed throughout.
 *
 *   npm run loadtest -- [--model models/stories260K] [--queue 32] [--duration 15] [--multipliers 2,10,50] [--max-tokens 16] [--out docs/loadtest.md]
 *
 * 1x load is 1 + queue connections with one running request per model: every request has a
 * place (running or queued), so the baseline's 200/s is the unloaded throughput. Phase N×
 * opens N × (1 + queue) connections; each sends its next completion as soon as it has an answer,
 * 429 or not. docs/loadtest.md is generated with --out.
 */
import { execSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { Command } from 'commander';
import { parseModelDir, parseNonNegativeInt, parsePositiveNumber, runCli } from '../src/cli/options.js';
import { markdownTable, runPhase, warmUp, type TableRow } from './lib/load.js';

const WARM_UP_S = 5;
import { startServer } from './lib/server-process.js';

interface Options {
  model: string;
  queue: number;
  duration: number;
  multipliers: number[];
  maxTokens: number;
  settle: number;
  out?: string;
}

function multipliers(value: string): number[] {
  return value.split(',').map((v) => parsePositiveNumber(v.trim()));
}

const program = new Command('loadtest')
  .description('Measure successful throughput and /health latency of the server at 1x and overloaded, from clients that ignore 429')
  .option('--model <dir>', 'model directory to serve', parseModelDir, 'models/stories260K')
  .option('--queue <n>', 'MAX_QUEUE_PER_MODEL (one request runs per model)', parseNonNegativeInt, 32)
  .option('--duration <s>', 'seconds per phase', parsePositiveNumber, 15)
  .option('--multipliers <list>', 'overload phases, as multiples of the 1x load (1 + queue connections)', multipliers, [2, 10, 50])
  .option('--max-tokens <n>', 'max_tokens of every completion', parseNonNegativeInt, 16)
  .option('--settle <s>', 'seconds of quiet between phases, so one phase\'s abandoned requests do not count in the next', parsePositiveNumber, 2)
  .option('--out <file>', 'also write the table, with a header saying what was run, to this Markdown file')
  .action(async (opts: Options) => {
    const server = await startServer({ modelDir: opts.model, maxQueue: opts.queue, maxConcurrent: 1 });
    try {
      const models = (await (await fetch(`${server.url}/v1/models`)).json()) as { data: { id: string }[] };
      const model = models.data[0].id;
      await warmUp(server.url, model);
      const unit = 1 + opts.queue;
      // An unreported phase at 1x first: JIT, allocator and caches settle, so that the baseline
      // is not the slowest phase for reasons of its own. The same load again at the end shows
      // how far the machine drifted over the run.
      process.stderr.write(`warm-up: ${unit} connections for ${WARM_UP_S} s...\n`);
      await runPhase({ url: server.url, model, connections: unit, durationS: WARM_UP_S, maxTokens: opts.maxTokens });
      await new Promise((r) => setTimeout(r, opts.settle * 1000));
      const rows: TableRow[] = [];
      const phases: [string, number][] = [
        ['1x (baseline)', unit],
        ...opts.multipliers.map((m): [string, number] => [`${m}x`, Math.round(m * unit)]),
        ['1x (again)', unit],
      ];
      let baseline = NaN;
      for (const [index, [phase, connections]] of phases.entries()) {
        if (index > 0) await new Promise((r) => setTimeout(r, opts.settle * 1000));
        process.stderr.write(`${phase}: ${connections} connections for ${opts.duration} s...\n`);
        const result = await runPhase({ url: server.url, model, connections, durationS: opts.duration, maxTokens: opts.maxTokens });
        if (index === 0) baseline = result.okPerSecond;
        rows.push({ phase, result, ratio: result.okPerSecond / baseline });
        process.stderr.write(`  200/s ${result.okPerSecond.toFixed(1)}, statuses ${JSON.stringify(result.statuses)}, errors ${JSON.stringify(result.errors)}, /health max ${result.health.maxMs.toFixed(0)} ms\n`);
      }
      const table = markdownTable(rows);
      console.log(table);
      if (opts.out !== undefined) writeFileSync(opts.out, report(opts, model, table));
    } catch (err) {
      process.stderr.write(`the server's last output:\n${server.output()}\n`);
      throw err;
    } finally {
      const code = await server.stop();
      if (code !== 0) process.stderr.write(`the server exited with ${code}:\n${server.output()}\n`);
    }
  });

function report(opts: Options, model: string, table: string): string {
  let commit = 'unknown';
  try {
    commit = execSync('git rev-parse --short HEAD', { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    if (execSync('git status --porcelain -- src routes plugins', { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim() !== '') commit += ' (with uncommitted changes to the server)';
  } catch {
    // Not a git checkout: the header says so.
  }
  const cpu = cpus();
  return `# Load test

Generated by \`npm run loadtest -- --model ${opts.model} --queue ${opts.queue} --duration ${opts.duration} --multipliers ${opts.multipliers.join(',')} --max-tokens ${opts.maxTokens} --out ${opts.out}\`
on ${new Date().toISOString().slice(0, 10)}, commit ${commit}, ${cpu.length} cores (${cpu[0]?.model.trim() ?? 'unknown CPU'}), Node ${process.version}; the server and
the load generator share the machine (loopback).

Model \`${model}\`, one running request and ${opts.queue} queued per model (MAX_CONCURRENT_PER_MODEL=1, MAX_QUEUE_PER_MODEL=${opts.queue}),
completions of \`max_tokens\` ${opts.maxTokens} at temperature 0 with a different prompt each, ${opts.duration} s per phase.
The baseline (1x) has 1 + ${opts.queue} connections, each sending its next request once answered; an N× phase has N times as
many, which ignore 429 and Retry-After. An unreported ${WARM_UP_S} s phase at 1x comes first, and the last row runs 1x again:
the two 1x rows bound how much the shared machine drifted during the run. A separate connection GETs /health every 50 ms throughout; a failure is an answer
other than 200 or one slower than 1 s. See [reliability.md](reliability.md) for what must hold.

${table}
`;
}

await runCli(program);
