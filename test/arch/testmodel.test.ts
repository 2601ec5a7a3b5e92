import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { parseMakeTestModelArgs, UsageError } from '../../src/cli/test-model-args.js';
import { parseConfig, readConfig } from '../../src/arch/config.js';
import { loadModelDir } from '../../src/arch/load.js';
import { readSafetensors } from '../../src/model/safetensors.js';
import { hfConfigJson, resolveShape, SMOLLM2_135M_SHAPE, TINY_SHAPE, writeTestModel } from '../../src/arch/testmodel.js';
import { buildByteLevelTokenizer } from '../../src/model/testtokenizer.js';
import { ModelTokenizer } from '../../src/model/tokenizer.js';
import { loadWeights } from '../../src/arch/checkpoints.js';
import { rejectsWith, throwsWith } from '../helpers/errors.js';
import { referenceLogits } from '../helpers/reference.js';

const REPO = fileURLToPath(new URL('../..', import.meta.url));

function stats(data: Float32Array): { mean: number; std: number } {
  let sum = 0;
  for (const v of data) sum += v;
  const mean = sum / data.length;
  let sq = 0;
  for (const v of data) sq += (v - mean) ** 2;
  return { mean, std: Math.sqrt(sq / data.length) };
}

t.test('the same seed writes the same checkpoint; another seed another', async (t) => {
  const root = t.testdir();
  await writeTestModel(join(root, 'a'), { seed: 7 });
  await writeTestModel(join(root, 'b'), { seed: 7 });
  await writeTestModel(join(root, 'c'), { seed: 8 });
  const bytes = (d: string): Buffer => readFileSync(join(root, d, 'model.safetensors'));
  t.ok(bytes('a').equals(bytes('b')), 'byte-identical');
  t.notOk(bytes('a').equals(bytes('c')), 'different');

  // Each tensor has its own generator, so a deeper model keeps the shallower one's layers.
  await writeTestModel(join(root, 'deep'), { seed: 7, layers: 3 });
  const shallow = readSafetensors(join(root, 'a', 'model.safetensors'));
  const deep = readSafetensors(join(root, 'deep', 'model.safetensors'));
  t.same(deep['model.layers.1.mlp.up_proj.weight'].data, shallow['model.layers.1.mlp.up_proj.weight'].data);
});

t.test('config.json describes the requested shape in HF terms', async (t) => {
  const dir = t.testdir();
  const model = await writeTestModel(dir, { layers: 3, heads: 8, kvHeads: 2, headDim: 8, ropeTheta: 5e5, maxPositions: 128 });
  const json = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
  t.match(json, {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    hidden_size: TINY_SHAPE.hidden,
    num_hidden_layers: 3,
    num_attention_heads: 8,
    num_key_value_heads: 2,
    head_dim: 8,
    rope_theta: 5e5,
    max_position_embeddings: 128,
    tie_word_embeddings: false,
    bos_token_id: 1,
    eos_token_id: 2,
  });
  t.same(readConfig(dir), model.config, 'the returned config is what a loader reads');
});

t.test("the SmolLM2-135M preset has SmolLM2-135M's shape", async (t) => {
  const c = parseConfig(hfConfigJson(SMOLLM2_135M_SHAPE), 'config.json');
  t.match(c, {
    hiddenSize: 576,
    intermediateSize: 1536,
    numLayers: 30,
    numHeads: 9,
    numKvHeads: 3,
    headDim: 64,
    vocabSize: 49152,
    tieWordEmbeddings: true,
    maxPositions: 8192,
    ropeTheta: 100000,
    normEps: 1e-5,
    attentionBias: false,
  });
  const { tokenizerJson, tokenizerConfig } = buildByteLevelTokenizer(49152, 8192);
  t.equal(ModelTokenizer.fromJson(tokenizerJson, tokenizerConfig).vocabSize, 49152, 'its tokenizer fills the vocabulary');
});

t.test('initial weights are scaled so activations and logits keep a useful size', async (t) => {
  const dir = t.testdir();
  const { config } = await writeTestModel(dir, { seed: 11, architecture: 'Qwen2ForCausalLM' });
  const w = loadWeights(dir, config);
  const layer = w.layers[0];
  for (const [name, tensor] of [
    ['q', layer.q],
    ['down', layer.down],
    ['embed', w.embed],
    ['lm_head', w.lmHead],
  ] as const) {
    const fanIn = tensor.shape[1];
    const { mean, std } = stats(tensor.data);
    t.ok(Math.abs(mean) < 0.05 / Math.sqrt(fanIn) + 0.01, `${name}: mean about 0 (${mean.toFixed(4)})`);
    t.ok(Math.abs(std * Math.sqrt(fanIn) - 1) < 0.1, `${name}: std about 1/sqrt(${fanIn}) (${std.toFixed(4)})`);
  }
  for (const [name, tensor] of [
    ['input norm', layer.inputNorm],
    ['final norm', w.norm],
  ] as const) {
    const { mean, std } = stats(tensor.data);
    t.ok(Math.abs(mean - 1) < 0.05, `${name}: about 1 (${mean.toFixed(3)})`);
    t.ok(std > 0.05 && std < 0.15, `${name}: with noise, so a forward ignoring it differs (${std.toFixed(3)})`);
  }
  const bias = layer.qBias;
  t.ok(bias !== undefined && stats(bias.data).std > 0.05, 'biases are not zero');

  const logits = referenceLogits(config, w, [1, 50, 60, 70]);
  const last = stats(logits[3]);
  t.ok(last.std > 0.3 && last.std < 5, `logits spread (std ${last.std.toFixed(2)}), neither flat nor saturated`);
  t.ok(
    logits[3].some((v, i) => Math.abs(v - logits[2][i]) > 0.1),
    'and depend on the context',
  );
});

t.test('Mistral and Qwen2 test models load; biases follow the architecture', async (t) => {
  const root = t.testdir();
  const mistral = await loadModelDir((await writeTestModel(join(root, 'mistral'), { architecture: 'MistralForCausalLM' })).dir);
  t.equal(mistral.config.architecture, 'MistralForCausalLM');
  t.equal(mistral.weights.layers[0].qBias, undefined);
  const qwen = await loadModelDir((await writeTestModel(join(root, 'qwen'), { architecture: 'Qwen2ForCausalLM' })).dir);
  t.equal(qwen.config.attentionBias, true);
  t.ok(qwen.weights.layers[1].vBias);
  const llamaBias = await writeTestModel(join(root, 'llama'), { attentionBias: true });
  t.equal(llamaBias.config.attentionBias, true, 'LLaMA with attention_bias');

  await rejectsWith(t, writeTestModel(join(root, 'x'), { architecture: 'Qwen2ForCausalLM', attentionBias: false }), ['Qwen2', 'biases']);
  await rejectsWith(t, writeTestModel(join(root, 'x'), { architecture: 'MistralForCausalLM', attentionBias: true }), ['Mistral', 'biases']);
  await rejectsWith(t, writeTestModel(join(root, 'x'), { heads: 5 }), ['config.json', '"num_key_value_heads"']);
  await rejectsWith(t, writeTestModel(join(root, 'x'), { vocab: 100 }), ['vocab size', '>= 259']);
  t.equal(resolveShape({ architecture: 'Qwen2ForCausalLM' }).attentionBias, true);
  t.equal(resolveShape({ heads: undefined }).heads, TINY_SHAPE.heads, 'undefined options keep the preset');
});

t.test('16-bit checkpoints hold the F32 weights rounded', async (t) => {
  const root = t.testdir();
  const f32 = await writeTestModel(join(root, 'f32'), { seed: 4 });
  const w32 = loadWeights(f32.dir, f32.config);
  // Half an ulp relative: 2^-11 for F16's 10 mantissa bits, 2^-8 for BF16's 7 (none of these
  // values is small enough to be subnormal in F16, where the relative bound would not hold).
  for (const [dtype, tol] of [
    ['F16', 2 ** -11],
    ['BF16', 2 ** -8],
  ] as const) {
    const m = await writeTestModel(join(root, dtype), { seed: 4, dtype });
    t.equal(JSON.parse(readFileSync(join(m.dir, 'config.json'), 'utf8')).torch_dtype, dtype === 'F16' ? 'float16' : 'bfloat16');
    const w = loadWeights(m.dir, m.config);
    const a = w32.layers[1].gate!.data;
    const b = w.layers[1].gate!.data;
    let worst = 0;
    for (let i = 0; i < a.length; i++) if (Math.abs(a[i]) > 1e-4) worst = Math.max(worst, Math.abs(b[i] - a[i]) / Math.abs(a[i]));
    t.ok(worst <= tol, `${dtype}: worst relative error ${worst.toExponential(2)} <= ${tol.toExponential(2)}`);
    t.ok(worst > 0, `${dtype}: and really rounded`);
  }
});

t.test("the CLI's arguments: a preset with per-field overrides", async (t) => {
  const args = parseMakeTestModelArgs([
    '--out',
    '/tmp/m',
    '--preset',
    'smollm2-135m',
    '--layers',
    '2',
    '--kv-heads',
    '9',
    '--rope-theta',
    '5e4',
    '--tie',
    'false',
    '--seed',
    '9',
    '--dtype',
    'BF16',
  ]);
  t.equal(args.out, '/tmp/m');
  t.same(args.options, { ...SMOLLM2_135M_SHAPE, layers: 2, kvHeads: 9, ropeTheta: 5e4, tie: false, seed: 9, dtype: 'BF16' });
  t.match(parseMakeTestModelArgs(['--out', 'd']).options, { ...TINY_SHAPE, seed: 0, dtype: 'F32' }, 'tiny, seed 0, F32 by default');
  const qwen = parseMakeTestModelArgs(['--out', 'd', '--architecture', 'Qwen2ForCausalLM']).options;
  t.equal(resolveShape(qwen).attentionBias, true, 'the bias follows a changed architecture');

  const usage: [string[], string][] = [
    [['--layers', '1'], '--out DIR is required'],
    [['--out', 'd', '--layers', 'two'], '--layers must be an integer'],
    [['--out', 'd', '--tie', 'yes'], '--tie must be true or false'],
    [['--out', 'd', '--preset', 'huge'], 'unknown preset "huge"'],
    [['--out', 'd', '--dtype', 'F64'], '--dtype must be one of F32, F16, BF16'],
    [['--out', 'd', '--bogus', '1'], "Unknown option '--bogus'"],
  ];
  for (const [argv, fragment] of usage) {
    let error: unknown = null;
    try {
      parseMakeTestModelArgs(argv);
    } catch (err) {
      error = err;
    }
    t.ok(error instanceof UsageError, `${argv.join(' ')}: a usage error`);
    t.match(error instanceof Error ? error.message : '', fragment);
  }
});

t.test('the CLI writes a model, and exits 1 on a usage error', async (t) => {
  const dir = join(t.testdir(), 'cli');
  const cli = join(REPO, 'src', 'cli', 'make-test-model.ts');
  const run = (...args: string[]): ReturnType<typeof spawnSync> =>
    spawnSync(process.execPath, ['--import', 'tsx', cli, ...args], { cwd: REPO, encoding: 'utf8' });

  const ok = run('--out', dir, '--layers', '1', '--kv-heads', '4', '--architecture', 'Qwen2ForCausalLM');
  t.equal(ok.status, 0, String(ok.stderr));
  t.match(readConfig(dir), { architecture: 'Qwen2ForCausalLM', numLayers: 1, numKvHeads: 4, attentionBias: true });

  const bad = run('--out', dir, '--layers', 'two');
  t.equal(bad.status, 1);
  t.equal(String(bad.stderr), 'error: --layers must be an integer, got "two"\n', "one line, in commander's style like every CLI");
});

t.test('bad shapes are refused before anything is written', async (t) => {
  const dir = join(t.testdir(), 'never');
  await rejectsWith(t, writeTestModel(dir, { headDim: 7 }), ['"head_dim"', 'even']);
  throwsWith(t, () => readFileSync(join(dir, 'config.json')), ['ENOENT']);
});
