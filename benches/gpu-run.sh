#!/usr/bin/env bash
# The on-device half of benches/gpu.sh; runs from the unpacked bundle, needs no network.
#   gpu-bundle/run.sh            1M and 10M rows on the GPU, 1M on the CPU
# Env: GPU_ROWS ("1000000 10000000"), CPU_ROWS (1000000), RUN_LIMIT_S (seconds per run, 200),
#      VK_DRIVER_FILES (found under the usual NVIDIA paths when unset), KEEP (keep the run dirs),
#      GPU_DEVICE (gpu; `cpu` tries the script itself on a machine without a GPU: Mesa's
#      software Vulkan needs minutes for even 3000 rows).
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="${GPU_CHECK_WORK:-$(mktemp -d)}"
[[ -n ${KEEP:-} ]] || trap 'rm -rf "$work"' EXIT
gpu_rows=(${GPU_ROWS:-1000000 10000000})
cpu_rows="${CPU_ROWS:-1000000}"
limit="${RUN_LIMIT_S:-200}"
gpu_device="${GPU_DEVICE:-gpu}"

# The binary and the Vulkan loader, unpacked into the work directory.
xz -dc "$here/categorizer.xz" >"$work/categorizer" && chmod +x "$work/categorizer"
mkdir -p "$work/root"
for deb in "$here"/debs/*.deb; do
  if command -v dpkg-deb >/dev/null; then
    dpkg-deb -x "$deb" "$work/root"
  else  # a .deb is an ar archive holding data.tar.*
    (cd "$work" && ar x "$deb" && tar -xf data.tar.* -C "$work/root" && rm -f data.tar.* control.tar.* debian-binary)
  fi
done
export LD_LIBRARY_PATH="$work/root/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
if [[ -z ${VK_DRIVER_FILES:-} ]]; then
  for icd in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json \
    /etc/vulkan/icd.d/nvidia_icd.json /usr/local/nvidia/vulkan/icd.d/nvidia_icd.json; do
    [[ -f $icd ]] && { export VK_DRIVER_FILES="$icd"; break; }
  done
fi
echo "host: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); VK_DRIVER_FILES=${VK_DRIVER_FILES:-(loader default)}"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader

# One training run: wall seconds, the device line and the per-stage seconds train prints.
train() {
  local name=$1 device=$2 rows=$3
  local start end rc
  start=$(date +%s.%N)
  timeout "$limit" "$work/categorizer" train --quiet --no-export --device "$device" \
    --data "synthetic:rows=$rows,seed=42" --out "$work/$name" --models "$work/models" \
    >"$work/$name.log" 2>&1
  rc=$?
  end=$(date +%s.%N)
  printf '\n== %s: --device %s, %s rows: exit %s, %.1f s wall\n' "$name" "$device" "$rows" "$rc" \
    "$(echo "$end - $start" | awk '{print $1 - $3}')"
  ((rc == 124)) && echo "   (stopped at the ${limit} s limit)"
  grep -E '^Device:|^Seconds:|^[ *] (gbdt|mlp) ' "$work/$name.log" | sed 's/^/   /'
  ((rc == 0)) || tail -n 15 "$work/$name.log" | sed 's/^/   | /'
  return 0
}

for rows in "${gpu_rows[@]}"; do train "gpu-$rows" "$gpu_device" "$rows"; done
train "cpu-$cpu_rows" cpu "$cpu_rows"

# Segment agreement: assignments.csv is one line per customer, in row order, in both runs.
a="$work/gpu-$cpu_rows/assignments.csv" b="$work/cpu-$cpu_rows/assignments.csv"
if [[ -f $a && -f $b ]]; then
  paste -d, "$a" "$b" | awk -F, 'NR > 1 { n++; if ($3 == $6) same++ }
    END { printf "\nsegment agreement GPU vs CPU on %d customers: %d (%.4f%%)\n", n, same, 100 * same / n }'
else
  echo "segment agreement: a run of $cpu_rows rows did not finish on both devices"
fi
