#!/usr/bin/env bash
# Sets up what is missing, builds, and runs the service's main job on the embedded defaults:
# training on the built-in seeded synthetic data. Extra arguments go to `categorizer train`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh run
exec cargo run --release --locked --quiet --bin categorizer -- train "$@"
