import { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { ProgressFile } from '../../src/eval/progress.js';

const dir = mkdtempSync(join(tmpdir(), 'progress-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

t.test('units appended are read back by a run with the same settings', async (t) => {
  const file = join(dir, 'a.jsonl');
  const first = ProgressFile.open<{ id: number }>(file, 'k1');
  first.append({ id: 1 });
  first.append({ id: 2 });
  t.same(ProgressFile.open<{ id: number }>(file, 'k1').units, [{ id: 1 }, { id: 2 }]);
});

t.test('a torn last line (a run killed mid-write) is dropped, and appends go on cleanly', async (t) => {
  const file = join(dir, 'b.jsonl');
  ProgressFile.open<{ id: number }>(file, 'k').append({ id: 1 });
  appendFileSync(file, '{"id": 2, "tok');
  const resumed = ProgressFile.open<{ id: number }>(file, 'k');
  t.same(resumed.units, [{ id: 1 }]);
  resumed.append({ id: 3 });
  t.same(ProgressFile.open<{ id: number }>(file, 'k').units, [{ id: 1 }, { id: 3 }]);
  t.notMatch(readFileSync(file, 'utf8'), /tok/);
});

t.test('progress of other settings is refused unless discarded', async (t) => {
  const file = join(dir, 'c.jsonl');
  ProgressFile.open<{ id: number }>(file, 'old').append({ id: 1 });
  t.throws(() => ProgressFile.open(file, 'new'), /other settings.*--fresh/);
  t.same(ProgressFile.open(file, 'new', true).units, [], 'fresh starts empty');
  const p = ProgressFile.open(file, 'new');
  p.remove();
  t.notOk(existsSync(file));
});
