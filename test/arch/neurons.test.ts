/** What one MLP neuron owns: pruning keeps exactly those slices, and its size and FLOPs follow from them. */
import t from 'tap';
import { keepNeurons, neuronFlops, neuronSlices, neuronValues, type NeuronSlice } from '../../src/arch/neurons.js';
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
const config = { hiddenSize: 576, intermediateSize: 1536 } as ModelConfig;

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

t.test('a per-neuron bias is one value and one add, and is kept entry by entry', async (t) => {
  // LLaMA's MLP has no bias: q's bias stands in for one such as Phi's fc1 bias.
  const withBias: NeuronSlice[] = [...neuronSlices(config), { tensor: 'qBias', axis: 0, bias: true }];
  const biased = { ...layer, qBias: { shape: [intermediate], data: Float32Array.of(10, 11, 12, 13, 14) } };
  t.same(Array.from(keepNeurons(biased, [3, 0], withBias).qBias!.data), [13, 10]);
  t.throws(() => keepNeurons(layer, [0], withBias), /an MLP neuron owns qBias, which this layer lacks/);
});
