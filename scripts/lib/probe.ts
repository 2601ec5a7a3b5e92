/**
 * What the per-token probes share: their command-line options, SmolLM2-135M's MLP shape, seeded
 * random weights, the top-k of scores as a graph op, and interleaved timing.
 */
import type * as ort from 'onnxruntime-node';
import { SMOLLM2_135M_SHAPE } from '../../src/arch/testmodel.js';
import type { Graph } from '../../src/graph/graph.js';
import type { Value } from '../../src/graph/types.js';
import { createRng } from '../../src/random.js';

/** `parseArgs` options every probe takes: threads, sparsity, timed runs, and a subset of variants. */
export const PROBE_OPTIONS = {
  threads: { type: 'string', default: '2' },
  sparsity: { type: 'string', default: '0.8' },
  runs: { type: 'string', default: '200' },
  only: { type: 'string' },
} as const;

/** The chained MLPs the probes time: SmolLM2-135M's hidden size, MLP width and layer count. */
export const PROBE_SHAPE = { d: SMOLLM2_135M_SHAPE.hidden, F: SMOLLM2_135M_SHAPE.intermediate, L: SMOLLM2_135M_SHAPE.layers };

/** Uniform values in [-scale, scale) from one generator seeded with `seed`, drawn in call order. */
export function uniformWeights(seed: number): (n: number, scale: number) => Float32Array {
  const rand = createRng(seed);
  return (n, scale) => Float32Array.from({ length: n }, () => (rand() * 2 - 1) * scale);
}

/** Indices of the `k` largest scores of each row ([n, F] -> [n, k] int64), unsorted. */
export function topk(g: Graph, scores: Value, k: number): Value {
  const [, idx] = g.kernel(
    'TopK',
    [scores, g.const([k])],
    [
      { dtype: 'float32', shape: ['n', k] },
      { dtype: 'int64', shape: ['n', k] },
    ],
    { axis: -1, largest: 1, sorted: 0 },
  );
  return idx;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/**
 * Median ms per run of each session, the sessions run once per round in turn (`warmup` rounds
 * untimed): the machine's drift in speed falls on all of them alike.
 */
export async function timeInterleaved(
  sessions: ort.InferenceSession[],
  feeds: (s: ort.InferenceSession) => Record<string, ort.Tensor>,
  runs: number,
  warmup = 10,
): Promise<number[]> {
  const times = sessions.map((): number[] => []);
  for (let r = 0; r < runs + warmup; r++) {
    for (const [i, session] of sessions.entries()) {
      const t0 = performance.now();
      await session.run(feeds(session));
      if (r >= warmup) times[i].push(performance.now() - t0);
    }
  }
  return times.map(median);
}
