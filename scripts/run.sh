#!/usr/bin/env bash
# Sets up what is missing, builds, and runs the service on the embedded defaults:
# `categorizer serve` on 0.0.0.0:5000 with the current model of models/; when there is none yet
# it first trains one on the built-in seeded synthetic data. Extra arguments go to `serve`
# (e.g. --port 8080).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh run
exec cargo run --release --locked --quiet --bin categorizer -- serve "$@"
