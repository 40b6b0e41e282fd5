#!/usr/bin/env bash
# Scoring where the data lives, side by side in one run: `categorizer predict` and the Spark
# package (`spark-submit integrations/spark/score.py`, local[2]) on the same file of real-shaped
# rows (the real records resampled as benches/vs-python.sh makes them), the same model.
# Reports rows/s and peak memory: the binary's, and Spark's JVM (driver and, in local mode,
# executor), its Python workers (summed) and its Python driver.
#   benches/spark.sh [ROWS] [RUNS] [tsv|parquet]   (default 10000000 rows, 1 run each, tsv)
# parquet: the same rows as typed Parquet (numbers as numbers), converted once with DuckDB.
# Env: REAL_DATA, VS_PYTHON_WORK (data cache; default /tmp/vs-python), CATEGORIZER_BIN,
#      SPARK_DRIVER_MEMORY (default 4g).
set -euo pipefail
cd "$(dirname "$0")/.."
rows="${1:-10000000}"
runs="${2:-1}"
format="${3:-tsv}"
real="${REAL_DATA:-../shared/data/marketing_campaign.csv}"
[[ -f $real ]] || { echo "spark bench: real data $real not found (set REAL_DATA)" >&2; exit 1; }
work="${VS_PYTHON_WORK:-/tmp/vs-python}"
mkdir -p "$work"
py=.venv/bin/python
"$py" -c 'import pyspark, pandas, numpy' 2>/dev/null || { echo "spark bench: run scripts/setup.sh test first" >&2; exit 1; }
export PYSPARK_PYTHON="$PWD/$py" PYSPARK_DRIVER_PYTHON="$PWD/$py"
bin="${CATEGORIZER_BIN:-${CARGO_TARGET_DIR:-target}/release/categorizer}"
[[ -x $bin ]] || { cargo build --release --locked; bin="${CARGO_TARGET_DIR:-target}/release/categorizer"; }

data="$work/data-$rows.tsv"
if [[ ! -f $data ]]; then
  echo "spark bench: writing $rows real-shaped rows to $data" >&2
  "$py" benches/vs_python.py gen "$real" "$rows" "$data.part"
  mv "$data.part" "$data"
fi
if [[ $format == parquet ]]; then
  tsv="$data"; data="$work/data-$rows.parquet"
  [[ -f $data ]] || "$py" - "$tsv" "$data" <<'PY'
import sys, duckdb
tsv, out = sys.argv[1:3]
schema = {"integer": "BIGINT", "number": "DOUBLE"}
kinds = {}
for line in open("config/schema.yaml"):
    line = line.strip()
    if line.startswith("- { name:"):
        name = line.split("name:")[1].split(",")[0].strip()
        kinds[name] = line.split("type:")[1].split(",")[0].strip().rstrip("}").strip()
    elif line.startswith("- name:"):
        kinds[line.split(":", 1)[1].strip()] = "category"
src = f"read_csv('{tsv}', delim='\t', header=true, all_varchar=true)"
cols = duckdb.sql(f"SELECT * FROM {src} LIMIT 0").columns
sel = ", ".join(f'CAST("{c}" AS {schema[kinds[c]]}) AS "{c}"' if kinds.get(c) in schema else f'"{c}"' for c in cols)
duckdb.sql(f"COPY (SELECT {sel} FROM {src}) TO '{out}' (FORMAT parquet, ROW_GROUP_SIZE 1000000)")
PY
fi
store="$work/spark-store"
if [[ ! -f $store/CURRENT ]]; then
  "$bin" train --data "$real" --device cpu --quiet --out "$work/spark-runs" --models "$store" >/dev/null
fi

measure() { # name, command...
  local name="$1"; shift
  local t0; t0=$(date +%s.%N)
  "$@" >"$work/$name.log" 2>&1 &
  local pid=$!
  "$py" benches/rss_sampler.py "$pid" "$work/$name.rss.json" &
  local sampler=$!
  wait "$pid"
  wait "$sampler"
  local t1; t1=$(date +%s.%N)
  local secs; secs=$(echo "$t1 - $t0" | bc)
  printf '%s: %.1f s, %.0f rows/s, peak MB %s\n' "$name" "$secs" "$(echo "$rows / $secs" | bc -l)" "$(cat "$work/$name.rss.json")"
}

for run in $(seq 1 "$runs"); do
  rm -rf "$work/spark-out" "$work/rust-out.parquet"
  measure "categorizer-predict-$format-$run" "$bin" predict --model "$store" --input "$data" \
    --output "$work/rust-out.parquet" --on-error keep --quiet
  measure "spark-local2-$format-$run" .venv/bin/spark-submit --master 'local[2]' \
    --driver-memory "${SPARK_DRIVER_MEMORY:-4g}" --conf spark.ui.enabled=false \
    integrations/spark/score.py --model "$store" --input "$data" --output "$work/spark-out"
done
