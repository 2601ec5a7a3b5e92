/**
 * llama.cpp's `llama-bench` beside `npm run bench`: the same weights as GGUF files, F32 written
 * by the tests' GGUF writer (scripts/lib/llama-server.ts's `ensureGguf`), F16, Q8_0 and Q4_0 made
 * from it by the `llama-quantize` built next to `llama-bench`, and their decode tokens/s at the
 * bench's threads, after a prompt of the bench's length. llama.cpp is never a dependency: the
 * binary is given.
 */
import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, renameSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { ensureGguf } from './llama-server.js';

export const LLAMA_TYPES = ['F32', 'F16', 'Q8_0', 'Q4_0'] as const;
export type LlamaType = (typeof LLAMA_TYPES)[number];

export interface LlamaBenchResult {
  type: LlamaType;
  /** Decode tokens/s (llama-bench's mean over its repetitions) and their standard deviation. */
  tokensPerSecond: number;
  stddev: number;
  /** Bytes of the GGUF file. */
  fileBytes: number;
}

function run(binary: string, args: string[]): string {
  const r = spawnSync(binary, args, { encoding: 'utf8', timeout: 1_800_000, maxBuffer: 64 * 1024 * 1024 });
  if (r.status !== 0)
    throw new Error(`${binary} ${args.join(' ')} failed (${r.status ?? r.signal}): ${(r.stderr ?? '').trim().split('\n').slice(-3).join(' / ')}`);
  return r.stdout;
}

/** The GGUF of `modelDir` in `type`, made once into .cache/loadtest/. */
function gguf(llamaBench: string, modelDir: string, type: LlamaType, threads: number): string {
  const f32 = ensureGguf(modelDir);
  if (type === 'F32') return f32;
  const out = f32.replace(/\.f32\.gguf$/, `.${type.toLowerCase()}.gguf`);
  if (existsSync(out)) return out;
  const quantize = join(dirname(llamaBench), 'llama-quantize');
  accessSync(quantize, constants.X_OK);
  run(quantize, [f32, `${out}.partial`, type, String(threads)]);
  renameSync(`${out}.partial`, out);
  return out;
}

export interface LlamaBenchOptions {
  threads: number;
  /** Tokens of context before decoding. */
  depth: number;
  decodeTokens: number;
  repetitions: number;
}

/** One llama-bench run of `type`: its decode result and the build it reports. */
export function llamaBenchType(binary: string, modelDir: string, type: LlamaType, options: LlamaBenchOptions): { version: string; result: LlamaBenchResult } {
  const llamaBench = resolve(binary);
  accessSync(llamaBench, constants.X_OK);
  const file = gguf(llamaBench, modelDir, type, options.threads);
  const out = run(llamaBench, [
    ...['-m', file, '-t', String(options.threads), '-p', '0', '-n', String(options.decodeTokens)],
    ...['-d', String(options.depth), '-r', String(options.repetitions), '-o', 'json'],
  ]);
  const rows = JSON.parse(out) as { n_gen: number; avg_ts: number; stddev_ts: number; model_size: number; build_number: number; build_commit: string }[];
  const decode = rows.find((r) => r.n_gen > 0);
  if (!decode) throw new Error(`llama-bench printed no decode result for ${file}`);
  return {
    version: `version ${decode.build_number} (${decode.build_commit})`,
    result: { type, tokensPerSecond: decode.avg_ts, stddev: decode.stddev_ts, fileBytes: decode.model_size },
  };
}

/**
 * Decode tokens/s of each type: `decodeTokens` generated after `depth` tokens of context; and
 * the build llama-bench reports.
 */
export function llamaBenchDecode(binary: string, modelDir: string, options: LlamaBenchOptions): { version: string; results: LlamaBenchResult[] } {
  const runs = LLAMA_TYPES.map((type) => llamaBenchType(binary, modelDir, type, options));
  return { version: runs[0].version, results: runs.map((r) => r.result) };
}
