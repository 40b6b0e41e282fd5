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
#   scripts/image.sh engine                a running Docker engine (installs Debian's docker.io
#                                          and starts dockerd when there is none)
#   scripts/image.sh base-images [rust]    debian:bookworm-slim made with debootstrap when no
#                                          registry can provide it; `rust` also makes
#                                          rust:1.95-bookworm from it and this machine's toolchain
#   scripts/image.sh prebuilt-context DIR  a build context in DIR: the Dockerfiles and prebuilt/
#                                          (ONNX Runtime and the binary the test run built), for
#                                          --build-arg BINARY_STAGE=prebuilt
#   scripts/image.sh container             both images' runtime stages built by Docker from the
#                                          binary the test run built (BINARY_STAGE=prebuilt); the
#                                          CPU image run as its non-root user until its
#                                          HEALTHCHECK says healthy, then one prediction over HTTP
set -euo pipefail
cd "$(dirname "$0")/.."

ORT_VERSION=1.31.1
APP_USER=categorizer
APP_UID=10001

# Debian's docker CLI has BuildKit built in; a newer CLI without the buildx plugin cannot use it.
docker_cli() { if [ -x /usr/bin/docker ]; then /usr/bin/docker "$@"; else docker "$@"; fi; }

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
  engine)
    if ! docker_cli info >/dev/null 2>&1; then
      command -v dockerd >/dev/null || apt_install docker.io
      [ "$(id -u)" = 0 ] || { echo "image: start dockerd as root first" >&2; exit 1; }
      log="${TMPDIR:-/tmp}/categorizer-dockerd.log"
      nohup dockerd >"$log" 2>&1 &
      for _ in $(seq 1 60); do docker_cli info >/dev/null 2>&1 && break; sleep 1; done
      docker_cli info >/dev/null 2>&1 || { tail -n 20 "$log" >&2; echo "image: dockerd did not start" >&2; exit 1; }
    fi
    docker_cli info --format 'image: Docker {{.ServerVersion}}, storage {{.Driver}}' >&2
    ;;
  base-images)
    if ! docker_cli image inspect debian:bookworm-slim >/dev/null 2>&1 \
       && ! docker_cli pull -q debian:bookworm-slim >/dev/null 2>&1; then
      command -v debootstrap >/dev/null || apt_install debootstrap
      # The Debian mirror apt already uses here (plain HTTP works from containers too).
      mirror="$( (cat /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null || true) \
        | grep -oE '^(URIs:|deb) +http[^ ]*debian/?( |$)' | grep -oE 'http[^ ]*' | head -n1 || true)"
      mirror="${mirror:-http://deb.debian.org/debian}"
      root="$(mktemp -d)"
      echo "image: debootstrap bookworm from $mirror" >&2
      debootstrap --variant=minbase bookworm "$root" "$mirror" >"$root.log" 2>&1 \
        || { tail -n 20 "$root.log" >&2; exit 1; }
      rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
      tar -C "$root" -c . | docker_cli import - debian:bookworm-slim >/dev/null
      rm -rf "$root" "$root.log"
    fi
    if [ "${1:-}" = rust ] && ! docker_cli image inspect rust:1.95-bookworm >/dev/null 2>&1 \
       && ! docker_cli pull -q rust:1.95-bookworm >/dev/null 2>&1; then
      # The official image's layout (toolchain in /usr/local/cargo, on PATH), made from this
      # machine's Rust 1.95 toolchain and Debian's compilers.
      toolchain="$(rustc +1.95.0 --print sysroot 2>/dev/null || rustc --print sysroot)"
      ctx="$(mktemp -d)"
      trap 'rm -rf "$ctx"' EXIT
      cp -a "$toolchain" "$ctx/toolchain"
      rm -rf "$ctx/toolchain/share/doc"
      cat >"$ctx/Dockerfile" <<'DOCKERFILE'
FROM debian:bookworm-slim
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      ca-certificates gcc g++ libc6-dev make pkg-config binutils git curl \
    && rm -rf /var/lib/apt/lists/*
COPY toolchain/ /usr/local/cargo/
ENV CARGO_HOME=/usr/local/cargo PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
RUN cargo --version && rustc --version
DOCKERFILE
      DOCKER_BUILDKIT=1 docker_cli build -q -t rust:1.95-bookworm "$ctx" >/dev/null
    fi
    docker_cli images --format 'image: {{.Repository}}:{{.Tag}} {{.Size}}' debian >&2
    ;;
  prebuilt-context)
    ctx="${1:?usage: $0 prebuilt-context DIR}"
    mkdir -p "$ctx/scripts"
    cp Dockerfile Dockerfile.gpu .dockerignore "$ctx/"
    cp scripts/image.sh "$ctx/scripts/"
    "$0" onnxruntime "$ctx/prebuilt/onnxruntime"
    "$0" install-bin "$ctx/prebuilt/categorizer"
    ;;
  container)
    "$0" engine
    "$0" base-images
    ctx="$(mktemp -d)"; name="categorizer-ci-$$"
    trap 'docker_cli rm -f "$name" >/dev/null 2>&1 || true; rm -rf "$ctx"' EXIT
    "$0" prebuilt-context "$ctx"
    for file in Dockerfile Dockerfile.gpu; do
      tag="customer-categorizer:ci$([ $file = Dockerfile.gpu ] && echo -gpu || true)"
      started=$(date +%s)
      DOCKER_BUILDKIT=1 docker_cli build -q --build-arg BINARY_STAGE=prebuilt -f "$ctx/$file" -t "$tag" "$ctx" >/dev/null
      echo "image: $tag built from the prebuilt binary in $(( $(date +%s) - started )) s," \
        "$(docker_cli image inspect -f '{{.Size}}' "$tag" | awk '{printf "%d MB", $1/1e6}')" >&2
      [ "$(docker_cli image inspect -f '{{.Config.User}}' "$tag")" = categorizer ] \
        || { echo "image: $tag does not run as its unprivileged user" >&2; exit 1; }
      docker_cli run --rm "$tag" --version >&2
    done
    tag=customer-categorizer:ci
    docker_cli run -d --name "$name" -p 127.0.0.1::5000 "$tag" >/dev/null
    [ "$(docker_cli exec "$name" id -u)" = 10001 ] \
      || { echo "image: the container runs as uid $(docker_cli exec "$name" id -u), not 10001" >&2; exit 1; }
    for _ in $(seq 1 150); do
      health="$(docker_cli inspect -f '{{.State.Health.Status}}' "$name")"
      [ "$health" = healthy ] && break
      [ "$(docker_cli inspect -f '{{.State.Running}}' "$name")" = true ] \
        || { docker_cli logs "$name" >&2; echo "image: the container exited" >&2; exit 1; }
      sleep 2
    done
    [ "$health" = healthy ] || { docker_cli logs "$name" >&2; echo "image: not healthy in 300 s" >&2; exit 1; }
    port="$(docker_cli port "$name" 5000 | head -n1 | sed 's/.*://')"
    python3 - "$port" <<'PY'
import json, sys, urllib.request
customer = {"Age": 45, "Education": 2, "Marital_Status": 1, "Parental_Status": 1, "Children": 1,
            "Income": 52000.0, "Total_Spending": 600.0, "Days_as_Customer": 500, "Recency": 30,
            "Wines": 300.0, "Fruits": 20.0, "Meat": 150.0, "Fish": 30.0, "Sweets": 20.0,
            "Gold": 80.0, "Web": 4, "Catalog": 2, "Store": 6, "Discount_Purchases": 2,
            "Total_Promo": 0, "NumWebVisitsMonth": 5}
body = json.dumps({"customers": [customer, dict(customer, Age="old")]}).encode()
request = urllib.request.Request(f"http://127.0.0.1:{sys.argv[1]}/api/v1/predict", data=body,
                                 headers={"Content-Type": "application/json"})
answer = json.load(urllib.request.urlopen(request, timeout=30))
first, second = answer["predictions"]
assert isinstance(first["segment"], int) and len(first["probabilities"]) >= 2, answer
assert second["error"]["field"] == "Age" and second["error"]["row"] == 1, answer
print(f"image: the container predicted segment {first['segment']} ({first['segment_name']}) "
      f"with model {answer['model_version']}, and named the bad row's field", file=sys.stderr)
PY
    docker_cli rm -f "$name" >/dev/null
    docker_cli rmi customer-categorizer:ci customer-categorizer:ci-gpu >/dev/null
    echo "image: container test passed" >&2
    ;;
  *)
    sed -n '2,34p' "$0" >&2; exit 2
    ;;
esac
