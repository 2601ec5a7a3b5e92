/** GET /v1/models: OpenAI's model list, with vLLM's max_model_len. */
import t from 'tap';
import { testApp } from '../../helpers/app.js';
import { testServedModel } from '../../helpers/served-model.js';

const model = await testServedModel();
t.teardown(() => model.close());

t.test('lists every served model', async (t) => {
  const app = await testApp(t, { models: [model] });
  const res = await app.inject({ method: 'GET', url: '/v1/models' });
  t.equal(res.statusCode, 200);
  t.same(res.json(), {
    object: 'list',
    data: [{ id: model.id, object: 'model', created: model.created, owned_by: 'sparse-slm-server', max_model_len: model.contextLength }],
  });
});

t.test('an empty list when no model is loaded', async (t) => {
  const app = await testApp(t, { models: [] });
  t.same((await app.inject({ method: 'GET', url: '/v1/models' })).json(), { object: 'list', data: [] });
});
