#!/usr/bin/env bash
# Fairness under mixed load: single-customer JSON at 8 connections (wrk, 15 s) while 2 other
# clients post 100,000-customer JSON bodies back to back, against `categorizer serve` on the
# model store MODELS (default models/). Prints wrk's latency distribution and the big
# requests' count and mean time. Release build; wrk from Debian (installed if missing).
#   benches/fairness.sh            # as configured
#   CATEGORIZER__SERVER__BATCHER__MAX_BATCH_ROWS=200000 benches/fairness.sh   # big requests whole
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
B="${CATEGORIZER_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/customer-categorizer/target}/release/categorizer}"
MODELS="${MODELS:-models}"
W="$(mktemp -d)"; mkdir -p "$W/h"
$B serve --host 127.0.0.1 --port 5078 --models "$MODELS" >"$W/h/fair.log" 2>&1 &
SPID=$!
trap 'kill $SPID 2>/dev/null; rm -rf "$W"' EXIT
sleep 4
W="$W" python3 - <<'PY'
import json, os
w = os.environ['W'] + '/h/'
c={"Age":45,"Education":2,"Marital_Status":1,"Parental_Status":1,"Children":1,"Income":52000.0,"Total_Spending":600.0,"Days_as_Customer":500,"Recency":30,"Wines":300.0,"Fruits":20.0,"Meat":150.0,"Fish":30.0,"Sweets":20.0,"Gold":80.0,"Web":4,"Catalog":2,"Store":6,"Discount_Purchases":2,"Total_Promo":0,"NumWebVisitsMonth":5}
open(w + 'big.json','w').write(json.dumps({"customers":[c]*100000}))
b=json.dumps({"customers":[c]})
open(w + 'one.lua','w').write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.body = \'%s\'\n' % b)
PY
big() { while [ -f $W/h/running ]; do curl -s -o /dev/null -w "%{http_code} %{time_total}\n" -H 'Content-Type: application/json' --data-binary @$W/h/big.json http://127.0.0.1:5078/api/v1/predict >> $W/h/big.log; done; }
touch $W/h/running; : > $W/h/big.log
big & B1=$!; big & B2=$!
sleep 1
wrk -t2 -c8 -d15s --latency -s $W/h/one.lua http://127.0.0.1:5078/api/v1/predict | grep -E "Latency|50%|90%|99%|Requests/sec|Non-2xx"
rm -f $W/h/running; wait $B1 $B2 2>/dev/null || true
echo "big requests: $(wc -l < $W/h/big.log), statuses: $(cut -d' ' -f1 $W/h/big.log | sort | uniq -c | tr '\n' ' '), mean s: $(awk '{s+=$2} END {print s/NR}' $W/h/big.log)"
