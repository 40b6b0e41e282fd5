#!/usr/bin/env bash
# Three `categorizer serve` replicas on one S3 store (moto, from scripts/services.sh) behind
# Debian's HAProxy, under load from scripts/load_gen.py, through a rolling restart: each
# replica in turn gets SIGTERM and is started again once it has exited, behind a balancer
# that does NOT retry (`retries 0`, as a Kubernetes Service or an L4 balancer would), so a
# missing drain shows as failed requests.
#   scripts/replicas.sh [DRAIN_MS]     (default 3000; 0 shows what happens without the drain)
# Then, behind the project's deploy/haproxy.cfg (retries on connection errors), one replica is
# killed with SIGKILL and started again; then a new model is promoted in the store and every
# replica switches to it (the load's answers show when each version was served).
# Prints each phase's summary (requests, failed, p50/p99/max ms, versions served) and exits 1
# if any request failed.
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
  [[ -n ${lb2:-} ]] && kill "$lb2" 2>/dev/null || true
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
export CATEGORIZER_ADMIN_TOKEN="replicas-$$-$RANDOM"
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

# The project's own config (deploy/haproxy.cfg: retries on connection errors), on the same
# replicas, for the kill -9.
deployport="$(free_port)"
LISTEN="127.0.0.1:$deployport" REPLICA1="127.0.0.1:${ports[0]}" REPLICA2="127.0.0.1:${ports[1]}" \
  REPLICA3="127.0.0.1:${ports[2]}" haproxy -f deploy/haproxy.cfg -db >"$work/haproxy-deploy.log" 2>&1 &
lb2=$!
sleep 2.5

# REPLICAS_THROUGHPUT=SECONDS: instead of the events, wrk's single-customer throughput
# against one replica directly and against HAProxy over the three, with each replica's CPU.
if [[ -n ${REPLICAS_THROUGHPUT:-} ]]; then
  command -v wrk >/dev/null || { echo "replicas: wrk is not installed" >&2; exit 1; }
  "$py" - "$work/one.lua" <<'PY'
import json, sys
body = json.dumps({"customers": [{"Age": 45, "Education": 2, "Marital_Status": 1, "Parental_Status": 1,
    "Children": 1, "Income": 52000.0, "Total_Spending": 600.0, "Days_as_Customer": 500, "Recency": 30,
    "Wines": 300.0, "Fruits": 20.0, "Meat": 150.0, "Fish": 30.0, "Sweets": 20.0, "Gold": 40.0, "Web": 4,
    "Catalog": 2, "Store": 6, "Discount_Purchases": 2, "Total_Promo": 0, "NumWebVisitsMonth": 5}]})
open(sys.argv[1], "w").write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.body = [[' + body + ']]\n')
PY
  cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
  for target in "replica:${ports[0]}" "haproxy-over-3:$lbport"; do
    before=("$(cpu "${pids[0]}")" "$(cpu "${pids[1]}")" "$(cpu "${pids[2]}")")
    out="$(wrk -t2 -c64 -d"${REPLICAS_THROUGHPUT}s" --latency -s "$work/one.lua" "http://127.0.0.1:${target#*:}/api/v1/predict")"
    after=("$(cpu "${pids[0]}")" "$(cpu "${pids[1]}")" "$(cpu "${pids[2]}")")
    echo "${target%%:*}: $(grep Requests/sec <<<"$out" | awk '{print $2}') req/s, p99 $(grep ' 99%' <<<"$out" | awk '{print $2}'); replicas' CPU seconds: $(( after[0] - before[0] )) $(( after[1] - before[1] )) $(( after[2] - before[2] )) (clock ticks, 100/s)"
  done
  exit 0
fi

status=0
phase() { # name, port, then the action as a command
  local name="$1" port="$2"; shift 2
  rm -f "$work/stop"
  "$py" scripts/load_gen.py "http://127.0.0.1:$port/api/v1/predict" 8 "$work/stop" "$work/$name.json" &
  local load=$!
  sleep 3
  "$@"
  sleep 2
  touch "$work/stop"
  wait "$load"
  "$py" - "$work/$name.json" "$name" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
import os
v = s["versions"]
print(f"{sys.argv[2]}: {s['requests']} requests in {s['seconds']} s, {s['failed']} failed, "
      f"p50 {s['p50_ms']} ms, p99 {s['p99_ms']} ms, max {s['max_ms']} ms; {len(v)} model version(s) answered")
promoted = os.path.join(os.path.dirname(sys.argv[1]), "promoted_at")
if len(v) == 2 and os.path.exists(promoted):
    at = float(open(promoted).read())
    (old, (_, old_last)), (new, (new_first, _)) = sorted(v.items(), key=lambda kv: kv[1][0])
    print(f"    promoted at +{at - s['started_at']:.2f} s: {new} first answered {new_first - at:+.2f} s after, "
          f"{old} last answered {old_last - at:+.2f} s after; both answered for {max(0.0, old_last - new_first):.2f} s")
for f in s["failures"][:3]:
    print("   ", f)
PY
  local failed
  failed=$("$py" -c "import json; print(json.load(open('$work/$name.json'))['failed'])")
  [[ $failed == 0 ]] || status=1
}

rolling_restart() {
  for i in 0 1 2; do
    kill -TERM "${pids[$i]}"
    wait "${pids[$i]}" || echo "replicas: replica $i exited with $?" >&2
    start_replica "$i"
    sleep 2   # rise 2 at 500 ms: back in rotation before the next one stops
  done
}
kill_one() {
  kill -KILL "${pids[1]}"
  wait "${pids[1]}" 2>/dev/null || true
  sleep 2
  start_replica 1
  sleep 3
}
current_version() { "$bin" models --models "$store" list | awk '$1 == "*" {print $2}'; }
# A second model trained into the store beforehand and left a candidate (rolled back if its
# gate promoted it), so that the promotion below is one clean step.
prepare_new() {
  local old
  old="$(current_version)"
  "$bin" train --data synthetic:rows=2000,seed=2 --device cpu --quiet --out "$work/run2" \
    --models "$store" >/dev/null
  newv="$("$bin" models --models "$store" list | awk 'NR > 1 {print ($1 == "*") ? $2 : $1}' | tail -1)"
  [[ "$(current_version)" == "$old" ]] || "$bin" models --models "$store" rollback >/dev/null
  sleep 2
}
promote_new() {
  date +%s.%N >"$work/promoted_at"
  "$bin" models --models "$store" promote "$newv" >/dev/null
}

phase "rolling-restart-drain-${drain}ms-retries-0" "$lbport" rolling_restart
phase "kill-9-one-replica-deploy-haproxy" "$deployport" kill_one
prepare_new
phase "promotion" "$lbport" promote_new

# Training through the balancer: refused without the token, whatever the client claims;
# two jobs at once, followed through whichever replica answers, both in the store's history
# when promoted, every replica on the same current model after.
PROMOTED_FILE="$work/promoted" "$py" - "http://127.0.0.1:$deployport" "$CATEGORIZER_ADMIN_TOKEN" "${ports[@]}" <<'PY' || status=1
import os, sys, time, requests
lb, token, ports = sys.argv[1], sys.argv[2], sys.argv[3:]
ok = True
for headers in [{}, {"X-Forwarded-For": "127.0.0.1"}, {"Authorization": "Bearer wrong"},
                {"X-Real-IP": "127.0.0.1", "Forwarded": "for=127.0.0.1"}]:
    r = requests.post(f"{lb}/api/v1/train", headers=headers, timeout=10)
    print(f"training through HAProxy with {headers or 'no headers'}: {r.status_code}")
    ok &= r.status_code in (401, 403)
auth = {"Authorization": f"Bearer {token}", "content-type": "application/json"}
body = '{"source": "synthetic:rows=1500,seed=%d", "device": "cpu"}'
ids = []
for seed in (3, 4):
    r = requests.post(f"{lb}/api/v1/train", data=body % seed, headers=auth, timeout=10)
    ok &= r.status_code == 202
    ids.append(r.json()["id"])
print("two jobs started through HAProxy:", ids)
ended = {}
deadline = time.time() + 240
while len(ended) < 2 and time.time() < deadline:
    for i in ids:
        if i in ended:
            continue
        v = requests.get(f"{lb}/api/v1/jobs/{i}", headers=auth, timeout=10).json()
        if v["state"] in ("succeeded", "failed", "cancelled"):
            ended[i] = v
    time.sleep(0.5)
for i, v in ended.items():
    res = v.get("result") or {}
    print(f"job {i}: {v['state']}, model {res.get('model_version')}, promoted {res.get('promoted')}: {res.get('promotion_note')}")
    ok &= v["state"] == "succeeded"
ok &= len(ended) == 2
time.sleep(1.5)
served = {p: requests.get(f"http://127.0.0.1:{p}/api/v1/model", timeout=10).json().get("version") for p in ports}
print("served by each replica:", served)
ok &= len(set(served.values())) == 1
promoted = [v["result"]["model_version"] for v in ended.values() if v.get("result", {}).get("promoted")]
print("promoted by the jobs:", promoted)
with open(os.environ["PROMOTED_FILE"], "w") as f:
    f.write("\n".join(promoted) + "\n")
sys.exit(0 if ok else 1)
PY
# Every promotion of the two jobs is a line of HISTORY, and the last line is what is served.
history="$(.venv-s3/bin/python -c "
import boto3
b, k = '$store'[5:].split('/', 1)
print(boto3.client('s3', endpoint_url='$CATEGORIZER_TEST_S3', region_name='us-east-1').get_object(Bucket=b, Key=k + '/HISTORY')['Body'].read().decode())")"
echo "HISTORY: $(echo "$history" | tr '\n' ' ')"
while read -r v; do
  [[ -z $v ]] || grep -qx "$v" <<<"$history" || { echo "replicas: $v was promoted but is not in HISTORY" >&2; status=1; }
done <"$work/promoted"
"$bin" models --models "$store" list | head -8
exit "$status"
