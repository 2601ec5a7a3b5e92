/**
 * Server configuration, read once from environment variables.
 *
 * Every variable is checked at start-up: a bad value stops the process with a message that
 * names the variable, instead of surfacing later as a confusing runtime failure.
 */
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

export interface Config {
  port: number;
  /** 0.0.0.0 by default, like vLLM: the server usually runs in a container behind a proxy. */
  host: string;
  /** Absolute paths of the model directories to serve, in the order given. */
  modelDirs: string[];
  logLevel: LogLevel;
  /** Threads ONNX Runtime uses inside one operator; undefined leaves ORT's default. */
  ortIntraOpThreads: number | undefined;
  /** Threads ONNX Runtime uses across independent operators; undefined leaves ORT's default. */
  ortInterOpThreads: number | undefined;
  /** Largest request body accepted, in bytes; larger ones get 413. */
  bodyLimitBytes: number;
  /** How long a shutdown waits for in-flight requests before cutting them off. */
  shutdownTimeoutMs: number;
}

/** The repository root, so that the default model directory does not depend on the cwd. */
const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));

export const DEFAULT_MODEL_DIR = resolve(REPO_ROOT, 'models/stories260K');

const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

type Env = Record<string, string | undefined>;

/** Reads and checks the configuration; throws a ConfigError listing every bad variable. */
export function loadConfig(env: Env = process.env): Config {
  const problems: string[] = [];
  const value = (name: string): string | undefined => {
    const raw = env[name]?.trim();
    return raw === undefined || raw === '' ? undefined : raw;
  };
  const integer = (name: string, fallback: number, min: number, max: number): number => {
    const raw = value(name);
    if (raw === undefined) return fallback;
    if (!/^\d+$/.test(raw) || Number(raw) < min || Number(raw) > max) {
      problems.push(`${name}=${JSON.stringify(raw)}: expected an integer from ${min} to ${max}`);
      return fallback;
    }
    return Number(raw);
  };
  const optionalInteger = (name: string, min: number, max: number): number | undefined =>
    value(name) === undefined ? undefined : integer(name, min, min, max);

  const port = integer('PORT', 8000, 0, 65535);
  const host = value('HOST') ?? '0.0.0.0';

  const dirs = (value('MODEL_DIR') ?? DEFAULT_MODEL_DIR).split(',').map((d) => d.trim());
  if (dirs.some((d) => d === '')) {
    problems.push(`MODEL_DIR=${JSON.stringify(env.MODEL_DIR)}: expected one or more comma-separated directories, none empty`);
  }
  // User-given relative paths are relative to the working directory, as shells expect.
  const modelDirs = dirs.filter((d) => d !== '').map((d) => resolve(d));

  const level = (value('LOG_LEVEL') ?? 'info').toLowerCase();
  if (!(LOG_LEVELS as readonly string[]).includes(level)) {
    problems.push(`LOG_LEVEL=${JSON.stringify(env.LOG_LEVEL)}: expected one of ${LOG_LEVELS.join(', ')}`);
  }

  const config: Config = {
    port,
    host,
    modelDirs,
    logLevel: level as LogLevel,
    ortIntraOpThreads: optionalInteger('ORT_INTRA_OP_THREADS', 0, 1024),
    ortInterOpThreads: optionalInteger('ORT_INTER_OP_THREADS', 0, 1024),
    bodyLimitBytes: integer('BODY_LIMIT_BYTES', 1024 * 1024, 1, 1024 * 1024 * 1024),
    shutdownTimeoutMs: integer('SHUTDOWN_TIMEOUT_MS', 10_000, 0, 3_600_000),
  };
  if (problems.length > 0) throw new ConfigError(problems);
  return config;
}
