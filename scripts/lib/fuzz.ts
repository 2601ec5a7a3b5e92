/**
 * The fuzzer's runner: sends generated cases (fuzz-cases.ts) over real HTTP, several at once,
 * checks every answer against the invariants, and probes /health meanwhile. Shared by
 * `npm run fuzz` and its test.
 *
 * Invariants:
 * - no 5xx, ever, and no error event for an internal error inside a 200 stream;
 * - every 4xx has OpenAI's error shape {"error": {"message": string, "type": string, "param": string|null, "code": string|null}};
 * - an error message is at most `maxErrorMessage` characters, whatever the input (errors must not echo it);
 * - every request gets an answer (no reset, no hang past `requestTimeoutMs`);
 * - /health, probed every `probeIntervalMs` on its own connection, answers 200 within `probeLimitMs`.
 */
import { Agent, request } from 'node:http';
import { generateCase, type FuzzCase, type FuzzContext } from './fuzz-cases.js';
import { startProber, type ProbeSummary } from './prober.js';

export interface FuzzOptions {
  url: string;
  seed: number;
  /** Cases 0 .. count - 1, unless `indices` names them. */
  count: number;
  indices?: number[];
  context: FuzzContext;
  concurrency?: number;
  requestTimeoutMs?: number;
  maxErrorMessage?: number;
  probeIntervalMs?: number;
  probeLimitMs?: number;
  onProgress?: (done: number, total: number) => void;
}

export interface Violation {
  seed: number;
  index: number;
  route: string;
  kind: string;
  detail: string;
  notes: string[];
  status?: number;
  /** The request, to replay it (`npm run fuzz -- --seed S --index I` regenerates it too). */
  request?: { method: string; path: string; headers: Record<string, string>; bodyBase64?: string };
}

export interface FuzzSummary {
  requests: number;
  durationS: number;
  /** Answers per route and status ("error" when none came). */
  byRoute: Record<string, Record<string, number>>;
  health: ProbeSummary;
  longestErrorMessage: { length: number; index: number; route: string; notes: string[] } | null;
  violations: Violation[];
}

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  bytes: number;
}

/** The server's default body limit (BODY_LIMIT_BYTES), which the fuzzer leaves as it is. */
const BODY_LIMIT = 1024 * 1024;
const KEPT_BODY = 1024 * 1024;

function send(agent: Agent, url: string, c: FuzzCase, timeoutMs: number): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { ...c.headers };
    if (c.body !== undefined) headers['content-length'] = String(c.body.length);
    const req = request(url + c.path, { method: c.method, headers, agent }, (res) => {
      const chunks: Buffer[] = [];
      let bytes = 0;
      res.on('data', (chunk: Buffer) => {
        if (bytes < KEPT_BODY) chunks.push(chunk);
        bytes += chunk.length;
      });
      res.on('end', () => {
        clearTimeout(timer);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8'), bytes });
      });
      res.on('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
    const timer = setTimeout(() => {
      req.destroy(Object.assign(new Error(`no answer within ${timeoutMs} ms`), { code: 'TIMEOUT' }));
    }, timeoutMs);
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    req.end(c.body);
  });
}

/** Why `body` is not OpenAI's error shape, or null when it is. */
export function errorShapeProblem(body: string): string | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return 'the body is not JSON';
  }
  if (typeof parsed !== 'object' || parsed === null || !('error' in parsed)) return 'no "error" object';
  const error = parsed.error;
  if (typeof error !== 'object' || error === null) return '"error" is not an object';
  const e = error as Record<string, unknown>;
  if (typeof e.message !== 'string') return 'error.message is not a string';
  if (typeof e.type !== 'string') return 'error.type is not a string';
  if (!('param' in e) || (e.param !== null && typeof e.param !== 'string')) return 'error.param is not a string or null';
  if (!('code' in e) || (e.code !== null && typeof e.code !== 'string')) return 'error.code is not a string or null';
  return null;
}

const clip = (s: string, n = 300): string => (s.length > n ? `${s.slice(0, n)}... (${s.length} chars)` : s);

export async function runFuzz(options: FuzzOptions): Promise<FuzzSummary> {
  const concurrency = options.concurrency ?? 8;
  const timeoutMs = options.requestTimeoutMs ?? 30_000;
  const maxErrorMessage = options.maxErrorMessage ?? 2048;
  const indices = options.indices ?? Array.from({ length: options.count }, (_, i) => i);
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  const byRoute: FuzzSummary['byRoute'] = {};
  const violations: Violation[] = [];
  const spans: { index: number; route: string; notes: string[]; bytes: number; start: number; end: number }[] = [];
  let longest: FuzzSummary['longestErrorMessage'] = null;
  let next = 0;
  let done = 0;

  const count = (route: string, status: string): void => {
    byRoute[route] ??= {};
    byRoute[route][status] = (byRoute[route][status] ?? 0) + 1;
  };
  const violation = (c: FuzzCase, kind: string, detail: string, status?: number): void => {
    violations.push({
      seed: c.seed,
      index: c.index,
      route: c.route,
      kind,
      detail,
      notes: c.notes,
      status,
      request: { method: c.method, path: c.path, headers: c.headers, bodyBase64: c.body?.toString('base64') },
    });
  };

  const check = (c: FuzzCase, answer: Answer): void => {
    const { status, body } = answer;
    count(c.route, String(status));
    if (status >= 500) {
      violation(c, '5xx', clip(body), status);
      return;
    }
    const type = String(answer.headers['content-type'] ?? '');
    if (status === 200 && type.startsWith('text/event-stream') && /"(server_error|internal_error)"/.test(body)) {
      violation(c, 'internal error in a stream', clip(body.slice(body.search(/"(server_error|internal_error)"/) - 200)), status);
    }
    // A HEAD answer has no body to check.
    if (status < 400 || c.method === 'HEAD') return;
    const problem = errorShapeProblem(body);
    if (problem !== null) {
      violation(c, 'error shape', `${problem}: ${clip(body)}`, status);
      return;
    }
    const message = (JSON.parse(body) as { error: { message: string } }).error.message;
    if (longest === null || message.length > longest.length) longest = { length: message.length, index: c.index, route: c.route, notes: c.notes };
    if (message.length > maxErrorMessage) violation(c, 'long error message', `${message.length} characters: ${clip(message, 120)}`, status);
  };

  const worker = async (): Promise<void> => {
    while (next < indices.length) {
      const c = generateCase(options.seed, indices[next++], options.context);
      const start = Date.now();
      try {
        check(c, await send(agent, options.url, c, timeoutMs));
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
        count(c.route, `error ${code}`);
        // A body over the limit is answered 413 before it is read, and the connection closed
        // (Fastify's choice, which RFC 9110 allows: reading megabytes only to discard them costs
        // more). A client still writing then may see its write fail before it reads the 413.
        const closedEarly = c.body !== undefined && c.body.length > BODY_LIMIT && (code === 'EPIPE' || code === 'ECONNRESET');
        if (!closedEarly) violation(c, 'no answer', `${code}: ${(err as Error).message}`);
      }
      spans.push({ index: c.index, route: c.route, notes: c.notes, bytes: (c.body?.length ?? 0) + c.path.length, start, end: Date.now() });
      done++;
      options.onProgress?.(done, indices.length);
    }
  };

  const prober = startProber(options.url, { intervalMs: options.probeIntervalMs ?? 100, limitMs: options.probeLimitMs ?? 1000 });
  const started = performance.now();
  let health: ProbeSummary;
  try {
    await Promise.all(Array.from({ length: concurrency }, worker));
  } finally {
    agent.destroy();
    health = await prober.stop();
  }
  const durationS = (performance.now() - started) / 1000;
  for (const probe of health.failed) {
    // The cases in flight while the probe waited are the suspects; what stalls an event loop
    // is mostly work proportional to the input, so the largest request comes first.
    const suspects = spans.filter((s) => s.start <= probe.at + probe.ms && s.end >= probe.at).sort((a, b) => b.bytes - a.bytes);
    const c = suspects[0];
    violations.push({
      seed: options.seed,
      index: c?.index ?? -1,
      route: c?.route ?? '/health',
      kind: '/health',
      detail:
        `a /health probe ${probe.kind === 'slow' ? `took ${probe.ms.toFixed(0)} ms` : `failed (${probe.kind}) after ${probe.ms.toFixed(0)} ms`}; in flight: ` +
        suspects.map((s) => `#${s.index} ${s.route} [${s.notes.join('; ')}] ${s.bytes} bytes, ${s.end - s.start} ms`).join(', '),
      notes: c?.notes ?? [],
    });
  }
  return { requests: done, durationS, byRoute, health, longestErrorMessage: longest, violations };
}
