/**
 * Load test of the real server (a child process), in two modes.
 *
 * Overload (the default): a baseline at 1x load, then overload phases from clients that never
 * back off, with /health probed throughout.
 *
 *   npm run loadtest -- [--model models/stories260K] [--queue 32] [--duration 15] [--multipliers 2,10,50] [--max-tokens 16] [--out docs/loadtest.md]
 *
 * 1x load is 1 + queue connections with one running request per model: every request has a
 * place (running or queued), so the baseline's 200/s is the unloaded throughput. Phase N×
 * opens N × (1 + queue) connections; each sends its next completion as soon as it has an answer,
 * 429 or not. docs/loadtest.md is generated with --out.
 *
 * Concurrency sweep (--sweep): c closed-loop clients, each sending streamed greedy completions
 * one after another, at each concurrency and for each mode (dense, a static tier, per-token
 * activation); aggregate generated tokens/s, TTFT and request latency percentiles per point, and
 * the same sweep against llama.cpp's llama-server on the same weights when one is on PATH (or
 * given). Without --model it serves a random model at SmolLM2-135M's shape. docs/batching.md is
 * generated with --out.
 *
 *   npm run loadtest -- --sweep [--model DIR] [--concurrency 1,2,4,8] [--modes dense,s50,token:s50] [--requests-per-stream 3] [--max-tokens 64] [--prompt-tokens 32] [--threads 2] [--cycles 1] [--llama-server PATH | --no-llama-server] [--out docs/batching.md]
 */
import { execSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { relative, resolve } from 'node:path';
import { Command } from 'commander';
import { parseModelDir, parseNonNegativeInt, parsePositiveInt, parsePositiveNumber, runCli } from '../src/cli/options.js';
import { type CpuLoad, waitForQuiet, watchCpu } from './lib/cpu-load.js';
import { ensureGguf, findLlamaServer, type LlamaServerProcess, llamaServerVersion, startLlamaServer } from './lib/llama-server.js';
import { markdownTable, runPhase, type TableRow, warmUp } from './lib/load.js';
import { ROOT, startServer } from './lib/server-process.js';
import {
  checkTargets,
  hasMode,
  pairedRatio,
  parseMode,
  runSweep,
  type SweepMode,
  type SweepRow,
  type SweepTarget,
  servedModel,
  sweepTable,
  targetsTable,
} from './lib/sweep.js';
import { ensureSweepModel, RANDOM_SCORES, SWEEP_MODEL_DIR } from './lib/sweep-model.js';

const WARM_UP_S = 5;
const OVERLOAD_MODEL = 'models/stories260K';
const OVERLOAD_MAX_TOKENS = 16;
const SWEEP_MAX_TOKENS = 64;
/** Everything after this line of an existing --out file of the sweep is kept when it is written again. */
export const KEEP_MARKER = '<!-- Written by hand below this line; `npm run loadtest -- --sweep --out` keeps it. -->';

interface Options {
  model?: string;
  queue: number;
  duration: number;
  multipliers: number[];
  maxTokens?: number;
  settle: number;
  out?: string;
  sweep?: boolean;
  concurrency: number[];
  modes: SweepMode[];
  requestsPerStream: number;
  promptTokens: number;
  threads: number;
  cycles: number;
  maxOtherLoad: number;
  llamaServer?: string | false;
}

function multipliers(value: string): number[] {
  return value.split(',').map((v) => parsePositiveNumber(v.trim()));
}

function concurrencies(value: string): number[] {
  return [...new Set(value.split(',').map((v) => parsePositiveInt(v.trim())))].sort((a, b) => a - b);
}

function modes(value: string): SweepMode[] {
  return value.split(',').map(parseMode);
}

const program = new Command('loadtest')
  .description(
    'Measure the server under load: overload phases from clients that ignore 429 (default), or a concurrency sweep of streamed completions (--sweep)',
  )
  .option(
    '--model <dir>',
    `model directory to serve (overload: ${OVERLOAD_MODEL}; sweep: a random model at SmolLM2-135M's shape in ${SWEEP_MODEL_DIR})`,
    parseModelDir,
  )
  .option('--queue <n>', 'MAX_QUEUE_PER_MODEL (overload: one request runs per model)', parseNonNegativeInt, 32)
  .option('--duration <s>', 'overload: seconds per phase', parsePositiveNumber, 15)
  .option('--multipliers <list>', 'overload: phases, as multiples of the 1x load (1 + queue connections)', multipliers, [2, 10, 50])
  .option('--max-tokens <n>', `max_tokens of every completion (overload: ${OVERLOAD_MAX_TOKENS}; sweep: ${SWEEP_MAX_TOKENS})`, parseNonNegativeInt)
  .option('--settle <s>', "overload: seconds of quiet between phases, so one phase's abandoned requests do not count in the next", parsePositiveNumber, 2)
  .option('--out <file>', 'also write the tables, with a header saying what was run, to this Markdown file')
  .option('--sweep', 'run the concurrency sweep instead of the overload phases')
  .option('--concurrency <list>', 'sweep: concurrent streams per point', concurrencies, [1, 2, 4, 8])
  .option(
    '--modes <list>',
    'sweep: dense, sNN (a static tier), token:sNN (per-token activation at tier sNN); modes the model lacks are skipped',
    modes,
    modes('dense,s50,token:s50'),
  )
  .option('--requests-per-stream <n>', 'sweep: completions each stream sends, one after another', parsePositiveInt, 3)
  .option('--prompt-tokens <n>', 'sweep: prompt length, about (unique prompts of words)', parsePositiveInt, 32)
  .option('--threads <n>', 'sweep: ORT_INTRA_OP_THREADS of the server, -t of llama-server', parsePositiveInt, 2)
  .option('--cycles <n>', 'sweep: times the sweep runs (interleaved); tokens/s is the median, latencies pool every cycle', parsePositiveInt, 1)
  .option(
    '--max-other-load <cores>',
    'sweep: run a point again (3 times at most, each once the machine is quiet again) when processes other than the servers and the client used more than this many cores during it',
    parsePositiveNumber,
    0.2,
  )
  .option('--llama-server <path>', "sweep: llama.cpp's llama-server binary to run side by side (default: llama-server on PATH, if any)")
  .option('--no-llama-server', 'sweep: do not run llama-server even if one is on PATH')
  .action(async (opts: Options) => (opts.sweep ? sweep(opts) : overload(opts)));

async function overload(opts: Options): Promise<void> {
  const modelDir = opts.model ?? OVERLOAD_MODEL;
  const maxTokens = opts.maxTokens ?? OVERLOAD_MAX_TOKENS;
  const server = await startServer({ modelDir, maxQueue: opts.queue, maxConcurrent: 1 });
  try {
    const models = (await (await fetch(`${server.url}/v1/models`)).json()) as { data: { id: string }[] };
    const model = models.data[0].id;
    await warmUp(server.url, model);
    const unit = 1 + opts.queue;
    // An unreported phase at 1x first: JIT, allocator and caches settle, so that the baseline
    // is not the slowest phase for reasons of its own. The same load again at the end shows
    // how far the machine drifted over the run.
    process.stderr.write(`warm-up: ${unit} connections for ${WARM_UP_S} s...\n`);
    await runPhase({ url: server.url, model, connections: unit, durationS: WARM_UP_S, maxTokens });
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
      const result = await runPhase({ url: server.url, model, connections, durationS: opts.duration, maxTokens });
      if (index === 0) baseline = result.okPerSecond;
      rows.push({ phase, result, ratio: result.okPerSecond / baseline });
      process.stderr.write(
        `  200/s ${result.okPerSecond.toFixed(1)}, statuses ${JSON.stringify(result.statuses)}, errors ${JSON.stringify(result.errors)}, /health max ${result.health.maxMs.toFixed(0)} ms\n`,
      );
    }
    const table = markdownTable(rows);
    console.log(table);
    if (opts.out !== undefined) writeFileSync(opts.out, report(opts, modelDir, maxTokens, model, table));
  } catch (err) {
    process.stderr.write(`the server's last output:\n${server.output()}\n`);
    throw err;
  } finally {
    const code = await server.stop();
    if (code !== 0) process.stderr.write(`the server exited with ${code}:\n${server.output()}\n`);
  }
}

function commitInfo(): string {
  let commit = 'unknown';
  try {
    commit = execSync('git rev-parse --short HEAD', { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    if (execSync('git status --porcelain -- src routes plugins', { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim() !== '')
      commit += ' (with uncommitted changes to the server)';
  } catch {
    // Not a git checkout: the header says so.
  }
  return commit;
}

function machine(): string {
  const cpu = cpus();
  return `${cpu.length} cores (${cpu[0]?.model.trim() ?? 'unknown CPU'}), Node ${process.version}`;
}

function report(opts: Options, modelDir: string, maxTokens: number, model: string, table: string): string {
  return `# Load test

Generated by \`npm run loadtest -- --model ${modelDir} --queue ${opts.queue} --duration ${opts.duration} --multipliers ${opts.multipliers.join(',')} --max-tokens ${maxTokens} --out ${opts.out}\`
on ${new Date().toISOString().slice(0, 10)}, commit ${commitInfo()}, ${machine()}; the server and
the load generator share the machine (loopback).

Model \`${model}\`, one running request and ${opts.queue} queued per model (MAX_CONCURRENT_PER_MODEL=1, MAX_QUEUE_PER_MODEL=${opts.queue}),
completions of \`max_tokens\` ${maxTokens} at temperature 0 with a different prompt each, ${opts.duration} s per phase.
The baseline (1x) has 1 + ${opts.queue} connections, each sending its next request once answered; an N× phase has N times as
many, which ignore 429 and Retry-After. An unreported ${WARM_UP_S} s phase at 1x comes first, and the last row runs 1x again:
the two 1x rows bound how much the shared machine drifted during the run. A separate connection GETs /health every 50 ms throughout; a failure is an answer
other than 200 or one slower than 1 s. See [reliability.md](reliability.md) for what must hold.

${table}
`;
}

/** What the sweep ran, for the report. */
interface SweepRun {
  modelDir: string;
  model: string;
  maxTokens: number;
  env: Record<string, string>;
  modes: SweepMode[];
  skipped: string[];
  selector?: string;
  llama: { binary: string; version: string; args: string[]; gguf: string } | null;
  llamaNote: string;
  rows: SweepRow[];
  promptWords: number;
  cpu: CpuLoad | null;
  startedAt: Date;
  /** The commit the server started from (it runs the code it loaded then). */
  commit: string;
}

async function sweep(opts: Options): Promise<void> {
  const log = (line: string) => process.stderr.write(`${line}\n`);
  const modelDir = opts.model ?? (await ensureSweepModel(log));
  const maxTokens = opts.maxTokens ?? SWEEP_MAX_TOKENS;
  const top = Math.max(...opts.concurrency);
  const env: Record<string, string> = {
    ORT_INTRA_OP_THREADS: String(opts.threads),
    ORT_INTER_OP_THREADS: '1',
    MAX_CONCURRENT_PER_MODEL: String(top),
    MAX_QUEUE_PER_MODEL: String(opts.queue),
  };
  // MAX_BATCH_SIZE stays at its default (8) unless more streams than that run at once.
  if (top > 8) env.MAX_BATCH_SIZE = String(top);
  const llamaBinary = opts.llamaServer === false ? null : findLlamaServer(opts.llamaServer);
  const llamaNote =
    opts.llamaServer === false ? 'not run (--no-llama-server)' : llamaBinary === null ? 'not run: no llama-server on PATH and no --llama-server' : '';
  log(
    `starting the server on ${modelDir} (${Object.entries(env)
      .map(([k, v]) => `${k}=${v}`)
      .join(' ')}) ...`,
  );
  const commit = commitInfo();
  const server = await startServer({ modelDir, maxQueue: opts.queue, maxConcurrent: top, env, readyTimeoutMs: 600_000 });
  let llama: LlamaServerProcess | null = null;
  try {
    const served = await servedModel(server.url);
    const available = opts.modes.filter((m) => hasMode(served, m));
    const skipped = opts.modes.filter((m) => !hasMode(served, m)).map((m) => m.name);
    for (const name of skipped)
      log(`skipping mode ${name}: model ${served.id} has static tiers [${served.tiers.join(', ')}] and per-token tiers [${served.tokenTiers.join(', ')}]`);
    const targets: SweepTarget[] = [{ server: 'this server', url: server.url, model: served.id, modes: available }];
    let llamaInfo: SweepRun['llama'] = null;
    if (llamaBinary !== null) {
      log('writing an F32 GGUF of the model for llama-server ...');
      const gguf = ensureGguf(modelDir);
      const contextPerSlot = 256 * Math.ceil((opts.promptTokens * 2 + maxTokens + 64) / 256);
      log(`starting llama-server (${llamaBinary}) ...`);
      llama = await startLlamaServer({ binary: llamaBinary, gguf, threads: opts.threads, parallel: top, contextPerSlot });
      llamaInfo = { binary: llamaBinary, version: llamaServerVersion(llamaBinary), args: llama.args, gguf };
      targets.push({ server: 'llama-server', url: llama.url, model: served.id, modes: [parseMode('dense')] });
    }
    const startedAt = new Date();
    const pids = () => [server.child.pid, llama?.pid];
    const cpu = watchCpu(pids);
    // Every run's raw results, as they come: a long sweep that fails late still leaves them.
    mkdirSync(resolve(ROOT, '.cache/loadtest'), { recursive: true });
    const rawFile = resolve(ROOT, '.cache/loadtest', `sweep-${startedAt.toISOString().replace(/[:.]/g, '-')}.jsonl`);
    log(`raw results: ${relative(process.cwd(), rawFile)}`);
    const { rows, promptWords } = await runSweep({
      targets,
      concurrencies: opts.concurrency,
      requestsPerStream: opts.requestsPerStream,
      maxTokens,
      promptTokens: opts.promptTokens,
      cycles: opts.cycles,
      settleMs: 500,
      watch: () => {
        const w = watchCpu(pids);
        return { stop: () => w.stop()?.otherCores ?? null };
      },
      maxOtherCores: opts.maxOtherLoad,
      maxReruns: 3,
      waitQuiet: async () => {
        if (!(await waitForQuiet(pids, { maxCores: opts.maxOtherLoad / 2 }))) log('the machine stayed busy for 5 minutes; running it again anyway');
      },
      onRun: (run) => appendFileSync(rawFile, `${JSON.stringify(run)}\n`),
      log,
    });
    const load = cpu.stop();
    const table = sweepTable(rows);
    const targetChecks = targetsTable(checkTargets(rows, 'this server'));
    console.log(table);
    console.log();
    console.log(targetChecks);
    const run: SweepRun = {
      modelDir,
      model: served.id,
      maxTokens,
      env,
      modes: available,
      skipped,
      selector: served.selector,
      llama: llamaInfo,
      llamaNote,
      rows,
      promptWords,
      cpu: load,
      startedAt,
      commit,
    };
    if (load !== null) console.log(`\n${loadLine(load)}`);
    if (opts.out !== undefined) {
      const kept = existsSync(opts.out) ? readFileSync(opts.out, 'utf8').split(KEEP_MARKER)[1] : undefined;
      writeFileSync(opts.out, sweepReport(opts, run) + (kept !== undefined ? `\n${KEEP_MARKER}${kept}` : `\n${KEEP_MARKER}\n`));
    }
  } catch (err) {
    process.stderr.write(`the server's last output:\n${server.output()}\n`);
    if (llama) process.stderr.write(`llama-server's last output:\n${llama.output().slice(-4000)}\n`);
    throw err;
  } finally {
    if (llama) await llama.stop();
    const code = await server.stop();
    if (code !== 0) process.stderr.write(`the server exited with ${code}:\n${server.output()}\n`);
  }
}

function loadLine(load: CpuLoad): string {
  const la = (xs: number[]) => xs.map((x) => x.toFixed(2)).join(' / ');
  return (
    `Machine load during the sweep (${load.wallS.toFixed(0)} s): ${(load.busy * 100).toFixed(0)}% of ${load.cores} cores busy; ` +
    `the servers and the client used ${load.measuredCores.toFixed(2)} cores on average, everything else ${load.otherCores.toFixed(2)}. ` +
    `Load average (1 / 5 / 15 min) ${la(load.loadavgBefore)} before, ${la(load.loadavgAfter)} after.`
  );
}

/** Each sparse mode's tokens/s over dense's at the same concurrency, and llama-server's dense over this server's. */
function comparisonTable(rows: SweepRow[], concurrencyList: number[]): string {
  const ours = rows.filter((r) => r.server === 'this server');
  const dense = (c: number) => ours.find((r) => r.mode === 'dense' && r.concurrency === c);
  const others = [...new Set(ours.map((r) => r.mode))].filter((m) => m !== 'dense');
  const lines = [
    `| tokens/s over this server's dense | ${concurrencyList.map((c) => `c=${c}`).join(' | ')} |`,
    `|---|${concurrencyList.map(() => '---').join('|')}|`,
  ];
  const cell = (row: SweepRow | undefined, base: SweepRow | undefined) => {
    if (!row || !base) return '-';
    const { median, range } = pairedRatio(row.cycleTokensPerS, base.cycleTokensPerS);
    return row.runs.length > 1 ? `${median.toFixed(2)}x (${range[0].toFixed(2)}–${range[1].toFixed(2)})` : `${median.toFixed(2)}x`;
  };
  for (const mode of others)
    lines.push(
      `| this server, ${mode} | ${concurrencyList
        .map((c) =>
          cell(
            ours.find((r) => r.mode === mode && r.concurrency === c),
            dense(c),
          ),
        )
        .join(' | ')} |`,
    );
  if (rows.some((r) => r.server === 'llama-server')) {
    lines.push(
      `| llama-server, dense | ${concurrencyList
        .map((c) =>
          cell(
            rows.find((r) => r.server === 'llama-server' && r.concurrency === c),
            dense(c),
          ),
        )
        .join(' | ')} |`,
    );
  }
  return lines.length > 2 ? lines.join('\n') : '';
}

function sweepReport(opts: Options, run: SweepRun): string {
  const command =
    `npm run loadtest -- --sweep${opts.model !== undefined ? ` --model ${opts.model}` : ''} --concurrency ${opts.concurrency.join(',')} --modes ${opts.modes.map((m) => m.name).join(',')}` +
    ` --requests-per-stream ${opts.requestsPerStream} --max-tokens ${run.maxTokens} --prompt-tokens ${opts.promptTokens} --threads ${opts.threads} --cycles ${opts.cycles} --max-other-load ${opts.maxOtherLoad}` +
    (opts.llamaServer === false ? ' --no-llama-server' : opts.llamaServer !== undefined ? ' --llama-server <path>' : '') +
    ` --out ${opts.out}`;
  const randomModel = opts.model === undefined;
  const prompt = run.rows.find((r) => r.server === 'this server' && r.meanPromptTokens !== null)?.meanPromptTokens;
  const llamaPrompt = run.rows.find((r) => r.server === 'llama-server' && r.meanPromptTokens !== null)?.meanPromptTokens;
  const comparison = comparisonTable(run.rows, opts.concurrency);
  const ran = run.rows
    .filter((r) => r.server === 'this server')
    .map(
      (r) =>
        `${r.mode} c=${r.concurrency}: ${
          Object.entries(r.ran)
            .map(([k, n]) => `${k} ×${n}`)
            .join(', ') || 'not reported'
        }`,
    );
  const failures = run.rows
    .filter((r) => r.failed > 0)
    .map((r) => `${r.server} ${r.mode} c=${r.concurrency}: ${r.failed} (${r.failures.map((f) => `\`${f.replaceAll('`', "'")}\``).join(', ')})`);
  const ranByMode = [...new Map(ran.map((line) => [line.split(' c=')[0], line.split(': ')[1]])).entries()].map(([mode, what]) => `${mode} ran ${what}`);
  return `# Continuous batching under load: a concurrency sweep

Generated by \`${command}\`
on ${run.startedAt.toISOString().slice(0, 16).replace('T', ' ')} UTC, the server started from commit ${run.commit}, ${machine()}.
The server, llama-server and the load generator share the machine (loopback); only one server is
serving at a time (both are up for the whole run; the other idles meanwhile).

## Settings

- Model: ${
    randomModel
      ? `\`${run.model}\`, a random model at SmolLM2-135M's shape (${SWEEP_MODEL_DIR}, the same weights as \`npm run bench\`'s), BF16 on disk, float32 in both servers. Its static tiers come from ${RANDOM_SCORES}: a tier's speed depends on how many neurons it keeps, not which (calibrating by attribution at this shape takes too long here).`
      : `\`${run.model}\` (${run.modelDir}).`
  }
- This server: \`${Object.entries(run.env)
    .map(([k, v]) => `${k}=${v}`)
    .join(
      ' ',
    )}\`, other settings at their defaults (MAX_BATCH_SIZE 8, PREFILL_CHUNK_TOKENS 64${run.selector ? `, per-token selector \`${run.selector}\`` : ''}).
- Modes: ${run.modes.map((m) => `\`${m.name}\` (${JSON.stringify(m.fields)})`).join(', ')}${run.skipped.length > 0 ? `; skipped, as the model lacks them: ${run.skipped.join(', ')}` : ''}.
  What the server reported running: ${ranByMode.join('; ')}.
- llama-server: ${
    run.llama
      ? `llama.cpp ${run.llama.version.replace(/^version:?\s*/, 'version ')}, built from source for this run (never a dependency), on an F32 GGUF of the same weights written by test/helpers/gguf-writer.ts; \`llama-server ${run.llama.args.map((a, i, all) => (a === run.llama!.gguf ? '<model>.f32.gguf' : all[i - 1] === '--port' ? '<port>' : a)).join(' ')}\`, dense only.`
      : `${run.llamaNote}.`
  }
- Client: at concurrency c, c streams, each sending ${opts.requestsPerStream} streamed greedy completions one after another
  (\`stream: true\`, \`stream_options.include_usage\`, \`temperature: 0\`, \`max_tokens: ${run.maxTokens}\`), ${opts.cycles} cycle(s) of the whole sweep,
  interleaved, after an unreported warm-up per server and mode (one request, then one at c=${Math.max(...opts.concurrency)}).
  Every prompt is unique (its own number, then ${run.promptWords} words): ${prompt !== undefined && prompt !== null ? `${prompt.toFixed(1)} tokens on average on this server` : 'its tokens were not reported'}${llamaPrompt !== undefined && llamaPrompt !== null ? `, ${llamaPrompt.toFixed(1)} on llama-server` : ''}.
  Neither server is told to ignore end-of-sequence (this server has no such option): tokens/request is what was generated.
- ${run.cpu ? loadLine(run.cpu) : 'Machine load: not measured (no /proc).'}

## Columns

- tokens/s: completion tokens generated / wall time of the point (first request sent to last stream's end), median over cycles (range in brackets).
- vs c=1: tokens/s over the same server and mode's at one stream in the same cycle, median over cycles (range in brackets). Cycle by cycle, because a shared machine's speed drifts over minutes while a cycle's points run within a minute or two of each other.
- decode tokens/s: c × a stream's decode rate (its tokens after the first / time after the first token), median over cycles; its vs c=1 as tokens/s's.
- TTFT: from sending a request to the first chunk with text. Latency: to the end of its stream. Percentiles are nearest-rank over every completed request of every cycle (with few requests, p99 is the slowest).
- requests: completed requests; failed: requests that ended in an error (left out of every other column)${failures.length > 0 ? `: ${failures.join('; ')}` : ''}.
- other load: the most CPU (in cores' worth) that processes other than the two servers and the client used during one of the point's runs; a run during which they used more than ${opts.maxOtherLoad} cores was run again once they had used less than half that for 6 s (3 times at most; the last run counts).

## Results

${sweepTable(run.rows)}

${comparison !== '' ? `### Against dense at the same concurrency\n\nTokens/s over this server's dense at the same concurrency in the same cycle: the median over cycles (range).\n\n${comparison}\n\n` : ''}## Issue 15's targets (this server, dense)

${targetsTable(checkTargets(run.rows, 'this server'))}
`;
}

await runCli(program);
