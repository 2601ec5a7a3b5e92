/**
 * The model route tests serve: the real engine (ONNX Runtime, real tokenizer) on a small
 * random-initialised LLaMA written once per test process into a temporary directory.
 * Route tests rely only on behaviour every real model has, never on particular text.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeTestModel } from '../../src/arch/testmodel.js';
import { loadServedModel } from '../../src/serve/engine.js';
import type { ExecutionOptions, GenerationResult, SamplingParams, ServedModel } from '../../src/runtime/types.js';

export async function testServedModel(): Promise<ServedModel> {
  const dir = mkdtempSync(join(tmpdir(), 'served-model-'));
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  await writeTestModel(join(dir, 'test-llama'), { hidden: 32, intermediate: 64, layers: 2, heads: 4, kvHeads: 2, headDim: 8, seed: 11 });
  return loadServedModel(join(dir, 'test-llama'), { intraOpThreads: 1 });
}

/** Greedy decoding of 10 tokens at most: what the sparse-serving tests generate. */
export const GREEDY: SamplingParams = { maxTokens: 10, temperature: 0, topP: 1, topK: -1, stop: [], logprobs: null, echo: false };

/** Runs one generation to its end: the token ids generated and how it finished. */
export async function generateAll(
  model: ServedModel,
  promptIds: number[],
  params: SamplingParams,
  execution: ExecutionOptions,
): Promise<{ ids: number[]; result: GenerationResult }> {
  const it = model.generate(promptIds, params, undefined, execution);
  const ids: number[] = [];
  let r = await it.next();
  for (; !r.done; r = await it.next()) ids.push(...r.value.tokens.map((x) => x.id));
  return { ids, result: r.value };
}
