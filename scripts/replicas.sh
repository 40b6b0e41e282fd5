#!/usr/bin/env bash
# Three `categorizer serve` replicas on one S3 store (moto, from scripts/services.sh) behind
# Debian's HAProxy, under load from scripts/load_gen.py, through a rolling restart: each
# replica in turn gets SIGTERM and is started again once it has exited, behind a balancer
# that does NOT retry (`retries 0`, as a Kubernetes Service or an L4 balancer would), so a
# missing drain shows as failed requests.
#   scripts/replicas.sh [DRAIN_MS]     (default 3000; 0 shows what happens without the drain)
# Prints the load's summary (requests, failed, p50/p99/max ms) and exits 1 if any failed.
set -euo pipefail
cd "$(dirname "$0")/.."
drain="${1:-3000}"
bin="${CATEGORIZER_BIN:-${CARGO_TARGET_DIR:-target}/release/categorizer}"
[[ -x $bin ]] || { echo "replicas: build the release binary first ($bin)" >&2; exit 1; }
command -v haproxy >/dev/null || { echo "replicas: haproxy is not installed (apt-get install haproxy)" >&2; exit 1; }
py=.venv/bin/python
work="$(mktemp -d)"
pids=()
cleanup() {
  touch "$work/stop"
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [[ -n ${lb:-} ]] && kill "$lb" 2>/dev/null || true
  scripts/services.sh stop "$work/services.env" >/dev/null 2>&1 || true
}
trap cleanup EXIT
scripts/services.sh start "$work/services.env" >/dev/null
# shellcheck disable=SC1091
. "$work/services.env"
free_port() { "$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

bucket="categorizer-replicas"
.venv-s3/bin/python -c "
import boto3; boto3.client('s3', endpoint_url='$CATEGORIZER_TEST_S3', region_name='us-east-1').create_bucket(Bucket='$bucket')" 2>/dev/null || true
store="s3://$bucket/run-$$"
export CATEGORIZER__MODELS__S3__ENDPOINT="$CATEGORIZER_TEST_S3" CATEGORIZER__MODELS__S3__FORCE_PATH_STYLE=true
export CATEGORIZER__MODELS__POLL_INTERVAL_MS=500 CATEGORIZER__SERVER__DRAIN_MS="$drain"
export CATEGORIZER__SERVER__SHUTDOWN_GRACE_MS=3000 CATEGORIZER__SERVER__BEHIND_PROXY=true
export RUST_LOG=warn
"$bin" train --data synthetic:rows=2000,seed=1 --device cpu --quiet --out "$work/run" --models "$store" >/dev/null

ports=("$(free_port)" "$(free_port)" "$(free_port)")
start_replica() { # index
  "$bin" serve --host 127.0.0.1 --port "${ports[$1]}" --models "$store" >"$work/replica-$1.log" 2>&1 &
  pids[$1]=$!
  for _ in $(seq 1 200); do
    curl -fs "http://127.0.0.1:${ports[$1]}/readyz" >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  echo "replicas: replica $1 did not become ready" >&2; cat "$work/replica-$1.log" >&2; exit 1
}
for i in 0 1 2; do start_replica "$i"; done

lbport="$(free_port)"
cat >"$work/haproxy.cfg" <<CFG
global
  maxconn 2048
defaults
  mode http
  timeout connect 1s
  timeout client 30s
  timeout server 30s
  # No retry and no redispatch: what a Kubernetes Service or an L4 balancer gives.
  retries 0
frontend customers
  bind 127.0.0.1:$lbport
  default_backend replicas
backend replicas
  balance roundrobin
  option httpchk GET /readyz
  default-server inter 500 fall 1 rise 2
  server r0 127.0.0.1:${ports[0]} check
  server r1 127.0.0.1:${ports[1]} check
  server r2 127.0.0.1:${ports[2]} check
CFG
haproxy -f "$work/haproxy.cfg" -db >"$work/haproxy.log" 2>&1 &
lb=$!
sleep 1.5

"$py" scripts/load_gen.py "http://127.0.0.1:$lbport/api/v1/predict" 8 "$work/stop" "$work/load.json" &
load=$!
sleep 3
for i in 0 1 2; do
  kill -TERM "${pids[$i]}"
  wait "${pids[$i]}" || { echo "replicas: replica $i exited with $?" >&2; }
  start_replica "$i"
  sleep 2   # rise 2 at 500 ms: back in rotation before the next one stops
done
sleep 2
touch "$work/stop"
wait "$load"
echo "drain_ms=$drain rolling restart of 3 replicas behind HAProxy (retries 0):"
cat "$work/load.json"
failed=$("$py" -c "import json; print(json.load(open('$work/load.json'))['failed'])")
[[ $failed == 0 ]]
