#!/usr/bin/env bash
# The steps of the container images, one subcommand each. `Dockerfile` and `Dockerfile.gpu`
# run exactly these, and `.ci/run` runs them outside a container (`check`), so a change that
# breaks an image step fails CI even though no Docker engine runs there.
#
#   scripts/image.sh build-deps            packages the build stage needs (Debian)
#   scripts/image.sh build PREFIX          release build, then install-bin PREFIX
#   scripts/image.sh install-bin PREFIX    the built binary -> PREFIX/bin/categorizer (stripped)
#   scripts/image.sh onnxruntime PREFIX    libonnxruntime from PyPI's wheel -> PREFIX/lib
#   scripts/image.sh runtime-deps [gpu]    packages the runtime stage needs (gpu: Vulkan loader)
#   scripts/image.sh user                  the unprivileged user the service runs as
#   scripts/image.sh smoke PREFIX          start PREFIX/bin/categorizer on a fresh store and
#                                          wait for its healthcheck (what the image's
#                                          HEALTHCHECK runs)
#   scripts/image.sh check                 build-deps, runtime-deps gpu, then onnxruntime +
#                                          install-bin + smoke into a temporary
#                                          PREFIX, with the binary the test run built (a
#                                          `--bin`-only build resolves dependency features
#                                          without the dev-dependencies and would compile the
#                                          whole stack a second time)
set -euo pipefail
cd "$(dirname "$0")/.."

ORT_VERSION=1.31.1
APP_USER=categorizer
APP_UID=10001

apt_install() {
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

cmd="${1:-}"; shift || true
case "$cmd" in
  build-deps)
    apt_install ca-certificates python3 python3-venv
    ;;
  build)
    prefix="${1:?usage: $0 build PREFIX}"
    cargo build --release --locked --bin categorizer
    "$0" install-bin "$prefix"
    ;;
  install-bin)
    prefix="${1:?usage: $0 install-bin PREFIX}"
    install -D -m 0755 "${CARGO_TARGET_DIR:-target}/release/categorizer" "$prefix/bin/categorizer"
    strip "$prefix/bin/categorizer" 2>/dev/null || true
    ;;
  onnxruntime)
    prefix="${1:?usage: $0 onnxruntime PREFIX}"
    venv="$(mktemp -d)/venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "onnxruntime==$ORT_VERSION"
    mkdir -p "$prefix/lib"
    cp "$venv"/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so* "$prefix/lib/"
    rm -rf "$(dirname "$venv")"
    ls "$prefix"/lib/libonnxruntime.so*
    ;;
  runtime-deps)
    packages=(ca-certificates libgomp1)
    # wgpu reaches the GPU through the Vulkan loader; the NVIDIA container runtime mounts the
    # driver and its Vulkan ICD when NVIDIA_DRIVER_CAPABILITIES includes "graphics".
    [ "${1:-}" = gpu ] && packages+=(libvulkan1 libegl1 libgl1)
    apt_install "${packages[@]}"
    ;;
  user)
    id -u "$APP_USER" >/dev/null 2>&1 || useradd --system --uid "$APP_UID" --create-home \
      --home-dir /srv/categorizer --shell /usr/sbin/nologin "$APP_USER"
    ;;
  smoke)
    prefix="${1:?usage: $0 smoke PREFIX}"
    work="$(mktemp -d)"; port="${SMOKE_PORT:-5917}"
    CATEGORIZER_ONNXRUNTIME="$(ls "$prefix"/lib/libonnxruntime.so.* | head -n1)" \
    CATEGORIZER__DATA__SOURCE="synthetic:rows=1500,seed=42" RUST_LOG=warn \
      "$prefix/bin/categorizer" serve --host 127.0.0.1 --port "$port" --models "$work/models" \
      >"$work/log" 2>&1 &
    pid=$!
    trap 'kill $pid 2>/dev/null || true; rm -rf "$work"' EXIT
    for _ in $(seq 1 600); do
      if "$prefix/bin/categorizer" healthcheck --url "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; then
        "$prefix/bin/categorizer" healthcheck --url "http://127.0.0.1:$port/readyz"
        echo "image: smoke test passed" >&2
        exit 0
      fi
      kill -0 $pid 2>/dev/null || { cat "$work/log" >&2; echo "image: the service exited" >&2; exit 1; }
      sleep 0.5
    done
    cat "$work/log" >&2; echo "image: the service was not ready in 300 s" >&2; exit 1
    ;;
  check)
    prefix="$(mktemp -d)"
    trap 'rm -rf "$prefix"' EXIT
    "$0" build-deps
    "$0" runtime-deps gpu
    "$0" onnxruntime "$prefix"
    "$0" install-bin "$prefix"
    "$0" smoke "$prefix"
    ;;
  *)
    sed -n '2,21p' "$0" >&2; exit 2
    ;;
esac
