/**
 * Benchmarks, side by side in one run (never timing assertions in tests):
 * - dense prefill and decode tokens/s of the serving graph;
 * - attribution of a prompt against a dense prefill of the same prompt.
 *
 *   npm run bench -- [--model DIR] [--threads N] [--prompt-tokens 128] [--decode-tokens 64]
 *
 * Without --model, a random-initialised model at SmolLM2-135M's shape is generated once into
 * .cache/ (random weights decode as fast as trained ones).
 */
import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import { loadModelDir } from '../src/model/load.js';
import { SMOLLM2_135M_SHAPE, writeTestModel } from '../src/model/testmodel.js';
import { LlamaSession } from '../src/runtime/session.js';
import { argmax } from '../src/runtime/sampling.js';
import { Attributor, selfTargets } from '../src/sparsity/attribution.js';

const { values } = parseArgs({
  options: {
    model: { type: 'string' },
    threads: { type: 'string', default: '2' },
    'prompt-tokens': { type: 'string', default: '128' },
    'decode-tokens': { type: 'string', default: '64' },
    repeats: { type: 'string', default: '5' },
  },
});
const threads = Number(values.threads);
const promptTokens = Number(values['prompt-tokens']);
const decodeTokens = Number(values['decode-tokens']);
const repeats = Number(values.repeats);

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
async function timeMs(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

let dir = values.model;
if (!dir) {
  dir = '.cache/bench-smollm2-135m';
  if (!existsSync(`${dir}/model.safetensors`)) {
    process.stderr.write(`generating a random model at SmolLM2-135M's shape in ${dir} ...\n`);
    await writeTestModel(dir, { ...SMOLLM2_135M_SHAPE, seed: 1, dtype: 'BF16' });
  }
}
const model = await loadModelDir(dir);
const c = model.config;
const ortOptions = { intraOpThreads: threads, interOpThreads: 1 };

let t0 = performance.now();
const session = await LlamaSession.create(c, model.weights, ortOptions);
const serveBuildMs = performance.now() - t0;
const prompt = Array.from({ length: promptTokens }, (_, i) => 3 + ((i * 7919) % Math.min(c.vocabSize - 3, 30000)));

// Warm-up, then medians.
await session.forward(prompt, session.emptyCache(), 1);
const prefillMs = median(await Promise.all([...Array(repeats)].map(() => 0)).then(async () => {
  const xs: number[] = [];
  for (let r = 0; r < repeats; r++) xs.push(await timeMs(() => session.forward(prompt, session.emptyCache(), 1)));
  return xs;
}));
const decodeRuns: number[] = [];
for (let r = 0; r < Math.max(1, Math.floor(repeats / 2)); r++) {
  let { logits, cache } = await session.forward(prompt, session.emptyCache(), 1);
  const ms = await timeMs(async () => {
    for (let i = 0; i < decodeTokens; i++) ({ logits, cache } = await session.forward([argmax(logits)], cache, 1));
  });
  decodeRuns.push(ms / decodeTokens);
}
const decodeMsPerToken = median(decodeRuns);

t0 = performance.now();
const attributor = await Attributor.create(c, model.weights, ortOptions);
const attributionBuildMs = performance.now() - t0;
const targets = selfTargets(prompt);
await attributor.run(prompt, targets);
const attributionRuns: number[] = [];
for (let r = 0; r < repeats; r++) attributionRuns.push(await timeMs(() => attributor.run(prompt, targets)));
const attributionMs = median(attributionRuns);

const params = model.weights.layers.length * 0 + Object.values(model.weights).length; // touch to keep types honest
void params;
console.log(`model: ${model.dir} (${c.numLayers} layers, hidden ${c.hiddenSize}, intermediate ${c.intermediateSize}, ${c.numHeads} heads / ${c.numKvHeads} KV, vocab ${c.vocabSize})`);
console.log(`ONNX Runtime ${ort.env.versions.common}, CPU execution provider, intra-op threads ${threads}, inter-op 1, graph optimisation "all", float32, weights as initializers`);
console.log(`median of ${repeats} runs after one warm-up; prompt ${promptTokens} tokens; decode ${decodeTokens} tokens after it\n`);
console.table([
  { measure: 'prefill', 'ms': prefillMs.toFixed(1), 'tokens/s': (promptTokens / (prefillMs / 1000)).toFixed(1), 'vs prefill': '1.00x' },
  { measure: 'decode (per token)', 'ms': decodeMsPerToken.toFixed(2), 'tokens/s': (1000 / decodeMsPerToken).toFixed(1), 'vs prefill': '' },
  { measure: `attribution (${promptTokens} tokens, forward + backward)`, 'ms': attributionMs.toFixed(1), 'tokens/s': (promptTokens / (attributionMs / 1000)).toFixed(1), 'vs prefill': `${(attributionMs / prefillMs).toFixed(2)}x` },
]);
console.log(`session build: serving ${serveBuildMs.toFixed(0)} ms, attribution ${attributionBuildMs.toFixed(0)} ms`);
await session.release();
await attributor.release();
