/**
 * docker/Dockerfile is the production image the docs promise: the current Node LTS in both
 * stages, the build's shell steps in docker/build.sh, production dependencies only, a non-root
 * user, a health check, and a CMD that runs what `tsc -p tsconfig.build.json` emits.
 *
 * Reading the file only: docker/check-build.sh (run by .ci/run) builds and runs the image's
 * filesystem without Docker, and that is where the steps are proved to work.
 */
import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import { join, posix } from 'node:path';
import t from 'tap';
import ts from 'typescript';
import { loadConfig } from '../../src/config.js';
import { PROJECT_ROOT } from '../../src/project.js';

const DOCKERFILE = join(PROJECT_ROOT, 'docker', 'Dockerfile');
/** Node's Active LTS line: 2026-10-28 to 2027-10-20, then maintenance to 2029-04-30. */
const NODE_LTS_MAJOR = 26;

interface Instruction {
  name: string;
  args: string;
}
interface Stage {
  image: string;
  alias?: string;
  body: Instruction[];
}

/** The Dockerfile as stages of instructions: comments dropped, continued lines joined. */
function readDockerfile(file: string): { globals: Record<string, string>; stages: Stage[] } {
  const lines = readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => !/^\s*#/.test(l))
    .join('\n')
    .replace(/\\\n/g, ' ')
    .split('\n');
  const globals: Record<string, string> = {};
  const stages: Stage[] = [];
  for (const line of lines.map((l) => l.trim()).filter(Boolean)) {
    const [, keyword, args] = /^(\w+)\s+(.*)$/.exec(line) ?? [];
    const name = keyword.toUpperCase();
    if (name === 'FROM') {
      const [image, as, alias] = args.split(/\s+/);
      const resolved = image.replace(/\$\{(\w+)\}|\$(\w+)/g, (_m, a?: string, b?: string) => globals[a ?? b ?? ''] ?? '');
      stages.push({ image: resolved, alias: as?.toUpperCase() === 'AS' ? alias : undefined, body: [] });
    } else if (stages.length === 0) {
      if (name === 'ARG') {
        const [, arg, value = ''] = /^(\w+)=?(.*)$/.exec(args) ?? [];
        globals[arg] = value;
      }
    } else {
      stages.at(-1)!.body.push({ name, args: args.trim() });
    }
  }
  return { globals, stages };
}

const { stages } = readDockerfile(DOCKERFILE);
const build = stages[0];
const runtime = stages.at(-1)!;
const all = (stage: Stage, name: string) => stage.body.filter((i) => i.name === name);
const one = (stage: Stage, name: string) => all(stage, name).at(-1);

/** COPY's words less its flags, and the --from flag. */
function copyParts(args: string): { from?: string; sources: string[]; dest: string } {
  const words = args.split(/\s+/);
  const flags = words.filter((w) => w.startsWith('--'));
  const rest = words.filter((w) => !w.startsWith('--'));
  return { from: flags.find((f) => f.startsWith('--from='))?.slice(7), sources: rest.slice(0, -1), dest: rest.at(-1)! };
}

/** The image's ENV as a map. */
function imageEnv(stage: Stage): Record<string, string> {
  return Object.fromEntries(all(stage, 'ENV').flatMap((i) => i.args.split(/\s+/).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)])));
}

t.test('two stages, both on the current Node LTS', async (t) => {
  t.equal(stages.length, 2, 'a build stage and a runtime stage');
  t.equal(build.alias, 'build', 'the first stage is named build');
  for (const [i, stage] of stages.entries()) {
    t.match(
      stage.image,
      new RegExp(`^node:${NODE_LTS_MAJOR}(\\.\\d+)*-bookworm-slim$`),
      `stage ${i} is node:${NODE_LTS_MAJOR} on Debian bookworm, slim (is ${stage.image})`,
    );
  }
  t.equal(runtime.image, build.image, 'the build compiles for the Node that runs it (native modules, engines)');
});

t.test('the build stage runs docker/build.sh and nothing else', async (t) => {
  const runs = all(build, 'RUN').map((i) => i.args);
  t.ok(runs.length > 0, 'the build stage has RUN steps');
  for (const run of runs) t.match(run, /^docker\/build\.sh\b/, `RUN ${run} is docker/build.sh: docker/check-build.sh runs the same commands`);
  t.ok(runs.includes('docker/build.sh deps'), 'installs dependencies in a step of their own, cached while only sources change');
  t.ok(runs.includes('docker/build.sh app "$TARGETARCH"'), "compiles and prunes for the target's architecture");
  t.ok(
    all(build, 'ARG').some((i) => i.args === 'TARGETARCH'),
    'declares ARG TARGETARCH, which BuildKit sets',
  );
  t.ok(
    all(build, 'COPY').some((i) => copyParts(i.args).sources.includes('docker/build.sh')),
    'copies docker/build.sh in before running it',
  );
  const script = join(PROJECT_ROOT, 'docker', 'build.sh');
  t.doesNotThrow(() => accessSync(script, constants.X_OK), 'docker/build.sh is executable (COPY keeps the mode)');
  const text = readFileSync(script, 'utf8');
  t.match(text, /npm prune --omit=dev/, 'build.sh keeps production dependencies only');
  t.match(text, /ONNXRUNTIME_NODE_INSTALL=skip npm ci/, "build.sh skips onnxruntime-node's CUDA download");
  t.match(text, /onnxruntime-node/, "build.sh removes onnxruntime-node's binaries for other platforms");
});

t.test('every COPY from the build context names a file of the repository that the context keeps', async (t) => {
  const ignored = readFileSync(join(PROJECT_ROOT, '.dockerignore'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  for (const [i, stage] of stages.entries()) {
    for (const { args } of all(stage, 'COPY')) {
      const { from, sources } = copyParts(args);
      if (from) continue;
      for (const source of sources) {
        t.ok(existsSync(join(PROJECT_ROOT, source)), `stage ${i}: COPY source ${source} exists`);
        t.notOk(ignored.includes(source.split('/')[0]), `stage ${i}: ${source} is not excluded by .dockerignore`);
      }
    }
  }
});

t.test('the runtime stage: non-root, a health check, the compiled server', async (t) => {
  const user = one(runtime, 'USER')?.args;
  t.ok(user, 'sets USER');
  t.notOk(['root', '0'].includes(String(user).split(':')[0]), `runs as a user other than root (is ${user})`);
  const healthcheck = one(runtime, 'HEALTHCHECK')?.args ?? '';
  t.match(healthcheck, /\bCMD\b/, 'has a HEALTHCHECK with a command');
  t.match(healthcheck, /\/health\b/, 'the health check asks /health');
  t.match(healthcheck, /process\.env\.PORT|\$PORT/, 'on the port the server listens on');

  const copied = all(runtime, 'COPY').map((i) => copyParts(i.args));
  for (const dir of ['/app/node_modules', '/app/dist']) {
    t.ok(
      copied.some((c) => c.from === 'build' && c.sources.includes(dir)),
      `copies ${dir} from the build stage (production dependencies, compiled code)`,
    );
  }
  t.ok(
    copied.some((c) => !c.from && c.sources.includes('package.json')),
    'copies package.json ("type": "module", the project root)',
  );
  t.notOk(
    copied.some((c) => !c.from && ['src', 'node_modules', '.'].includes(c.sources[0])),
    'no TypeScript sources nor dev dependencies from the context',
  );
});

t.test("the runtime CMD runs a file that tsconfig.build.json emits, from the build stage's dist", async (t) => {
  const cmd = JSON.parse(one(runtime, 'CMD')?.args ?? 'null') as string[] | null;
  t.ok(Array.isArray(cmd), 'CMD in exec form (node is PID 1 and gets SIGTERM itself)');
  t.equal(cmd?.[0], 'node', 'runs node');
  const entry = cmd?.[1] ?? '';

  const configFile = join(PROJECT_ROOT, 'tsconfig.build.json');
  const parsed = ts.getParsedCommandLineOfConfigFile(configFile, {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: (d) => t.fail(String(d.messageText)) });
  t.ok(parsed, 'tsconfig.build.json parses');
  t.same(parsed?.errors ?? [], [], 'without errors');
  t.not(parsed?.options.noEmit, true, 'tsconfig.build.json emits');
  const outputs = (parsed?.fileNames ?? [])
    .flatMap((f) => ts.getOutputFileNames(parsed!, f, false))
    .map((f) => posix.relative(PROJECT_ROOT, f.split('\\').join('/')));
  t.ok(outputs.includes(entry), `${entry} is among tsc -p tsconfig.build.json's outputs`);
  const outDir = posix.relative(PROJECT_ROOT, parsed?.options.outDir ?? '');
  t.ok(entry.startsWith(`${outDir}/`), `under its outDir, ${outDir}/, which the runtime stage copies`);
});

t.test("the image's ENV is a valid configuration and MODEL_DIR is in the image", async (t) => {
  const env = imageEnv(runtime);
  t.equal(env.NODE_ENV, 'production', 'NODE_ENV=production');
  const config = loadConfig(env);
  t.equal(String(config.port), one(runtime, 'EXPOSE')?.args, 'EXPOSE is the PORT the server listens on');
  t.equal(config.host, '0.0.0.0', 'listens on every interface of the container');
  const models = all(runtime, 'COPY')
    .map((i) => copyParts(i.args))
    .filter((c) => !c.from && c.sources.includes('models'));
  t.equal(models.length, 1, 'copies models/ into the image');
  const dest = models[0]?.dest ?? '';
  for (const dir of config.modelDirs) {
    t.ok(dir.startsWith(`${dest}/`), `MODEL_DIR ${dir} is under the copied ${dest}`);
    t.ok(existsSync(join(PROJECT_ROOT, 'models', posix.relative(dest, dir), 'config.json')), `and ${dir} is a model directory of the repository`);
  }
});

t.test('CI builds and runs the image without Docker', async (t) => {
  const ci = readFileSync(join(PROJECT_ROOT, '.ci', 'run'), 'utf8')
    .split('\n')
    .map((l) => l.trim());
  const test = ci.indexOf('npm test');
  const check = ci.findIndex((l) => /^(bash )?docker\/check-build\.sh\b/.test(l));
  t.ok(check >= 0, '.ci/run runs docker/check-build.sh');
  t.ok(test >= 0 && check > test, 'after npm test');
});
