/** What one MLP neuron owns: pruning keeps exactly those slices, and its size and FLOPs follow from them. */
import t from 'tap';
import { keepNeurons, neuronFlops, neuronSlices, neuronValues } from '../../src/arch/neurons.js';
import type { HostTensor, LayerWeights, ModelConfig } from '../../src/model/types.js';

/** t[r][c] = 100 r + c, so every value says where it came from. */
const tensor = (rows: number, cols: number): HostTensor => ({
  shape: [rows, cols],
  data: Float32Array.from({ length: rows * cols }, (_, i) => 100 * Math.floor(i / cols) + (i % cols)),
});
const hidden = 3;
const intermediate = 5;
const layer: LayerWeights = {
  inputNorm: { shape: [hidden], data: new Float32Array(hidden) },
  q: tensor(hidden, hidden),
  k: tensor(hidden, hidden),
  v: tensor(hidden, hidden),
  o: tensor(hidden, hidden),
  postNorm: { shape: [hidden], data: new Float32Array(hidden) },
  gate: tensor(intermediate, hidden),
  up: tensor(intermediate, hidden),
  down: tensor(hidden, intermediate),
};
const config = { hiddenSize: 576, intermediateSize: 1536, mlp: 'swiglu' } as ModelConfig;

t.test('a LLaMA neuron owns its gate and up rows and its down column: 3 x hidden values, 6 x hidden FLOPs', async (t) => {
  t.same(neuronSlices(config), [
    { tensor: 'gate', axis: 0 },
    { tensor: 'up', axis: 0 },
    { tensor: 'down', axis: 1 },
  ]);
  t.equal(neuronValues(config), 3 * 576);
  t.equal(neuronFlops(config), 6 * 576);
});

t.test('keeping neurons takes their slices in the order given and shares everything else', async (t) => {
  const kept = keepNeurons(layer, [4, 1], neuronSlices(config));
  t.same(Array.from(kept.gate!.data), [400, 401, 402, 100, 101, 102], 'rows 4 and 1 of gate');
  t.same(Array.from(kept.up.data), [400, 401, 402, 100, 101, 102], 'rows 4 and 1 of up');
  t.same(kept.down.shape, [hidden, 2]);
  t.same(Array.from(kept.down.data), [4, 1, 104, 101, 204, 201], 'columns 4 and 1 of down');
  t.equal(kept.q, layer.q, 'attention is the same object');
  t.equal(layer.gate!.shape[0], intermediate, 'the layer given is left as it was');
});

t.test("a GELU MLP's neuron (Phi's fc1/fc2, GPT-2's c_fc/c_proj) owns its up row, its bias entry and its down column", async (t) => {
  const gelu = { ...config, mlp: 'gelu' } as ModelConfig;
  t.same(neuronSlices(gelu), [
    { tensor: 'up', axis: 0 },
    { tensor: 'upBias', axis: 0, bias: true },
    { tensor: 'down', axis: 1 },
  ]);
  t.equal(neuronValues(gelu), 2 * 576 + 1, 'two vectors and one bias value');
  t.equal(neuronFlops(gelu), 4 * 576 + 1, 'two products and one bias add');
  const { gate: _, ...rest } = layer;
  const fc: LayerWeights = {
    ...rest,
    upBias: { shape: [intermediate], data: Float32Array.of(10, 11, 12, 13, 14) },
    downBias: { shape: [hidden], data: Float32Array.of(7, 8, 9) },
  };
  const kept = keepNeurons(fc, [3, 0], neuronSlices(gelu));
  t.same(Array.from(kept.upBias!.data), [13, 10], 'bias entries 3 and 0');
  t.same(Array.from(kept.up.data), [300, 301, 302, 0, 1, 2]);
  t.same(Array.from(kept.down.data), [3, 0, 103, 100, 203, 200]);
  t.equal(kept.downBias, fc.downBias, "down's bias is every neuron's: kept whole");
  t.throws(() => keepNeurons(rest as LayerWeights, [0], neuronSlices(gelu)), /an MLP neuron owns upBias, which this layer lacks/);
});
