#!/usr/bin/env bash
# A self-contained GPU check for a machine with an NVIDIA GPU, x86_64 and no network.
#
#   benches/gpu.sh [OUT]     build the bundle here (default OUT: $CARGO_TARGET_DIR/gpu-bundle.tar)
#   then, on the GPU machine:
#   tar xf gpu-bundle.tar && gpu-bundle/run.sh
#
# The bundle (at most 64 MiB) holds the release binary, stripped and xz-compressed (it is its own
# data generator: `synthetic:rows=N`), the Vulkan loader and GL dispatch libraries as Debian
# packages (the NVIDIA driver's Vulkan ICD needs libGLX/libGLdispatch), and run.sh, which trains
# with `--device gpu` on 1M and 10M generated rows and with `--device cpu` on 1M rows, and prints
# each run's per-stage seconds, the adapter's name, and how many of the 1M customers got the same
# segment on the GPU as on the CPU. Each run is held to a time limit so the whole check ends within
# 8 minutes; a run cut short is reported as such.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-$HOME/.cache/customer-categorizer/target}"
out="${1:-$target/gpu-bundle.tar}"
limit=$((64 * 1024 * 1024))

bin="${CATEGORIZER_BIN:-$target/release/categorizer}"
if [[ -z ${CATEGORIZER_BIN:-} ]]; then
  CARGO_TARGET_DIR="$target" cargo build --release --locked --bin categorizer
fi
[[ -x $bin ]] || { echo "gpu.sh: $bin is not an executable" >&2; exit 1; }

work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
dir="$work/gpu-bundle"
mkdir -p "$dir/debs"
strip -o "$dir/categorizer" "$bin"
xz -T2 -6 "$dir/categorizer"
# Only these: the loader, GL dispatch (glvnd) and the X libraries they link. No Mesa: the
# NVIDIA driver on the GPU machine brings its own ICD.
packages=(libvulkan1 libglvnd0 libglx0 libgl1 libegl1 libx11-6 libx11-data libxext6 libxcb1 libxau6 libxdmcp6 libbsd0 libmd0)
(cd "$dir/debs" && apt-get download "${packages[@]}" >/dev/null) ||
  { echo "gpu.sh: apt-get download ${packages[*]} failed (is the Debian mirror reachable?)" >&2; exit 1; }
cp benches/gpu-run.sh "$dir/run.sh"
chmod +x "$dir/run.sh"
mkdir -p "$(dirname "$out")"
tar -C "$work" -cf "$out" gpu-bundle
size=$(stat -c %s "$out")
echo "gpu.sh: $out: $((size / 1024 / 1024)) MiB ($(ls "$dir/debs" | wc -l) packages)" >&2
((size <= limit)) || { echo "gpu.sh: the bundle is over 64 MiB" >&2; exit 1; }
