/**
 * A /health prober on its own thread and its own keep-alive connection: it measures how long
 * the server takes to answer a liveness probe while it is loaded. It runs in a worker thread
 * because the load generator or the fuzzer keeps the parent's event loop busy, and their
 * delays must not be counted as the server's.
 */
import { Worker } from 'node:worker_threads';

export interface ProbeSummary {
  probes: number;
  /** Probes not answered 200 within the limit (slow ones included). */
  failures: number;
  /** What the failures were: "slow" (answered after the limit), "timeout" (never answered), a status or an error code. */
  failureKinds: Record<string, number>;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** Every failed probe: when it was sent (epoch ms), how long it took, and why, so that it can be matched with the requests in flight. */
  failed: { at: number; ms: number; kind: string }[];
}

export interface Prober {
  stop(): Promise<ProbeSummary>;
}

// Plain JavaScript, evaluated in the worker: no TypeScript loader needed there, whoever runs us.
const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const http = require('node:http');
const { url, intervalMs, limitMs, giveUpMs } = workerData;
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
const latencies = [];
const failureKinds = {};
const failed = [];
let failures = 0;
let stopped = false;
let stoppedAt = 0;
parentPort.on('message', () => { stopped = true; stoppedAt = performance.now(); });
const fail = (kind, at, ms) => { failures++; failureKinds[kind] = (failureKinds[kind] || 0) + 1; failed.push({ at, ms, kind }); };
function probe() {
  return new Promise((resolve) => {
    const started = performance.now();
    const at = Date.now();
    let settled = false;
    const finish = (kind) => {
      if (settled) return;
      settled = true;
      clearInterval(watch);
      resolve({ ms: performance.now() - started, kind, at });
    };
    const req = http.get(url + '/health', { agent }, (res) => {
      res.resume();
      res.on('end', () => finish(res.statusCode === 200 ? null : 'status ' + res.statusCode));
      res.on('error', (err) => finish(err.code || 'response error'));
    });
    req.on('error', (err) => finish(err.code || 'request error'));
    // A slow answer is still awaited, so that the maximum is the real stall; only one that
    // never comes (or is still pending well after the run ends) is given up.
    const watch = setInterval(() => {
      const now = performance.now();
      if (now - started > giveUpMs || (stopped && now - stoppedAt > 2000)) {
        req.destroy();
        finish('timeout');
      }
    }, 50);
  });
}
(async () => {
  while (!stopped) {
    const { ms, kind, at } = await probe();
    latencies.push(ms);
    if (kind !== null) fail(kind, at, ms);
    else if (ms > limitMs) fail('slow', at, ms);
    if (ms < intervalMs) await new Promise((r) => setTimeout(r, intervalMs - ms));
  }
  agent.destroy();
  parentPort.postMessage({ latencies, failures, failureKinds, failed });
})();
`;

export function startProber(url: string, options: { intervalMs?: number; limitMs?: number; giveUpMs?: number } = {}): Prober {
  const worker = new Worker(WORKER, {
    eval: true,
    workerData: { url, intervalMs: options.intervalMs ?? 50, limitMs: options.limitMs ?? 1000, giveUpMs: options.giveUpMs ?? 60_000 },
  });
  const done = new Promise<{ latencies: number[]; failures: number; failureKinds: Record<string, number>; failed: ProbeSummary['failed'] }>(
    (resolveDone, reject) => {
      worker.once('message', resolveDone);
      worker.once('error', reject);
      worker.once('exit', (code) => reject(new Error(`the /health prober exited (${code}) without a result`)));
    },
  );
  return {
    async stop() {
      worker.postMessage('stop');
      const { latencies, failures, failureKinds, failed } = await done;
      await worker.terminate();
      const sorted = [...latencies].sort((a, b) => a - b);
      return {
        probes: latencies.length,
        failures,
        failureKinds,
        p50Ms: quantile(sorted, 0.5),
        p99Ms: quantile(sorted, 0.99),
        maxMs: sorted.length === 0 ? NaN : sorted[sorted.length - 1],
        failed,
      };
    },
  };
}

/** The q-quantile of sorted values (nearest rank); NaN for none. */
export function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}
