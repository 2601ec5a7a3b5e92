/**
 * Graceful shutdown, in the order a load balancer needs:
 * 1. drain: /ready answers 503 for `drainDelayMs` while every request is still served, so
 *    that balancers and Kubernetes take the instance out of rotation before it refuses work;
 * 2. close: the listener closes, new requests get 503 (`shutting_down`), and requests running
 *    or queued get `timeoutMs` to finish;
 * 3. cut: what is still running then ends with a 503, or a stream with its error event and
 *    `[DONE]`; after `cutGraceMs` for those answers to leave, the remaining connections close.
 * Nothing is ended by a connection reset while it can still be told why.
 */

/** The part of the HTTP app that shutdown drives (the Fastify app in src/app.ts). */
export interface Drainable {
  readiness: { ready: boolean };
  /** Stops taking connections and resolves once every request has been answered. */
  close(): Promise<unknown>;
  /** Ends every request still waiting or running, each with an answer that says so. */
  cutRequests(): void;
  server: { closeAllConnections(): void };
}

export interface ShutdownOptions {
  drainDelayMs: number;
  timeoutMs: number;
  /** After the cut, how long the answers it caused get to reach their clients. */
  cutGraceMs?: number;
  log?: (level: 'info' | 'warn', message: string) => void;
}

const DEFAULT_CUT_GRACE_MS = 1000;

export async function drainAndClose(app: Drainable, options: ShutdownOptions): Promise<void> {
  const log = options.log ?? (() => {});
  app.readiness.ready = false;
  if (options.drainDelayMs > 0) {
    log('info', `draining: /ready answers 503 for ${options.drainDelayMs} ms while requests are still served`);
    await new Promise((resolve) => setTimeout(resolve, options.drainDelayMs));
  }
  log('info', `closing: new requests get 503; running and queued ones have ${options.timeoutMs} ms to finish`);
  let hardClose: NodeJS.Timeout | undefined;
  const cut = setTimeout(() => {
    log('warn', 'shutdown timeout: ending the requests still running or queued');
    app.cutRequests();
    hardClose = setTimeout(() => app.server.closeAllConnections(), options.cutGraceMs ?? DEFAULT_CUT_GRACE_MS);
  }, options.timeoutMs);
  try {
    await app.close();
  } finally {
    clearTimeout(cut);
    clearTimeout(hardClose);
  }
}
