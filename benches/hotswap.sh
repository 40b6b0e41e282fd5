#!/usr/bin/env bash
# Hot swap under load. The server follows an S3 model store (moto's S3 server on loopback,
# started by scripts/services.sh) and polls its current pointer every 500 ms. wrk sends
# single-row JSON predictions at 64 connections in three windows: before, during (a second
# model is promoted with `categorizer models promote` 1 s into it) and after the switch.
# Prints requests/s, p99, non-2xx answers and socket errors per window, and the version
# answering before and after. Server and wrk share this machine.
#   benches/hotswap.sh [seconds per window, default 5]
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-5}"
port=5098
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
bin="${CATEGORIZER_BIN:-${CARGO_TARGET_DIR:-target}/release/categorizer}"
[ -x "$bin" ] || { echo "build first: cargo build --release --locked --tests --bins --benches" >&2; exit 1; }
work="$(mktemp -d)"
scripts/services.sh start "$work/services"
trap 'kill $server 2>/dev/null || true; scripts/services.sh stop "$work/services"; rm -rf "$work"' EXIT
server=""
# shellcheck disable=SC1090
. "$work/services"
export CATEGORIZER__MODELS__S3__ENDPOINT="$CATEGORIZER_TEST_S3" CATEGORIZER__MODELS__S3__FORCE_PATH_STYLE=true
export CATEGORIZER__MODELS__S3__CACHE_DIR="$work/cache" CATEGORIZER__MODELS__POLL_INTERVAL_MS=500
uri="s3://categorizer-bench/models"
.venv-s3/bin/python -c "import boto3; boto3.client('s3', endpoint_url='$CATEGORIZER_TEST_S3', region_name='us-east-1').create_bucket(Bucket='categorizer-bench')"
for seed in 1 2; do
  "$bin" train --quiet --device cpu --seed $seed --out "$work/run$seed" --models "$uri" >/dev/null
done
mapfile -t versions < <("$bin" models list --models "$uri" | awk 'NR>1 {print ($1=="*") ? $2 : $1}')
first="${versions[0]}"; second="${versions[1]}"
"$bin" models promote "$first" --models "$uri" >/dev/null
"$bin" models list --models "$uri"

cat >"$work/one.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"customers":[{"Age": 45, "Education": 2, "Marital_Status": 1, "Parental_Status": 1, "Children": 1, "Income": 52000.0, "Total_Spending": 600.0, "Days_as_Customer": 500, "Recency": 30, "Wines": 300.0, "Fruits": 20.0, "Meat": 150.0, "Fish": 30.0, "Sweets": 20.0, "Gold": 80.0, "Web": 4, "Catalog": 2, "Store": 6, "Discount_Purchases": 2, "Total_Promo": 0, "NumWebVisitsMonth": 5}]}'
LUA
RUST_LOG=info "$bin" serve --host 127.0.0.1 --port $port --models "$uri" 2>"$work/server.log" &
server=$!
for _ in $(seq 1000); do "$bin" healthcheck --url "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break; sleep 0.05; done
version() { python3 -c "import json,urllib.request; print(json.load(urllib.request.urlopen('http://127.0.0.1:$port/api/v1/model'))['version'])"; }
window() { # label
  local out; out="$(wrk -t2 -c64 -d"${secs}s" --latency -s "$work/one.lua" "http://127.0.0.1:$port/api/v1/predict")"
  printf '%-8s %9.0f req/s   p99 %-8s non-2xx %s   socket errors %s\n' "$1" \
    "$(awk '/Requests\/sec/ {print $2}' <<<"$out")" "$(awk '$1=="99%" {print $2}' <<<"$out")" \
    "$(awk '/Non-2xx/ {print $NF}' <<<"$out" | grep . || echo 0)" \
    "$(awk '/Socket errors/ {print $0}' <<<"$out" | grep . || echo none)"
}
echo "serving $(version); the store holds $first and $second"
window before
( sleep 1; "$bin" models promote "$second" --models "$uri" >/dev/null; echo "promoted $second at +1 s" ) &
promoter=$!
window during
wait $promoter
window after
echo "serving $(version) after the switch"
grep -E "switched|refused" "$work/server.log" | sed 's/^/server: /'
