/** Running builder graphs in ONNX Runtime from tests. */
import * as ort from 'onnxruntime-node';
import type { Graph } from '../../src/graph/graph.js';
import { toOnnx } from '../../src/graph/onnx.js';

export type Feeds = Record<string, ort.Tensor>;

export async function session(g: Graph): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(toOnnx(g), { intraOpNumThreads: 1 });
}

export function f64(data: ArrayLike<number>, shape: number[]): ort.Tensor {
  return new ort.Tensor('float64', Float64Array.from(data), shape);
}

export function i64(data: ArrayLike<number>, shape: number[]): ort.Tensor {
  return new ort.Tensor('int64', BigInt64Array.from(Array.from(data), BigInt), shape);
}

/** Deterministic uniform values in [lo, hi). */
export function uniform(n: number, seed: number, lo = -1, hi = 1): number[] {
  let s = seed >>> 0 || 1;
  return Array.from({ length: n }, () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return lo + ((s >>> 0) / 2 ** 32) * (hi - lo);
  });
}
