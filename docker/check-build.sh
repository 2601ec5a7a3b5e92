#!/usr/bin/env bash
# The image of docker/Dockerfile, built and run without Docker, for machines with no Docker daemon.
#
# It reads docker/Dockerfile itself, so the check cannot drift from it:
#   - every stage gets a fresh temporary root; each COPY copies exactly its sources from the
#     build context (the repository root, as in `docker build -f docker/Dockerfile .`) or from an
#     earlier stage's root; each RUN runs verbatim with `sh -c` in the stage's WORKDIR, with the
#     stage's ARG and ENV values (TARGETARCH is this machine's: amd64 or arm64);
#   - the last stage's CMD then runs in its WORKDIR with only the image's ENV (plus PATH and HOME),
#     these changed: PORT a free port, HOST 127.0.0.1, MODEL_DIR's directories inside the temporary
#     root; as uid 1000, the image's `node` user, when this script runs as root;
#   - it waits for /health and /ready, runs the HEALTHCHECK command, sends one POST /v1/completions
#     (max_tokens 4, temperature 0) and expects 200 with a text, then sends SIGTERM as `docker
#     stop` does and expects the server to exit 0 within 25 s;
#   - it reports the sizes of node_modules and of the onnxruntime-node binaries the build removed,
#     what the image adds to its base, and the time of each step.
# Not the same as in Docker: the same commands run on this machine's node and npm, whichever is
# first on PATH (Node 20 on this project's machines and in CI, while the image has the Node of
# NODE_IMAGE in the Dockerfile, Node 26), with this machine's npm settings, Debian libraries
# (bookworm, as the image's) and network; COPY --chown is not applied and USER only as said above;
# .dockerignore is not read (test/deploy/dockerfile.test.ts checks that no COPY source lies under
# a path it excludes). It understands the instructions the Dockerfile uses (ARG, FROM, WORKDIR,
# COPY, RUN, ENV, USER, EXPOSE, HEALTHCHECK, CMD) and fails on any other.
#
# Usage: docker/check-build.sh        Exits non-zero on any failure; removes its temporary
#                                     directory and stops the server however it ends.
# READY_TIMEOUT (seconds, default 300) bounds the wait for /ready.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DOCKERFILE=$ROOT/docker/Dockerfile
READY_TIMEOUT=${READY_TIMEOUT:-300}
started=$SECONDS

say() { printf 'check-build: %s\n' "$*"; }
fail() { printf 'check-build: FAILED: %s\n' "$*" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/check-build.XXXXXX")
server_pid=
cleanup() {
  local rc=$?
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 1 60); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.5; done
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
# The image's user must be able to reach its files, as in the image.
chmod 755 "$work"

# Node resolves packages in every parent directory too: one there would hide a missing dependency.
dir=$work
while [ "$dir" != / ]; do
  dir=$(dirname "$dir")
  [ ! -e "$dir/node_modules" ] || fail "$dir/node_modules exists: packages there would be found by the build and the server; set TMPDIR elsewhere"
done

# ---------------------------------------------------------------------------------------------
# The Dockerfile as a plan: one line per instruction, fields separated by tabs.
#   FROM <stage> <image> <name>       ARG <stage> <name> <0|1 has default> <default>
#   WORKDIR <stage> <path>            COPY <stage> <from stage or -> <source>... <destination>
#   RUN <stage> <command>             ENV <stage> <name=value>...
#   USER|EXPOSE <stage> <value>       HEALTHCHECK <stage> <shell command>
#   CMD <stage> <argv>...             (stage -1: the global ARGs before the first FROM)
read -r -d '' PARSER <<'JS' || true
const { readFileSync } = require('node:fs');
const text = readFileSync(process.argv[1], 'utf8');
const die = (msg) => { console.error(`check-build: ${process.argv[1]}: ${msg}`); process.exit(1); };
// Comment lines go first (also inside a continued instruction, as Docker drops them), then
// lines ending in a backslash join the next.
const lines = text.split('\n').filter((l) => !/^\s*#/.test(l)).join('\n').replace(/\\\n/g, ' ').split('\n');
const globals = {};
let stage = -1;
const out = [];
const emit = (...fields) => {
  for (const f of fields) if (/[\t\n]/.test(String(f))) die(`a tab or newline in ${JSON.stringify(f)}`);
  out.push(fields.join('\t'));
};
const noVars = (s, what) => { if (s.includes('$')) die(`${what}: variables are not supported here: ${s}`); return s; };
for (const raw of lines) {
  const line = raw.trim();
  if (!line) continue;
  const m = /^(\w+)\s+(.*)$/.exec(line);
  if (!m) die(`cannot read: ${line}`);
  const instr = m[1].toUpperCase();
  const rest = m[2].trim();
  switch (instr) {
    case 'ARG': {
      const [, name, eq, value = ''] = /^(\w+)(=?)(.*)$/.exec(rest) ?? die(`ARG ${rest}`);
      if (stage < 0) globals[name] = value;
      emit('ARG', stage, name, eq ? 1 : 0, value);
      break;
    }
    case 'FROM': {
      const [image, as, name] = rest.split(/\s+/);
      if (image.startsWith('--')) die(`FROM flags are not supported: ${rest}`);
      const resolved = image.replace(/\$\{(\w+)\}|\$(\w+)/g, (_, a, b) => globals[a ?? b] ?? die(`FROM: no global ARG ${a ?? b}`));
      stage++;
      emit('FROM', stage, resolved, as && as.toUpperCase() === 'AS' ? name : String(stage));
      break;
    }
    case 'WORKDIR': emit('WORKDIR', stage, noVars(rest, 'WORKDIR')); break;
    case 'COPY': {
      if (rest.startsWith('[')) die(`COPY in JSON form is not supported: ${rest}`);
      const words = noVars(rest, 'COPY').split(/\s+/);
      let from = '-';
      while (words[0].startsWith('--')) {
        const flag = words.shift();
        if (flag.startsWith('--from=')) from = flag.slice(7);
        else if (!/^--(chown|chmod)=/.test(flag)) die(`COPY flag not supported: ${flag}`);
      }
      if (words.length < 2) die(`COPY needs a source and a destination: ${rest}`);
      if (words.some((w) => /[*?[]/.test(w))) die(`COPY with wildcards is not supported: ${rest}`);
      emit('COPY', stage, from, ...words);
      break;
    }
    case 'RUN':
      if (rest.startsWith('[') || rest.startsWith('--')) die(`RUN is supported in shell form without flags only: ${rest}`);
      emit('RUN', stage, rest);
      break;
    case 'ENV': {
      const pairs = [];
      if (!rest.includes('=')) { const [k, ...v] = rest.split(/\s+/); pairs.push(`${k}=${v.join(' ')}`); }
      else for (const p of noVars(rest, 'ENV').split(/\s+/)) {
        if (!/^\w+=[^"'\\]*$/.test(p)) die(`ENV: only NAME=value without quotes or spaces is supported: ${p}`);
        pairs.push(p);
      }
      emit('ENV', stage, ...pairs);
      break;
    }
    case 'USER': case 'EXPOSE': emit(instr, stage, rest); break;
    case 'HEALTHCHECK': {
      const hc = /^(?:--\S+\s+)*CMD\s+(.*)$/.exec(rest) ?? die(`HEALTHCHECK: expected [OPTIONS] CMD command: ${rest}`);
      if (hc[1].startsWith('[')) die('HEALTHCHECK CMD in JSON form is not supported');
      emit('HEALTHCHECK', stage, hc[1]);
      break;
    }
    case 'CMD': {
      let argv;
      try { argv = JSON.parse(rest); } catch { die(`CMD must be in JSON (exec) form: ${rest}`); }
      if (!Array.isArray(argv) || !argv.length || argv.some((a) => typeof a !== 'string')) die(`CMD: a non-empty array of strings: ${rest}`);
      emit('CMD', stage, ...argv);
      break;
    }
    default: die(`instruction ${instr} is not known to docker/check-build.sh: teach it before using it`);
  }
}
if (stage < 0) die('no FROM');
process.stdout.write(out.join('\n') + '\n');
JS
plan=$(node -e "$PARSER" "$DOCKERFILE") || fail "cannot read docker/Dockerfile"

case "$(node -p process.arch)" in
  x64) target_arch=amd64 ;;
  arm64) target_arch=arm64 ;;
  *) fail "no image for this machine's architecture ($(node -p process.arch))" ;;
esac

mb() { awk -v b="$1" 'BEGIN { printf "%.0f MB", b / 1e6 }'; }
bytes() { if [ -e "$1" ]; then du -sb "$1" | cut -f1; else echo 0; fi; }

# ---------------------------------------------------------------------------------------------
# Build every stage.
declare -A stage_root stage_workdir
declare -a stage_names=()
declare -A stage_args stage_env
last=-1
image=
ort_before=0  # onnxruntime-node's bin/ after the first RUN that installed it: every platform
ort_after=0

# Docker's COPY: a directory's contents go into the destination; a file goes into a destination
# that ends in / (or is a directory), else becomes it.
copy() {
  local src=$1 dest=$2 into=$3
  [ -e "$src" ] || fail "COPY source ${src#"$ROOT"/} does not exist"
  if [ -d "$src" ]; then
    mkdir -p "$dest"
    cp -a "$src/." "$dest/"
  elif [ "$into" = 1 ] || [ -d "$dest" ]; then
    mkdir -p "$dest"
    cp -a "$src" "$dest/"
  else
    mkdir -p "$(dirname "$dest")"
    cp -a "$src" "$dest"
  fi
}

in_stage() {  # path as seen inside stage $1 -> path here
  local s=$1 p=$2
  case "$p" in
    /*) printf '%s%s' "${stage_root[$s]}" "$p" ;;
    *) printf '%s%s/%s' "${stage_root[$s]}" "${stage_workdir[$s]}" "$p" ;;
  esac
}

stage_environment() {  # the stage's ARG and ENV values as NAME=value lines
  local s=$1
  printf '%s' "${stage_args[$s]:-}${stage_env[$s]:-}"
}

while IFS=$'\t' read -r -a f; do
  instr=${f[0]} s=${f[1]}
  case "$instr" in
    ARG)
      [ "$s" -ge 0 ] || continue
      name=${f[2]} value=${f[4]:-}
      if [ "$name" = TARGETARCH ]; then value=$target_arch; fi
      stage_args[$s]+="$name=$value"$'\n'
      ;;
    FROM)
      last=$s image=${f[2]}
      stage_names[$s]=${f[3]}
      stage_root[$s]=$work/stage-${f[3]}
      stage_workdir[$s]=/
      stage_user= healthcheck= cmd_stage=
      mkdir -p "${stage_root[$s]}"
      say "stage ${f[3]} (FROM ${f[2]})"
      ;;
    WORKDIR)
      case "${f[2]}" in
        /*) wd=${f[2]} ;;
        *) wd=${stage_workdir[$s]}/${f[2]} ;;
      esac
      stage_workdir[$s]=$(realpath -ms "$wd")
      mkdir -p "${stage_root[$s]}${stage_workdir[$s]}"
      ;;
    COPY)
      from=${f[2]}
      n=${#f[@]}
      dest=${f[n-1]}
      into=0
      if [ $((n - 4)) -gt 1 ] || [[ "$dest" == */ ]]; then into=1; fi
      dest=$(in_stage "$s" "$dest")
      for ((i = 3; i < n - 1; i++)); do
        src=${f[i]}
        if [ "$from" = - ]; then
          src=$ROOT/$src
        else
          fs=
          for k in "${!stage_names[@]}"; do [ "${stage_names[$k]}" = "$from" ] && fs=$k; done
          [ -n "$fs" ] || fail "COPY --from=$from: no such stage"
          src=$(in_stage "$fs" "$src")
        fi
        copy "$src" "$dest" "$into"
      done
      ;;
    RUN)
      cmd=${f[2]}
      say "RUN $cmd"
      t0=$SECONDS
      cwd=${stage_root[$s]}${stage_workdir[$s]}
      mapfile -t vars < <(stage_environment "$s" | sed '/^$/d')
      (cd "$cwd" && env ${vars[@]+"${vars[@]}"} sh -c "$cmd") || fail "RUN $cmd"
      ort=$(bytes "$cwd/node_modules/onnxruntime-node/bin")
      [ "$ort_before" -gt 0 ] || ort_before=$ort
      ort_after=$ort
      say "  took $((SECONDS - t0)) s; node_modules $(mb "$(bytes "$cwd/node_modules")"), onnxruntime-node binaries $(mb "$ort")"
      ;;
    ENV)
      for ((i = 2; i < ${#f[@]}; i++)); do stage_env[$s]+="${f[i]}"$'\n'; done
      ;;
    USER) stage_user=${f[2]} ;;
    EXPOSE) ;;
    HEALTHCHECK) healthcheck=${f[2]} ;;
    CMD) cmd_argv=("${f[@]:2}") cmd_stage=$s ;;
  esac
done <<<"$plan"

[ "${cmd_stage:-}" = "$last" ] || fail "the last stage has no CMD"
[ -n "${healthcheck:-}" ] || fail "no HEALTHCHECK"
[ "${stage_user:-root}" != root ] && [ "${stage_user:-0}" != 0 ] || fail "the image runs as root"
say "the image's filesystem is built ($((SECONDS - started)) s)"

# ---------------------------------------------------------------------------------------------
# Run the last stage's CMD as the image would.
root=${stage_root[$last]}
app=$root${stage_workdir[$last]}
node_modules_bytes=$(bytes "$app/node_modules")
port=$(node -e "const s = require('node:net').createServer().listen(0, '127.0.0.1', () => { console.log(s.address().port); s.close(); })")
run_env=("PATH=$PATH" "HOME=$work/home")
mkdir -p "$work/home"
while IFS= read -r kv; do
  [ -n "$kv" ] || continue
  name=${kv%%=*} value=${kv#*=}
  case "$name" in
    PORT) value=$port ;;
    HOST) value=127.0.0.1 ;;
    MODEL_DIR)
      dirs=()
      IFS=, read -r -a parts <<<"$value"
      for p in "${parts[@]}"; do dirs+=("$root$p"); [ -d "$root$p" ] || fail "MODEL_DIR $p is not in the image"; done
      value=$(IFS=,; echo "${dirs[*]}")
      ;;
  esac
  run_env+=("$name=$value")
done < <(printf '%s' "${stage_env[$last]:-}")

as_user=()
if [ "$(id -u)" = 0 ]; then
  # The image's `node` user is uid 1000; its files belong to root, as they do here.
  chown 1000:1000 "$work/home"
  as_user=(setpriv --reuid=1000 --regid=1000 --clear-groups)
fi

log=$work/server.log
say "starting: ${cmd_argv[*]} (port $port${as_user:+, uid 1000})"
t0=$SECONDS
(cd "$app" && exec ${as_user[@]+"${as_user[@]}"} env -i "${run_env[@]}" "${cmd_argv[@]}") >"$log" 2>&1 &
server_pid=$!

# METHOD URL [BODY]: prints the status, a newline and the body; fails when nothing answers.
http() {
  node -e '
    const [method, url, body] = process.argv.slice(1);
    fetch(url, { method, body: body || undefined, headers: body ? { "content-type": "application/json" } : {}, signal: AbortSignal.timeout(60000) })
      .then(async (r) => process.stdout.write(`${r.status}\n${await r.text()}`), () => process.exit(1));' "$@"
}
wait_for() {  # PATH: until it answers 200
  local path=$1 out
  while :; do
    kill -0 "$server_pid" 2>/dev/null || { cat "$log" >&2; fail "the server exited before $path answered 200"; }
    out=$(http GET "http://127.0.0.1:$port$path" 2>/dev/null) && [ "${out%%$'\n'*}" = 200 ] && break
    [ $((SECONDS - t0)) -lt "$READY_TIMEOUT" ] || { tail -n 40 "$log" >&2; fail "$path did not answer 200 within $READY_TIMEOUT s"; }
    sleep 0.5
  done
}
wait_for /health
say "/health 200 after $((SECONDS - t0)) s"
wait_for /ready
say "/ready 200 after $((SECONDS - t0)) s"

(cd "$app" && exec ${as_user[@]+"${as_user[@]}"} env -i "${run_env[@]}" sh -c "$healthcheck") || fail "the HEALTHCHECK command failed against a healthy server: $healthcheck"
say "HEALTHCHECK command exits 0"

models=$(http GET "http://127.0.0.1:$port/v1/models") || fail "GET /v1/models: no answer"
[ "${models%%$'\n'*}" = 200 ] || fail "GET /v1/models: ${models%%$'\n'*}"
model=$(node -e 'console.log(JSON.parse(process.argv[1]).data[0].id)' "${models#*$'\n'}") || fail "GET /v1/models: no model in ${models#*$'\n'}"
body=$(node -e 'console.log(JSON.stringify({ model: process.argv[1], prompt: "Once upon a time", max_tokens: 4, temperature: 0 }))' "$model")
t1=$SECONDS
reply=$(http POST "http://127.0.0.1:$port/v1/completions" "$body") || fail "POST /v1/completions: no answer"
status=${reply%%$'\n'*}
reply=${reply#*$'\n'}
[ "$status" = 200 ] || { tail -n 20 "$log" >&2; fail "POST /v1/completions answered $status: $reply"; }
text=$(node -e '
  const t = JSON.parse(process.argv[1]).choices?.[0]?.text;
  if (typeof t !== "string" || t.length === 0) process.exit(1);
  console.log(JSON.stringify(t));' "$reply") || fail "POST /v1/completions: no text in $reply"
say "POST /v1/completions (model $model, max_tokens 4, temperature 0): 200, text $text ($((SECONDS - t1)) s)"

# `docker stop` sends SIGTERM, and SIGKILL after its grace period (compose sets 25 s).
t2=$SECONDS
kill -TERM "$server_pid"
for _ in $(seq 1 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.5; done
kill -0 "$server_pid" 2>/dev/null && { tail -n 20 "$log" >&2; fail "the server was still running 25 s after SIGTERM"; }
code=0
wait "$server_pid" || code=$?
server_pid=
[ "$code" = 0 ] || { tail -n 20 "$log" >&2; fail "the server exited with $code after SIGTERM"; }
say "SIGTERM: the server exited 0 after $((SECONDS - t2)) s (DRAIN_DELAY_MS included)"

removed=$((ort_before - ort_after))
kept=$(bytes "$app/node_modules/onnxruntime-node/bin")
say "node_modules: $(mb $((node_modules_bytes + removed))) with every platform's onnxruntime-node binaries, $(mb "$node_modules_bytes") in the image ($(mb "$removed") of them removed, $(mb "$kept") kept: $(cd "$app/node_modules/onnxruntime-node/bin" && find . -mindepth 3 -maxdepth 3 -type d | sed 's|^\./||' | paste -sd ' '))"
say "added to $image: $(mb "$(du -sbc "$root"/* | tail -n 1 | cut -f1)") ($(cd "$root" && for d in *; do [ -d "$d" ] && printf '/%s %s, ' "$d" "$(mb "$(bytes "$d")")"; done | sed 's/, $//'))"
say "the commands ran on Node $(node --version) here, not in $image"
say "passed in $((SECONDS - started)) s"
