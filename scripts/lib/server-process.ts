/**
 * The real server as a child process (`node --import tsx src/server.ts`), for the load test and
 * the fuzzer: they must measure the process as deployed, event loop and HTTP stack included,
 * not an app injected in the caller's process.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { request } from 'node:http';
import { createServer } from 'node:net';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface ServerOptions {
  /** One or more model directories (MODEL_DIR), relative to the repository root or absolute. */
  modelDir: string;
  /** MAX_QUEUE_PER_MODEL */
  maxQueue?: number;
  /** MAX_CONCURRENT_PER_MODEL */
  maxConcurrent?: number;
  /** Further variables (REQUEST_TIMEOUT_MS, MAX_REQUEST_TOKENS...); they override the defaults here. */
  env?: Record<string, string>;
  /** How long to wait for GET /ready to answer 200 (loading and preloading tiers takes a while on 2 cores). */
  readyTimeoutMs?: number;
}

export interface ServerProcess {
  url: string;
  port: number;
  child: ChildProcess;
  /** The last output of the child (stdout and stderr interleaved), for error messages. */
  output(): string;
  /** SIGTERM, then SIGKILL after `timeoutMs`; resolves with the exit code (null when killed). */
  stop(timeoutMs?: number): Promise<number | null>;
}

/** A port nothing listens on now: the server's PORT=0 choice is not reported back, so the parent picks. */
export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolvePort(port));
    });
  });
}

const OUTPUT_TAIL = 64 * 1024;

export async function startServer(options: ServerOptions): Promise<ServerProcess> {
  const port = await freePort();
  const env: Record<string, string> = {
    ...(process.env as Record<string, string>),
    MODEL_DIR: options.modelDir
      .split(',')
      .map((dir) => resolve(ROOT, dir.trim()))
      .join(','),
    PORT: String(port),
    HOST: '127.0.0.1',
    LOG_LEVEL: 'warn',
    MAX_QUEUE_PER_MODEL: String(options.maxQueue ?? 32),
    MAX_CONCURRENT_PER_MODEL: String(options.maxConcurrent ?? 1),
    // Stopping should not wait for a balancer that is not there.
    DRAIN_DELAY_MS: '0',
    SHUTDOWN_TIMEOUT_MS: '3000',
    ...options.env,
  };
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const supervised = supervise(child);
  const exited = supervised.exited;

  const url = `http://127.0.0.1:${port}`;
  const server: ServerProcess = {
    url,
    port,
    child,
    output: supervised.output,
    stop: supervised.stop,
  };

  const deadline = Date.now() + (options.readyTimeoutMs ?? 120_000);
  let died = false;
  void exited.then(() => (died = true));
  for (;;) {
    if (died) throw new Error(`the server exited (code ${child.exitCode}, signal ${child.signalCode}) before it was ready:\n${server.output()}`);
    if ((await readyStatus(url)) === 200) return server;
    if (Date.now() > deadline) {
      await server.stop(2000);
      throw new Error(`the server was not ready within ${options.readyTimeoutMs ?? 120_000} ms:\n${server.output()}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** GET /ready's status, or 0 when nothing answers (yet). */
function readyStatus(url: string): Promise<number> {
  return new Promise((resolveStatus) => {
    const req = request(`${url}/ready`, { method: 'GET', timeout: 2000 }, (res) => {
      res.resume();
      resolveStatus(res.statusCode ?? 0);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolveStatus(0));
    req.end();
  });
}

/** A server child process as the load tools watch it: its output's tail, its exit, a bounded stop. */
export interface Supervised {
  /** The last output of the child (stdout and stderr interleaved), for error messages. */
  output(): string;
  /** Resolves with the exit code (null when killed by a signal). */
  exited: Promise<number | null>;
  /** SIGTERM, then SIGKILL after `timeoutMs`; resolves with the exit code. */
  stop(timeoutMs?: number): Promise<number | null>;
}

/** Keeps the tail of `child`'s output, and kills it if this process exits first: it must not keep the port and the cores. */
export function supervise(child: ChildProcess): Supervised {
  let output = '';
  const keep = (data: Buffer): void => {
    output += data.toString();
    if (output.length > 2 * OUTPUT_TAIL) output = output.slice(-OUTPUT_TAIL);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<number | null>((resolveExit) => child.once('exit', (code) => resolveExit(code)));
  const killOnExit = (): void => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  process.once('exit', killOnExit);
  return {
    output: () => output.slice(-OUTPUT_TAIL),
    exited,
    async stop(timeoutMs = 10_000) {
      process.removeListener('exit', killOnExit);
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      try {
        return await exited;
      } finally {
        clearTimeout(timer);
      }
    },
  };
}
