/**
 * Per-request limits that a schema cannot state: the total number of tokens a request may ask
 * to generate, and a server-side deadline. Both exist so that one small body cannot hold a
 * model for minutes (`{"prompt": [[1,2,3] ×40], "n": 16, "max_tokens": 200}` is 538 bytes and
 * 128,000 tokens of work).
 */
import { ApiError, invalidRequest, shuttingDown } from './errors.js';

export interface RequestLimits {
  /** Cap on prompts × n × max_tokens of one request (MAX_REQUEST_TOKENS). */
  maxRequestTokens: number;
  /** Deadline of one request from its arrival, queueing included (REQUEST_TIMEOUT_MS). */
  requestTimeoutMs: number;
}

export const DEFAULT_LIMITS: RequestLimits = { maxRequestTokens: 32_768, requestTimeoutMs: 120_000 };

/** Refuses a request whose prompts × n × max_tokens exceeds the cap, before anything is tokenized. */
export function checkRequestTokens(prompts: number, n: number, maxTokens: number, limit: number): void {
  const total = prompts * n * maxTokens;
  if (total <= limit) return;
  throw invalidRequest(
    `This request asks for up to ${total} generated tokens (${prompts} prompt${prompts === 1 ? '' : 's'} × n=${n} × max_tokens=${maxTokens}); ` +
      `the server allows ${limit} per request. Lower max_tokens or n, or split the prompts over several requests.`,
    'max_tokens',
    'request_too_large',
  );
}

/** How many prompts a completions `prompt` holds, without tokenizing it. */
export function promptCount(prompt: string | string[] | number[] | number[][]): number {
  if (typeof prompt === 'string') return 1;
  return typeof prompt[0] === 'number' ? 1 : prompt.length;
}

export function deadlineExceeded(timeoutMs: number): ApiError {
  return new ApiError(
    504,
    `The request did not finish within the server's deadline of ${timeoutMs} ms (queueing included). Retry with fewer tokens, or later.`,
    'server_error',
    null,
    'request_timeout',
  );
}

/**
 * A request's deadline: `signal` aborts when the client hangs up, when `remainingMs` pass, or
 * when the server cuts the requests still running at the end of a shutdown (`cut`).
 * `check()` throws the 504 or 503 that says which, so that the caller's answer (a status, or
 * a stream's last error event) tells the client why it ended.
 */
export class Deadline {
  private readonly controller = new AbortController();
  private readonly timer: NodeJS.Timeout;
  private expired = false;
  private readonly stop = (): void => this.controller.abort();

  constructor(
    private readonly client: AbortSignal,
    remainingMs: number,
    private readonly timeoutMs: number,
    private readonly cut: AbortSignal = new AbortController().signal,
  ) {
    this.timer = setTimeout(
      () => {
        this.expired = true;
        this.controller.abort();
      },
      Math.max(0, remainingMs),
    );
    // Listeners removed in dispose(), not AbortSignal.any: on Node 20 every signal that any()
    // makes from the app-lifetime `cut` stays reachable from it, about 50 bytes per request.
    if (client.aborted || cut.aborted) this.controller.abort();
    client.addEventListener('abort', this.stop, { once: true });
    cut.addEventListener('abort', this.stop, { once: true });
  }

  /** Aborts when the client hangs up, the deadline passes or the server cuts the request. */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** Whether the deadline (not the client) ended the request. */
  get exceeded(): boolean {
    return this.expired;
  }

  check(): void {
    if (this.expired) throw deadlineExceeded(this.timeoutMs);
    if (this.cut.aborted) throw shuttingDown();
  }

  /** Stops the timer and lets go of the client's and the server's signals once the request is answered. */
  dispose(): void {
    clearTimeout(this.timer);
    this.client.removeEventListener('abort', this.stop);
    this.cut.removeEventListener('abort', this.stop);
  }
}
