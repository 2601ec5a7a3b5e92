/** GET /v1/models: OpenAI's model list, with vLLM's max_model_len and each model's sparsity tiers. */
import t from 'tap';
import type { ModelCard, ModelList } from '../../../src/openai/schemas.js';
import { loadServedModel } from '../../../src/serve/engine.js';
import { testApp } from '../../helpers/app.js';
import { calibratedModelDir } from '../../helpers/calibrated-model.js';
import { testServedModel } from '../../helpers/served-model.js';
import { STORIES_DIR } from '../../helpers/stories.js';

const model = await testServedModel();
t.teardown(() => model.close());

t.test('lists every served model', async (t) => {
  const app = await testApp(t, { models: [model] });
  const res = await app.inject({ method: 'GET', url: '/v1/models' });
  t.equal(res.statusCode, 200);
  const list = res.json<ModelList>();
  t.equal(list.object, 'list');
  t.equal(list.data.length, 1);
  const { tiers, per_token: perToken, ...card } = list.data[0];
  t.same(card, {
    id: model.id,
    object: 'model',
    created: model.created,
    owned_by: 'sparse-slm-server',
    max_model_len: model.contextLength,
    quantization: 'none',
  });
  t.match(perToken, { selector: 'gate-rerank', block: 1 }, 'per-token activation needs no calibration');
  t.same(
    perToken!.tiers.map((tier) => tier.name),
    ['s25', 's50', 's70', 's80', 's90'],
  );
  t.same(
    tiers.map((tier) => tier.name),
    ['dense'],
    'an uncalibrated model serves dense only',
  );
  t.match(tiers[0], { sparsity: 0, traffic_bound: 1, loaded: true });
});

t.test('each tier with its neurons, traffic bound and latency profile', async (t) => {
  const calibrated = await loadServedModel(await calibratedModelDir(), { intraOpThreads: 1 });
  t.teardown(() => calibrated.close());
  const app = await testApp(t, { models: [calibrated] });
  const [card] = (await app.inject({ method: 'GET', url: '/v1/models' })).json<ModelList>().data;
  t.same(
    card.tiers.map((tier) => [tier.name, tier.sparsity]),
    [
      ['dense', 0],
      ['s50', 0.5],
      ['s80', 0.8],
    ],
  );
  for (const [i, tier] of card.tiers.entries()) {
    t.same(Object.keys(tier).sort(), ['loaded', 'memory_bytes', 'name', 'neurons_per_layer', 'profile', 'sparsity', 'traffic_bound']);
    t.same(
      tier,
      (() => {
        const info = calibrated.tiers()[i];
        const profile =
          info.profile === null
            ? null
            : { prefill_ms_per_token: info.profile.prefillMsPerToken, decode_ms_per_token: info.profile.decodeMsPerToken, samples: info.profile.samples };
        return {
          name: info.name,
          sparsity: info.sparsity,
          neurons_per_layer: info.neuronsPerLayer,
          traffic_bound: info.trafficBound,
          profile,
          loaded: info.loaded,
          memory_bytes: info.memoryBytes,
        };
      })(),
      `${tier.name} as the model reports it`,
    );
    t.ok(tier.memory_bytes > 0, `${tier.name}: preloaded, so it holds memory`);
    if (tier.profile === null) throw new Error(`${tier.name}: no profile after preloading`);
    t.ok(tier.profile.decode_ms_per_token > 0 && tier.profile.prefill_ms_per_token > 0);
  }
  t.ok(card.tiers[2].neurons_per_layer < card.tiers[1].neurons_per_layer && card.tiers[1].neurons_per_layer < card.tiers[0].neurons_per_layer);
  t.ok(card.tiers[2].traffic_bound > card.tiers[1].traffic_bound && card.tiers[1].traffic_bound > 1);
});

t.test('an empty list when no model is loaded', async (t) => {
  const app = await testApp(t, { models: [] });
  t.same((await app.inject({ method: 'GET', url: '/v1/models' })).json(), { object: 'list', data: [] });
});

t.test('GET /v1/models/{model}: the card the list holds for it', async (t) => {
  const calibrated = await loadServedModel(await calibratedModelDir(), { intraOpThreads: 1 });
  t.teardown(() => calibrated.close());
  const app = await testApp(t, { models: [model, calibrated] });
  const list = (await app.inject({ method: 'GET', url: '/v1/models' })).json<ModelList>();
  for (const card of list.data) {
    const res = await app.inject({ method: 'GET', url: `/v1/models/${encodeURIComponent(card.id)}` });
    t.equal(res.statusCode, 200);
    t.same(res.json(), card, `${card.id}: the same card`);
  }
});

t.test('GET /v1/models/{model}: an id that needs URL-encoding, however long', async (t) => {
  const ids = ['HuggingFaceTB/SmolLM2 135M:ft?v=1#2', `org/${'x'.repeat(300)}`];
  const dir = await calibratedModelDir();
  const served = await Promise.all(ids.map((id) => loadServedModel(dir, { id, intraOpThreads: 1, preload: false })));
  t.teardown(() => Promise.all(served.map((m) => m.close())));
  const app = await testApp(t, { models: served });
  for (const id of ids) {
    const res = await app.inject({ method: 'GET', url: `/v1/models/${encodeURIComponent(id)}` });
    t.equal(res.statusCode, 200, res.body);
    t.equal(res.json<ModelCard>().id, id);
  }
});

t.test("GET /v1/models/{model}: 404 in OpenAI's shape for an unknown id, quoting an excerpt of a long one", async (t) => {
  const app = await testApp(t, { models: [model] });
  const res = await app.inject({ method: 'GET', url: '/v1/models/nope' });
  t.equal(res.statusCode, 404);
  t.same(res.json(), { error: { message: "The model 'nope' does not exist.", type: 'invalid_request_error', param: 'model', code: 'model_not_found' } });

  const long = 'y'.repeat(5000);
  const tooLong = await app.inject({ method: 'GET', url: `/v1/models/${long}` });
  t.equal(tooLong.statusCode, 404);
  t.match(tooLong.json(), { error: { code: 'model_not_found', message: /^The model 'y{64}… \(5000 characters\)' does not exist\.$/ } });

  const unencoded = await app.inject({ method: 'GET', url: `/v1/models/${model.id}/extra` });
  t.equal(unencoded.statusCode, 404, 'a slash must be encoded: an unknown URL otherwise');
});

t.test('a model served quantised says so', async (t) => {
  const quantised = await loadServedModel(STORIES_DIR, { intraOpThreads: 1, quant: 'int4', preload: false });
  t.teardown(() => quantised.close());
  const app = await testApp(t, { models: [quantised] });
  const card = (await app.inject({ method: 'GET', url: `/v1/models/${quantised.id}` })).json<ModelCard>();
  t.equal(card.quantization, 'int4');
});
