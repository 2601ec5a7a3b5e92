/** How far a sparse generation follows the dense one, token by token. */

/** Share of positions where both have the same token, over the longer of the two. */
export function tokenAgreement(dense: readonly number[], sparse: readonly number[]): number {
  const length = Math.max(dense.length, sparse.length);
  if (length === 0) return 1;
  let same = 0;
  for (let i = 0; i < Math.min(dense.length, sparse.length); i++) if (dense[i] === sparse[i]) same++;
  return same / length;
}

/**
 * The first position where the two differ (one ending counts as differing); their common
 * length when they are identical.
 */
export function firstDivergence(dense: readonly number[], sparse: readonly number[]): number {
  const n = Math.min(dense.length, sparse.length);
  for (let i = 0; i < n; i++) if (dense[i] !== sparse[i]) return i;
  return n;
}
