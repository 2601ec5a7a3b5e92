/** openapi.yaml is generated from the route schemas; it must not drift from them. */
import { readFileSync } from 'node:fs';
import t from 'tap';
import { generateOpenApiYaml, OPENAPI_PATH } from '../scripts/openapi.js';

t.test('the committed openapi.yaml matches the route schemas', async (t) => {
  const committed = readFileSync(OPENAPI_PATH, 'utf8');
  const generated = await generateOpenApiYaml();
  t.equal(committed, generated, 'openapi.yaml is out of date: run `npm run openapi` and commit the result');
});
