/**
 * `npm run import` as a user runs it: a GGUF file in, a model directory out that the loader
 * reads; an existing --out is refused without --force; every failure is one `error:` line.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { loadModelDir } from '../../src/arch/load.js';
import { runCli } from '../helpers/cli.js';
import { ggufFromHfDir, kv } from '../helpers/gguf-writer.js';
import { STORIES_DIR } from '../helpers/stories.js';

const dir = t.testdir();
const gguf = join(dir, 'stories260K-q8_0.gguf');
ggufFromHfDir(STORIES_DIR, gguf, { type: 'Q8_0' });

function oneLineError(t: Test, r: ReturnType<typeof runCli>, fragments: string[]): void {
  t.equal(r.status, 1, 'exit code 1');
  t.match(r.stderr, /^error: [^\n]+\n$/, 'one line, "error: ..."');
  t.notMatch(r.stderr, /^ {4}at /m, 'no stack trace');
  for (const f of fragments) t.ok(r.stderr.includes(f), `names ${JSON.stringify(f)}`, { found: r.stderr });
}

t.test('--help prints usage', async (t) => {
  const r = runCli('import', ['--help']);
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /^Usage: import /);
  t.match(r.stdout, /--from <file>/);
  t.match(r.stdout, /--force/);
  t.equal(r.stderr, '');
});

t.test('imports a GGUF file into a directory the loader reads', async (t) => {
  const out = join(dir, 'model');
  const r = runCli('import', ['--from', gguf, '--out', out]);
  t.equal(r.status, 0, r.stderr);
  t.match(
    r.stdout,
    /^wrote .*model from .*stories260K-q8_0\.gguf: 5 layers, hidden 64, 8\/4 heads x 8, intermediate 172, vocab 512, context 512, tied embeddings; tensors 31 Q8_0, 11 F32, 5 F16 -> float32; tokenizer llama \(512 tokens, 165 merges\)/,
  );
  for (const f of ['config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']) t.ok(existsSync(join(out, f)), f);
  const model = await loadModelDir(out);
  t.same(model.tokenizer.encode('Once upon a time'), [1, 403, 407, 261, 378]);
  t.equal(model.config.numLayers, 5);

  oneLineError(t, runCli('import', ['--from', gguf, '--out', out]), [out, '--force']);
  const forced = runCli('import', ['--from', gguf, '--out', out, '--force']);
  t.equal(forced.status, 0, `--force overwrites: ${forced.stderr}`);
});

t.test('mistakes are one line each', async (t) => {
  oneLineError(t, runCli('import', ['--out', join(dir, 'x')]), ['--from']);
  oneLineError(t, runCli('import', ['--from', '/nonexistent/model.gguf', '--out', join(dir, 'x')]), ['/nonexistent/model.gguf', 'no such file']);
  oneLineError(t, runCli('import', ['--from', join(STORIES_DIR, 'config.json'), '--out', join(dir, 'x')]), ['config.json', 'not a GGUF file']);
  const qwen = join(dir, 'qwen2.gguf');
  ggufFromHfDir(STORIES_DIR, qwen, { metadata: { 'general.architecture': kv.str('qwen2') } });
  oneLineError(t, runCli('import', ['--from', qwen, '--out', join(dir, 'x')]), ['qwen2.gguf', 'general.architecture is "qwen2"']);
  t.notOk(existsSync(join(dir, 'x')), 'nothing written');
  t.ok(readFileSync(gguf).subarray(0, 4).equals(Buffer.from('GGUF')), 'the input is untouched');
});
