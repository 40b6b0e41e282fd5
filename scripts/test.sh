#!/usr/bin/env bash
# Sets up what is missing and runs the whole test suite (unit, integration, CPU and wgpu,
# MongoDB and S3 against real servers started here on loopback ports).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh test
# The house's rules, read from the source: no import runs upward or loops, no file or function
# outgrows what one reader holds.
python3 scripts/architecture.py
# The Vulkan loader wants a private runtime directory; give it one before any test thread starts.
if [ -z "${XDG_RUNTIME_DIR:-}" ]; then
  XDG_RUNTIME_DIR="$(mktemp -d)"; chmod 700 "$XDG_RUNTIME_DIR"; export XDG_RUNTIME_DIR
fi
services="$(mktemp)"
scripts/services.sh start "$services"
trap 'scripts/services.sh stop "$services"; rm -f "$services"' EXIT
# shellcheck disable=SC1090
. "$services"
# Tests build with the release profile: the same compiled dependency stack as the service and
# the benches, so a machine compiles polars/burn/wgpu once.
cargo test --release --locked "$@"
