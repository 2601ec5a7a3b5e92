/**
 * The README's examples, from real runs: `npm run readme` loads the models the examples use
 * (models/default and models/stories260K, with the same loading code and the same defaults as
 * `npm start`), serves them on a loopback port, sends each example's request, and rewrites the
 * README between its markers with the curl command (generated from the same body as the request
 * sent, so command and output cannot disagree) and the response. The tier-quality table is
 * generated between its own markers from docs/eval/{default,stories260K}/results.json.
 *
 *   <!-- readme:example NAME --> ... <!-- /readme:example -->
 *   <!-- readme:table tiers --> ... <!-- /readme:table -->
 *
 * `npm run readme -- --check` runs everything again and compares it with the committed README,
 * ignoring only the volatile fields (ids, `created`, the timing-based `predicted_ms`, and for the
 * latency-budget example the tier it chose, see there); it exits 1 naming each section that
 * drifted. Requests that show text use `temperature: 0`, so the check is deterministic.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { runCli } from '../src/cli/options.js';
import { buildApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { PROJECT_ROOT } from '../src/project.js';
import { SessionPool } from '../src/runtime/pool.js';
import { loadServedModel, type Engine } from '../src/serve/engine.js';

export const README_PATH = join(PROJECT_ROOT, 'README.md');
/** The models the examples use, served together as `MODEL_DIR=models/default,models/stories260K npm start` would. */
export const MODEL_DIRS = ['models/default', 'models/stories260K'];

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

/** How an example's response is shown. */
export type Show =
  /** The whole JSON response, compact and wrapped one top-level field per line. */
  | { kind: 'json' }
  /** Only `sparsity` (or another top-level field), as a `# ->` comment under the command. */
  | { kind: 'field'; field: string }
  /** Only the first choice's text, as a `# ->` comment under the command. */
  | { kind: 'text' }
  /** A server-sent event stream: its first `head` and last `tail` events. */
  | { kind: 'sse'; head: number; tail: number }
  /** The lines of a text response that match `grep` (an extended regular expression, the same in grep -E and JavaScript). */
  | { kind: 'lines'; grep: string };

export interface Example {
  name: string;
  method: 'GET' | 'POST';
  path: string;
  body?: JsonObject;
  show: Show;
  /**
   * A claim the README's prose makes about this response (given the earlier examples' parsed
   * responses): a message when it does not hold, which stops the run.
   */
  expect?: (response: JsonObject, earlier: Map<string, JsonObject>) => string | null;
  /**
   * Fields besides VOLATILE that --check ignores in this example, because their value depends on
   * timing on the machine that runs it.
   */
  volatile?: string[];
}

/** Fields that change on every run: ignored by --check, shown as they came. */
export const VOLATILE = ['id', 'created', 'predicted_ms'];

/** The examples, in the order they run: later ones may depend on earlier ones (the prompt cache's `cached_tokens`). */
export const EXAMPLES: Example[] = [
  {
    name: 'completion',
    method: 'POST',
    path: '/v1/completions',
    body: { model: 'default', prompt: 'The history of the city', max_tokens: 32, temperature: 0 },
    show: { kind: 'json' },
  },
  {
    name: 'stream',
    method: 'POST',
    path: '/v1/completions',
    body: { model: 'default', prompt: 'The little dog', max_tokens: 24, temperature: 0, stream: true, stream_options: { include_usage: true } },
    show: { kind: 'sse', head: 3, tail: 3 },
  },
  {
    name: 'chat',
    method: 'POST',
    path: '/v1/chat/completions',
    body: {
      model: 'default',
      messages: [
        { role: 'system', content: 'You tell short stories.' },
        { role: 'user', content: 'Once upon a time' },
      ],
      max_completion_tokens: 32,
      temperature: 0,
      sparsity: 0.5,
      activation: 'token',
    },
    show: { kind: 'json' },
  },
  {
    name: 'static-s80',
    method: 'POST',
    path: '/v1/completions',
    body: { model: 'stories260K', prompt: 'Once upon a time', max_tokens: 24, temperature: 0, sparsity: 0.8 },
    show: { kind: 'json' },
    expect: (response) => ((response.sparsity as JsonObject).tier === 's80' ? null : 'the README calls this the s80 tier'),
  },
  {
    name: 'latency-budget',
    method: 'POST',
    path: '/v1/completions',
    body: { model: 'default', prompt: 'The history of the city', max_tokens: 24, temperature: 0, latency_budget_ms: 35 },
    show: { kind: 'field', field: 'sparsity' },
    // The tier a budget selects comes from latency profiles measured when the server starts and
    // updated by every request: on a busy or another machine the same budget picks another tier.
    // No budget picks a middle tier on every machine (one that nothing meets always gets the
    // sparsest, one that dense meets always gets dense), so the example shows what this run
    // chose, and --check compares only what does not depend on timing (`budget_ms`,
    // `sparse_prefill` and the object's fields). On two cores dense decodes 24 tokens of the
    // default model in about 50 ms and its sparse tiers in about 25, so 35 ms usually picks one
    // of those; stories260K's tiers are too close to dense for a budget to separate them.
    volatile: ['tier', 'sparsity', 'activation_source', 'flop_ratio', 'budget_met'],
  },
  {
    name: 'prompt-activation',
    method: 'POST',
    path: '/v1/completions',
    body: { model: 'stories260K', prompt: 'Once upon a time', max_tokens: 24, temperature: 0, sparsity: 's50', activation: 'prompt' },
    show: { kind: 'json' },
    expect: (response) => ((response.sparsity as JsonObject).activation_source === 'computed' ? null : 'the README says the first call computes the neurons'),
  },
  {
    name: 'token-activation',
    method: 'POST',
    path: '/v1/completions',
    body: { model: 'default', prompt: 'The history of the city', max_tokens: 24, temperature: 0, sparsity: 0.5, activation: 'token' },
    show: { kind: 'json' },
    // The README says this is the dense output (the first example's), token for token.
    expect: (response, earlier) => {
      const text = (r: JsonObject | undefined) => ((r?.choices as JsonObject[] | undefined)?.[0]?.text as string | undefined) ?? '';
      return text(earlier.get('completion')).startsWith(text(response)) && text(response) !== ''
        ? null
        : 'per token at 50% no longer gives the dense output; rewrite the README prose around it';
    },
  },
  {
    name: 'token-activation-static',
    method: 'POST',
    path: '/v1/completions',
    body: { model: 'default', prompt: 'The history of the city', max_tokens: 24, temperature: 0, sparsity: 0.5, activation: 'static' },
    show: { kind: 'text' },
  },
  {
    name: 'token-activation-s80',
    method: 'POST',
    path: '/v1/completions',
    body: { model: 'default', prompt: 'The history of the city', max_tokens: 24, temperature: 0, sparsity: 0.8, activation: 'token' },
    show: { kind: 'text' },
  },
  {
    name: 'score',
    method: 'POST',
    path: '/v1/score',
    body: { model: 'stories260K', prompt: 'The cat sat on the', continuations: [' mat.', ' moon.'], sparsity: 0.5 },
    show: { kind: 'json' },
  },
  {
    name: 'metrics',
    method: 'GET',
    path: '/metrics',
    // The counters of the static-s80 example above: no other example runs stories260K at s80.
    show: { kind: 'lines', grep: '^slm_flops_[a-z_]+\\{model="stories260K",tier="s80"\\}' },
  },
];

/** Generated sections that are not examples. */
export const TABLES = ['tiers'];

// ---------------------------------------------------------------------------------------------
// Rendering

const isScalar = (v: Json): boolean => v === null || typeof v !== 'object';

/** JSON as a person would type it in a command: `{"a": 1, "b": [1, 2]}`. */
function spaced(v: Json): string {
  if (Array.isArray(v)) return `[${v.map(spaced).join(', ')}]`;
  if (v !== null && typeof v === 'object')
    return `{${Object.entries(v)
      .map(([k, x]) => `${JSON.stringify(k)}: ${spaced(x)}`)
      .join(', ')}}`;
  return JSON.stringify(v);
}

/** A shell single-quoted word. */
const shellQuote = (s: string): string => `'${s.replaceAll("'", `'\\''`)}'`;

/** The curl command of an example, as the README prints it (the server on localhost:8000, as `npm start` serves). */
export function curlCommand(example: Example): string {
  const url = `localhost:8000${example.path}`;
  const streaming = example.body?.stream === true;
  if (example.body === undefined) {
    const grep = example.show.kind === 'lines' ? ` | grep -E ${shellQuote(example.show.grep)}` : '';
    return `curl -s ${url}${grep}`;
  }
  const head = `curl ${streaming ? '-N' : '-s'} ${url} -H 'content-type: application/json'`;
  const oneLine = spaced(example.body);
  if (oneLine.length <= 140) return `${head} \\\n  -d ${shellQuote(oneLine)}`;
  const fields = Object.entries(example.body).map(([k, v]) => `  ${JSON.stringify(k)}: ${spaced(v)}`);
  return `${head} -d ${shellQuote(`{\n${fields.join(',\n')}\n}`)}`;
}

/**
 * A response as compact JSON, wrapped so that it reads: the top-level scalars on the first line,
 * every other top-level field on its own line, and an array of several objects one per line.
 * The layout depends only on the shape, never on the values' lengths, so volatile values cannot
 * move the line breaks.
 */
export function wrapJson(value: JsonObject): string {
  const entries = Object.entries(value);
  const scalars = entries.filter(([, v]) => isScalar(v));
  const others = entries.filter(([, v]) => !isScalar(v));
  const lines: string[] = [];
  if (scalars.length > 0) lines.push(scalars.map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`).join(','));
  for (const [k, v] of others) {
    const key = `${JSON.stringify(k)}:`;
    if (Array.isArray(v) && v.length > 1 && v.every((x) => !isScalar(x))) {
      const indent = ' '.repeat(1 + key.length + 1);
      lines.push(`${key}[${v.map((x) => JSON.stringify(x)).join(`,\n${indent}`)}]`);
    } else {
      lines.push(`${key}${JSON.stringify(v)}`);
    }
  }
  return `{${lines.join(',\n ')}}`;
}

function fenced(lang: string, text: string): string {
  return `\`\`\`${lang}\n${text}\n\`\`\``;
}

/** The section of one example: its command and what it printed. */
export function renderExample(example: Example, body: string): string {
  const command = curlCommand(example);
  const show = example.show;
  const asJson = (): JsonObject => JSON.parse(body) as JsonObject;
  switch (show.kind) {
    case 'json':
      return `${fenced('sh', command)}\n\n${fenced('json', wrapJson(asJson()))}`;
    case 'field':
      return fenced('sh', `${command}\n# -> ${JSON.stringify(show.field)}:${JSON.stringify(asJson()[show.field])}`);
    case 'text': {
      const choices = asJson().choices as JsonObject[];
      return fenced('sh', `${command}\n# -> "text":${JSON.stringify(choices[0].text)}`);
    }
    case 'sse': {
      // curl prints each event as `data: ...` and a blank line; the blank lines are left out.
      const events = body.split('\n').filter((line) => line !== '');
      const skipped = events.length - show.head - show.tail;
      const shown = skipped > 0 ? [...events.slice(0, show.head), `... (${skipped} more events)`, ...events.slice(-show.tail)] : events;
      return `${fenced('sh', command)}\n\n${fenced('text', shown.join('\n'))}`;
    }
    case 'lines': {
      const grep = new RegExp(show.grep);
      const lines = body.split('\n').filter((line) => grep.test(line));
      return fenced('sh', `${command}\n${lines.map((line) => `# ${line}`).join('\n')}`);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The tier-quality table, from the committed evaluation results

interface EvalResults {
  dense: { perplexity: number };
  generation: { set: string; mode: string; metric: string; sparsity: number; bleu: number }[];
  perplexity: { mode: string; metric: string; sparsity: number; perplexity: number }[];
  token?: {
    variants: { name: string; selector: string; block: number }[];
    generation: { set: string; variant: string; sparsity: number; bleu: number }[];
    perplexity: { variant: string; sparsity: number; perplexity: number }[];
  };
}

/** The tiers the table shows: the shipped models' calibrated sparsities. */
export const TABLE_SPARSITIES = [0.25, 0.5, 0.7, 0.8, 0.9];
/** BLEU is measured on this prompt set (the validation split's openings; docs/eval/README.md). */
const BLEU_SET = 'validation-prompts';

const METRIC_NAMES: Record<string, string> = { cor_gxo: 'Corrected GxO', gxo: 'GxO', magnitude: 'magnitude', gradient: 'gradient', snip: 'SNIP', ig: 'IG' };

/** What the table needs to know of a served model: how it serves static and per-token tiers. */
export interface TableModel {
  id: string;
  /** The metric of its calibrated masks (static tiers) and of per-prompt sets. */
  metric: string;
  /** The per-token selector it serves, and its block size. */
  selector: string;
  block: number;
}

function readResults(id: string): EvalResults {
  return JSON.parse(readFileSync(join(PROJECT_ROOT, 'docs/eval', id, 'results.json'), 'utf8')) as EvalResults;
}

const near = (a: number, b: number) => Math.abs(a - b) < 1e-9;

function one<T>(rows: T[], what: string): T {
  if (rows.length !== 1) throw new Error(`docs/eval results: expected one row for ${what}, found ${rows.length}`);
  return rows[0];
}

function perplexityCell(value: number, dense: number): string {
  const change = (value / dense - 1) * 100;
  const pct = Math.abs(change) >= 10 ? change.toFixed(0) : change.toFixed(1);
  // Under 0.05% either way is no change, shown without a sign.
  const sign = Number(pct) === 0 ? '' : change > 0 ? '+' : '';
  return `${value.toFixed(2)} (${sign}${Number(pct) === 0 ? '0.0' : pct}%)`;
}

/** The table of what each served tier does to quality, per model and activation mode. */
export function renderTierTable(models: TableModel[]): string {
  const header = `| model, activation | measure | ${TABLE_SPARSITIES.map((s) => `${Math.round(s * 100)}%`).join(' | ')} |`;
  const rule = `|---|---|${TABLE_SPARSITIES.map(() => '---').join('|')}|`;
  const rows: string[] = [];
  const denseNotes: string[] = [];
  for (const m of models) {
    const r = readResults(m.id);
    denseNotes.push(`${m.id} ${r.dense.perplexity.toFixed(2)}`);
    const variant = `token:${m.selector}/${m.block}`;
    if (!r.token?.variants.some((v) => v.name === variant)) throw new Error(`docs/eval/${m.id}/results.json has no ${variant}: run npm run eval:docs`);
    const token = r.token;
    const metric = METRIC_NAMES[m.metric] ?? m.metric;
    const modes: { label: string; ppl: (s: number) => number; bleu: (s: number) => number }[] = [
      {
        label: `\`"token"\` (\`${m.selector}\`)`,
        ppl: (s) =>
          one(
            token.perplexity.filter((p) => p.variant === variant && near(p.sparsity, s)),
            `${m.id} ${variant} ${s}`,
          ).perplexity,
        bleu: (s) =>
          one(
            token.generation.filter((g) => g.variant === variant && g.set === BLEU_SET && near(g.sparsity, s)),
            `${m.id} ${variant} ${s}`,
          ).bleu,
      },
      ...(['prompt', 'static'] as const).map((mode) => ({
        label: `\`"${mode}"\` (${metric})`,
        ppl: (s: number) =>
          one(
            r.perplexity.filter((p) => p.mode === mode && p.metric === m.metric && near(p.sparsity, s)),
            `${m.id} ${mode} ${s}`,
          ).perplexity,
        bleu: (s: number) =>
          one(
            r.generation.filter((g) => g.mode === mode && g.metric === m.metric && g.set === BLEU_SET && near(g.sparsity, s)),
            `${m.id} ${mode} ${s}`,
          ).bleu,
      })),
    ];
    for (const mode of modes) {
      rows.push(`| ${m.id}, ${mode.label} | perplexity | ${TABLE_SPARSITIES.map((s) => perplexityCell(mode.ppl(s), r.dense.perplexity)).join(' | ')} |`);
      rows.push(`| ${m.id}, ${mode.label} | BLEU | ${TABLE_SPARSITIES.map((s) => mode.bleu(s).toFixed(1)).join(' | ')} |`);
    }
  }
  return [
    `Held-out perplexity (dense: ${denseNotes.join(', ')}; lower is better) and BLEU of greedy output`,
    `against the dense model's greedy output on the validation prompts (dense: 100), at each MLP`,
    `sparsity tier, from the committed evaluation (\`docs/eval/*/results.json\`; the reading, with`,
    `the settings and the other metrics and modes, is [docs/eval/README.md](docs/eval/README.md)):`,
    '',
    header,
    rule,
    ...rows,
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------
// Markers

const SECTION = /<!-- readme:(example|table) ([\w-]+) -->\n([\s\S]*?)\n?<!-- \/readme:\1 -->/g;

export interface Section {
  kind: 'example' | 'table';
  name: string;
  content: string;
}

/** The generated sections of a README, in order. */
export function sectionsOf(readme: string): Section[] {
  return [...readme.matchAll(SECTION)].map((m) => ({ kind: m[1] as Section['kind'], name: m[2], content: m[3] }));
}

/** The README with every section's content replaced by `generated` (keyed `kind:name`). */
export function replaceSections(readme: string, generated: Map<string, string>): string {
  const missing = [...generated.keys()].filter((key) => !sectionsOf(readme).some((s) => `${s.kind}:${s.name}` === key));
  if (missing.length > 0) throw new Error(`README.md has no markers for ${missing.join(', ')}`);
  return readme.replace(SECTION, (_whole, kind: string, name: string) => {
    const content = generated.get(`${kind}:${name}`);
    if (content === undefined) throw new Error(`README.md marks ${kind} ${name}, which scripts/readme.ts does not generate`);
    return `<!-- readme:${kind} ${name} -->\n${content}\n<!-- /readme:${kind} -->`;
  });
}

/** A section with its volatile fields' values blanked, for comparison. */
export function normalize(text: string, volatile: string[]): string {
  let out = text;
  for (const field of volatile) {
    const value = String.raw`(?:"(?:[^"\\]|\\.)*"|-?[\d.eE+-]+|true|false|null)`;
    out = out.replace(new RegExp(`("${field}"\\s*:\\s*)${value}`, 'g'), '$1*');
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Running

/** Loads the models as `npm start` does (src/server.ts, the defaults of src/config.ts) and serves them on a loopback port. */
async function serve(): Promise<{ url: string; engines: Engine[]; close: () => Promise<void> }> {
  // A fixed environment, not the caller's: the outputs must be those of the defaults.
  const config = loadConfig({ MODEL_DIR: MODEL_DIRS.join(','), LOG_LEVEL: 'silent' });
  const pool = new SessionPool(config.poolMemoryBytes);
  const engines: Engine[] = [];
  for (const dir of config.modelDirs) {
    engines.push(
      await loadServedModel(dir, {
        intraOpThreads: config.ortIntraOpThreads,
        interOpThreads: config.ortInterOpThreads,
        spinning: config.ortSpinning,
        pool,
        preload: config.poolPreload,
      }),
    );
  }
  const app = await buildApp({
    models: engines,
    bodyLimit: config.bodyLimitBytes,
    maxConcurrentPerModel: config.maxConcurrentPerModel,
    maxQueuePerModel: config.maxQueuePerModel,
    rejectDelayMs: config.rejectDelayMs,
    cache: {
      redisUrl: config.redisUrl,
      prefix: config.cachePrefix,
      ttlSeconds: config.cacheTtlSeconds,
      timeoutMs: config.cacheTimeoutMs,
      breakerThreshold: config.cacheBreakerThreshold,
      breakerCooldownMs: config.cacheBreakerCooldownMs,
    },
    tokenizerThreads: config.tokenizerThreads,
    limits: { maxRequestTokens: config.maxRequestTokens, requestTimeoutMs: config.requestTimeoutMs },
  });
  const url = await app.listen({ port: 0, host: '127.0.0.1' });
  return {
    url,
    engines,
    close: async () => {
      await app.close();
      await Promise.allSettled(engines.map((e) => e.close()));
      await pool.close();
    },
  };
}

/** Paths of this machine must not reach the README. */
function assertNoMachinePaths(name: string, text: string): void {
  for (const path of [PROJECT_ROOT, homedir(), '/tmp/', '/work/']) {
    if (path.length > 1 && text.includes(path)) throw new Error(`${name}: the output contains the machine path ${path}`);
  }
}

/** Every generated section, keyed `kind:name`, from a fresh server. */
export async function generate(): Promise<Map<string, string>> {
  const server = await serve();
  try {
    const out = new Map<string, string>();
    const responses = new Map<string, JsonObject>();
    for (const example of EXAMPLES) {
      const response = await fetch(`${server.url}${example.path}`, {
        method: example.method,
        ...(example.body !== undefined && { headers: { 'content-type': 'application/json' }, body: JSON.stringify(example.body) }),
      });
      const body = await response.text();
      if (response.status !== 200)
        throw new Error(`example ${example.name}: ${example.method} ${example.path} answered ${response.status}: ${body.slice(0, 500)}`);
      if (example.show.kind === 'json' || example.show.kind === 'field' || example.show.kind === 'text') {
        const parsed = JSON.parse(body) as JsonObject;
        const problem = example.expect?.(parsed, responses);
        if (problem) throw new Error(`example ${example.name}: ${problem}`);
        responses.set(example.name, parsed);
      }
      const section = renderExample(example, body);
      assertNoMachinePaths(`example ${example.name}`, section);
      out.set(`example:${example.name}`, section);
    }
    const listing = (await (await fetch(`${server.url}/v1/models`)).json()) as { data: { id: string; per_token?: { selector: string; block: number } }[] };
    const tableModels = server.engines.map((engine): TableModel => {
      const card = listing.data.find((d) => d.id === engine.id);
      if (card?.per_token === undefined) throw new Error(`GET /v1/models lists no per-token tiers for ${engine.id}`);
      return { id: engine.id, metric: engine.metric, selector: card.per_token.selector, block: card.per_token.block };
    });
    out.set('table:tiers', renderTierTable(tableModels));
    return out;
  } finally {
    await server.close();
  }
}

/** The volatile fields of a section. */
export function volatileOf(key: string): string[] {
  const example = EXAMPLES.find((e) => `example:${e.name}` === key);
  return [...VOLATILE, ...(example?.volatile ?? [])];
}

/** The sections of `readme` that differ from `generated` beyond their volatile fields, each with its first differing line. */
export function drifted(readme: string, generated: Map<string, string>): { key: string; committed: string; fresh: string }[] {
  const committed = new Map(sectionsOf(readme).map((s) => [`${s.kind}:${s.name}`, s.content]));
  const keys = new Set([...committed.keys(), ...generated.keys()]);
  const out: { key: string; committed: string; fresh: string }[] = [];
  for (const key of keys) {
    const volatile = volatileOf(key);
    const a = normalize(committed.get(key) ?? '(no such section in README.md)', volatile).split('\n');
    const b = normalize(generated.get(key) ?? '(not generated by scripts/readme.ts)', volatile).split('\n');
    const line = Array.from({ length: Math.max(a.length, b.length) }, (_, i) => i).find((i) => a[i] !== b[i]);
    if (line !== undefined) out.push({ key, committed: a[line] ?? '(end)', fresh: b[line] ?? '(end)' });
  }
  return out;
}

/** Writes the generated sections into README.md, or with `check` compares them; returns the exit code. */
async function main(check: boolean): Promise<number> {
  const readme = readFileSync(README_PATH, 'utf8');
  const generated = await generate();
  if (check) {
    const drift = drifted(readme, generated);
    for (const d of drift) {
      console.error(`README.md ${d.key.replace(':', ' ')} drifted:\n  README: ${d.committed}\n  fresh:  ${d.fresh}`);
    }
    if (drift.length > 0) {
      console.error(`${drift.length} section(s) out of date: run \`npm run readme\` and commit README.md`);
      return 1;
    }
    console.log(`README.md: ${generated.size} generated sections match a fresh run`);
    return 0;
  }
  const updated = replaceSections(readme, generated);
  writeFileSync(README_PATH, updated);
  console.log(`README.md: ${generated.size} sections generated${updated === readme ? ', unchanged' : ''}`);
  return 0;
}

// Only run when invoked as a script, so that the test can import the tables.
if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const program = new Command('readme')
    .description("Rewrite the README's generated examples and tier table from real runs")
    .option('--check', 'compare them with README.md instead (volatile fields ignored) and exit 1 on drift', false)
    .action(async (opts: { check: boolean }) => {
      process.exitCode = await main(opts.check);
    });
  await runCli(program);
}
