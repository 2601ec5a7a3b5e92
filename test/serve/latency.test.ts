/**
 * The latency-budget router's model: a token waits for one step of every running batch (they
 * share one run queue), its own batch one row larger; each prompt chunk waits for one step of
 * each batch running now. Step costs are measured per batch size.
 */
import t from 'tap';
import { LatencyModel } from '../../src/serve/latency.js';

function model(): LatencyModel {
  const latency = new LatencyModel();
  latency.set('dense', 2, 20); // 2 ms per prompt token, 20 ms per step alone
  latency.set('s80', 1, 10);
  return latency;
}

const request = { decodeProfile: 'dense', prefillProfile: 'dense', promptTokens: 100, maxTokens: 10, prefillChunk: 64 };

t.test('alone: the prompt, then a step per token', async (t) => {
  t.equal(model().predictMs({ ...request, running: [] }), 100 * 2 + 10 * 20);
});

t.test('joining a running batch: its step at one more row, and each prompt chunk waits a step', async (t) => {
  const latency = model();
  latency.recordStep('dense', 3, 30);
  latency.recordStep('dense', 4, 34);
  const running = [{ profile: 'dense', rows: 3 }];
  t.equal(latency.predictMs({ ...request, running }), 100 * 2 + 2 * 30 + 10 * 34, 'two chunks wait for a 3-row step; tokens cost a 4-row step');
});

t.test('other tiers running: their steps come between ours', async (t) => {
  const latency = model();
  const running = [{ profile: 's80', rows: 1 }];
  t.equal(latency.predictMs({ ...request, running }), 100 * 2 + 2 * 10 + 10 * (20 + 10));
});

t.test('a batch size never measured costs what the nearest measured one does', async (t) => {
  const latency = model();
  latency.recordStep('dense', 4, 34);
  t.equal(latency.stepMs('dense', 2), 20, 'nearest is 1');
  t.equal(latency.stepMs('dense', 6), 34, 'nearest is 4');
});

t.test('steps alone update the profile; requests count as samples', async (t) => {
  const latency = model();
  latency.recordStep('dense', 1, 30);
  t.equal(latency.get('dense')?.decodeMsPerToken, 0.8 * 20 + 0.2 * 30, 'an exponential moving average');
  latency.recordStep('dense', 2, 50);
  t.equal(latency.get('dense')?.decodeMsPerToken, 22, 'a step of two does not say what one alone costs');
  latency.recordPrefill('s80', 'dense', 10, 40);
  t.equal(latency.get('dense')?.prefillMsPerToken, 0.8 * 2 + 0.2 * 4);
  t.equal(latency.get('s80')?.samples, 1);
  t.throws(() => latency.predictMs({ ...request, decodeProfile: 'unknown', running: [] }), /no latency profile for unknown/);
});
