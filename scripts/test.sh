#!/usr/bin/env bash
# Sets up what is missing and runs the whole test suite (unit, integration, CPU and wgpu).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh test
# Tests build with the release profile: the same compiled dependency stack as the service and
# the benches, so a machine compiles polars/burn/wgpu once.
exec cargo test --release --locked "$@"
