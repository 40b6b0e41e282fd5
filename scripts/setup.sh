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
  test) packages+=(mesa-vulkan-drivers libvulkan1) ;;
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

if ! command -v cargo >/dev/null; then
  echo "setup: cargo not found; install Rust 1.95 or newer (https://rustup.rs)" >&2
  exit 1
fi
