#!/usr/bin/env bash
# Side-by-side benchmark: the Rust training pipeline (`categorizer train --device cpu`) against
# the plain Python pipeline it replaces (pandas + scikit-learn + XGBoost, 2 threads), on the
# same data file, one after the other. The data are the real records resampled to ROWS rows
# (seed 7, spend and income jittered ±10 %), cached per ROWS; `real` uses the real file as is.
# Prints per-stage seconds, the quality of both, Rust's peak RSS, and writes it all as JSON.
# With `score`, bulk scoring instead: both sides fit on the real records (not timed), then score
# the ROWS-row file into a TSV with the predictions appended (`categorizer predict` against
# pandas read_csv + the features + the scikit-learn transforms + XGBoost + to_csv).
#   benches/vs-python.sh [ROWS|real] [train|score]   (default 1000000 train)
# Env: REAL_DATA (the real file), VS_PYTHON_WORK (venv, data, results; default /tmp/vs-python),
#      VS_PYTHON_MEM_KB (cap on the Python side's memory, e.g. 20000000 at 20M rows),
#      CATEGORIZER_BIN (the binary; built with cargo when the default one is missing).
set -euo pipefail
cd "$(dirname "$0")/.."
rows="${1:-1000000}"
mode="${2:-train}"
[[ ($rows == real || $rows =~ ^[1-9][0-9]*$) && ($mode == train || $mode == score) ]] ||
  { echo "usage: $0 [ROWS|real] [train|score]" >&2; exit 2; }
real="${REAL_DATA:-../shared/data/marketing_campaign.csv}"
[[ -f $real ]] || { echo "vs-python: real data $real not found (set REAL_DATA to the marketing_campaign.csv file)" >&2; exit 1; }
work="${VS_PYTHON_WORK:-/tmp/vs-python}"
mkdir -p "$work"
helper=benches/vs_python.py

# The binary first, so a failed build stops us before the long Python run.
target="${CARGO_TARGET_DIR:-$HOME/.cache/customer-categorizer/target}"
bin="${CATEGORIZER_BIN:-$target/release/categorizer}"
if [[ ! -x $bin ]]; then
  [[ -z ${CATEGORIZER_BIN:-} ]] || { echo "vs-python: CATEGORIZER_BIN=$bin is not an executable" >&2; exit 1; }
  CARGO_TARGET_DIR="$target" cargo build --release --locked --bin categorizer
fi
# GNU time gives wall time and peak RSS of a whole process.
[[ -x /usr/bin/time ]] || { apt-get update -qq && apt-get install -y -qq time >/dev/null; }

# The Python peer lives in its own venv; pip runs only when something is missing.
py="$work/venv/bin/python"
[[ -x $py ]] || python3 -m venv "$work/venv"
if ! "$py" -c 'import pandas, sklearn, xgboost, numpy' 2>/dev/null; then
  "$py" -m pip install -q --disable-pip-version-check pandas scikit-learn xgboost numpy ||
    { echo "vs-python: pip could not install pandas scikit-learn xgboost numpy (is PyPI reachable?)" >&2; exit 1; }
fi

if [[ $rows == real ]]; then
  data="$real"
else
  data="$work/data-$rows.tsv"
  if [[ ! -s $data ]]; then  # written under a temporary name so an interrupted run is not cached
    echo "generating $rows rows -> $data" >&2
    "$py" "$helper" gen "$real" "$rows" "$data.part"
    mv "$data.part" "$data"
  fi
fi

tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT

if [[ $mode == score ]]; then
  echo "Python scoring $data ..." >&2
  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMP_NUM_THREADS=2 OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}" \
    /usr/bin/time -v -o "$work/python-score-$rows.time" "$py" "$helper" score "$real" "$data" "$tmp/python.tsv" \
    >"$work/python-score-$rows.json"
  rm -f "$tmp/python.tsv"
  echo "Rust scoring $data ..." >&2
  "$bin" train --quiet --device cpu --data "$real" --out "$tmp/run" --models "$tmp/models" >/dev/null
  /usr/bin/time -v -o "$work/rust-score-$rows.time" "$bin" predict --quiet --model "$tmp/models" \
    --input "$data" --output "$tmp/rust.tsv" >"$work/rust-score-$rows.log"
  "$py" "$helper" score-report "$work/python-score-$rows.json" "$work/python-score-$rows.time" \
    "$work/rust-score-$rows.log" "$work/rust-score-$rows.time"
  exit 0
fi

echo "Python on $data ..." >&2
# OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE, set on some machines, slow numpy's OpenBLAS down: not here.
# OpenMP threads that spin while they wait (libgomp's default) crawl when anything else shares the
# 2 cores: XGBoost went from 0.8 s to 68 s on 20,000 rows beside a cargo build. Passive waits.
# VS_PYTHON_MEM_KB caps the Python side's address space (ulimit -v) so a size it cannot hold
# fails alone instead of taking the machine down; the Rust side then runs on its own.
python_ok=1
started=$SECONDS
( [[ -z ${VS_PYTHON_MEM_KB:-} ]] || ulimit -v "$VS_PYTHON_MEM_KB"
  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMP_NUM_THREADS=2 OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}" \
    /usr/bin/time -v -o "$work/python-$rows.time" "$py" "$helper" run "$data" >"$work/python-$rows.json"
) || { python_ok=0; echo "Python failed after $((SECONDS - started)) s (memory cap ${VS_PYTHON_MEM_KB:-none} KB): $(grep -E 'Maximum resident|Exit status' "$work/python-$rows.time" 2>/dev/null | tr '\n' ' ')" >&2; }

echo "Rust on $data ..." >&2
# Rayon and polars would take every core; hold them to the same 2 threads as the Python side.
RAYON_NUM_THREADS=2 POLARS_MAX_THREADS=2 \
  /usr/bin/time -v -o "$work/rust-$rows.time" "$bin" train --quiet --device cpu --no-export \
  --data "$data" --out "$tmp/run" --models "$tmp/models" >"$work/rust-$rows.log"
cp "$tmp/run/metrics.json" "$work/rust-$rows.json"
if [[ $python_ok == 0 ]]; then
  echo "Rust: $(grep -E 'Elapsed|Maximum resident' "$work/rust-$rows.time" | tr -s ' ' | tr '\n' ' ')" >&2
  exit 0
fi

"$py" "$helper" report "$work/python-$rows.json" "$work/python-$rows.time" \
  "$work/rust-$rows.json" "$work/rust-$rows.time" "$work/result-$rows.json"
