import t from 'tap';
import { StopMatcher } from '../../src/runtime/stops.js';

t.test('find returns the earliest complete stop string', async (t) => {
  const m = new StopMatcher(['\n\n', 'END', 'x']);
  t.equal(m.find('abc'), -1);
  t.equal(m.find('one END two\n\n'), 4);
  t.equal(m.find('ax'), 1);
});

t.test('safeLength holds back a suffix that may begin a stop string', async (t) => {
  const m = new StopMatcher(['END', '\n\n']);
  t.equal(m.safeLength('hello'), 5);
  t.equal(m.safeLength('hello E'), 6);
  t.equal(m.safeLength('hello EN'), 6);
  t.equal(m.safeLength('hello\n'), 5);
  t.equal(new StopMatcher([]).safeLength('anything'), 8, 'no stops: all is safe');
});
