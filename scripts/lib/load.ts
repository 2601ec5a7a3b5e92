/**
 * One load-test phase: `connections` clients send completions back to back for `durationS`
 * seconds (autocannon), each connection sending its next request as soon as the last is
 * answered, 429 included: they ignore Retry-After, the worst case for the server. A prober on
 * its own thread GETs /health meanwhile. Shared by `npm run loadtest` and its test.
 */
import autocannon from 'autocannon';
import { startProber, type ProbeSummary } from './prober.js';

export interface PhaseOptions {
  url: string;
  model: string;
  connections: number;
  durationS: number;
  /** max_tokens of every completion. */
  maxTokens?: number;
  /** Seconds a client waits for an answer before it gives up (and re-opens its connection). */
  requestTimeoutS?: number;
  /** The prober's period and its limit for one answer, in ms. */
  probeIntervalMs?: number;
  probeLimitMs?: number;
}

export interface PhaseResult {
  connections: number;
  /** Seconds autocannon actually ran. */
  durationS: number;
  /** Answers by HTTP status. */
  statuses: Record<string, number>;
  /** Successful (200) completions per second. */
  okPerSecond: number;
  /** Requests that got no answer: by error code ("timeout" for client-side timeouts). */
  errors: Record<string, number>;
  health: ProbeSummary;
  /** Retry-After values of the 429s, in seconds; null when there was none. */
  retryAfter: { count: number; min: number; median: number; max: number } | null;
}

// Prompts vary per request so that no request reuses the previous one's prompt pass.
const SUBJECTS = ['a little dog', 'a girl named Lily', 'a big red ball', 'a tiny bird', 'a friendly cat', 'an old tree', 'a boy named Tom', 'a shiny car'];

export function runPhase(options: PhaseOptions): Promise<PhaseResult> {
  const prober = startProber(options.url, { intervalMs: options.probeIntervalMs ?? 50, limitMs: options.probeLimitMs ?? 1000 });
  const retryAfter = new Map<number, number>();
  const errors: Record<string, number> = {};
  let sequence = 0;
  const body = (): string =>
    JSON.stringify({
      model: options.model,
      prompt: `Once upon a time there was ${SUBJECTS[sequence % SUBJECTS.length]} and number ${sequence++}`,
      max_tokens: options.maxTokens ?? 16,
      temperature: 0,
    });

  return new Promise<PhaseResult>((resolvePhase, reject) => {
    const instance = autocannon(
      {
        url: options.url,
        connections: options.connections,
        duration: options.durationS,
        timeout: options.requestTimeoutS ?? 10,
        requests: [
          {
            method: 'POST',
            path: '/v1/completions',
            headers: { 'content-type': 'application/json' },
            setupRequest: (request) => ({ ...request, body: body() }),
            onResponse: (status, _body, _context, headers) => {
              if (status !== 429) return;
              const header = Object.entries(headers).find(([name]) => name.toLowerCase() === 'retry-after')?.[1];
              const seconds = Number(Array.isArray(header) ? header[0] : header);
              if (Number.isFinite(seconds)) retryAfter.set(seconds, (retryAfter.get(seconds) ?? 0) + 1);
            },
          },
        ],
      },
      (err, result) => {
        void (async () => {
          const health = await prober.stop();
          if (err !== null) throw err;
          const statuses: Record<string, number> = {};
          for (const [status, { count }] of Object.entries(result.statusCodeStats)) statuses[status] = count;
          resolvePhase({
            connections: options.connections,
            durationS: result.duration,
            statuses,
            okPerSecond: (statuses['200'] ?? 0) / result.duration,
            errors,
            health,
            retryAfter: summarise(retryAfter),
          });
        })().catch(reject);
      },
    );
    instance.on('reqError', (error: NodeJS.ErrnoException) => {
      const kind = error.message === 'request timed out' ? 'timeout' : (error.code ?? error.message);
      errors[kind] = (errors[kind] ?? 0) + 1;
    });
  });
}

/** A few completions one after another, so that the baseline does not include the first requests' compilation and caching. */
export async function warmUp(url: string, model: string, requests = 10): Promise<void> {
  for (let i = 0; i < requests; i++) {
    const res = await fetch(`${url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model, prompt: `Once upon a time ${i}`, max_tokens: 16, temperature: 0 }),
    });
    const text = await res.text();
    if (res.status !== 200) throw new Error(`warm-up: a completion got ${res.status}: ${text.slice(0, 500)}`);
  }
}

function summarise(counts: Map<number, number>): PhaseResult['retryAfter'] {
  const values = [...counts.entries()].sort((a, b) => a[0] - b[0]);
  const count = values.reduce((sum, [, n]) => sum + n, 0);
  if (count === 0) return null;
  let seen = 0;
  let median = values[0][0];
  for (const [value, n] of values) {
    seen += n;
    if (seen >= count / 2) {
      median = value;
      break;
    }
  }
  return { count, min: values[0][0], median, max: values[values.length - 1][0] };
}

/** Count of answers other than 200 and 429, and of requests with no answer: what overload must never produce. */
export function badOutcomes(result: PhaseResult): { statuses: Record<string, number>; errors: Record<string, number> } {
  const statuses = Object.fromEntries(Object.entries(result.statuses).filter(([status]) => status !== '200' && status !== '429'));
  return { statuses, errors: result.errors };
}

export interface TableRow {
  phase: string;
  result: PhaseResult;
  /** Successful throughput over the baseline's. */
  ratio: number;
}

const f1 = (x: number): string => (Number.isFinite(x) ? x.toFixed(1) : '-');

/** The Markdown table of a run's phases. */
export function markdownTable(rows: TableRow[]): string {
  const lines = [
    '| phase | connections | 200/s | vs baseline | statuses | errors | /health p50 ms | p99 ms | max ms | /health failures (of probes) | Retry-After s min / median / max |',
    '|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const { phase, result, ratio } of rows) {
    const statuses =
      Object.entries(result.statuses)
        .map(([s, n]) => `${s}: ${n}`)
        .join(', ') || '-';
    const errors =
      Object.entries(result.errors)
        .map(([e, n]) => `${e}: ${n}`)
        .join(', ') || '-';
    const failures = `${result.health.failures} (of ${result.health.probes})${result.health.failures > 0 ? ` ${JSON.stringify(result.health.failureKinds)}` : ''}`;
    const ra = result.retryAfter === null ? '-' : `${result.retryAfter.min} / ${result.retryAfter.median} / ${result.retryAfter.max}`;
    lines.push(
      `| ${phase} | ${result.connections} | ${f1(result.okPerSecond)} | ${(ratio * 100).toFixed(0)}% | ${statuses} | ${errors} | ${f1(result.health.p50Ms)} | ${f1(result.health.p99Ms)} | ${f1(result.health.maxMs)} | ${failures} | ${ra} |`,
    );
  }
  return lines.join('\n');
}
