import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { readSafetensors, writeSafetensors, type SafetensorsDtype } from '../../src/model/safetensors.js';
import { writeTestModel } from '../../src/arch/testmodel.js';
import type { HostTensor } from '../../src/model/types.js';
import { tensorSpecs, loadWeights } from '../../src/arch/checkpoints.js';
import { throwsWith } from '../helpers/errors.js';

t.test('a tiny untied checkpoint loads into the HF layout', async (t) => {
  const dir = t.testdir();
  const { config } = await writeTestModel(dir, { seed: 3 });
  const w = loadWeights(dir, config);
  const onDisk = readSafetensors(join(dir, 'model.safetensors'));

  t.equal(w.layers.length, config.numLayers);
  t.same(w.embed.shape, [config.vocabSize, config.hiddenSize]);
  t.same(w.lmHead.shape, [config.vocabSize, config.hiddenSize]);
  t.not(w.lmHead, w.embed, 'an untied head is its own tensor');
  t.same(w.lmHead.data, onDisk['lm_head.weight'].data);
  t.same(w.norm.data, onDisk['model.norm.weight'].data);

  const l1 = w.layers[1];
  const qDim = config.numHeads * config.headDim;
  const kvDim = config.numKvHeads * config.headDim;
  t.same(l1.q.shape, [qDim, config.hiddenSize]);
  t.same(l1.k.shape, [kvDim, config.hiddenSize]);
  t.same(l1.v.shape, [kvDim, config.hiddenSize]);
  t.same(l1.o.shape, [config.hiddenSize, qDim]);
  t.same(l1.gate!.shape, [config.intermediateSize, config.hiddenSize]);
  t.same(l1.down.shape, [config.hiddenSize, config.intermediateSize]);
  // Each field holds the tensor of its own name (a swapped gate/up would not show in shapes).
  const names: [HostTensor, string][] = [
    [l1.inputNorm, 'input_layernorm.weight'],
    [l1.postNorm!, 'post_attention_layernorm.weight'],
    [l1.q, 'self_attn.q_proj.weight'],
    [l1.k, 'self_attn.k_proj.weight'],
    [l1.v, 'self_attn.v_proj.weight'],
    [l1.o, 'self_attn.o_proj.weight'],
    [l1.gate!, 'mlp.gate_proj.weight'],
    [l1.up, 'mlp.up_proj.weight'],
    [l1.down, 'mlp.down_proj.weight'],
  ];
  for (const [tensor, name] of names) t.same(tensor.data, onDisk[`model.layers.1.${name}`].data, name);
  t.equal(l1.qBias, undefined, 'no biases when the config has none');
});

t.test('tied embeddings share one tensor; biases load when the config has them', async (t) => {
  const dir = t.testdir();
  const { config } = await writeTestModel(dir, { architecture: 'Qwen2ForCausalLM', tie: true, layers: 1 });
  t.notOk('lm_head.weight' in readSafetensors(join(dir, 'model.safetensors')), 'a tied checkpoint has no lm_head.weight');
  const w = loadWeights(dir, config);
  t.equal(w.lmHead, w.embed, 'the head is the embedding itself');
  const kvDim = config.numKvHeads * config.headDim;
  t.same(w.layers[0].qBias?.shape, [config.numHeads * config.headDim]);
  t.same(w.layers[0].kBias?.shape, [kvDim]);
  t.same(w.layers[0].vBias?.shape, [kvDim]);
});

t.test('the tensor list follows the config', async (t) => {
  const dir = t.testdir();
  const { config } = await writeTestModel(dir, { layers: 2, tie: false });
  const names = tensorSpecs(config).map((s) => s.name);
  t.equal(names.length, 1 + 2 * 9 + 2, 'embed, 9 per layer, final norm, head');
  t.ok(names.includes('model.layers.1.mlp.down_proj.weight'));
  t.equal(tensorSpecs({ ...config, attentionBias: true, tieWordEmbeddings: true }).length, 1 + 2 * 12 + 1);
});

/** Rewrites the test model's checkpoint with `edit` applied to its tensors. */
function rewrite(dir: string, edit: (tensors: Record<string, HostTensor>) => void, dtype: SafetensorsDtype = 'F32'): string {
  const path = join(dir, 'model.safetensors');
  const tensors = readSafetensors(path);
  edit(tensors);
  writeSafetensors(path, tensors, dtype);
  return path;
}

t.test('a wrong shape fails naming the tensor, the file and both shapes', async (t) => {
  const dir = t.testdir();
  const { config } = await writeTestModel(dir);
  const name = 'model.layers.1.self_attn.k_proj.weight';
  const path = rewrite(dir, (ts) => {
    ts[name] = { shape: [config.hiddenSize, config.hiddenSize], data: new Float32Array(config.hiddenSize * config.hiddenSize) };
  });
  const kvDim = config.numKvHeads * config.headDim;
  throwsWith(t, () => loadWeights(dir, config), [path, `"${name}"`, `has shape [64, 64]`, `expected [${kvDim}, 64]`]);

  // Same element count, other layout: a transposed matrix must fail too.
  const down = 'model.layers.0.mlp.down_proj.weight';
  rewrite(dir, (ts) => {
    ts[name] = { shape: [kvDim, config.hiddenSize], data: new Float32Array(kvDim * config.hiddenSize) };
    ts[down] = { shape: [config.intermediateSize, config.hiddenSize], data: ts[down].data };
  });
  throwsWith(t, () => loadWeights(dir, config), [`"${down}"`, '[160, 64]', 'expected [64, 160]']);
});

t.test('a missing tensor fails naming the tensor, the file and the expected shape', async (t) => {
  const dir = t.testdir();
  const { config } = await writeTestModel(dir);
  const path = rewrite(dir, (ts) => {
    delete ts['model.norm.weight'];
  });
  throwsWith(t, () => loadWeights(dir, config), [path, '"model.norm.weight"', 'missing', `[${config.hiddenSize}]`]);

  rewrite(dir, (ts) => {
    ts['model.norm.weight'] = { shape: [config.hiddenSize], data: new Float32Array(config.hiddenSize) };
    delete ts['lm_head.weight'];
  });
  throwsWith(t, () => loadWeights(dir, config), ['"lm_head.weight"', 'missing'], 'untied head');
  t.ok(loadWeights(dir, { ...config, tieWordEmbeddings: true }), 'the same file loads as a tied model');

  throwsWith(t, () => loadWeights(dir, { ...config, attentionBias: true }), ['"model.layers.0.self_attn.q_proj.bias"', 'missing'], 'bias');
});

t.test('a sharded checkpoint loads the same weights as one file', async (t) => {
  const single = t.testdir();
  const { config } = await writeTestModel(single, { seed: 5 });
  const whole = loadWeights(single, config);

  const sharded = join(single, 'sharded');
  const tensors = readSafetensors(join(single, 'model.safetensors'));
  const names = Object.keys(tensors);
  const half = Math.floor(names.length / 2);
  const shards = [names.slice(0, half), names.slice(half)];
  const weightMap: Record<string, string> = {};
  mkdirSync(sharded);
  shards.forEach((group, i) => {
    const file = `model-0000${i + 1}-of-00002.safetensors`;
    writeSafetensors(join(sharded, file), Object.fromEntries(group.map((n) => [n, tensors[n]])));
    for (const n of group) weightMap[n] = file;
  });
  writeFileSync(join(sharded, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
  t.same(loadWeights(sharded, config), whole);
});

t.test('a NaN or an infinity in any dtype is refused, naming the file, the tensor and the first bad index', async (t) => {
  for (const dtype of ['F32', 'F16', 'BF16'] as const) {
    const dir = t.testdir();
    const { config } = await writeTestModel(dir, { dtype });
    t.ok(loadWeights(dir, config), `${dtype}: the written model loads`);
    const up = 'model.layers.1.mlp.up_proj.weight';
    // Row 3, column 5 of up [160, 64]: flat index 3 * 64 + 5 = 197.
    const path = rewrite(
      dir,
      (ts) => {
        ts[up].data[3 * 64 + 5] = NaN;
        ts[up].data[100 * 64] = Infinity;
      },
      dtype,
    );
    throwsWith(
      t,
      () => loadWeights(dir, config),
      [path, `"${up}"`, 'NaN at index 197', '[3, 5] of shape [160, 64]', 'and 1 more non-finite value'],
      `${dtype} NaN`,
    );
    rewrite(
      dir,
      (ts) => {
        ts[up].data.fill(0.5);
        ts['model.norm.weight'].data[7] = -Infinity;
      },
      dtype,
    );
    throwsWith(t, () => loadWeights(dir, config), [path, '"model.norm.weight"', '-Infinity at index 7', '[7] of shape [64]'], `${dtype} -Infinity`);
  }
});

t.test('the values of a sharded checkpoint are checked in the shard that holds them', async (t) => {
  const dir = t.testdir();
  const { config } = await writeTestModel(dir, { tie: true });
  const tensors = readSafetensors(join(dir, 'model.safetensors'));
  tensors['model.embed_tokens.weight'].data[42] = NaN;
  rmSync(join(dir, 'model.safetensors'));
  const names = Object.keys(tensors);
  const shard = (i: number) => `model-0000${i + 1}-of-00002.safetensors`;
  const weightMap: Record<string, string> = {};
  [names.slice(0, 3), names.slice(3)].forEach((group, i) => {
    writeSafetensors(join(dir, shard(i)), Object.fromEntries(group.map((n) => [n, tensors[n]])));
    for (const n of group) weightMap[n] = shard(i);
  });
  writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ weight_map: weightMap }));
  const holder = shard(names.indexOf('model.embed_tokens.weight') < 3 ? 0 : 1);
  throwsWith(t, () => loadWeights(dir, config), [join(dir, holder), '"model.embed_tokens.weight"', 'NaN at index 42']);
});

t.test('a Phi-3 checkpoint stacks q/k/v and gate/up by rows; the loader splits them into the fields', async (t) => {
  const dir = t.testdir();
  const { config } = await writeTestModel(dir, { architecture: 'Phi3ForCausalLM', seed: 9 });
  const onDisk = readSafetensors(join(dir, 'model.safetensors'));
  const layer = (name: string) => onDisk[`model.layers.1.${name}`];
  t.notOk(layer('self_attn.q_proj.weight'), 'no separate q_proj');
  t.notOk(layer('mlp.gate_proj.weight'), 'no separate gate_proj');
  const qkv = layer('self_attn.qkv_proj.weight');
  const gateUp = layer('mlp.gate_up_proj.weight');
  const d = config.hiddenSize;
  const qDim = config.numHeads * config.headDim;
  const kvDim = config.numKvHeads * config.headDim;
  t.same(qkv.shape, [qDim + 2 * kvDim, d]);
  t.same(gateUp.shape, [2 * config.intermediateSize, d]);

  const w = loadWeights(dir, config).layers[1];
  const rows = (t: HostTensor, from: number, to: number) => t.data.subarray(from * d, to * d);
  t.same(w.q.data, rows(qkv, 0, qDim), 'q: the first rows');
  t.same(w.k.data, rows(qkv, qDim, qDim + kvDim), 'k: the next');
  t.same(w.v.data, rows(qkv, qDim + kvDim, qDim + 2 * kvDim), 'v: the last');
  t.same(w.gate!.data, rows(gateUp, 0, config.intermediateSize), 'gate: the first half, as HF chunks it');
  t.same(w.up.data, rows(gateUp, config.intermediateSize, 2 * config.intermediateSize), 'up: the second half');
  t.same(w.gate!.shape, [config.intermediateSize, d]);
  t.same(w.o.data, layer('self_attn.o_proj.weight').data);
  t.same(
    tensorSpecs(config)
      .filter((s) => s.name.startsWith('model.layers.0.'))
      .map((s) => s.name.slice('model.layers.0.'.length)),
    [
      'input_layernorm.weight',
      'self_attn.qkv_proj.weight',
      'self_attn.o_proj.weight',
      'post_attention_layernorm.weight',
      'mlp.gate_up_proj.weight',
      'mlp.down_proj.weight',
    ],
  );
});

t.test("a Phi-2 checkpoint: transformers' names, a bias on every projection, the norm and the head", async (t) => {
  const dir = t.testdir();
  const { config } = await writeTestModel(dir, { architecture: 'PhiForCausalLM', seed: 4 });
  const specs = tensorSpecs(config);
  t.same(
    specs.filter((s) => s.name.startsWith('model.layers.0.')).map((s) => s.name.slice('model.layers.0.'.length)),
    [
      'input_layernorm.weight',
      'input_layernorm.bias',
      'self_attn.q_proj.weight',
      'self_attn.k_proj.weight',
      'self_attn.v_proj.weight',
      'self_attn.dense.weight',
      'self_attn.q_proj.bias',
      'self_attn.k_proj.bias',
      'self_attn.v_proj.bias',
      'self_attn.dense.bias',
      'mlp.fc1.weight',
      'mlp.fc1.bias',
      'mlp.fc2.weight',
      'mlp.fc2.bias',
    ],
  );
  t.same(
    specs.filter((s) => !s.name.startsWith('model.layers.')).map((s) => s.name),
    ['model.embed_tokens.weight', 'model.final_layernorm.weight', 'model.final_layernorm.bias', 'lm_head.weight', 'lm_head.bias'],
  );
  const onDisk = readSafetensors(join(dir, 'model.safetensors'));
  const w = loadWeights(dir, config);
  const l = w.layers[1];
  t.same(l.up.data, onDisk['model.layers.1.mlp.fc1.weight'].data, 'fc1 is the MLP input projection');
  t.same(l.upBias!.data, onDisk['model.layers.1.mlp.fc1.bias'].data);
  t.same(l.down.data, onDisk['model.layers.1.mlp.fc2.weight'].data, 'fc2 its output projection');
  t.same(l.o.data, onDisk['model.layers.1.self_attn.dense.weight'].data);
  t.equal(l.postNorm, undefined, 'no MLP norm: the block is parallel');
  t.equal(l.gate, undefined);
  t.same(w.lmHeadBias!.data, onDisk['lm_head.bias'].data);
  t.same(w.normBias!.data, onDisk['model.final_layernorm.bias'].data);
});

t.test('a GPT-2 checkpoint: Conv1D weights ([in, out]) transposed at load, c_attn split into q, k, v by columns, either root', async (t) => {
  const dir = t.testdir();
  const { config } = await writeTestModel(dir, { architecture: 'GPT2LMHeadModel', seed: 5 });
  const d = config.hiddenSize;
  const onDisk = readSafetensors(join(dir, 'model.safetensors'));
  t.same(onDisk['transformer.h.0.attn.c_attn.weight'].shape, [d, 3 * d], 'stored [in, 3 * hidden]');
  t.same(onDisk['transformer.h.0.mlp.c_fc.weight'].shape, [d, config.intermediateSize], 'stored [in, out]');
  t.notOk('lm_head.weight' in onDisk, 'tied: no head of its own');
  const w = loadWeights(dir, config);
  const cAttn = onDisk['transformer.h.1.attn.c_attn.weight'];
  const cAttnBias = onDisk['transformer.h.1.attn.c_attn.bias'];
  const l = w.layers[1];
  // q row r, column c is c_attn[c][r] (q: columns 0..d, k: d..2d, v: 2d..3d).
  for (const [name, field, offset] of [
    ['q', l.q, 0],
    ['k', l.k, d],
    ['v', l.v, 2 * d],
  ] as const) {
    t.same(field.shape, [d, d]);
    const expected = Float32Array.from({ length: d * d }, (_, i) => cAttn.data[(i % d) * 3 * d + offset + Math.floor(i / d)]);
    t.same(field.data, expected, `${name}: columns ${offset}..${offset + d} of c_attn, transposed`);
  }
  t.same(l.kBias!.data, cAttnBias.data.subarray(d, 2 * d), 'the k bias: the middle third of c_attn.bias');
  const cFc = onDisk['transformer.h.1.mlp.c_fc.weight'];
  t.equal(l.up.data[3 * d + 5], cFc.data[5 * config.intermediateSize + 3], 'up row 3, column 5 = c_fc[5][3]');
  t.same(w.positions!.data, onDisk['transformer.wpe.weight'].data, 'learned positions');
  t.equal(w.lmHead, w.embed, 'the head is the token embedding');

  // The original checkpoints (openai-community/gpt2) have no `transformer.` root.
  const bare = t.testdir();
  writeSafetensors(
    join(bare, 'model.safetensors'),
    Object.fromEntries(Object.entries(onDisk).map(([name, tensor]) => [name.replace(/^transformer\./, ''), tensor])),
  );
  const fromBare = loadWeights(bare, config);
  t.same(fromBare.layers[1].q.data, l.q.data, 'the same weights without the root');
  t.same(fromBare.positions!.data, w.positions!.data);
});

t.test("a MobiLlama checkpoint holds its one MLP once; every layer reads it, from whichever layer's name holds it", async (t) => {
  const dir = t.testdir();
  const { config } = await writeTestModel(dir, { architecture: 'MobiLlamaForCausalLM', layers: 3, seed: 6 });
  const onDisk = readSafetensors(join(dir, 'model.safetensors'));
  const mlpNames = Object.keys(onDisk).filter((n) => n.includes('.mlp.'));
  t.same(mlpNames.sort(), ['model.layers.0.mlp.down_proj.weight', 'model.layers.0.mlp.gate_proj.weight', 'model.layers.0.mlp.up_proj.weight']);
  t.ok('model.layers.2.self_attn.q_proj.weight' in onDisk, 'attention is per layer');
  const w = loadWeights(dir, config);
  for (const l of [1, 2]) {
    t.equal(w.layers[l].gate, w.layers[0].gate, `layer ${l} shares layer 0's gate (one tensor in memory)`);
    t.equal(w.layers[l].down, w.layers[0].down);
  }
  t.not(w.layers[1].q, w.layers[0].q);

  // Saved under another layer's name (save_pretrained keeps one name of a shared tensor).
  const moved = t.testdir();
  writeSafetensors(
    join(moved, 'model.safetensors'),
    Object.fromEntries(Object.entries(onDisk).map(([name, x]) => [name.replace('model.layers.0.mlp.', 'model.layers.1.mlp.'), x])),
  );
  const fromMoved = loadWeights(moved, config);
  t.same(fromMoved.layers[2].up.data, w.layers[0].up.data, 'the same MLP, found under layer 1');
  t.equal(fromMoved.layers[0].up, fromMoved.layers[2].up);
});
