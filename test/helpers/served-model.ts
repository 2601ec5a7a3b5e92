/**
 * The model route tests serve: the real engine (ONNX Runtime, real tokenizer) on a small
 * random-initialised LLaMA written once per test process into a temporary directory.
 * Route tests rely only on behaviour every real model has, never on particular text.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeTestModel } from '../../src/model/testmodel.js';
import { loadServedModel } from '../../src/runtime/engine.js';
import type { ServedModel } from '../../src/runtime/types.js';

export async function testServedModel(): Promise<ServedModel> {
  const dir = mkdtempSync(join(tmpdir(), 'served-model-'));
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  await writeTestModel(join(dir, 'test-llama'), { hidden: 32, intermediate: 64, layers: 2, heads: 4, kvHeads: 2, headDim: 8, seed: 11 });
  return loadServedModel(join(dir, 'test-llama'), { intraOpThreads: 1 });
}
