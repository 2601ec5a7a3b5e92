/**
 * Every CLI's contract with the person typing it: --help prints usage and exits 0; a mistake
 * (missing or unknown option, bad value, missing model directory) is one `error: ...` line and
 * a non-zero exit, never a stack trace.
 */
import { cpus } from 'node:os';
import t from 'tap';
import { runEntryPoint, type CliResult } from '../helpers/cli.js';

const NO_MODEL = ['--model', '/nonexistent/model'];
const DATA = ['--data', 'data/calibration/stories.jsonl'];

/**
 * Each entry point with argument lists that must each fail: one that commander refuses, and one
 * that fails once the command runs (what used to end in a stack trace) where the CLI has one.
 */
const CLIS: Record<string, Record<string, string[]>> = {
  'src/cli/attribute.ts': { 'missing option': ['--prompt', 'x'], 'missing model': [...NO_MODEL, '--prompt', 'x'] },
  'src/cli/calibrate.ts': {
    'missing model': [...NO_MODEL, ...DATA],
    'missing data': ['--model', 'models/stories260K', '--data', '/nonexistent/data.jsonl', '--force'],
  },
  'src/cli/eval.ts': { 'unknown option': ['--bogus'], 'missing model': NO_MODEL },
  'src/cli/train.ts': { 'bad value': ['--lr', '-1'] },
  'src/cli/train-predictor.ts': { 'bad value': ['--model', 'models/stories260K', '--rank', 'x'], 'missing model': NO_MODEL },
  'src/cli/make-test-model.ts': { 'missing option': [], 'bad value': ['--out', '/tmp/never', '--layers', 'two'] },
  'src/cli/import.ts': { 'missing option': ['--out', '/tmp/never'], 'missing file': ['--from', '/nonexistent/model.gguf', '--out', '/tmp/never-imported'] },
  'scripts/readme.ts': { 'unknown option': ['--bogus'] },
  'scripts/bench.ts': { 'bad value': ['--spinning', 'sometimes'], 'bad list': ['--sections', 'tiers,bogus'], 'missing model': NO_MODEL },
  'scripts/loadtest.ts': { 'bad value': ['--duration', '-1'], 'missing model': NO_MODEL },
  'scripts/batch-costs.ts': { 'bad value': ['--rounds', '0'], 'too few prompts': ['--prompts', '2'] },
  'scripts/fuzz.ts': { 'unknown option': ['--bogus'], 'missing model': NO_MODEL },
};

// Each run is a Node start-up with tsx (1-2 s); a few at once keep the test short on a small machine.
async function runAll(jobs: [string, string[]][]): Promise<CliResult[]> {
  const results: CliResult[] = new Array(jobs.length);
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < jobs.length; i = next++) results[i] = await runEntryPoint(...jobs[i]);
  };
  await Promise.all(Array.from({ length: Math.max(2, Math.min(8, cpus().length)) }, worker));
  return results;
}

const jobs: { cli: string; what: string; args: string[] }[] = Object.entries(CLIS).flatMap(([cli, bad]) => [
  { cli, what: '--help', args: ['--help'] },
  ...Object.entries(bad).map(([what, args]) => ({ cli, what, args })),
]);
const results = await runAll(jobs.map((j) => [j.cli, j.args]));

for (const [i, { cli, what, args }] of jobs.entries()) {
  const r = results[i];
  t.test(`${cli} ${what}`, async (t) => {
    if (what === '--help') {
      t.equal(r.status, 0, r.stderr);
      t.match(r.stdout, /^Usage: /, 'usage on stdout');
      t.equal(r.stderr, '');
      return;
    }
    t.not(r.status, 0, `${args.join(' ')}: a non-zero exit`);
    t.not(r.status, null, 'an exit, not a timeout or a signal');
    t.match(r.stderr, /^error: [^\n]+\n$/, `${args.join(' ')}: one line, "error: ..."`);
    t.notMatch(r.stderr, /^ {4}at /m, 'no stack trace');
    if (what.startsWith('missing ') && what !== 'missing option') t.match(r.stderr, '/nonexistent/', 'names what is missing');
  });
}
