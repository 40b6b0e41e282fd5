#!/usr/bin/env bash
# Detection figures of live monitoring, on the real data (../shared/data) when present, else
# on generated records: trains a model, then benches/monitoring_detect.py serves it and sends
# the four scenarios and WINDOWS fresh windows of resampled customers (false alarms).
#   benches/monitoring.sh [WINDOWS, default 100]
# CATEGORIZER_BIN=path runs that binary (default: the release binary in CARGO_TARGET_DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${CATEGORIZER_BIN:-${CARGO_TARGET_DIR:-target}/release/categorizer}"
[ -x "$bin" ] || { echo "monitoring: build the release binary first ($bin)" >&2; exit 1; }
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
real=../shared/data/marketing_campaign.csv
data="synthetic:rows=2240,seed=42"; [ -f "$real" ] && data="$real"
"$bin" train --quiet --device cpu --data "$data" --out "$work/run" --models "$work/models" >/dev/null
"$bin" features --input "$data" --output "$work/features.csv" >/dev/null
echo "model trained on $data; $(($(wc -l <"$work/features.csv") - 1)) customers to resample"
.venv/bin/python benches/monitoring_detect.py "$bin" "$work/models" "$work/features.csv" "${1:-100}"
