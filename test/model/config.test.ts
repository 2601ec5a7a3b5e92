import t from 'tap';
import { parseGenerationConfig } from '../../src/model/config.js';
import { throwsWith } from '../helpers/errors.js';

t.test('bad generation_config.json fields name the file and the field', async (t) => {
  const file = '/m/generation_config.json';
  throwsWith(t, () => parseGenerationConfig({ top_p: 1.5 }, file), [file, '"top_p"', '(0, 1]']);
  throwsWith(t, () => parseGenerationConfig({ temperature: -1 }, file), [file, '"temperature"', '>= 0']);
  throwsWith(t, () => parseGenerationConfig({ top_k: 2.5 }, file), [file, '"top_k"', 'integer']);
  throwsWith(t, () => parseGenerationConfig({ eos_token_id: [2, 600] }, file, 512), [file, '"eos_token_id"', '[0, 512)']);
});
