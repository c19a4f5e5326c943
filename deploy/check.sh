#!/usr/bin/env bash
# Checks the deployment files in deploy/ with real tools, offline once installed:
#
#   deploy/check.sh            manifests, configs, unit, and a load-balancer run
#   deploy/check.sh --image    also builds and runs the container images with podman
#
# 1. Kubernetes manifests: kubernetes-validate --strict (PyPI; bundles the JSON schemas,
#    needs no network) against Kubernetes 1.37 and 1.29; kustomization's resources.
# 2. deploy/compose.yaml: check-jsonschema against the Compose Specification schema it
#    bundles (vendor.compose-spec).
# 3. deploy/haproxy.cfg: `haproxy -c`, with its defaults and with compose's variables.
# 4. deploy/cantocap.service: `systemd-analyze verify` (any warning fails) and
#    `systemd-analyze security --offline` (exposure at most 2.0: --threshold=20, in tenths).
# 5. Every cantocap TOML here (the example, compose's, the Kubernetes ConfigMap joined
#    with the example Secret, as the init container joins them) is loaded by
#    `cantocap serve` itself, which refuses unknown keys.
# 6. HAProxy with deploy/haproxy.cfg in front of three cantocap nodes on loopback:
#    health checks pass, three WebSocket viewers are spread one per node (leastconn),
#    a node stopped with SIGTERM is taken out and requests still succeed.
# 7. (--image) the Dockerfile's runtime and init stages built with podman on a Debian 12
#    base made by debootstrap (Docker Hub is not needed), around target/release/cantocap;
#    the init image fills a volume from PyPI; the server image serves /readyz and
#    /metrics, passes its health check and stops cleanly on SIGTERM.
#
# Needs: target/release/cantocap and models/ggml-tiny.en.bin (./setup.sh), pip3, curl;
# apt packages haproxy (and for --image: podman, runc, debootstrap). The Python tools
# are installed once into target/deploy-py.
set -euo pipefail
cd "$(dirname "$0")/.."
image=false
[ "${1:-}" = "--image" ] && image=true

bin=target/release/cantocap
model=models/ggml-tiny.en.bin
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  [ -n "${KEEP:-}" ] && echo "kept $work" || rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
step() { echo "== $*"; }

for tool in haproxy systemd-analyze curl pip3 python3; do
  command -v "$tool" >/dev/null || fail "$tool is needed (apt-get install haproxy systemd curl python3-pip)"
done
[ -x "$bin" ] || fail "$bin is missing: build it first (cargo build --release)"
[ -f "$model" ] || fail "$model is missing: run models/fetch-test-model.sh"

py=target/deploy-py
if [ ! -x "$py/bin/kubernetes-validate" ] || [ ! -x "$py/bin/check-jsonschema" ]; then
  step "installing kubernetes-validate and check-jsonschema into $py"
  python3 -m venv "$py"
  "$py/bin/pip" install --quiet kubernetes-validate==1.37.0 check-jsonschema==0.39.0
fi

step "Kubernetes manifests (kubernetes-validate --strict, schemas 1.37 and 1.29)"
manifests=(deploy/k8s/{configmap,deployment,service,pdb,hpa,secret.example}.yaml)
for version in 1.37.0 1.29.0; do
  "$py/bin/kubernetes-validate" --strict --quiet -k "$version" "${manifests[@]}" \
    || fail "manifests do not validate against Kubernetes $version"
done
"$py/bin/python" - <<'PY' || fail "deploy/k8s: kustomization or values"
import os, yaml
k = yaml.safe_load(open("deploy/k8s/kustomization.yaml"))
for r in k["resources"]:
    assert os.path.isfile(os.path.join("deploy/k8s", r)), f"kustomization lists missing {r}"
assert "secret.example.yaml" not in k["resources"], "the example secret must not be deployed"
v = yaml.safe_load(open("deploy/k8s/nats-values.yaml"))
js = v["config"]["jetstream"]
assert js["enabled"] and js["fileStore"]["enabled"], "NATS values: JetStream on file storage"
assert v["config"]["cluster"]["replicas"] == 3, "NATS values: 3 replicas"
d = yaml.safe_load(open("deploy/k8s/deployment.yaml"))
pod = d["spec"]["template"]["spec"]
assert pod["terminationGracePeriodSeconds"] == 45
c = pod["containers"][0]
assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
assert c["livenessProbe"]["httpGet"]["path"] == "/livez"
assert c["startupProbe"]["httpGet"]["path"] == "/readyz"
print("kustomization, NATS values and probes consistent")
PY

step "compose file (check-jsonschema, Compose Specification)"
"$py/bin/check-jsonschema" --builtin-schema vendor.compose-spec deploy/compose.yaml

step "haproxy -c -f deploy/haproxy.cfg"
haproxy -c -q -f deploy/haproxy.cfg || fail "haproxy.cfg"
CANTOCAP_NODE1=127.0.0.1:1 CANTOCAP_NODE2=127.0.0.1:2 CANTOCAP_NODE3=127.0.0.1:3 \
  CANTOCAP_LISTEN=:8787 CANTOCAP_STATS_LISTEN=:8404 haproxy -c -q -f deploy/haproxy.cfg \
  || fail "haproxy.cfg with compose's variables"

step "systemd unit (systemd-analyze verify, security --offline)"
# verify checks that ExecStart's binary exists: point it at the one built here.
sed "s|/usr/local/bin/cantocap|$PWD/$bin|" deploy/cantocap.service >"$work/cantocap.service"
out=$(systemd-analyze verify "$work/cantocap.service" 2>&1) || fail "systemd-analyze verify: $out"
[ -z "$out" ] || fail "systemd-analyze verify warns: $out"
systemd-analyze security --offline=true --threshold=20 --no-pager "$work/cantocap.service" \
  >"$work/security.txt" || fail "systemd-analyze security: $(tail -1 "$work/security.txt")"
tail -1 "$work/security.txt"

# Starts cantocap with config $1, logging to $2, on a free loopback port: sets
# $port and $pid once it listens, or fails with its log.
serve() {
  local config=$1 log=$2 i
  shift 2
  : >"$log"
  "$bin" serve --listen 127.0.0.1:0 --config "$config" --model "$model" --vad builtin \
    --data-dir "$work/data-$RANDOM" "$@" >"$log" 2>&1 &
  pid=$!
  pids+=("$pid")
  for i in $(seq 100); do
    port=$(sed -n 's|.*listening on http://127.0.0.1:\([0-9]*\).*|\1|p' "$log" | head -1)
    [ -n "$port" ] && return
    kill -0 "$pid" 2>/dev/null || fail "cantocap refuses $config: $(cat "$log")"
    sleep 0.1
  done
  fail "cantocap did not start: $(cat "$log")"
}

step "cantocap loads every TOML config here"
# The example's audit log path is the installed one; write it here instead.
sed "s|/var/log/cantocap/audit.jsonl|$work/audit.jsonl|" deploy/cantocap.toml.example >"$work/example.toml"
"$py/bin/python" - "$work" <<'PY'
import sys, yaml
work = sys.argv[1]
config = yaml.safe_load(open("deploy/k8s/configmap.yaml"))["data"]["cantocap.toml"]
tokens = yaml.safe_load(open("deploy/k8s/secret.example.yaml"))["stringData"]["tokens.toml"]
open(f"{work}/k8s.toml", "w").write(config + tokens)  # what the init container's cat makes
PY
for config in "$work/example.toml" deploy/compose.toml "$work/k8s.toml"; do
  serve "$config" "$work/serve.log"
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  echo "$config: loaded (listened on $port)"
done

step "HAProxy in front of three nodes: health checks, leastconn, SIGTERM drain"
token=check-view-token-0123456789
printf '[[tokens]]\nname = "check"\ntoken = "%s"\nroles = ["view", "ingest", "admin"]\n[limits]\nshutdown_grace_secs = 5\n' \
  "$token" >"$work/node.toml"
nodes=()
for n in 1 2 3; do
  serve "$work/node.toml" "$work/node-$n.log"
  nodes+=("$pid")
  export "CANTOCAP_NODE$n=127.0.0.1:$port"
done
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
lb=$(free_port)
stats=$(free_port)
CANTOCAP_LISTEN=127.0.0.1:$lb CANTOCAP_STATS_LISTEN=127.0.0.1:$stats \
  haproxy -n 1000 -f deploy/haproxy.cfg >"$work/haproxy.log" 2>&1 &   # -n: maxconn within this sandbox's file limit
pids+=($!)
# Field 18 of HAProxy's CSV is the server's status, 5 its current sessions.
server_column() { curl -s "http://127.0.0.1:$stats/;csv" | awk -F, -v s="$1" -v c="$2" '$1 == "nodes" && $2 == s { print $c }'; }
wait_status() { # server, status
  local i
  for i in $(seq 50); do
    [ "$(server_column "$1" 18)" = "$2" ] && return
    sleep 0.2
  done
  fail "HAProxy: $1 is $(server_column "$1" 18), not $2 (log: $(tail -5 "$work/haproxy.log"))"
}
for s in node-1 node-2 node-3; do wait_status "$s" UP; done
echo "health checks: node-1, node-2, node-3 UP"
[ "$(curl -s "http://127.0.0.1:$lb/readyz")" = ready ] || fail "GET /readyz through HAProxy"

viewer() { # a WebSocket viewer through the balancer, held open
  curl -s -N -i --max-time 30 -H "Authorization: Bearer $token" \
    -H 'Connection: Upgrade' -H 'Upgrade: websocket' -H 'Sec-WebSocket-Version: 13' \
    -H 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==' \
    "http://127.0.0.1:$lb/v1/captions/room-$1?script=hk" >"$work/viewer-$1.out" 2>&1 &
  pids+=($!)
  local i
  for i in $(seq 50); do
    grep -q '^HTTP/1.1 101' "$work/viewer-$1.out" && return
    sleep 0.1
  done
  fail "viewer $1: no WebSocket upgrade through HAProxy: $(head -3 "$work/viewer-$1.out")"
}
for v in 1 2 3; do viewer "$v"; done
spread=$(for s in node-1 node-2 node-3; do server_column "$s" 5; done | tr '\n' ' ')
[ "$spread" = "1 1 1 " ] || fail "leastconn: viewers per node are $spread, not 1 1 1"
echo "3 WebSocket viewers through HAProxy: one per node"

kill -TERM "${nodes[0]}"
wait_status node-1 DOWN
for i in 1 2 3 4 5 6; do
  [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$lb/readyz")" = 200 ] \
    || fail "GET /readyz through HAProxy after node-1 stopped"
done
# Its viewer got a WebSocket close (going away, or 1012 service restart in cluster
# mode) through HAProxy, so it can reconnect; the others stay open.
closed=$(python3 - "$work" <<'PY'
import glob, sys
codes = []
for name in sorted(glob.glob(sys.argv[1] + "/viewer-*.out")):
    data = open(name, "rb").read()
    at = data.find(b"\r\n\r\n") + 4
    while at + 2 <= len(data):  # server frames: unmasked, short
        op, n = data[at] & 0x0F, data[at + 1] & 0x7F
        if op == 8:
            codes.append(int.from_bytes(data[at + 2:at + 4], "big"))
        at += 2 + n
print(" ".join(map(str, codes)))
PY
)
case "$closed" in 1001 | 1012) ;; *) fail "viewers closed with [$closed], not one close 1001/1012" ;; esac
echo "node-1 stopped (SIGTERM): HAProxy marked it DOWN, its viewer was closed ($closed), requests still answered"

if $image; then
  step "container images (podman, Debian 12 base from debootstrap)"
  for tool in podman runc debootstrap; do
    command -v "$tool" >/dev/null || fail "$tool is needed (apt-get install podman runc debootstrap)"
  done
  # Where podman runs inside a container (this machine): crun cannot use hybrid
  # cgroups, and the default rlimits are above what the sandbox allows.
  p=(podman --runtime runc)
  limits=(--ulimit nofile=4096:4096 --ulimit nproc=1000:1000)
  if ! podman image exists localhost/debian:bookworm-slim; then
    rootfs=target/deploy-rootfs
    [ -f "$rootfs/etc/debian_version" ] || debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian >"$work/debootstrap.log" 2>&1 \
      || fail "debootstrap: $(tail -5 "$work/debootstrap.log")"
    tar -C "$rootfs" -c . | podman import --quiet - localhost/debian:bookworm-slim >/dev/null
  fi
  mkdir -p "$work/prebuilt/src/target/release"
  cp "$bin" "$work/prebuilt/src/target/release/"
  tar -C "$work/prebuilt" -c src | podman import --quiet - localhost/cantocap-prebuilt:check >/dev/null
  args=(--format docker "${limits[@]}" -f deploy/Dockerfile
    --build-arg DEBIAN_IMAGE=localhost/debian:bookworm-slim
    --build-arg CANTOCAP_BUILD=localhost/cantocap-prebuilt:check)
  "${p[@]}" build "${args[@]}" --target runtime -t localhost/cantocap:check . >"$work/build.log" 2>&1 \
    || fail "podman build (runtime): $(tail -20 "$work/build.log")"
  "${p[@]}" build "${args[@]}" --target init -t localhost/cantocap-init:check . >"$work/build.log" 2>&1 \
    || fail "podman build (init): $(tail -20 "$work/build.log")"
  echo "built localhost/cantocap:check, localhost/cantocap-init:check"

  # Behind a TLS-inspecting proxy (as here) pip inside needs the host's CA bundle.
  ca=()
  [ -n "${SSL_CERT_FILE:-}" ] && ca=(-v "$SSL_CERT_FILE:/etc/ssl/certs/ca-certificates.crt:ro")
  volume=cantocap-check-models
  podman volume rm -f "$volume" >/dev/null 2>&1 || true
  podman volume create "$volume" >/dev/null
  "${p[@]}" run --rm "${limits[@]}" "${ca[@]}" -v "$volume:/models" localhost/cantocap-init:check \
    >"$work/init.log" 2>&1 || fail "init container: $(tail -20 "$work/init.log")"
  # The same files, byte for byte, as models/fetch-test-model.sh makes on the host.
  files=(ggml-base.bin ggml-base-q8_0.bin ggml-tiny.en.bin ggml-silero-vad.bin)
  inside=$("${p[@]}" run --rm "${limits[@]}" -v "$volume:/models:ro" -w /models --entrypoint sha256sum \
    localhost/cantocap:check "${files[@]}" 2>/dev/null) || fail "init container: $(tail -20 "$work/init.log")"
  if [ -f models/ggml-base.bin ]; then
    [ "$inside" = "$(cd models && sha256sum "${files[@]}")" ] || fail "init container's models differ from models/"
  fi
  echo "init container filled the models volume from PyPI (the same files as models/)"

  port=$(free_port)
  "${p[@]}" run -d --name cantocap-check "${limits[@]}" -p "127.0.0.1:$port:8787" \
    -v "$volume:/models:ro" -v "$work/node.toml:/etc/cantocap/cantocap.toml:ro" \
    localhost/cantocap:check >/dev/null 2>"$work/run.log" \
    || { cat "$work/run.log" >&2; fail "podman run"; }
  ready=""
  for i in $(seq 100); do
    ready=$(curl -s "http://127.0.0.1:$port/readyz" || true)
    [ "$ready" = ready ] && break
    sleep 0.2
  done
  [ "$ready" = ready ] || fail "container /readyz: $ready; $(podman logs cantocap-check 2>&1 | tail -5)"
  curl -s -H "Authorization: Bearer $token" "http://127.0.0.1:$port/metrics" | grep -q '^cantocap_ready 1' \
    || fail "container /metrics"
  "${p[@]}" exec cantocap-check cantocap-probe /readyz || fail "cantocap-probe in the container"
  [ "$("${p[@]}" exec cantocap-check id -u)" = 10001 ] || fail "the server does not run as uid 10001"
  "${p[@]}" stop -t 45 cantocap-check >/dev/null 2>&1
  code=$(podman inspect cantocap-check --format '{{.State.ExitCode}}')
  podman rm cantocap-check >/dev/null 2>&1
  podman volume rm -f "$volume" >/dev/null 2>&1
  [ "$code" = 0 ] || fail "the container exited with $code on SIGTERM"
  echo "server container: ready, metrics, probe, uid 10001, exit 0 on SIGTERM"
fi
echo "deploy/check.sh: all checks passed"
