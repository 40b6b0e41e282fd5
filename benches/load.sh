#!/usr/bin/env bash
# Load benchmark of `categorizer serve` with wrk (Debian's package; installed if missing).
# Single-row JSON requests at 64 connections with the dynamic batcher on and off, single-
# customer form POSTs (urlencoded, as a browser sends them) at 64 connections, JSON batches
# of 1000 rows at 16 connections, and (when the project's .venv has pyarrow) Arrow IPC
# batches of 10,000 rows at 4 connections. Prints requests/s, rows/s, p50/p99 and the
# server's RSS after the load. Server and load generator share this machine; only loopback
# is used. The model is trained on the real data when ../shared/data has it (as the
# service's users run it), else on the generator's.
#   benches/load.sh [seconds per run, default 10]
# CATEGORIZER_BIN=path runs that binary instead of building this checkout's (to compare two
# builds side by side).
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-10}"
port=5099
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
if [ -n "${CATEGORIZER_BIN:-}" ]; then
  bin="$CATEGORIZER_BIN"
else
  cargo build --release --locked --quiet --bin categorizer
  bin="${CARGO_TARGET_DIR:-target}/release/categorizer"
fi
work="$(mktemp -d)"; trap 'pkill -f "categorizer serve --port $port" || true; rm -rf "$work"' EXIT
real=../shared/data/marketing_campaign.csv
data=(); [ -f "$real" ] && data=(--data "$real")
"$bin" train --quiet --device cpu "${data[@]}" --out "$work/run" --models "$work/models" >/dev/null
echo "model trained on ${data[1]:-generated data}"

python3 - "$work" <<'PY'
import sys
row = ('{"Age": 45, "Education": 2, "Marital_Status": 1, "Parental_Status": 1, "Children": 1, '
       '"Income": 52000.0, "Total_Spending": 600.0, "Days_as_Customer": 500, "Recency": 30, '
       '"Wines": 300.0, "Fruits": 20.0, "Meat": 150.0, "Fish": 30.0, "Sweets": 20.0, "Gold": 80.0, '
       '"Web": 4, "Catalog": 2, "Store": 6, "Discount_Purchases": 2, "Total_Promo": 0, '
       '"NumWebVisitsMonth": 5}')
for name, n in [("one", 1), ("batch", 1000)]:
    body = '{"customers":[' + ",".join([row] * n) + "]}"
    with open(f"{sys.argv[1]}/{name}.lua", "w") as f:
        f.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n')
        f.write(f"wrk.body = '{body}'\n")
import json
form = "&".join(f"{k}={v}" for k, v in json.loads(row).items())
with open(f"{sys.argv[1]}/form.lua", "w") as f:
    f.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/x-www-form-urlencoded"\n')
    f.write(f"wrk.body = '{form}'\n")
PY
arrow=false
if .venv/bin/python -c 'import pyarrow' 2>/dev/null; then
  arrow=true
  .venv/bin/python - "$work" <<'PY'
import sys, pyarrow as pa
row = {"Age": 45, "Education": 2, "Marital_Status": 1, "Parental_Status": 1, "Children": 1,
       "Income": 52000.0, "Total_Spending": 600.0, "Days_as_Customer": 500, "Recency": 30,
       "Wines": 300.0, "Fruits": 20.0, "Meat": 150.0, "Fish": 30.0, "Sweets": 20.0, "Gold": 80.0,
       "Web": 4, "Catalog": 2, "Store": 6, "Discount_Purchases": 2, "Total_Promo": 0,
       "NumWebVisitsMonth": 5}
table = pa.table({k: pa.array([float(v)] * 10_000, pa.float32()) for k, v in row.items()})
with pa.OSFile(f"{sys.argv[1]}/arrow.bin", "wb") as sink, pa.ipc.new_stream(sink, table.schema) as w:
    w.write_table(table)
with open(f"{sys.argv[1]}/arrow.lua", "w") as f:
    f.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/vnd.apache.arrow.stream"\n')
    f.write('wrk.headers["Accept"] = "application/vnd.apache.arrow.stream"\n')
    f.write(f'local file = io.open("{sys.argv[1]}/arrow.bin", "rb")\nwrk.body = file:read("*a")\nfile:close()\n')
PY
fi

run() { # label connections script rows-per-request [path]
  local out; out="$(wrk -t2 -c"$2" -d"${secs}s" --latency -s "$work/$3.lua" "http://127.0.0.1:$port${5:-/api/v1/predict}")"
  local rps p50 p99
  rps="$(awk '/Requests\/sec/ {print $2}' <<<"$out")"
  p50="$(awk '$1=="50%" {print $2}' <<<"$out")"; p99="$(awk '$1=="99%" {print $2}' <<<"$out")"
  printf '%-34s %10.0f req/s %12.0f rows/s   p50 %-8s p99 %s\n' "$1" "$rps" "$(echo "$rps * $4" | bc)" "$p50" "$p99"
}
for batcher in true false; do
  t0=$(date +%s%N)
  CATEGORIZER__SERVER__BATCHER__ENABLED=$batcher RUST_LOG=warn "$bin" serve --port $port --models "$work/models" &
  for _ in $(seq 500); do "$bin" healthcheck --url "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break; sleep 0.01; done
  echo "server ready $(( ($(date +%s%N) - t0) / 1000000 )) ms after start (batcher=$batcher)"
  run "single-row JSON, 64 conn, batcher=$batcher" 64 one 1
  if [ "$batcher" = true ]; then
    run "single-customer form POST, 64 conn" 64 form 1 /
    run "1000-row JSON batches, 16 conn" 16 batch 1000
    if [ "$arrow" = true ]; then run "10,000-row Arrow batches, 4 conn" 4 arrow 10000; fi
  fi
  echo "server RSS after the load: $(ps -o rss= -p $!) KB"
  kill $!; wait $! 2>/dev/null || true
done
