/** Token streams for training: documents joined into one stream, random windows, eval windows. */
import { Prng } from '../random.js';

/** Documents as one stream: each encoded with its BOS (from the tokenizer) and closed by EOS. */
export function tokenStream(docs: Iterable<string>, encode: (text: string) => number[], eosId: number): Int32Array {
  const out: number[] = [];
  for (const text of docs) out.push(...encode(text), eosId);
  return Int32Array.from(out);
}

export interface Batch {
  batch: number;
  seq: number;
  inputs: BigInt64Array;
  targets: BigInt64Array;
}

function windowsBatch(stream: Int32Array, starts: number[], seq: number): Batch {
  const inputs = new BigInt64Array(starts.length * seq);
  const targets = new BigInt64Array(starts.length * seq);
  starts.forEach((start, b) => {
    for (let i = 0; i < seq; i++) {
      inputs[b * seq + i] = BigInt(stream[start + i]);
      targets[b * seq + i] = BigInt(stream[start + i + 1]);
    }
  });
  return { batch: starts.length, seq, inputs, targets };
}

/**
 * `batch` windows of `seq` + 1 tokens at random offsets, drawn from a generator seeded by
 * (seed, step): the same step always gets the same batch, so a resumed run sees the same data.
 */
export function randomBatch(stream: Int32Array, batch: number, seq: number, seed: number, step: number): Batch {
  const rng = Prng.forLabel(seed, `batch ${step}`);
  const span = stream.length - seq - 1;
  if (span <= 0) throw new Error(`the stream (${stream.length} tokens) is shorter than a window of ${seq + 1}`);
  return windowsBatch(
    stream,
    Array.from({ length: batch }, () => Math.floor(rng.next() * span)),
    seq,
  );
}

/**
 * Consecutive windows overlapping by one token, so every token after the first is predicted
 * exactly once: their summed loss over the stream's bytes is its bits per byte.
 */
export function evaluationBatches(stream: Int32Array, batch: number, seq: number, maxWindows = Infinity): Batch[] {
  const starts: number[] = [];
  for (let s = 0; s + seq < stream.length && starts.length < maxWindows; s += seq) starts.push(s);
  const out: Batch[] = [];
  for (let i = 0; i < starts.length; i += batch) out.push(windowsBatch(stream, starts.slice(i, i + batch), seq));
  return out;
}
