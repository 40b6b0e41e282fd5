#!/usr/bin/env bash
# deploy/compose.yaml in the local Docker engine: N replicas of the project's image behind
# HAProxy on moto's S3 server, the auxiliary images built here from Debian and PyPI packages.
#
#   scripts/compose.sh up      build the images and start (the categorizer image from the
#                              release binary built here, as `image.sh container` does; set
#                              CATEGORIZER_IMAGE to use an image you built with `docker build`)
#   scripts/compose.sh test    up, then through the balancer: predictions answered by every
#                              replica; training and renaming refused without the token; a
#                              job started with it followed to the end, its model promoted
#                              and served by every replica within the poll interval + 1 s; a
#                              rolling `docker restart` of each replica under load with no
#                              failed request; then down
#   scripts/compose.sh down    stop and remove the containers and the network
#
# Compose: `docker compose` (v2) when the CLI has it, else Debian's docker-compose 1.29 (v1,
# installed when missing) with --compatibility, which it needs to honour deploy.replicas.
# Settings: CATEGORIZER_PORT (default 5000), CATEGORIZER_REPLICAS (3), ADMIN_TOKEN_FILE
# (default deploy/admin_token, made with a random token when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
project="${COMPOSE_PROJECT_NAME:-categorizer}"
export CATEGORIZER_PORT="${CATEGORIZER_PORT:-5000}" CATEGORIZER_REPLICAS="${CATEGORIZER_REPLICAS:-3}"
export ADMIN_TOKEN_FILE="${ADMIN_TOKEN_FILE:-$PWD/deploy/admin_token}"
docker_cli() { if [ -x /usr/bin/docker ]; then /usr/bin/docker "$@"; else docker "$@"; fi; }

compose() {
  if docker_cli compose version >/dev/null 2>&1; then
    docker_cli compose -p "$project" -f deploy/compose.yaml "$@"
  else
    if ! command -v docker-compose >/dev/null; then
      sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
      $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        docker-compose >/dev/null
    fi
    docker-compose --compatibility -p "$project" -f deploy/compose.yaml "$@"
  fi
}
replica_ids() {
  docker_cli ps -q --filter "label=com.docker.compose.project=$project" \
    --filter "label=com.docker.compose.service=categorizer"
}
compose_version() {
  if docker_cli compose version >/dev/null 2>&1; then docker_cli compose version --short
  else docker-compose version --short; fi
}

build_images() {
  scripts/image.sh engine
  scripts/image.sh base-images
  local ca=/etc/ssl/certs/ca-certificates.crt
  DOCKER_BUILDKIT=1 docker_cli build -q --secret "id=ca,src=$ca" -f deploy/compose/s3.Dockerfile \
    -t customer-categorizer-s3:local deploy/compose >/dev/null
  DOCKER_BUILDKIT=1 docker_cli build -q -f deploy/compose/haproxy.Dockerfile \
    -t customer-categorizer-haproxy:local deploy/compose >/dev/null
  if [ -z "${CATEGORIZER_IMAGE:-}" ]; then
    local ctx
    ctx="$(mktemp -d)"
    scripts/image.sh prebuilt-context "$ctx" >/dev/null
    DOCKER_BUILDKIT=1 docker_cli build -q --build-arg BINARY_STAGE=prebuilt -f "$ctx/Dockerfile" \
      -t customer-categorizer:compose "$ctx" >/dev/null
    rm -rf "$ctx"
    export CATEGORIZER_IMAGE=customer-categorizer:compose
  fi
  echo "compose: images $CATEGORIZER_IMAGE, customer-categorizer-s3:local, customer-categorizer-haproxy:local" >&2
}

up() {
  build_images
  if [ ! -s "$ADMIN_TOKEN_FILE" ]; then
    (umask 022; python3 -c 'import secrets; print(secrets.token_hex(32), end="")' >"$ADMIN_TOKEN_FILE")
  fi
  # The replicas run as uid 10001 and read the secret through a bind mount.
  chmod 644 "$ADMIN_TOKEN_FILE"
  echo "compose: $(compose_version | head -n1), Docker $(docker_cli info --format '{{.ServerVersion}}')" >&2
  compose up -d --no-build
  # Up when every replica's healthcheck (/readyz) passes and the balancer answers.
  local ready=""
  for _ in $(seq 1 180); do
    mapfile -t replicas < <(replica_ids)
    health="$(for id in "${replicas[@]}"; do docker_cli inspect -f '{{.State.Health.Status}}' "$id"; done | sort | uniq -c | xargs)"
    if [ "${#replicas[@]}" = "$CATEGORIZER_REPLICAS" ] && [ "$health" = "$CATEGORIZER_REPLICAS healthy" ] \
       && curl -fs "http://127.0.0.1:$CATEGORIZER_PORT/readyz" >/dev/null 2>&1; then
      ready=1; break
    fi
    sleep 1
  done
  [ -n "$ready" ] || { compose ps >&2; compose logs --tail 30 >&2
    echo "compose: not ready in 180 s (replicas: ${health:-none})" >&2; exit 1; }
  echo "compose: http://127.0.0.1:$CATEGORIZER_PORT ($CATEGORIZER_REPLICAS replicas; admin token in $ADMIN_TOKEN_FILE)" >&2
}

case "${1:-}" in
  up) up ;;
  down) compose down --remove-orphans ;;
  test)
    command -v curl >/dev/null || { echo "compose: curl is needed" >&2; exit 1; }
    [ -x .venv/bin/python ] || { echo "compose: run scripts/setup.sh first (.venv)" >&2; exit 1; }
    work="$(mktemp -d)"
    CATEGORIZER_PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
    export ADMIN_TOKEN_FILE="$work/admin_token" COMPOSE_PROJECT_NAME="categorizer-test-$$"
    project="$COMPOSE_PROJECT_NAME"
    trap 'compose logs --no-color >"$work/compose.log" 2>&1 || true; compose down --remove-orphans >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
    up
    mapfile -t replicas < <(replica_ids)
    lb="http://127.0.0.1:$CATEGORIZER_PORT"
    # Every replica answers and serves the store's model; training is closed without the token
    # and a job started with it ends, its model served by every replica.
    docker="$(command -v /usr/bin/docker || command -v docker)"
    .venv/bin/python - "$lb" "$(cat "$ADMIN_TOKEN_FILE")" "$CATEGORIZER_REPLICAS" "$docker" "${replicas[0]}" <<'PY'
import subprocess, sys, time, requests
sys.path.insert(0, "scripts")
from load_gen import CUSTOMER
lb, token, replicas, docker, replica = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]

def served_by(n):
    seen = {}
    for _ in range(n):
        r = requests.post(f"{lb}/api/v1/predict", json={"customers": [CUSTOMER]}, timeout=10)
        assert r.status_code == 200, (r.status_code, r.text)
        seen[r.headers["X-Served-By"]] = r.json()["model_version"]
    return seen

seen = served_by(12 * replicas)
print(f"compose: {len(seen)} replicas answered: {seen}")
assert len(seen) == replicas, seen
for headers in [{}, {"X-Forwarded-For": "127.0.0.1"}, {"Authorization": "Bearer wrong"},
                {"X-Real-IP": "127.0.0.1", "Forwarded": "for=127.0.0.1"}]:
    r = requests.post(f"{lb}/api/v1/train", headers=headers, timeout=10)
    print(f"compose: training with {headers or 'no headers'}: {r.status_code}")
    assert r.status_code in (401, 403), r.text
r = requests.put(f"{lb}/api/v1/model/segments/0", json={"name": "Renamed"}, timeout=10)
print(f"compose: renaming a segment without the token: {r.status_code}")
assert r.status_code in (401, 403), r.text
auth = {"Authorization": f"Bearer {token}"}
r = requests.post(f"{lb}/api/v1/train", json={"source": "synthetic:rows=1500,seed=5", "device": "cpu"},
                  headers=auth, timeout=10)
assert r.status_code == 202, r.text
job = r.json()["id"]
deadline = time.time() + 300
while time.time() < deadline:
    v = requests.get(f"{lb}/api/v1/jobs/{job}", headers=auth, timeout=10).json()
    if v["state"] in ("succeeded", "failed", "cancelled"):
        break
    time.sleep(1)
res = v.get("result") or {}
print(f"compose: job {job} {v['state']}: model {res.get('model_version')}, promoted {res.get('promoted')}")
assert v["state"] == "succeeded", v
if not res.get("promoted"):
    # The gate kept the old model (synthetic data against the real-data model): promote the
    # job's model by hand, as an operator would, from inside a replica (the store's client).
    subprocess.run([docker, "exec", replica, "categorizer", "models", "promote", res["model_version"]],
                   check=True, stdout=subprocess.DEVNULL)
    print(f"compose: promoted {res['model_version']} with `categorizer models promote`")
promoted_at = time.time()
# The replicas poll every 5 s: within 5 s + 1 s each serves the store's current model.
first, last_old = {}, promoted_at
while time.time() < promoted_at + 6:
    r = requests.post(f"{lb}/api/v1/predict", json={"customers": [CUSTOMER]}, timeout=10)
    v, who = r.json()["model_version"], r.headers["X-Served-By"]
    if v == res["model_version"]:
        first.setdefault(who, time.time() - promoted_at)
    else:
        last_old = time.time()
    if len(first) == replicas and time.time() - max(first.values()) - promoted_at > 0.5:
        break
print(f"compose: {res['model_version']} first answered by each replica after (s): "
      + ", ".join(f"{k} {t:.2f}" for k, t in sorted(first.items()))
      + f"; the old model last answered {last_old - promoted_at:.2f} s after the promotion")
assert len(first) == replicas, first
seen = served_by(6 * replicas)
assert set(seen.values()) == {res["model_version"]}, seen
PY
    # A rolling restart under load: `docker restart` sends SIGTERM (drain, then exit) and
    # starts the replica again; the next goes once this one is healthy.
    .venv/bin/python scripts/load_gen.py "$lb/api/v1/predict" 8 "$work/stop" "$work/load.json" &
    load=$!
    sleep 3
    for id in "${replicas[@]}"; do
      docker_cli restart -t 15 "$id" >/dev/null
      for _ in $(seq 1 120); do
        [ "$(docker_cli inspect -f '{{.State.Health.Status}}' "$id")" = healthy ] && break
        sleep 1
      done
      sleep 2   # rise 2 at 1 s: back in the balancer's rotation before the next one stops
    done
    touch "$work/stop"; wait "$load"
    .venv/bin/python - "$work/load.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
print(f"compose: rolling docker restart: {s['requests']} requests in {s['seconds']} s, {s['failed']} failed, "
      f"p50 {s['p50_ms']} ms, p99 {s['p99_ms']} ms, max {s['max_ms']} ms")
for f in s["failures"][:3]:
    print("   ", f)
sys.exit(1 if s["failed"] else 0)
PY
    echo "compose: test passed" >&2
    ;;
  *) sed -n '2,19p' "$0" >&2; exit 2 ;;
esac
