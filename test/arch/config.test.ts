import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { mergeGenerationConfig, readGenerationConfig } from '../../src/model/config.js';
import { parseConfig, readConfig } from '../../src/arch/config.js';
import { throwsWith } from '../helpers/errors.js';

const FILE = '/models/x/config.json';

/** A LLaMA config as transformers writes it (stories260K's numbers). */
const llama = (): Record<string, unknown> => ({
  architectures: ['LlamaForCausalLM'],
  model_type: 'llama',
  hidden_size: 64,
  intermediate_size: 172,
  num_hidden_layers: 5,
  num_attention_heads: 8,
  num_key_value_heads: 4,
  head_dim: 8,
  vocab_size: 512,
  max_position_embeddings: 512,
  rms_norm_eps: 1e-5,
  rope_theta: 10000.0,
  rope_scaling: null,
  tie_word_embeddings: true,
  attention_bias: false,
  mlp_bias: false,
  hidden_act: 'silu',
  bos_token_id: 1,
  eos_token_id: 2,
});

/** Mistral-7B-v0.1's shape, with the window disabled (v0.2 style). */
const mistral = (): Record<string, unknown> => ({
  architectures: ['MistralForCausalLM'],
  model_type: 'mistral',
  hidden_size: 4096,
  intermediate_size: 14336,
  num_hidden_layers: 32,
  num_attention_heads: 32,
  num_key_value_heads: 8,
  vocab_size: 32000,
  max_position_embeddings: 32768,
  rms_norm_eps: 1e-5,
  rope_theta: 1000000.0,
  sliding_window: null,
  tie_word_embeddings: false,
  hidden_act: 'silu',
  bos_token_id: 1,
  eos_token_id: 2,
});

/** Phi-3-mini-4k-instruct's config, with its window disabled (the window is tested on its own). */
const phi3 = (): Record<string, unknown> => ({
  architectures: ['Phi3ForCausalLM'],
  model_type: 'phi3',
  hidden_size: 3072,
  intermediate_size: 8192,
  num_hidden_layers: 32,
  num_attention_heads: 32,
  num_key_value_heads: 32,
  vocab_size: 32064,
  max_position_embeddings: 4096,
  original_max_position_embeddings: 4096,
  rms_norm_eps: 1e-5,
  rope_theta: 10000.0,
  rope_scaling: null,
  sliding_window: null,
  tie_word_embeddings: false,
  hidden_act: 'silu',
  bos_token_id: 1,
  eos_token_id: 32000,
});

/** microsoft/phi-2's config.json (transformers' PhiForCausalLM). */
const phi2 = (): Record<string, unknown> => ({
  architectures: ['PhiForCausalLM'],
  model_type: 'phi',
  hidden_size: 2560,
  intermediate_size: 10240,
  num_hidden_layers: 32,
  num_attention_heads: 32,
  num_key_value_heads: 32,
  vocab_size: 51200,
  max_position_embeddings: 2048,
  layer_norm_eps: 1e-5,
  rope_theta: 10000.0,
  rope_scaling: null,
  partial_rotary_factor: 0.4,
  qk_layernorm: false,
  hidden_act: 'gelu_new',
  tie_word_embeddings: false,
  bos_token_id: 50256,
  eos_token_id: 50256,
});

/** openai-community/gpt2's config.json. */
const gpt2 = (): Record<string, unknown> => ({
  architectures: ['GPT2LMHeadModel'],
  model_type: 'gpt2',
  activation_function: 'gelu_new',
  n_ctx: 1024,
  n_embd: 768,
  n_head: 12,
  n_layer: 12,
  n_positions: 1024,
  layer_norm_epsilon: 1e-5,
  vocab_size: 50257,
  bos_token_id: 50256,
  eos_token_id: 50256,
});

/** Qwen2-0.5B's config. */
const qwen2 = (): Record<string, unknown> => ({
  architectures: ['Qwen2ForCausalLM'],
  model_type: 'qwen2',
  hidden_size: 896,
  intermediate_size: 4864,
  num_hidden_layers: 24,
  num_attention_heads: 14,
  num_key_value_heads: 2,
  vocab_size: 151936,
  max_position_embeddings: 131072,
  rms_norm_eps: 1e-6,
  rope_theta: 1000000.0,
  sliding_window: 131072,
  use_sliding_window: false,
  max_window_layers: 24,
  tie_word_embeddings: true,
  hidden_act: 'silu',
  bos_token_id: 151643,
  eos_token_id: 151643,
});

t.test("a LLaMA config parses into the forward's numbers", async (t) => {
  t.same(parseConfig(llama(), FILE), {
    architecture: 'LlamaForCausalLM',
    hiddenSize: 64,
    intermediateSize: 172,
    numLayers: 5,
    numHeads: 8,
    numKvHeads: 4,
    headDim: 8,
    norm: 'rms',
    normEps: 1e-5,
    mlp: 'swiglu',
    rotaryDim: 8,
    ropeTheta: 10000,
    tieWordEmbeddings: true,
    attentionBias: false,
    vocabSize: 512,
    maxPositions: 512,
    bosTokenId: 1,
    eosTokenIds: [2],
  });
  t.equal(parseConfig({ ...llama(), attention_bias: true }, FILE).attentionBias, true, 'LLaMA reads attention_bias');
});

t.test('a Mistral config parses; its attention has no bias', async (t) => {
  const c = parseConfig(mistral(), FILE);
  t.equal(c.architecture, 'MistralForCausalLM');
  t.equal(c.headDim, 128, 'head_dim defaults to hidden_size / num_attention_heads');
  t.equal(c.numKvHeads, 8);
  t.equal(c.ropeTheta, 1e6);
  t.equal(c.attentionBias, false);
  t.equal(c.tieWordEmbeddings, false);
  t.equal(parseConfig({ ...mistral(), sliding_window: 32768 }, FILE).maxPositions, 32768, 'a window as long as the context is no window');
});

t.test('a Qwen2 config parses; Qwen2 always has q/k/v biases', async (t) => {
  const c = parseConfig(qwen2(), FILE);
  t.equal(c.architecture, 'Qwen2ForCausalLM');
  t.equal(c.attentionBias, true);
  t.equal(c.tieWordEmbeddings, true, 'tie_word_embeddings is read');
  t.equal(c.headDim, 64);
  t.same(c.eosTokenIds, [151643]);
  t.equal(parseConfig({ ...qwen2(), tie_word_embeddings: undefined }, FILE).tieWordEmbeddings, false);
  // The window only matters when use_sliding_window is on.
  t.equal(parseConfig({ ...qwen2(), sliding_window: 4096 }, FILE).architecture, 'Qwen2ForCausalLM');
});

t.test("optional fields take Hugging Face's defaults", async (t) => {
  const json = llama();
  for (const field of ['num_key_value_heads', 'head_dim', 'rope_theta', 'tie_word_embeddings', 'attention_bias', 'bos_token_id', 'eos_token_id']) {
    delete json[field];
  }
  const c = parseConfig(json, FILE);
  t.equal(c.numKvHeads, 8, 'num_key_value_heads defaults to num_attention_heads');
  t.equal(c.headDim, 8, 'head_dim defaults to hidden_size / num_attention_heads');
  t.equal(c.ropeTheta, 10000);
  t.equal(c.tieWordEmbeddings, false);
  t.equal(c.attentionBias, false);
  t.equal(c.bosTokenId, null);
  t.same(c.eosTokenIds, []);
  t.equal(parseConfig({ ...llama(), head_dim: null }, FILE).headDim, 8, 'head_dim: null means the default');
});

t.test('eos_token_id may be an array (LLaMA 3 style)', async (t) => {
  t.same(parseConfig({ ...llama(), eos_token_id: [2, 5, 2] }, FILE).eosTokenIds, [2, 5]);
});

t.test('transformers v5 rope_parameters with the default type gives theta', async (t) => {
  const json = { ...llama(), rope_theta: undefined, rope_parameters: { rope_type: 'default', rope_theta: 500000 } };
  t.equal(parseConfig(json, FILE).ropeTheta, 500000);
});

t.test('each bad field fails naming the file, the field and what was expected', async (t) => {
  const cases: [string, Record<string, unknown>, string, string][] = [
    ['not an object', { __replace: [1, 2] }, 'expected a JSON object', ''],
    ['architectures missing', { architectures: undefined }, '"architectures"', 'non-empty array'],
    ['unsupported architecture', { architectures: ['FalconForCausalLM'] }, '"architectures"', 'unsupported architecture'],
    ['hidden_size missing', { hidden_size: undefined }, '"hidden_size"', 'missing'],
    ['hidden_size a string', { hidden_size: '64' }, '"hidden_size"', 'positive integer'],
    ['intermediate_size fractional', { intermediate_size: 17.5 }, '"intermediate_size"', 'positive integer'],
    ['num_hidden_layers zero', { num_hidden_layers: 0 }, '"num_hidden_layers"', 'positive integer'],
    ['num_attention_heads negative', { num_attention_heads: -8 }, '"num_attention_heads"', 'positive integer'],
    ['kv heads not dividing heads', { num_key_value_heads: 3 }, '"num_key_value_heads"', 'divisor of num_attention_heads (8)'],
    ['odd head_dim', { head_dim: 7 }, '"head_dim"', 'even'],
    ['hidden not divisible by heads without head_dim', { hidden_size: 60, head_dim: undefined }, '"head_dim"', 'not divisible'],
    ['rms_norm_eps missing', { rms_norm_eps: undefined }, '"rms_norm_eps"', 'positive number'],
    ['rope_theta zero', { rope_theta: 0 }, '"rope_theta"', 'positive number'],
    ['rope_scaling set', { rope_scaling: { type: 'linear', factor: 2 } }, '"rope_scaling"', 'not supported'],
    ['rope_parameters of another type', { rope_parameters: { rope_type: 'yarn', factor: 4 } }, '"rope_parameters.rope_type"', 'not supported'],
    ['tie_word_embeddings not boolean', { tie_word_embeddings: 'yes' }, '"tie_word_embeddings"', 'true or false'],
    ['attention_bias not boolean', { attention_bias: 1 }, '"attention_bias"', 'true or false'],
    ['mlp_bias true', { mlp_bias: true }, '"mlp_bias"', 'not supported'],
    ['another activation', { hidden_act: 'gelu' }, '"hidden_act"', '"silu"'],
    ['vocab_size missing', { vocab_size: undefined }, '"vocab_size"', 'positive integer'],
    ['max_position_embeddings missing', { max_position_embeddings: undefined }, '"max_position_embeddings"', 'positive integer'],
    ['bos outside the vocabulary', { bos_token_id: 512 }, '"bos_token_id"', '[0, 512)'],
    ['eos a string', { eos_token_id: '</s>' }, '"eos_token_id"', 'token id'],
    ['eos array with a negative id', { eos_token_id: [2, -1] }, '"eos_token_id"', 'or an array of them'],
  ];
  for (const [name, change, field, expected] of cases) {
    const json: unknown = '__replace' in change ? change.__replace : { ...llama(), ...change };
    throwsWith(t, () => parseConfig(json, FILE), [FILE, field, expected], name);
  }
});

t.test('a sliding window shorter than the context caps the context at the window', async (t) => {
  // Within the window every position attends to all earlier ones: full causal attention.
  t.equal(parseConfig({ ...mistral(), sliding_window: 4096 }, FILE).maxPositions, 4096, 'Mistral');
  t.equal(parseConfig({ ...qwen2(), sliding_window: 4096, use_sliding_window: true }, FILE).maxPositions, 4096, 'Qwen2 with use_sliding_window');
  t.equal(parseConfig({ ...phi3(), sliding_window: 2047 }, FILE).maxPositions, 2047, "Phi-3-mini-4k's window");
  t.equal(parseConfig({ ...llama(), sliding_window: 16 }, FILE).maxPositions, 512, "LLaMA's attention has no window, whatever the config says");
  throwsWith(t, () => parseConfig({ ...mistral(), sliding_window: 'none' }, FILE), [FILE, '"sliding_window"', 'positive integer'], 'bad value');
});

t.test('Phi-3: LLaMA-like, without biases; RoPE on part of each head is refused', async (t) => {
  const c = parseConfig(phi3(), FILE);
  t.equal(c.architecture, 'Phi3ForCausalLM');
  t.equal(c.attentionBias, false);
  t.equal(c.headDim, 96);
  t.equal(c.maxPositions, 4096);
  t.equal(parseConfig({ ...phi3(), partial_rotary_factor: 1.0 }, FILE).architecture, 'Phi3ForCausalLM', 'a factor of 1 is plain RoPE');
  throwsWith(t, () => parseConfig({ ...phi3(), partial_rotary_factor: 0.75 }, FILE), [FILE, '"partial_rotary_factor"', 'not supported', '0.75']);
});

t.test('Phi-2: LayerNorm, GELU, a parallel block, RoPE on 32 of 80 dimensions, biases', async (t) => {
  t.match(parseConfig(phi2(), FILE), {
    architecture: 'PhiForCausalLM',
    hiddenSize: 2560,
    intermediateSize: 10240,
    numHeads: 32,
    numKvHeads: 32,
    headDim: 80,
    norm: 'layer',
    normEps: 1e-5,
    mlp: 'gelu',
    rotaryDim: 32,
    attentionBias: true,
    tieWordEmbeddings: false,
    maxPositions: 2048,
    eosTokenIds: [50256],
  });
  t.equal(parseConfig({ ...phi2(), partial_rotary_factor: undefined }, FILE).rotaryDim, 40, "PhiConfig's default factor is 0.5");
  t.equal(parseConfig({ ...phi2(), hidden_act: 'gelu_pytorch_tanh' }, FILE).mlp, 'gelu', 'the same function under another name');
  throwsWith(t, () => parseConfig({ ...phi2(), hidden_act: 'gelu' }, FILE), [FILE, '"hidden_act"', 'tanh-approximated', '"gelu"']);
  throwsWith(t, () => parseConfig({ ...phi2(), qk_layernorm: true }, FILE), [FILE, '"qk_layernorm"', 'not supported']);
  throwsWith(t, () => parseConfig({ ...phi2(), partial_rotary_factor: 0.4375 }, FILE), [FILE, '"partial_rotary_factor"', 'even']);
  throwsWith(t, () => parseConfig({ ...phi2(), layer_norm_eps: undefined }, FILE), [FILE, '"layer_norm_eps"']);
});

t.test('GPT-2: its own field names, learned positions, a 4x MLP unless n_inner, a tied head', async (t) => {
  t.match(parseConfig(gpt2(), FILE), {
    architecture: 'GPT2LMHeadModel',
    hiddenSize: 768,
    intermediateSize: 3072,
    numLayers: 12,
    numHeads: 12,
    numKvHeads: 12,
    headDim: 64,
    norm: 'layer',
    mlp: 'gelu',
    rotaryDim: 0,
    attentionBias: true,
    tieWordEmbeddings: true,
    maxPositions: 1024,
    vocabSize: 50257,
  });
  t.equal(parseConfig({ ...gpt2(), n_inner: 1000 }, FILE).intermediateSize, 1000);
  throwsWith(t, () => parseConfig({ ...gpt2(), scale_attn_by_inverse_layer_idx: true }, FILE), [FILE, '"scale_attn_by_inverse_layer_idx"', 'not supported']);
  throwsWith(t, () => parseConfig({ ...gpt2(), n_head: 7 }, FILE), [FILE, '"head_dim"', 'not divisible by n_head']);
  throwsWith(t, () => parseConfig({ ...gpt2(), activation_function: 'relu' }, FILE), [FILE, '"activation_function"', '"relu"']);
});

t.test("MobiLlama: LLaMA's fields; its attention is multi-head whatever num_key_value_heads says", async (t) => {
  // mbzuai-oryx/MobiLlama's 0.5B config (its modelling code builds k/v with num_attention_heads).
  const c = parseConfig(
    {
      ...llama(),
      architectures: ['MobiLlamaForCausalLM'],
      hidden_size: 2048,
      intermediate_size: 5632,
      num_hidden_layers: 22,
      num_attention_heads: 32,
      num_key_value_heads: 4,
      head_dim: undefined,
    },
    FILE,
  );
  t.match(c, {
    architecture: 'MobiLlamaForCausalLM',
    numHeads: 32,
    numKvHeads: 32,
    headDim: 64,
    norm: 'rms',
    mlp: 'swiglu',
    rotaryDim: 64,
    attentionBias: false,
  });
});

t.test("readConfig reads config.json and merges generation_config.json's eos ids", async (t) => {
  const dir = t.testdir({
    'config.json': JSON.stringify({ ...llama(), eos_token_id: 2 }),
    'generation_config.json': JSON.stringify({ bos_token_id: 1, eos_token_id: [2, 7], temperature: 0.8, top_p: 0.95, top_k: 40 }),
  });
  const c = readConfig(dir);
  t.same(c.eosTokenIds, [2, 7], "the union of both files, config.json's first");
  const g = readGenerationConfig(dir);
  t.same(g, { bosTokenId: 1, eosTokenIds: [2, 7], defaults: { temperature: 0.8, topP: 0.95, topK: 40 } });
});

t.test('generation_config.json is optional, and fills in a missing bos', async (t) => {
  const dir = t.testdir({ 'config.json': JSON.stringify({ ...llama(), bos_token_id: null, eos_token_id: null }) });
  t.equal(readGenerationConfig(dir), null);
  t.same(readConfig(dir).eosTokenIds, []);
  const merged = mergeGenerationConfig(parseConfig({ ...llama(), bos_token_id: null }, FILE), {
    bosTokenId: 1,
    eosTokenIds: [3],
    defaults: {},
  });
  t.equal(merged.bosTokenId, 1);
  t.same(merged.eosTokenIds, [2, 3]);
});

t.test('missing or malformed files are named', async (t) => {
  const dir = t.testdir({ broken: { 'config.json': '{"hidden_size": 64,' } });
  throwsWith(t, () => readConfig(dir), [join(dir, 'config.json'), 'not found']);
  throwsWith(t, () => readConfig(join(dir, 'broken')), [join(dir, 'broken', 'config.json'), 'invalid JSON']);
  writeFileSync(join(dir, 'config.json'), JSON.stringify(llama()));
  writeFileSync(join(dir, 'generation_config.json'), '[');
  throwsWith(t, () => readConfig(dir), [join(dir, 'generation_config.json'), 'invalid JSON']);
});
