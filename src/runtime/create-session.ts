/**
 * ONNX Runtime sessions from recorded graphs. A model whose weights would pass protobuf's 2 GiB
 * message limit (about 500M float32 parameters: Qwen2.5-0.5B, TinyLlama, Phi-2) cannot be handed
 * over as bytes; it is written with its external data file (src/graph/onnx.ts `toOnnxFiles`)
 * into a temporary directory and loaded from there.
 */
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import type { Graph } from '../graph/graph.js';
import { EXTERNAL_DATA_FILE, toOnnxFiles } from '../graph/onnx.js';

/**
 * A session running `graph`. The temporary files are removed once the session holds its
 * weights: ONNX Runtime has read or mapped them by then, and a mapped file outlives its name.
 * `inlineLimit` (bytes of initializers kept inline) is for tests.
 */
export async function createSession(graph: Graph, options: ort.InferenceSession.SessionOptions, inlineLimit?: number): Promise<ort.InferenceSession> {
  const { model, external } = toOnnxFiles(graph, inlineLimit);
  if (!external) return ort.InferenceSession.create(model, options);
  const dir = mkdtempSync(join(tmpdir(), 'sparse-slm-model-'));
  try {
    const file = join(dir, 'model.onnx');
    writeFileSync(file, model);
    const fd = openSync(join(dir, EXTERNAL_DATA_FILE), 'w');
    try {
      for (const { offset, bytes } of external) writeSync(fd, bytes, 0, bytes.length, offset);
    } finally {
      closeSync(fd);
    }
    return await ort.InferenceSession.create(file, options);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
