import { appendFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { ProgressFile, type Origin } from '../../src/eval/progress.js';

const here: Origin = { commit: 'abc', dirty: false, started: '2026-11-28T00:00:00.000Z' };
const later: Origin = { commit: 'def', dirty: true, started: '2026-11-29T00:00:00.000Z' };

const dir = mkdtempSync(join(tmpdir(), 'progress-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

t.test('units appended are read back by a run with the same settings', async (t) => {
  const file = join(dir, 'a.jsonl');
  const first = ProgressFile.open<{ id: number }>(file, 'k1', here);
  first.append({ id: 1 });
  first.append({ id: 2 });
  const resumed = ProgressFile.open<{ id: number }>(file, 'k1', later);
  t.same(resumed.units, [{ id: 1 }, { id: 2 }]);
  t.same(resumed.origin, here, 'the units keep the origin of the run that computed them');
});

t.test('a torn last line (a run killed mid-write) is dropped, and appends go on cleanly', async (t) => {
  const file = join(dir, 'b.jsonl');
  ProgressFile.open<{ id: number }>(file, 'k', here).append({ id: 1 });
  appendFileSync(file, '{"id": 2, "tok');
  const resumed = ProgressFile.open<{ id: number }>(file, 'k', here);
  t.same(resumed.units, [{ id: 1 }]);
  resumed.append({ id: 3 });
  t.same(ProgressFile.open<{ id: number }>(file, 'k', here).units, [{ id: 1 }, { id: 3 }]);
  t.notMatch(readFileSync(file, 'utf8'), /tok/);
});

t.test('progress of other settings is refused unless discarded', async (t) => {
  const file = join(dir, 'c.jsonl');
  ProgressFile.open<{ id: number }>(file, 'old', here).append({ id: 1 });
  t.throws(() => ProgressFile.open(file, 'new', later), /other settings.*--fresh/);
  const fresh = ProgressFile.open(file, 'new', later, true);
  t.same([fresh.units, fresh.origin], [[], later], 'fresh starts empty, from the new origin');
});
