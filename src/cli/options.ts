/**
 * What every CLI shares: parsers of option values (a bad value is named by commander with the
 * reason) and runCli, which reports any failure as commander reports a bad argument.
 */
import { statSync } from 'node:fs';
import { InvalidArgumentError, type Command } from 'commander';
import { isMetric, METRICS, type Metric } from '../sparsity/metrics.js';

export function parseMetric(value: string): Metric {
  if (!isMetric(value)) throw new InvalidArgumentError(`expected one of ${METRICS.join(', ')}`);
  return value;
}

export function parsePositiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('expected a positive integer');
  return n;
}

export function parseNonNegativeInt(value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 0) throw new InvalidArgumentError('expected an integer >= 0');
  return n;
}

export function parsePositiveNumber(value: string): number {
  const n = Number(value);
  if (!(n > 0) || !Number.isFinite(n)) throw new InvalidArgumentError('expected a positive number');
  return n;
}

/** Comma-separated MLP sparsities in [0, 1): deduplicated, ascending. */
export function parseSparsities(value: string): number[] {
  const sparsities = value.split(',').map(Number);
  if (sparsities.some((s) => !(s >= 0 && s < 1))) throw new InvalidArgumentError('expected comma-separated sparsities in [0, 1)');
  return [...new Set(sparsities)].sort((a, b) => a - b);
}

/** A model directory that exists, checked before any work starts (or a server is spawned for it). */
export function parseModelDir(value: string): string {
  if (!statSync(value, { throwIfNoEntry: false })?.isDirectory()) throw new InvalidArgumentError('no such directory');
  return value;
}

/**
 * Ends the process for a failure the way commander ends it for a bad argument: one line,
 * `error: <message>`, exit code 1. A stack trace says nothing to someone running a command;
 * exiting rather than setting process.exitCode, because a failed run may leave ONNX Runtime
 * threads or a spawned server that would keep the process alive.
 */
export function exitWithError(err: unknown): never {
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(`error: ${message}\n`);
  process.exit(1);
}

/** Parses the command line and runs the action; commander reports argument errors, exitWithError the action's. */
export async function runCli(program: Command): Promise<void> {
  await program.parseAsync().catch(exitWithError);
}
