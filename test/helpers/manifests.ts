/**
 * Reading the deployment files for test/deploy/*.test.ts: the compose file, the nginx and
 * Prometheus configs beside it, and every Kubernetes manifest under deploy/k8s.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, parseAllDocuments } from 'yaml';
import { PROJECT_ROOT } from '../../src/project.js';

export const DOCKER_DIR = join(PROJECT_ROOT, 'docker');
export const COMPOSE_FILE = join(DOCKER_DIR, 'docker-compose.yml');
export const K8S_DIR = join(PROJECT_ROOT, 'deploy', 'k8s');

// Loose shapes: the tests check the fields they use, and a missing one fails an assertion.
// biome-ignore lint/suspicious/noExplicitAny: parsed YAML of any shape, walked field by field by test/deploy/*.test.ts; the assertions are its type check
export type Doc = Record<string, any>;

export function readCompose(): Doc {
  return parse(readFileSync(COMPOSE_FILE, 'utf8')) as Doc;
}

/** A compose service's environment as a plain map, whichever of the two forms it uses. */
export function serviceEnv(service: Doc): Record<string, string> {
  const env = service.environment ?? {};
  if (Array.isArray(env)) {
    return Object.fromEntries(
      env.map((entry: string) => {
        const at = entry.indexOf('=');
        return at < 0 ? [entry, ''] : [entry.slice(0, at), entry.slice(at + 1)];
      }),
    );
  }
  return Object.fromEntries(Object.entries(env).map(([k, v]) => [k, v === null ? '' : String(v)]));
}

/**
 * Compose's own interpolation of the forms the file uses (`${NAME:-default}`, `${NAME}`), with
 * an empty environment: what a plain `docker compose up` passes to the server.
 */
export function interpolate(value: string): string {
  return value.replace(/\$\{([A-Z0-9_]+)(?::?-([^}]*))?\}/g, (_m, _name: string, fallback?: string) => fallback ?? '');
}

/** Compose durations (`25s`, `1m30s`, `1500ms`) in milliseconds; NaN when it is not one. */
export function durationMs(value: unknown): number {
  const text = String(value).trim();
  if (!/^(\d+(\.\d+)?(h|m|s|ms|us))+$/.test(text)) return NaN;
  const unit: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1000, ms: 1, us: 0.001 };
  let total = 0;
  for (const [, amount, , u] of text.matchAll(/(\d+(\.\d+)?)(h|ms|m|s|us)/g)) total += Number(amount) * unit[u];
  return total;
}

export interface K8sDoc {
  file: string;
  doc: Doc;
}

/** The manifests' YAML files, kustomization.yaml excepted (it is not a Kubernetes object). */
export function k8sFiles(): string[] {
  return readdirSync(K8S_DIR)
    .filter((f) => /\.ya?ml$/.test(f) && f !== 'kustomization.yaml')
    .sort();
}

/** Every YAML document of every manifest file; a syntax error throws, naming the file. */
export function readK8s(): K8sDoc[] {
  const docs: K8sDoc[] = [];
  for (const file of k8sFiles()) {
    for (const parsed of parseAllDocuments(readFileSync(join(K8S_DIR, file), 'utf8'))) {
      if (parsed.errors.length > 0) throw new Error(`${file}: ${parsed.errors.map((e) => e.message).join('; ')}`);
      const doc = parsed.toJS() as Doc | null;
      if (doc !== null) docs.push({ file, doc });
    }
  }
  return docs;
}

export function findKind(docs: K8sDoc[], kind: string): Doc[] {
  return docs.filter((d) => d.doc.kind === kind).map((d) => d.doc);
}

/** The one object of a kind; throws when there are none or several, which the tests rely on. */
export function onlyKind(docs: K8sDoc[], kind: string): Doc {
  const found = findKind(docs, kind);
  if (found.length !== 1) throw new Error(`expected exactly one ${kind} in deploy/k8s, found ${found.length}`);
  return found[0];
}

/**
 * The environment the server container of the Deployment gets: its ConfigMaps and Secrets
 * (envFrom, in order, later sources winning as in Kubernetes), then its `env` entries.
 */
export function deploymentEnv(docs: K8sDoc[], deployment: Doc, container: Doc): Record<string, string> {
  const env: Record<string, string> = {};
  for (const source of container.envFrom ?? []) {
    if (source.configMapRef) {
      const cm = findKind(docs, 'ConfigMap').find((c) => c.metadata?.name === source.configMapRef.name);
      if (!cm) throw new Error(`${deployment.metadata.name}: envFrom names ConfigMap ${source.configMapRef.name}, which deploy/k8s does not define`);
      Object.assign(env, cm.data ?? {});
    }
    if (source.secretRef) {
      const secret = findKind(docs, 'Secret').find((s) => s.metadata?.name === source.secretRef.name);
      if (!secret) throw new Error(`${deployment.metadata.name}: envFrom names Secret ${source.secretRef.name}, which deploy/k8s does not define`);
      Object.assign(env, secret.stringData ?? {});
      for (const [k, v] of Object.entries(secret.data ?? {})) env[k] = Buffer.from(String(v), 'base64').toString('utf8');
    }
  }
  for (const entry of container.env ?? []) {
    if (entry.value !== undefined) env[entry.name] = String(entry.value);
  }
  return env;
}
