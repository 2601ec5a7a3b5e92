/** The legacy logprobs object: built token by token, and never with a number JSON cannot carry. */
import t from 'tap';
import { ApiError } from '../../src/openai/errors.js';
import { LogprobsBuilder } from '../../src/openai/logprobs.js';
import type { TokenInfo } from '../../src/runtime/types.js';

const token = (id: number, text: string, logprob: number | null, top: [string, number][] | null = null): TokenInfo => ({
  id,
  text,
  logprob,
  top: top?.map(([alt, lp]) => ({ token: alt, logprob: lp })) ?? null,
});

t.test('offsets count code points across calls', async (t) => {
  const b = new LogprobsBuilder();
  t.same(
    b.next([
      token(1, 'hé', null),
      token(2, '😀', -0.5, [
        ['😀', -0.5],
        ['x', -1],
      ]),
    ]),
    {
      tokens: ['hé', '😀'],
      token_logprobs: [null, -0.5],
      top_logprobs: [null, { '😀': -0.5, x: -1 }],
      text_offset: [0, 2],
    },
  );
  t.same(b.next([token(3, '!', -2)]).text_offset, [3]);
});

t.test("a non-finite logprob, the token's or an alternative's, is a 500 non_finite_logits", async (t) => {
  for (const [what, bad] of [
    ['NaN', token(7, 'a', NaN)],
    ['-Infinity', token(7, 'a', -Infinity)],
    [
      "an alternative's Infinity",
      token(7, 'a', -1, [
        ['a', -1],
        ['b', Infinity],
      ]),
    ],
    ["an alternative's NaN", token(7, 'a', -1, [['b', NaN]])],
  ] as const) {
    let thrown: unknown = null;
    try {
      new LogprobsBuilder().next([token(1, 'x', -0.1), bad]);
    } catch (err) {
      thrown = err;
    }
    t.ok(thrown instanceof ApiError, what);
    t.match(thrown, { statusCode: 500, type: 'server_error', code: 'non_finite_logits', message: /non-finite values.*token 7/ }, what);
  }
});
