#!/usr/bin/env bash
# Runs schemathesis (PyPI) against a live `categorizer serve` on a fresh store: every operation
# of /api/openapi.json with generated requests, checking for 5xx answers and responses that do
# not match the document.
#   scripts/schemathesis.sh [BIN]   (default: the release binary in CARGO_TARGET_DIR)
# Every check runs on every operation but where scripts/schemathesis.toml turns one off for
# one operation, by design of the API (a bad customer is its row's error in a 200; a training
# source is checked beyond its schema; a cancelled job stays readable).
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-$HOME/.cache/customer-categorizer/target}"
bin="${1:-$target/release/categorizer}"
[[ -x $bin ]] || { echo "schemathesis: $bin is not an executable (build it first)" >&2; exit 1; }
venv=.venv-schemathesis
if [[ ! -x $venv/bin/schemathesis ]]; then
  echo "schemathesis: installing schemathesis==4.32.5 into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==4.32.5"
fi
work="$(mktemp -d)"; port="${SCHEMATHESIS_PORT:-5931}"
ort="$(ls .venv/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.* 2>/dev/null | head -n1 || true)"
CATEGORIZER_ONNXRUNTIME="${CATEGORIZER_ONNXRUNTIME:-$ort}" \
CATEGORIZER__DATA__SOURCE="synthetic:rows=1500,seed=42" RUST_LOG=warn \
  "$bin" serve --host 127.0.0.1 --port "$port" --models "$work/models" >"$work/log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 600); do
  "$bin" healthcheck --url "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
  kill -0 $pid 2>/dev/null || { cat "$work/log" >&2; echo "schemathesis: the service exited" >&2; exit 1; }
  sleep 0.5
done
# One worker: with two, hypothesis describes its filters with ast.parse in two threads at once,
# and CPython 3.11.7's parser then fails now and then with "SystemError: AST constructor
# recursion depth mismatch" (one CI run in three), a crash of the tool, not a finding.
# (No --checks on the command line: it would override the file's per-operation settings.)
"$venv/bin/schemathesis" --config-file scripts/schemathesis.toml run "http://127.0.0.1:$port/api/openapi.json" \
  --max-examples "${SCHEMATHESIS_EXAMPLES:-50}" --seed "${SCHEMATHESIS_SEED:-1}" \
  --workers 1 --no-color
kill -0 $pid 2>/dev/null || { cat "$work/log" >&2; echo "schemathesis: the service died" >&2; exit 1; }
echo "schemathesis: no 5xx and no schema violations" >&2
