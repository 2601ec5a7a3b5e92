/**
 * docker/docker-compose.yml: docker-compose itself accepts it, and it is the scale-out the
 * docs promise: several server replicas behind a balancer, one Redis, Prometheus on every replica.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { parse } from 'yaml';
import { loadConfig } from '../../src/config.js';
import { COMPOSE_FILE, DOCKER_DIR, durationMs, interpolate, readCompose, serviceEnv, type Doc } from '../helpers/manifests.js';

const run = promisify(execFile);

const compose = readCompose();
const services: Record<string, Doc> = compose.services ?? {};
const server = services.server;
const serverConfig = () => loadConfig(Object.fromEntries(Object.entries(serviceEnv(server)).map(([k, v]) => [k, interpolate(v)])));

t.test('docker-compose config accepts the file', async (t) => {
  // Missing docker-compose fails rather than skips: a skipped check would pass CI with a
  // compose file nobody validated.
  try {
    await run('docker-compose', ['version'], { timeout: 30_000 });
  } catch {
    t.fail('docker-compose is not installed: apt-get install -y docker-compose (Debian package, v1.29), as .ci/run does');
    return;
  }
  try {
    const { stdout } = await run('docker-compose', ['-f', COMPOSE_FILE, 'config'], { timeout: 60_000, env: { ...process.env, API_KEYS: '' } });
    const normalized = parse(stdout) as Doc;
    t.ok(normalized.services?.server, 'the normalized file still has the server');
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    t.fail(`docker-compose config rejected docker/docker-compose.yml: ${e.stderr || e.message}`);
  }
});

t.test('the server runs as several replicas with no host port', async (t) => {
  t.ok(server, 'a service named server');
  t.notOk(server.ports, 'no published port: replicas would fight over it, the balancer is the entry point');
  t.notOk(server.container_name, 'no container_name: it forbids more than one replica');
  t.ok(Number(server.deploy?.replicas) > 1, `deploy.replicas > 1 (is ${server.deploy?.replicas})`);
  const config = serverConfig();
  t.ok((server.expose ?? []).map(String).includes(String(config.port)), `exposes PORT ${config.port} to the other services`);
});

t.test('stop_grace_period outlasts the drain delay and the shutdown timeout', async (t) => {
  const config = serverConfig();
  const grace = durationMs(server.stop_grace_period);
  t.ok(Number.isFinite(grace), `stop_grace_period is a duration (is ${server.stop_grace_period})`);
  const needed = config.drainDelayMs + config.shutdownTimeoutMs;
  // Docker's SIGKILL must not come while a request may still legitimately finish.
  t.ok(grace > needed, `stop_grace_period ${grace} ms > DRAIN_DELAY_MS + SHUTDOWN_TIMEOUT_MS = ${needed} ms`);
});

t.test('one shared Redis, and every replica uses it', async (t) => {
  t.ok(services.redis, 'a redis service');
  const config = serverConfig();
  t.ok(config.redisUrl, 'REDIS_URL is set');
  t.equal(new URL(config.redisUrl!).hostname, 'redis', 'REDIS_URL points at the redis service');
  const deps = Array.isArray(server.depends_on) ? server.depends_on : Object.keys(server.depends_on ?? {});
  t.ok(deps.includes('redis'), 'server depends on redis');
  t.not(config.cachePrefix, 'sparse-slm:', 'a CACHE_PREFIX of its own, so other deployments can share the Redis');
});

t.test('the nginx balancer round-robins to the server service and suits streaming', async (t) => {
  const balancer = services.balancer;
  t.ok(balancer, 'a balancer service');
  t.match(String(balancer.image), /^nginx:/, 'an nginx image');
  t.ok((balancer.ports ?? []).length > 0, 'the balancer publishes the API port');
  const mount = (balancer.volumes ?? []).map(String).find((v: string) => v.includes('nginx.conf'));
  t.ok(mount, 'mounts an nginx.conf');
  const file = resolve(DOCKER_DIR, String(mount).split(':')[0]);
  t.ok(existsSync(file), `${file} exists`);
  const conf = readFileSync(file, 'utf8').replace(/#.*$/gm, '');
  const config = serverConfig();
  // Version tag checked because `resolve` in an upstream block is new in nginx 1.27.3.
  const [, major, minor] = /^nginx:(\d+)\.(\d+)/.exec(String(balancer.image)) ?? [];
  t.ok(Number(major) > 1 || (Number(major) === 1 && Number(minor) >= 28), `nginx image tag >= 1.28 for upstream resolve (is ${balancer.image})`);
  t.match(conf, new RegExp(`server\\s+server:${config.port}\\s+resolve`), 'upstream is the server service on PORT, re-resolved');
  t.match(conf, /resolver\s+127\.0\.0\.11/, "re-resolved with Docker's DNS");
  t.notMatch(conf, /\b(least_conn|ip_hash|hash|random)\b/, 'round-robin (nginx default), no other method');
  t.match(conf, /proxy_buffering\s+off;/, 'proxy_buffering off, for Server-Sent Events');
  t.match(conf, /proxy_set_header\s+X-Request-Id\s+\$\w+;/, 'passes X-Request-Id upstream');
  const read = /proxy_read_timeout\s+(\d+)s;/.exec(conf);
  t.ok(read, 'sets proxy_read_timeout in seconds');
  t.ok(Number(read?.[1]) * 1000 > config.requestTimeoutMs, `proxy_read_timeout ${read?.[1]} s > REQUEST_TIMEOUT_MS ${config.requestTimeoutMs} ms`);
  const body = /client_max_body_size\s+(\d+)m;/.exec(conf);
  t.ok(body && Number(body[1]) * 1024 * 1024 >= config.bodyLimitBytes, 'client_max_body_size at least the server body limit');
});

t.test('Prometheus scrapes every replica through DNS discovery', async (t) => {
  const prometheus = services.prometheus;
  t.ok(prometheus, 'a prometheus service');
  t.match(String(prometheus.image), /^prom\/prometheus(:|$)/, 'the prom/prometheus image');
  const mount = (prometheus.volumes ?? []).map(String).find((v: string) => v.includes('prometheus.yml'));
  t.ok(mount, 'mounts a prometheus.yml');
  const file = resolve(DOCKER_DIR, String(mount).split(':')[0]);
  t.ok(existsSync(file), `${file} exists`);
  const target = String(mount).split(':')[1];
  t.ok((prometheus.command ?? []).includes(`--config.file=${target}`), 'prometheus is told to read the mounted file');
  const prom = parse(readFileSync(file, 'utf8')) as Doc;
  const config = serverConfig();
  const jobs: Doc[] = prom.scrape_configs ?? [];
  const job = jobs.find((j) => (j.dns_sd_configs ?? []).some((sd: Doc) => (sd.names ?? []).includes('server')));
  t.ok(job, 'a scrape job discovering the server service by DNS');
  const sd = (job?.dns_sd_configs ?? []).find((s: Doc) => (s.names ?? []).includes('server'));
  t.equal(sd?.type, 'A', 'A records: one per replica');
  t.equal(Number(sd?.port), config.port, 'on the server PORT');
  t.equal(job?.metrics_path ?? '/metrics', '/metrics', 'at /metrics');
  t.notOk(config.authMetrics && config.apiKeys.length > 0 && !job?.authorization, 'a keyed /metrics comes with scrape credentials');
});

t.test('the compose file keeps the Dockerfile it builds', async (t) => {
  const dockerfile = join(resolve(DOCKER_DIR, server.build.context), server.build.dockerfile);
  t.ok(existsSync(dockerfile), `${server.build.dockerfile} exists relative to the build context`);
  const volume = (server.volumes ?? []).map(String).find((v: string) => v.split(':')[1] === '/models');
  t.ok(volume, 'models mounted at /models');
  for (const dir of serverConfig().modelDirs) t.ok(dir.startsWith('/models/'), `MODEL_DIR ${dir} is under the /models mount`);
});
