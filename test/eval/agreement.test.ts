import t from 'tap';
import { firstDivergence, tokenAgreement } from '../../src/eval/agreement.js';

t.test('token agreement counts equal positions over the longer output', async (t) => {
  t.equal(tokenAgreement([1, 2, 3, 4], [1, 2, 3, 4]), 1);
  t.equal(tokenAgreement([1, 2, 3, 4], [1, 9, 3, 4]), 0.75);
  t.equal(tokenAgreement([1, 2, 3, 4], [1, 2]), 0.5, 'stopping early loses the missing positions');
  t.equal(tokenAgreement([1, 2], [1, 2, 3, 4]), 0.5, 'running on past the dense end loses too');
  t.equal(tokenAgreement([], []), 1, 'two empty outputs agree');
});

t.test('first divergence is the first differing position, or where one output ends', async (t) => {
  t.equal(firstDivergence([1, 2, 3], [1, 2, 3]), 3);
  t.equal(firstDivergence([1, 2, 3], [9, 2, 3]), 0);
  t.equal(firstDivergence([1, 2, 3], [1, 2, 9]), 2);
  t.equal(firstDivergence([1, 2, 3], [1, 2]), 2);
});
