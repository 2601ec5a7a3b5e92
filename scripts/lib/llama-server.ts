/**
 * llama.cpp's `llama-server` as a child process, for the load test's side-by-side sweep: the
 * same weights written as an F32 GGUF (by the tests' GGUF writer, which writes what llama.cpp's
 * convert_hf_to_gguf.py writes for a LLaMA directory), the same threads, and one slot per
 * concurrent stream. llama.cpp is never a dependency: the binary is found on PATH or given.
 */
import { spawn, spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, mkdirSync, renameSync, statSync } from 'node:fs';
import { basename, delimiter, join, resolve } from 'node:path';
import { ggufFromHfDir } from '../../test/helpers/gguf-writer.js';
import { freePort, ROOT, supervise } from './server-process.js';

/** `explicit` when given, else the first executable `llama-server` on PATH; null when there is none. */
export function findLlamaServer(explicit?: string): string | null {
  if (explicit !== undefined) {
    accessSync(explicit, constants.X_OK);
    return resolve(explicit);
  }
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, 'llama-server');
    try {
      accessSync(candidate, constants.X_OK);
      if (statSync(candidate).isFile()) return candidate;
    } catch {
      // Not here.
    }
  }
  return null;
}

/** The line `llama-server --version` prints its version and commit on, or 'unknown'. */
export function llamaServerVersion(binary: string): string {
  const r = spawnSync(binary, ['--version'], { encoding: 'utf8', timeout: 30_000 });
  const text = `${r.stdout ?? ''}\n${r.stderr ?? ''}`;
  return (
    text
      .split('\n')
      .find((l) => l.startsWith('version'))
      ?.trim() || 'unknown'
  );
}

/** An F32 GGUF of the model directory in .cache/loadtest/, written when missing or older than the weights. */
export function ensureGguf(modelDir: string): string {
  const dir = resolve(ROOT, modelDir);
  const out = resolve(ROOT, '.cache/loadtest', `${basename(dir)}.f32.gguf`);
  const weights = join(dir, 'model.safetensors');
  if (existsSync(out) && (!existsSync(weights) || statSync(out).mtimeMs >= statSync(weights).mtimeMs)) return out;
  mkdirSync(resolve(ROOT, '.cache/loadtest'), { recursive: true });
  const partial = `${out}.partial`;
  ggufFromHfDir(dir, partial, { type: 'F32' });
  renameSync(partial, out);
  return out;
}

export interface LlamaServerOptions {
  binary: string;
  gguf: string;
  threads: number;
  /** Slots (-np): requests decoded together at most. */
  parallel: number;
  /** Context per slot; -c is this times `parallel`. */
  contextPerSlot: number;
  readyTimeoutMs?: number;
}

export interface LlamaServerProcess {
  url: string;
  pid: number | undefined;
  args: string[];
  output(): string;
  stop(timeoutMs?: number): Promise<number | null>;
}

export async function startLlamaServer(options: LlamaServerOptions): Promise<LlamaServerProcess> {
  const port = await freePort();
  const args = [
    '-m',
    options.gguf,
    '-t',
    String(options.threads),
    '-tb',
    String(options.threads),
    '-np',
    String(options.parallel),
    '-c',
    String(options.contextPerSlot * options.parallel),
    '--host',
    '127.0.0.1',
    '--port',
    String(port),
  ];
  const child = spawn(options.binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const supervised = supervise(child);
  const exited = supervised.exited;
  const url = `http://127.0.0.1:${port}`;
  const server: LlamaServerProcess = {
    url,
    pid: child.pid,
    args,
    output: supervised.output,
    stop: supervised.stop,
  };
  let died = false;
  void exited.then(() => (died = true));
  const deadline = Date.now() + (options.readyTimeoutMs ?? 120_000);
  for (;;) {
    if (died) throw new Error(`llama-server exited (code ${child.exitCode}) before it was ready:\n${server.output()}`);
    try {
      // 503 while the model loads, 200 once it serves.
      if ((await fetch(`${url}/health`)).status === 200) return server;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) {
      await server.stop(2000);
      throw new Error(`llama-server was not ready within ${options.readyTimeoutMs ?? 120_000} ms:\n${server.output()}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}
