/** How much of a reference neuron set a predicted set covers. */

/** |predicted ∩ oracle| / |oracle|; 1 for an empty oracle set. Duplicates count once. */
export function recall(predicted: readonly number[], oracle: readonly number[]): number {
  const truth = new Set(oracle);
  if (truth.size === 0) return 1;
  let hit = 0;
  for (const i of new Set(predicted)) if (truth.has(i)) hit++;
  return hit / truth.size;
}
