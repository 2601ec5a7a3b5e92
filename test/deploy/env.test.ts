/**
 * Every variable the compose file and the Kubernetes manifests give the server is one the
 * server reads, with a value it accepts: a misspelled name would be ignored silently (the
 * server keeping its default), and a bad value would only show as a crash loop after deploying.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { loadConfig } from '../../src/config.js';
import { PROJECT_ROOT } from '../../src/project.js';
import { deploymentEnv, interpolate, onlyKind, readCompose, readK8s, serviceEnv, type Doc } from '../helpers/manifests.js';

/** The names src/config.ts reads, from its calls of value('X'), integer('X', ...) and the like. */
function namesConfigReads(): Set<string> {
  const source = readFileSync(join(PROJECT_ROOT, 'src', 'config.ts'), 'utf8');
  const names = new Set<string>();
  for (const [, name] of source.matchAll(/\b(?:value|integer|optionalInteger|boolean|oneOf|list)\(\s*'([A-Z][A-Z0-9_]*)'/g)) names.add(name);
  return names;
}

const READ = namesConfigReads();

t.test('the reader of src/config.ts finds its variables', async (t) => {
  // Guards the regular expression: were it to find nothing, every name below would "fail" for
  // the wrong reason; were it to find too little, the check would be weaker than it looks.
  for (const name of ['PORT', 'HOST', 'MODEL_DIR', 'REDIS_URL', 'API_KEYS', 'DRAIN_DELAY_MS', 'SHUTDOWN_TIMEOUT_MS']) {
    t.ok(READ.has(name), `finds ${name}`);
  }
});

t.test('docker-compose: the server env', async (t) => {
  const compose = readCompose();
  const env = serviceEnv(compose.services.server);
  for (const name of Object.keys(env)) t.ok(READ.has(name), `${name} is read by src/config.ts`);
  const resolved = Object.fromEntries(Object.entries(env).map(([k, v]) => [k, interpolate(v)]));
  t.doesNotThrow(() => loadConfig(resolved), 'loadConfig accepts the values');
  // With keys set, as docs/deploy.md tells users to do.
  t.doesNotThrow(() => loadConfig({ ...resolved, API_KEYS: 'k'.repeat(32) }), 'and with API_KEYS set');
});

t.test('Kubernetes: the ConfigMap, the Secret and the container env', async (t) => {
  const docs = readK8s();
  const deployment = onlyKind(docs, 'Deployment');
  const containers: Doc[] = deployment.spec.template.spec.containers;
  for (const container of containers) {
    const env = deploymentEnv(docs, deployment, container);
    for (const name of Object.keys(env)) t.ok(READ.has(name), `${container.name}: ${name} is read by src/config.ts`);
    let config: ReturnType<typeof loadConfig> | undefined;
    t.doesNotThrow(() => {
      config = loadConfig(env);
    }, `${container.name}: loadConfig accepts the values`);
    t.ok(config && config.apiKeys.length > 0, 'API_KEYS comes from the Secret');
  }
  for (const cm of docs.filter((d) => d.doc.kind === 'ConfigMap')) {
    for (const name of Object.keys(cm.doc.data ?? {})) t.ok(READ.has(name), `${cm.file}: ${name} is read by src/config.ts`);
  }
  for (const secret of docs.filter((d) => d.doc.kind === 'Secret')) {
    for (const name of Object.keys({ ...secret.doc.data, ...secret.doc.stringData })) t.ok(READ.has(name), `${secret.file}: ${name} is read by src/config.ts`);
  }
});
