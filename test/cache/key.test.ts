/** Cache keys: namespaced, versioned, short, and distinct for anything that changes the scores. */
import { createHash } from 'node:crypto';
import t from 'tap';
import { cacheKey, hashTokens } from '../../src/cache/key.js';
import type { ActivationKey } from '../../src/cache/types.js';

const base: ActivationKey = { modelHash: 'ab12cd', metric: 'corrected-gxo', tokens: [1, 2, 3] };

t.test('format: prefix, v1, model hash, metric, sha256 of the tokens as int32 LE', async (t) => {
  // Written out by hand: 1, 256 and -1 as little-endian int32.
  const bytes = Buffer.from([1, 0, 0, 0, 0, 1, 0, 0, 0xff, 0xff, 0xff, 0xff]);
  const digest = createHash('sha256').update(bytes).digest('hex');
  t.equal(cacheKey('sparse-slm:', { ...base, tokens: [1, 256, -1] }), `sparse-slm:v1:ab12cd:corrected-gxo:${digest}`);
  t.equal(hashTokens([]), createHash('sha256').update(Buffer.alloc(0)).digest('hex'), 'an empty prompt has a key too');
});

t.test('the same key always gives the same string', async (t) => {
  t.equal(cacheKey('p:', base), cacheKey('p:', { ...base, tokens: [...base.tokens] }));
});

t.test('anything that changes the scores changes the key', async (t) => {
  const variants: ActivationKey[] = [
    base,
    { ...base, tokens: [1, 2, 4] },
    { ...base, tokens: [3, 2, 1] },
    { ...base, tokens: [1, 2] },
    { ...base, tokens: [1, 2, 3, 0] },
    { ...base, metric: 'gxo' },
    { ...base, modelHash: 'ab12ce' },
  ];
  const keys = new Set(variants.map((k) => cacheKey('p:', k)));
  t.equal(keys.size, variants.length);
  t.not(cacheKey('a:', base), cacheKey('b:', base), 'and so does the prefix');
});

t.test('a ":" inside a field cannot make two keys collide', async (t) => {
  const a = cacheKey('p:', { modelHash: 'm:x', metric: 'y', tokens: [1] });
  const b = cacheKey('p:', { modelHash: 'm', metric: 'x:y', tokens: [1] });
  t.not(a, b);
});

t.test('keys stay short however long the prompt', async (t) => {
  const long = Array.from({ length: 10_000 }, (_, i) => i);
  t.ok(cacheKey('sparse-slm:', { ...base, tokens: long }).length < 120);
});

t.test('a token that is not a 32-bit integer is refused, not silently wrapped', async (t) => {
  for (const bad of [1.5, 2 ** 31, -(2 ** 31) - 1, NaN]) {
    t.throws(() => cacheKey('p:', { ...base, tokens: [bad] }), RangeError, String(bad));
  }
});
