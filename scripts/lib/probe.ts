/** What the per-token probes share: the top-k of scores as a graph op, and interleaved timing. */
import type * as ort from 'onnxruntime-node';
import type { Graph } from '../../src/graph/graph.js';
import type { Value } from '../../src/graph/types.js';

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
