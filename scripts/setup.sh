#!/usr/bin/env bash
# Installs the system packages the project needs on a fresh Debian machine. Idempotent: it
# installs only what is missing. Runs as root, or through sudo when that is available.
#   scripts/setup.sh run    what the service needs at run time
#   scripts/setup.sh test   that, plus what the test suite needs
set -euo pipefail
mode="${1:-run}"

packages=()
case "$mode" in
  run) ;;
  # wgpu tests on a machine without a GPU run on Mesa's software Vulkan driver (lavapipe).
  # The browser test drives Debian's Chromium through chromedriver.
  # The Spark tests run PySpark in local mode on Debian's OpenJDK 17; the replica test puts
  # HAProxy in front of three servers; deploy/compose.yaml is checked and run with Debian's
  # docker-compose 1.29.
  test) packages+=(mesa-vulkan-drivers libvulkan1 chromium chromium-driver openjdk-17-jre-headless
    haproxy curl docker-compose) ;;
  *) echo "usage: $0 run|test" >&2; exit 2 ;;
esac

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  echo "setup: installing ${missing[*]}" >&2
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# ONNX Runtime for inference comes from PyPI's onnxruntime wheel (it ships libonnxruntime.so),
# installed into the project's .venv where the binary looks for it. The tests also check the
# exported model with the onnx package's checker.
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/.venv"
python_packages=(onnxruntime==1.31.1)
# The tests also run docs/api.md's Arrow client snippet (pyarrow + requests), and score with
# the Spark package (integrations/spark, its pins) in PySpark and DuckDB.
# deploy/check.sh validates the Kubernetes manifests with kubernetes-validate's schemas.
[ "$mode" = test ] && python_packages+=(onnx==1.23.2 pyarrow==26.0.1 requests==2.34.2
  numpy==2.4.6 pyspark==4.3.0 pandas==2.3.3 duckdb==2.0.1 kubernetes-validate==1.37.0)
if ! "$venv/bin/python" -c 'import onnxruntime' 2>/dev/null \
   || { [ "$mode" = test ] && ! "$venv/bin/python" -c 'import onnx, pyarrow, requests, numpy, pyspark, pandas, duckdb, kubernetes_validate' 2>/dev/null; }; then
  if ! python3 -m venv --help >/dev/null 2>&1; then
    sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3 python3-venv >/dev/null
  fi
  echo "setup: installing ${python_packages[*]} into $venv" >&2
  [ -x "$venv/bin/pip" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "${python_packages[@]}"
fi
# The Spark package installs as a user would install it (its pins are the ones above).
if [ "$mode" = test ] && ! "$venv/bin/pip" show --quiet categorizer-spark >/dev/null 2>&1; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check "$root/integrations/spark"
fi

if ! command -v cargo >/dev/null; then
  echo "setup: cargo not found; install Rust 1.95 or newer (https://rustup.rs)" >&2
  exit 1
fi
