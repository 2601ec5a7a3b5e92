/**
 * Tokenizing on worker threads gives exactly the ids of tokenizing inline, for both shipped
 * tokenizers (byte-level BPE and SentencePiece-style BPE), and a task can be dropped.
 */
import { join } from 'node:path';
import t from 'tap';
import { PROJECT_ROOT } from '../../src/project.js';
import { ModelTokenizer } from '../../src/model/tokenizer.js';
import { TokenizerPool } from '../../src/model/tokenizer-pool.js';

const pool = new TokenizerPool(2);
t.teardown(() => pool.close());

const TEXT = 'Once upon a time, there was a little girl named Lily. She loved to play outside! ünïcödé 日本語 </s> ';

for (const name of ['default', 'stories260K']) {
  t.test(`${name}: the pool's ids equal inline encoding`, async (t) => {
    const dir = join(PROJECT_ROOT, 'models', name);
    const inline = ModelTokenizer.fromDir(dir);
    const texts = [TEXT.repeat(200), 'a', TEXT];
    t.same(
      await pool.encode(dir, texts, true),
      texts.map((text) => inline.encode(text, true)),
      'with special tokens',
    );
    t.same(
      await pool.encode(dir, texts, false),
      texts.map((text) => inline.encode(text, false)),
      'without',
    );
    t.ok(inline.maxTokenChars >= 2, `maxTokenChars ${inline.maxTokenChars}`);
    for (const text of texts) {
      t.ok(inline.encode(text, false).length >= text.length / inline.maxTokenChars, 'no token covers more characters than maxTokenChars');
    }
  });
}

t.test('an aborted task is dropped with an AbortError', async (t) => {
  const dir = join(PROJECT_ROOT, 'models', 'stories260K');
  const controller = new AbortController();
  const pending = pool.encode(dir, [TEXT.repeat(5000)], true, controller.signal);
  controller.abort();
  await t.rejects(pending, { name: 'AbortError' });
  t.same(await pool.encode(dir, ['Lily'], true), [ModelTokenizer.fromDir(dir).encode('Lily')], 'the pool still works after');
});
