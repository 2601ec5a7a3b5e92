/** Parsers of the CLIs' option values: a bad value is named by commander with the reason. */
import { InvalidArgumentError } from 'commander';
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
