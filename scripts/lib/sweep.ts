/**
 * The load test's concurrency sweep: for each concurrency c, c closed-loop clients each send a
 * fixed number of streamed greedy completions one after another (a bounded client: at most c
 * requests in flight), against any OpenAI-compatible /v1/completions (this server or llama.cpp's
 * llama-server). Per request it measures the time to the first chunk with text and the total
 * latency, and reads the completion tokens from the usage; per sweep point, the aggregate
 * generated tokens/s over the point's wall time. Shared by `npm run loadtest -- --sweep` and its
 * test.
 */

export interface SweepMode {
  /** As given on the command line: "dense", a static tier ("s50") or a per-token tier ("token:s50"). */
  name: string;
  /** The request fields that select it. */
  fields: Record<string, unknown>;
}

/** "dense", "sNN" (a static tier) or "token:sNN" (per-token activation at that tier). */
export function parseMode(name: string): SweepMode {
  const trimmed = name.trim();
  if (trimmed === 'dense') return { name: trimmed, fields: {} };
  const token = /^token:(s\d+)$/.exec(trimmed);
  if (token) return { name: trimmed, fields: { activation: 'token', sparsity: token[1] } };
  if (/^s\d+$/.test(trimmed)) return { name: trimmed, fields: { activation: 'static', sparsity: trimmed } };
  throw new Error(`mode ${JSON.stringify(name)}: expected dense, sNN (a static tier) or token:sNN (per-token activation)`);
}

interface ModelCard {
  id: string;
  tiers?: { name: string; profile?: { prefill_ms_per_token: number; decode_ms_per_token: number } | null }[];
  per_token?: { selector: string; tiers: { name: string }[] };
}

/** The first model GET /v1/models lists, with its static and per-token tier names. */
export async function servedModel(url: string): Promise<{ id: string; tiers: string[]; tokenTiers: string[]; selector?: string; card: ModelCard }> {
  const res = await fetch(`${url}/v1/models`);
  if (res.status !== 200) throw new Error(`GET /v1/models: ${res.status} ${await res.text()}`);
  const card = ((await res.json()) as { data: ModelCard[] }).data[0];
  return {
    id: card.id,
    tiers: (card.tiers ?? []).map((t) => t.name),
    tokenTiers: (card.per_token?.tiers ?? []).map((t) => t.name),
    selector: card.per_token?.selector,
    card,
  };
}

/** Whether the served model has `mode`: dense always; a static tier among its tiers; a per-token one among per_token's. */
export function hasMode(model: { tiers: string[]; tokenTiers: string[] }, mode: SweepMode): boolean {
  if (mode.name === 'dense') return true;
  const tier = String(mode.fields.sparsity);
  return mode.fields.activation === 'token' ? model.tokenTiers.includes(tier) : model.tiers.includes(tier);
}

// Prompts: a number no other request has, then words drawn from the number, so that no two
// requests share more than their first token or two and no prompt pass is reused.
const WORDS = (
  'the a little dog girl boy cat bird tree house river sun moon ball red blue green happy sad big small ' +
  'ran jumped saw found played went looked said made took gave old new friend mother father garden ' +
  'forest school rain snow day night morning park car box toy cake apple flower star sky water fish'
).split(' ');

/** The `index`-th unique prompt: its number, then `words` words. */
export function uniquePrompt(index: number, words: number): string {
  let state = (index * 2654435761 + 12345) >>> 0;
  const out = [`Story ${index}:`];
  for (let i = 0; i < words; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    out.push(WORDS[state % WORDS.length]);
  }
  return out.join(' ');
}

export interface RequestSample {
  /** From sending the request to the first chunk with text; null when no text came. */
  ttftMs: number | null;
  /** From sending the request to the end of its stream. */
  latencyMs: number;
  /** The usage's completion_tokens, or the chunks with text when the server sent no usage. */
  completionTokens: number;
  promptTokens: number | null;
  finishReason: string | null;
  /** This server's `sparsity` object (tier and activation source actually run), when sent. */
  sparsity?: { tier?: string; activation_source?: string };
}

export interface CompletionRequestOptions {
  url: string;
  model: string;
  prompt: string;
  maxTokens: number;
  /** Further request fields (the mode's). */
  fields?: Record<string, unknown>;
  signal?: AbortSignal;
}

/** One streamed greedy completion, timed. */
export async function streamedCompletion(options: CompletionRequestOptions): Promise<RequestSample> {
  const start = performance.now();
  const res = await fetch(`${options.url}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      model: options.model,
      prompt: options.prompt,
      max_tokens: options.maxTokens,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
      ...options.fields,
    }),
    signal: options.signal,
  });
  if (res.status !== 200 || res.body === null) throw new Error(`POST /v1/completions: ${res.status} ${(await res.text()).slice(0, 500)}`);
  let ttftMs: number | null = null;
  let textChunks = 0;
  let usage: { completion_tokens?: number; prompt_tokens?: number } | null = null;
  let finishReason: string | null = null;
  let sparsity: RequestSample['sparsity'];
  let buffer = '';
  const decoder = new TextDecoder();
  const onEvent = (data: string): void => {
    if (data === '[DONE]') return;
    const chunk = JSON.parse(data) as {
      choices?: { text?: string; finish_reason?: string | null }[];
      usage?: { completion_tokens?: number; prompt_tokens?: number } | null;
      sparsity?: RequestSample['sparsity'];
      error?: unknown;
    };
    if (chunk.error !== undefined) throw new Error(`the stream sent an error: ${JSON.stringify(chunk.error)}`);
    const choice = chunk.choices?.[0];
    if (choice?.text) {
      textChunks++;
      ttftMs ??= performance.now() - start;
    }
    if (choice?.finish_reason) finishReason = choice.finish_reason;
    if (chunk.usage) usage = chunk.usage;
    if (chunk.sparsity) sparsity = chunk.sparsity;
  };
  for await (const bytes of res.body) {
    buffer += decoder.decode(bytes as Uint8Array, { stream: true });
    for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = event
        .split('\n')
        .filter((line) => line.startsWith('data:'))
        .map((line) => line.slice(5).trimStart())
        .join('\n');
      if (data !== '') onEvent(data);
    }
  }
  const latencyMs = performance.now() - start;
  const u = usage as { completion_tokens?: number; prompt_tokens?: number } | null;
  return {
    ttftMs,
    latencyMs,
    completionTokens: u?.completion_tokens ?? textChunks,
    promptTokens: u?.prompt_tokens ?? null,
    finishReason,
    ...(sparsity && { sparsity }),
  };
}

export interface PointOptions {
  url: string;
  model: string;
  mode: SweepMode;
  concurrency: number;
  requestsPerStream: number;
  maxTokens: number;
  promptWords: number;
  /** The first prompt number of this point (each request takes the next). */
  firstPrompt: number;
}

export interface PointRun {
  /** From the first request sent to the last stream's end. */
  wallS: number;
  /** The requests that completed. */
  samples: RequestSample[];
  /** The requests that failed (an error status, an error event in the stream, a reset), by message. */
  errors: string[];
  /** Cores' worth of CPU that processes other than the servers and the client used during the point, when measured. */
  otherCores?: number;
  /** Times the point was run again because other processes loaded the machine. */
  reruns?: number;
}

/**
 * One sweep point: `concurrency` streams, each sending `requestsPerStream` completions back to
 * back. A request that fails is counted, and its stream goes on with the next.
 */
export async function runPoint(options: PointOptions): Promise<PointRun> {
  let next = options.firstPrompt;
  const samples: RequestSample[] = [];
  const errors: string[] = [];
  const stream = async (): Promise<void> => {
    for (let i = 0; i < options.requestsPerStream; i++) {
      const prompt = uniquePrompt(next++, options.promptWords);
      try {
        samples.push(await streamedCompletion({ url: options.url, model: options.model, prompt, maxTokens: options.maxTokens, fields: options.mode.fields }));
      } catch (err) {
        errors.push(err instanceof Error ? err.message : String(err));
      }
    }
  };
  const start = performance.now();
  await Promise.all(Array.from({ length: options.concurrency }, stream));
  return { wallS: (performance.now() - start) / 1000, samples, errors };
}

/** The nearest-rank percentile of `xs` (NaN when empty). */
export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return NaN;
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

/** The median (the mean of the middle two of an even count; NaN when empty). */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

export interface SweepRow {
  /** "this server" or "llama-server". */
  server: string;
  mode: string;
  concurrency: number;
  /** One run per cycle. */
  runs: PointRun[];
  requests: number;
  /** Mean completion tokens per request. */
  meanTokens: number;
  meanPromptTokens: number | null;
  /** Generated tokens / wall time: each cycle's, their median, and the range. */
  cycleTokensPerS: number[];
  tokensPerS: number;
  tokensPerSRange: [number, number];
  /**
   * Tokens/s over the same server and mode's at concurrency 1, cycle by cycle (the two points ran
   * minutes apart at most, so the machine's drift in speed over a run falls on both alike): the
   * median of the cycles' ratios and their range; NaN without a row at concurrency 1.
   */
  ratio: number;
  ratioRange: [number, number];
  /** concurrency x the per-stream decode rate (tokens after the first / time after the first): each cycle's, and their median. */
  cycleDecodePerS: number[];
  decodePerS: number;
  /** As `ratio`, of decode tokens/s. */
  decodeRatio: number;
  ttftMs: { p50: number; p95: number };
  latencyMs: { p50: number; p95: number; p99: number };
  /** The tiers and activation sources this server reported running, with counts (empty for llama-server). */
  ran: Record<string, number>;
  /** Failed requests over every cycle, and their messages (each once). */
  failed: number;
  failures: string[];
  /** The most cores' worth of CPU other processes used during one of the cycles' runs (NaN when not measured). */
  otherCoresMax: number;
  /** Runs repeated because other processes loaded the machine. */
  reruns: number;
}

/** Folds the cycles' runs of one point into a row (ratios are filled in by `withRatios`). */
export function summarisePoint(server: string, mode: string, concurrency: number, runs: PointRun[]): SweepRow {
  const samples = runs.flatMap((r) => r.samples);
  const tps = runs.map((r) => r.samples.reduce((n, s) => n + s.completionTokens, 0) / r.wallS);
  const meanOf = (xs: number[]) => (xs.length > 0 ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);
  const decode = runs.map((r) => {
    let tokens = 0;
    let ms = 0;
    for (const s of r.samples) {
      if (s.ttftMs === null || s.completionTokens < 2) continue;
      tokens += s.completionTokens - 1;
      ms += s.latencyMs - s.ttftMs;
    }
    return ms > 0 ? (concurrency * tokens * 1000) / ms : NaN;
  });
  const prompts = samples.map((s) => s.promptTokens).filter((n): n is number => n !== null);
  const ran: Record<string, number> = {};
  for (const s of samples) {
    if (s.sparsity === undefined) continue;
    const key = `${s.sparsity.tier}/${s.sparsity.activation_source}`;
    ran[key] = (ran[key] ?? 0) + 1;
  }
  const ttft = samples.map((s) => s.ttftMs).filter((x): x is number => x !== null);
  const latency = samples.map((s) => s.latencyMs);
  return {
    server,
    mode,
    concurrency,
    runs,
    requests: samples.length,
    meanTokens: meanOf(samples.map((s) => s.completionTokens)),
    meanPromptTokens: prompts.length > 0 ? prompts.reduce((a, b) => a + b, 0) / prompts.length : null,
    cycleTokensPerS: tps,
    tokensPerS: median(tps),
    tokensPerSRange: [Math.min(...tps), Math.max(...tps)],
    ratio: NaN,
    ratioRange: [NaN, NaN],
    cycleDecodePerS: decode,
    decodePerS: median(decode.filter((x) => !Number.isNaN(x))),
    decodeRatio: NaN,
    ttftMs: { p50: percentile(ttft, 50), p95: percentile(ttft, 95) },
    latencyMs: { p50: percentile(latency, 50), p95: percentile(latency, 95), p99: percentile(latency, 99) },
    ran,
    failed: runs.reduce((n, r) => n + r.errors.length, 0),
    failures: [...new Set(runs.flatMap((r) => r.errors))],
    otherCoresMax: runs.every((r) => r.otherCores === undefined) ? NaN : Math.max(...runs.map((r) => r.otherCores ?? 0)),
    reruns: runs.reduce((n, r) => n + (r.reruns ?? 0), 0),
  };
}

/**
 * `a`'s values over `b`'s cycle by cycle (the i-th run of each is the same cycle's): the median
 * of the ratios and their range. Rows of different cycle counts compare their medians.
 */
export function pairedRatio(a: number[], b: number[]): { median: number; range: [number, number] } {
  const ratios = a.length === b.length ? a.map((x, i) => x / b[i]).filter((x) => !Number.isNaN(x)) : [median(a) / median(b)];
  return ratios.length === 0 ? { median: NaN, range: [NaN, NaN] } : { median: median(ratios), range: [Math.min(...ratios), Math.max(...ratios)] };
}

/** Each row's ratios to the row of the same server and mode at concurrency 1, cycle by cycle. */
export function withRatios(rows: SweepRow[]): SweepRow[] {
  return rows.map((row) => {
    const one = rows.find((r) => r.server === row.server && r.mode === row.mode && r.concurrency === 1);
    if (!one) return row;
    const tokens = pairedRatio(row.cycleTokensPerS, one.cycleTokensPerS);
    return { ...row, ratio: tokens.median, ratioRange: tokens.range, decodeRatio: pairedRatio(row.cycleDecodePerS, one.cycleDecodePerS).median };
  });
}

const f1 = (x: number): string => (Number.isFinite(x) ? x.toFixed(1) : '-');
const f2 = (x: number): string => (Number.isFinite(x) ? x.toFixed(2) : '-');
const ms = (x: number): string => (Number.isFinite(x) ? x.toFixed(0) : '-');

/** The sweep's Markdown table: one row per server, mode and concurrency. */
export function sweepTable(rows: SweepRow[]): string {
  const lines = [
    '| server | mode | concurrency | requests | tokens/request | tokens/s (range over cycles) | vs c=1 (range) | decode tokens/s | vs c=1 | TTFT p50 ms | TTFT p95 ms | latency p50 ms | p95 ms | p99 ms | failed | other load, cores |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const r of rows) {
    const range = r.runs.length > 1 ? ` (${f1(r.tokensPerSRange[0])}–${f1(r.tokensPerSRange[1])})` : '';
    lines.push(
      `| ${r.server} | ${r.mode} | ${r.concurrency} | ${r.requests} | ${f1(r.meanTokens)} | ${f1(r.tokensPerS)}${range} | ${f2(r.ratio)}x${r.runs.length > 1 && r.concurrency > 1 ? ` (${f2(r.ratioRange[0])}–${f2(r.ratioRange[1])})` : ''} | ${f1(r.decodePerS)} | ${f2(r.decodeRatio)}x | ${ms(r.ttftMs.p50)} | ${ms(r.ttftMs.p95)} | ${ms(r.latencyMs.p50)} | ${ms(r.latencyMs.p95)} | ${ms(r.latencyMs.p99)} | ${r.failed} | ${f2(r.otherCoresMax)}${r.reruns > 0 ? ` (${r.reruns} rerun${r.reruns > 1 ? 's' : ''})` : ''} |`,
    );
  }
  return lines.join('\n');
}

export interface TargetCheck {
  what: string;
  measured: string;
  holds: boolean;
}

/**
 * Issue 15's targets on `server`'s dense rows: 4 streams reach at least 2.5x one stream's
 * aggregate tokens/s and 8 at least 3.5x (checked on generated and on decode tokens/s); TTFT p95
 * at 4 stays under 2x its value at 1 plus the prefill of the 3 requests ahead. A request's
 * prefill is taken as the median TTFT at concurrency 1 (its prefill plus the HTTP round trip
 * and tokenization, so a little more than the prefill alone).
 */
export function checkTargets(rows: SweepRow[], server: string): TargetCheck[] {
  const dense = (c: number) => rows.find((r) => r.server === server && r.mode === 'dense' && r.concurrency === c);
  const checks: TargetCheck[] = [];
  for (const [c, target] of [
    [4, 2.5],
    [8, 3.5],
  ] as const) {
    const row = dense(c);
    if (!row) continue;
    checks.push({ what: `dense, ${c} streams: generated tokens/s >= ${target}x one stream's`, measured: `${f2(row.ratio)}x`, holds: row.ratio >= target });
    checks.push({
      what: `dense, ${c} streams: decode tokens/s >= ${target}x one stream's`,
      measured: `${f2(row.decodeRatio)}x`,
      holds: row.decodeRatio >= target,
    });
  }
  const one = dense(1);
  const four = dense(4);
  if (one && four) {
    const prefillMs = one.ttftMs.p50;
    const bound = 2 * one.ttftMs.p95 + 3 * prefillMs;
    checks.push({
      what: `dense, TTFT p95 at 4 streams < 2 x TTFT p95 at 1 (${ms(one.ttftMs.p95)} ms) + 3 prefills ahead (3 x ${ms(prefillMs)} ms, TTFT p50 at 1) = ${ms(bound)} ms`,
      measured: `${ms(four.ttftMs.p95)} ms`,
      holds: four.ttftMs.p95 < bound,
    });
  }
  return checks;
}

export function targetsTable(checks: TargetCheck[]): string {
  if (checks.length === 0) return 'Not measured: the run has no dense rows at concurrency 1 and 4 or 8.';
  return ['| target | measured | holds |', '|---|---|---|', ...checks.map((c) => `| ${c.what} | ${c.measured} | ${c.holds ? 'yes' : 'no'} |`)].join('\n');
}

export interface SweepTarget {
  /** "this server", "llama-server". */
  server: string;
  url: string;
  model: string;
  modes: SweepMode[];
}

export interface SweepOptions {
  targets: SweepTarget[];
  concurrencies: number[];
  requestsPerStream: number;
  maxTokens: number;
  /** Prompt length wanted, in tokens of the first target's tokenizer (approximately: prompts are words). */
  promptTokens: number;
  /** Times the whole sweep runs, interleaved (cycle 1 of every target and mode, then cycle 2, ...). */
  cycles: number;
  /** Before the first cycle, per target and mode: one request, then one at the largest concurrency. */
  warmUp?: boolean;
  /** Pause between points, in ms. */
  settleMs?: number;
  /**
   * Measures the CPU other processes use during each point (cores' worth); with `maxOtherCores`,
   * a point during which they used more is run again, up to `maxReruns` times (the last run counts).
   */
  watch?: () => { stop(): number | null };
  maxOtherCores?: number;
  maxReruns?: number;
  /** Before a rerun: resolves once other processes have let the machine be (by default, after 5 s). */
  waitQuiet?: () => Promise<void>;
  /** Told every run as it ends (to keep the raw results of a long sweep). */
  onRun?: (run: PointRun & { server: string; mode: string; concurrency: number; cycle: number }) => void;
  log?: (line: string) => void;
}

export interface SweepResult {
  rows: SweepRow[];
  /** Words per prompt, and the prompt tokens that gave on the first target. */
  promptWords: number;
}

/** Words per prompt for about `tokens` prompt tokens on the first target (from two probes' usage). */
async function promptWordsFor(target: SweepTarget, tokens: number, counter: { next: number }): Promise<number> {
  let words = Math.max(1, tokens);
  for (let i = 0; i < 2; i++) {
    const sample = await streamedCompletion({ url: target.url, model: target.model, prompt: uniquePrompt(counter.next++, words), maxTokens: 1 });
    if (sample.promptTokens === null || sample.promptTokens <= 0) break;
    words = Math.max(1, Math.round((words * tokens) / sample.promptTokens));
  }
  return words;
}

/** The sweep: every target, mode and concurrency, `cycles` times; one row per target, mode and concurrency. */
export async function runSweep(options: SweepOptions): Promise<SweepResult> {
  const log = options.log ?? (() => {});
  const counter = { next: 1 };
  const promptWords = await promptWordsFor(options.targets[0], options.promptTokens, counter);
  const top = Math.max(...options.concurrencies);
  if (options.warmUp ?? true) {
    for (const target of options.targets) {
      for (const mode of target.modes) {
        log(`warm-up: ${target.server}, ${mode.name}`);
        await runPoint({
          url: target.url,
          model: target.model,
          mode,
          concurrency: 1,
          requestsPerStream: 1,
          maxTokens: options.maxTokens,
          promptWords,
          firstPrompt: counter.next,
        });
        counter.next += 1;
        await runPoint({
          url: target.url,
          model: target.model,
          mode,
          concurrency: top,
          requestsPerStream: 1,
          maxTokens: Math.min(16, options.maxTokens),
          promptWords,
          firstPrompt: counter.next,
        });
        counter.next += top;
      }
    }
  }
  const runs = new Map<string, { server: string; mode: string; concurrency: number; runs: PointRun[] }>();
  for (let cycle = 1; cycle <= options.cycles; cycle++) {
    for (const target of options.targets) {
      for (const mode of target.modes) {
        for (const concurrency of options.concurrencies) {
          let run: PointRun | undefined;
          for (let attempt = 0; ; attempt++) {
            // Before a rerun, until what loaded the machine is over.
            if (attempt > 0) await (options.waitQuiet?.() ?? new Promise((r) => setTimeout(r, 5000)));
            else if (options.settleMs) await new Promise((r) => setTimeout(r, options.settleMs));
            const watch = options.watch?.();
            run = await runPoint({
              url: target.url,
              model: target.model,
              mode,
              concurrency,
              requestsPerStream: options.requestsPerStream,
              maxTokens: options.maxTokens,
              promptWords,
              firstPrompt: counter.next,
            });
            counter.next += concurrency * options.requestsPerStream;
            const other = watch?.stop() ?? null;
            if (other !== null) run.otherCores = other;
            run.reruns = attempt;
            options.onRun?.({ ...run, server: target.server, mode: mode.name, concurrency, cycle });
            if (other === null || options.maxOtherCores === undefined || other <= options.maxOtherCores || attempt >= (options.maxReruns ?? 2)) break;
            log(`cycle ${cycle}: ${target.server}, ${mode.name}, c=${concurrency}: other processes used ${other.toFixed(2)} cores; running it again`);
          }
          const key = `${target.server}\0${mode.name}\0${concurrency}`;
          const entry = runs.get(key) ?? { server: target.server, mode: mode.name, concurrency, runs: [] };
          entry.runs.push(run);
          runs.set(key, entry);
          const tokens = run.samples.reduce((n, s) => n + s.completionTokens, 0);
          const extra = [
            run.errors.length > 0 ? `${run.errors.length} failed (${[...new Set(run.errors)].join('; ')})` : '',
            run.otherCores !== undefined ? `other load ${run.otherCores.toFixed(2)} cores` : '',
          ].filter((x) => x !== '');
          log(
            `cycle ${cycle}: ${target.server}, ${mode.name}, c=${concurrency}: ${tokens} tokens in ${run.wallS.toFixed(2)} s = ${(tokens / run.wallS).toFixed(1)} tokens/s${extra.length > 0 ? `; ${extra.join(', ')}` : ''}`,
          );
        }
      }
    }
  }
  const rows = withRatios([...runs.values()].map((e) => summarisePoint(e.server, e.mode, e.concurrency, e.runs)));
  return { rows, promptWords };
}
