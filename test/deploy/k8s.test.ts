/**
 * deploy/k8s: every object is valid against the Kubernetes API schema (kubernetes-models), and
 * the objects fit together: selectors, targets, probes, shutdown timing and ports.
 *
 * kubernetes-models' schemas do not reject unknown fields, so a misspelled field name passes
 * validate(); the cross-reference tests below read the fields that matter by their exact names
 * and fail when one is missing.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { parse } from 'yaml';
import { loadConfig } from '../../src/config.js';
import { deploymentEnv, K8S_DIR, k8sFiles, onlyKind, readK8s, type Doc } from '../helpers/manifests.js';

const docs = readK8s();
const deployment = onlyKind(docs, 'Deployment');
const pod = deployment.spec.template;
const container: Doc = (pod.spec.containers ?? []).find((c: Doc) => c.name === 'server') ?? pod.spec.containers?.[0];
const config = () => loadConfig(deploymentEnv(docs, deployment, container));

/** `apps/v1` + `Deployment` -> the module kubernetes-models exports its class from. */
function modelModule(apiVersion: string, kind: string): string {
  return `kubernetes-models/${apiVersion}/${kind}`;
}

t.test('every manifest is a valid Kubernetes object', async (t) => {
  t.ok(docs.length > 0, 'deploy/k8s has manifests');
  for (const { file, doc } of docs) {
    const name = `${file}: ${doc.kind} ${doc.metadata?.name}`;
    let Model: new (data: Doc) => { validate(): void };
    try {
      const mod = (await import(modelModule(String(doc.apiVersion), String(doc.kind)))) as Record<string, new (data: Doc) => { validate(): void }>;
      Model = mod[doc.kind];
    } catch {
      t.fail(`${name}: kubernetes-models has no ${doc.apiVersion} ${doc.kind} (wrong apiVersion or kind?)`);
      continue;
    }
    t.ok(doc.metadata?.name, `${name}: has a name`);
    try {
      new Model(doc).validate();
      t.pass(`${name}: valid`);
    } catch (err) {
      t.fail(`${name}: ${(err as Error).message}`);
    }
  }
});

t.test('the schema check catches a broken object', async (t) => {
  // Guards the check itself: were validate() a no-op, the test above would pass anything.
  const { Deployment } = (await import(modelModule('apps/v1', 'Deployment'))) as { Deployment: new (data: Doc) => { validate(): void } };
  const broken = structuredClone(deployment);
  broken.spec.template.spec.containers[0].ports[0].containerPort = 'eight thousand';
  t.throws(() => new Deployment(broken).validate(), /containerPort/);
});

t.test('kustomization.yaml lists every manifest', async (t) => {
  const kustomization = parse(readFileSync(join(K8S_DIR, 'kustomization.yaml'), 'utf8')) as Doc;
  t.same([...(kustomization.resources ?? [])].sort(), k8sFiles());
});

t.test('the Service, HPA and PDB reach the Deployment', async (t) => {
  const labels: Record<string, string> = pod.metadata.labels ?? {};
  const matches = (selector: Record<string, string>) => Object.keys(selector).length > 0 && Object.entries(selector).every(([k, v]) => labels[k] === v);
  t.ok(matches(deployment.spec.selector.matchLabels ?? {}), "the Deployment's selector matches its own pods");

  const service = onlyKind(docs, 'Service');
  t.ok(matches(service.spec.selector ?? {}), "the Service's selector matches the Deployment's pods");
  const named = new Map<string, number>((container.ports ?? []).map((p: Doc) => [p.name, p.containerPort]));
  for (const port of service.spec.ports) {
    const target = typeof port.targetPort === 'string' ? named.get(port.targetPort) : port.targetPort;
    t.equal(target, config().port, `Service port ${port.name} reaches the server's PORT`);
  }

  const hpa = onlyKind(docs, 'HorizontalPodAutoscaler');
  t.equal(hpa.apiVersion, 'autoscaling/v2', 'autoscaling/v2');
  t.same(
    { apiVersion: hpa.spec.scaleTargetRef.apiVersion, kind: hpa.spec.scaleTargetRef.kind, name: hpa.spec.scaleTargetRef.name },
    { apiVersion: 'apps/v1', kind: 'Deployment', name: deployment.metadata.name },
    'the HPA scales the Deployment',
  );
  const cpu = (hpa.spec.metrics ?? []).find((m: Doc) => m.type === 'Resource' && m.resource?.name === 'cpu');
  t.ok(cpu?.resource.target.averageUtilization > 0, 'on CPU utilisation');
  t.ok(container.resources?.requests?.cpu, 'which needs a CPU request on the container');
  t.ok(hpa.spec.minReplicas >= 2, 'at least 2 replicas, so that one can be disrupted');

  const pdb = onlyKind(docs, 'PodDisruptionBudget');
  t.ok(matches(pdb.spec.selector.matchLabels ?? {}), "the PDB's selector matches the Deployment's pods");
  const maxUnavailable = pdb.spec.maxUnavailable;
  t.ok(maxUnavailable !== undefined || pdb.spec.minAvailable !== undefined, 'the PDB sets a budget');
  if (typeof pdb.spec.minAvailable === 'number')
    t.ok(pdb.spec.minAvailable < hpa.spec.minReplicas, 'minAvailable below minReplicas, or no drain could proceed');
});

t.test('probes: startup and liveness on /health, readiness on /ready', async (t) => {
  const port = (p: Doc) =>
    typeof p.httpGet?.port === 'string' ? (container.ports ?? []).find((cp: Doc) => cp.name === p.httpGet.port)?.containerPort : p.httpGet?.port;
  t.equal(container.readinessProbe?.httpGet?.path, '/ready', 'readiness on /ready: 503 while loading or draining');
  t.equal(container.livenessProbe?.httpGet?.path, '/health', 'liveness on /health: a draining pod must not be restarted');
  t.equal(container.startupProbe?.httpGet?.path, '/health', 'startup on /health');
  for (const probe of ['readinessProbe', 'livenessProbe', 'startupProbe']) {
    t.equal(port(container[probe]), config().port, `${probe} on the server's PORT`);
  }
  const startup = container.startupProbe;
  const startupSeconds = (startup.periodSeconds ?? 10) * (startup.failureThreshold ?? 3) + (startup.initialDelaySeconds ?? 0);
  // The port opens only after the models load: 12 s measured for models/default (docs/deploy.md).
  t.ok(startupSeconds >= 120, `startupProbe allows ${startupSeconds} s for model loading (>= 120 s)`);
});

t.test('terminationGracePeriodSeconds covers preStop, drain and shutdown', async (t) => {
  const c = config();
  const preStop = container.lifecycle?.preStop;
  let preStopSeconds = 0;
  if (preStop?.exec) {
    const [cmd, arg] = preStop.exec.command;
    t.match(cmd, /(^|\/)sleep$/, 'the preStop hook sleeps');
    preStopSeconds = Number(arg);
  } else if (preStop?.sleep) {
    preStopSeconds = Number(preStop.sleep.seconds);
  }
  t.ok(preStopSeconds > 0 || c.drainDelayMs > 0, 'a drain: a preStop sleep or DRAIN_DELAY_MS');
  t.ok(preStopSeconds === 0 || c.drainDelayMs === 0, 'not both a preStop sleep and DRAIN_DELAY_MS: they would add up for nothing');
  const needed = preStopSeconds + (c.drainDelayMs + c.shutdownTimeoutMs) / 1000;
  const grace = pod.spec.terminationGracePeriodSeconds ?? 30;
  t.ok(grace > needed, `terminationGracePeriodSeconds ${grace} > preStop ${preStopSeconds} s + DRAIN_DELAY_MS + SHUTDOWN_TIMEOUT_MS = ${needed} s`);
});

t.test('the pod runs as non-root with the models from a volume', async (t) => {
  const podSec = pod.spec.securityContext ?? {};
  const sec = container.securityContext ?? {};
  t.ok(podSec.runAsNonRoot === true || sec.runAsNonRoot === true, 'runAsNonRoot');
  t.not(podSec.runAsUser ?? sec.runAsUser, 0, 'not uid 0');
  t.equal(sec.allowPrivilegeEscalation, false, 'no privilege escalation');
  t.ok((sec.capabilities?.drop ?? []).includes('ALL'), 'drops every capability');

  const volumes = new Set((pod.spec.volumes ?? []).map((v: Doc) => v.name));
  const mounts: Doc[] = container.volumeMounts ?? [];
  for (const m of mounts) t.ok(volumes.has(m.name), `mount ${m.mountPath} has its volume ${m.name}`);
  for (const dir of config().modelDirs) {
    const mount = mounts.find((m) => dir.startsWith(`${m.mountPath.replace(/\/$/, '')}/`));
    t.ok(mount, `MODEL_DIR ${dir} is on a mounted volume`);
    t.equal(mount?.readOnly, true, `${dir}'s volume is mounted read-only`);
  }
});

t.test('resources: requests and limits set, requests within limits', async (t) => {
  const quantity = (q: string | number): number => {
    const m = /^(\d+(?:\.\d+)?)(m|Ki|Mi|Gi|Ti|k|M|G)?$/.exec(String(q));
    if (!m) return NaN;
    const scale: Record<string, number> = { m: 1e-3, Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, k: 1e3, M: 1e6, G: 1e9 };
    return Number(m[1]) * (m[2] ? scale[m[2]] : 1);
  };
  const { requests = {}, limits = {} } = container.resources ?? {};
  for (const r of ['cpu', 'memory']) {
    t.ok(quantity(requests[r]) > 0, `${r} request set`);
    t.ok(quantity(limits[r]) >= quantity(requests[r]), `${r} limit >= request`);
  }
  // Below this the measured resident memory (503 MiB, docs/deploy.md) would OOM-kill the pod.
  t.ok(quantity(limits.memory) >= 600 * 2 ** 20, 'memory limit above the measured peak');
  t.ok(quantity(limits.cpu) >= (config().ortIntraOpThreads ?? 1), 'CPU limit covers ORT_INTRA_OP_THREADS');
});
