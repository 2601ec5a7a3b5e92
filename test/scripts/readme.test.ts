/**
 * The README's examples and tier table are generated from real runs (scripts/readme.ts): the
 * committed README must match a fresh run, and its markers must match the script's table.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { drifted, EXAMPLES, README_PATH, sectionsOf, TABLES } from '../../scripts/readme.js';
import { PROJECT_ROOT } from '../../src/project.js';

const run = promisify(execFile);
const readme = readFileSync(README_PATH, 'utf8');
const sections = sectionsOf(readme);

t.test('every example marked in the README is in the script, and every example in the script is marked once', async (t) => {
  const marked = sections.filter((s) => s.kind === 'example').map((s) => s.name);
  const scripted = EXAMPLES.map((e) => e.name);
  t.same([...marked].sort(), [...scripted].sort(), 'the same examples');
  t.equal(new Set(marked).size, marked.length, 'no example is marked twice');
  t.equal(new Set(scripted).size, scripted.length, 'no example name is used twice');
  t.same(
    sections
      .filter((s) => s.kind === 'table')
      .map((s) => s.name)
      .sort(),
    [...TABLES].sort(),
    'the same tables',
  );
  // A marker the section pattern does not recognise (a typo) would be left out silently.
  const opened = readme.match(/<!-- readme:/g)?.length ?? 0;
  const closed = readme.match(/<!-- \/readme:/g)?.length ?? 0;
  t.equal(opened, sections.length, 'every opening marker starts a recognised section');
  t.equal(closed, sections.length, 'every closing marker ends one');
});

t.test('the generated sections hold no machine paths and no hand-shortened output', async (t) => {
  for (const s of sections) {
    for (const path of [PROJECT_ROOT, homedir(), '/work/', '/tmp/']) t.notOk(s.content.includes(path), `${s.kind} ${s.name} does not contain ${path}`);
    t.notOk(s.content.includes('…'), `${s.kind} ${s.name} has no ellipsis`);
  }
});

t.test('the comparison ignores the volatile fields and nothing else', async (t) => {
  const committed = new Map(sections.map((s) => [`${s.kind}:${s.name}`, s.content]));
  t.same(drifted(readme, committed), [], 'the README matches itself');
  const volatile = readme
    .replace(/"created":\d+/g, '"created":1')
    .replace(/"id":"cmpl-[0-9a-f]+"/g, '"id":"cmpl-x"')
    .replace(/"predicted_ms":[\d.]+/g, '"predicted_ms":1');
  t.not(volatile, readme, 'the README has volatile fields');
  t.same(drifted(volatile, committed), [], 'other ids, times and predictions are no drift');
  const s80 = committed.get('example:static-s80')!;
  const changed = readme.replace(s80, s80.replace('"completion_tokens":24', '"completion_tokens":23'));
  t.same(
    drifted(changed, committed).map((d) => d.key),
    ['example:static-s80'],
    'a changed count is drift, named by its example',
  );
  const budget = committed.get('example:latency-budget')!;
  t.same(
    drifted(readme.replace(budget, budget.replace(/"tier":"\w+"/, '"tier":"s90"')), committed),
    [],
    'the tier a latency budget chose is timing, not drift',
  );
});

t.test('npm run readme -- --check passes against the committed README', async (t) => {
  const started = Date.now();
  const { stdout } = await run(process.execPath, ['--import', 'tsx', join(PROJECT_ROOT, 'scripts/readme.ts'), '--check'], {
    cwd: PROJECT_ROOT,
    timeout: 120_000,
  }).catch((err: { code?: number; stdout?: string; stderr?: string }) => {
    t.fail(`the README drifted from a fresh run (exit ${err.code}): ${err.stderr ?? ''}${err.stdout ?? ''}`);
    return { stdout: '' };
  });
  t.match(stdout, /match a fresh run/, 'it says so');
  t.comment(`--check took ${Date.now() - started} ms`);
});
