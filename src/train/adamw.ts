/**
 * AdamW (Loshchilov & Hutter): Adam with decoupled weight decay, in place on Float32Arrays.
 *   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
 *   w -= lr (m_hat / (sqrt(v_hat) + eps) + wd w)
 */
export interface AdamWSettings {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

export const ADAMW_DEFAULTS: AdamWSettings = { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 };

export interface AdamState {
  m: Float32Array;
  v: Float32Array;
}

export function newAdamState(size: number): AdamState {
  return { m: new Float32Array(size), v: new Float32Array(size) };
}

/** One update of `w` by gradient `g` (already clipped/scaled); `step` counts from 1. */
export function adamwUpdate(w: Float32Array, g: Float32Array, state: AdamState, lr: number, step: number, s: AdamWSettings, decay: boolean): void {
  const c1 = 1 - s.beta1 ** step;
  const c2 = 1 - s.beta2 ** step;
  const wd = decay ? s.weightDecay : 0;
  const { m, v } = state;
  for (let i = 0; i < w.length; i++) {
    m[i] = s.beta1 * m[i] + (1 - s.beta1) * g[i];
    v[i] = s.beta2 * v[i] + (1 - s.beta2) * g[i] * g[i];
    w[i] -= lr * (m[i] / c1 / (Math.sqrt(v[i] / c2) + s.eps) + wd * w[i]);
  }
}

/** The global L2 norm of all gradients. */
export function globalNorm(grads: Iterable<Float32Array>): number {
  let sum = 0;
  for (const g of grads) for (let i = 0; i < g.length; i++) sum += g[i] * g[i];
  return Math.sqrt(sum);
}

/** Linear warm-up to `peak`, then cosine decay to `peak * floor` at `total`. */
export function learningRate(step: number, peak: number, warmup: number, total: number, floor = 0.1): number {
  if (step < warmup) return (peak * (step + 1)) / warmup;
  const progress = Math.min(1, (step - warmup) / Math.max(1, total - warmup));
  return peak * (floor + (1 - floor) * 0.5 * (1 + Math.cos(Math.PI * progress)));
}
