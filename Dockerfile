# CPU-only image: the service, its templates and styles compiled in, and ONNX Runtime's
# library from PyPI's wheel. Every step is a subcommand of scripts/image.sh, which CI runs too.
#   docker build -t customer-categorizer .
#   docker run -p 5000:5000 -v categorizer-models:/srv/categorizer/models customer-categorizer
#
# Where the binary comes from: the default `build` stage compiles it inside the container. CI
# builds the runtime stage from the binary its test run already built instead:
#   scripts/image.sh container  (a context holding prebuilt/, --build-arg BINARY_STAGE=prebuilt)
# The build stage reads the registries over HTTPS; behind a TLS-inspecting proxy pass the
# host's CA bundle as a secret, which never lands in a layer:
#   DOCKER_BUILDKIT=1 docker build --secret id=ca,src=/etc/ssl/certs/ca-certificates.crt ...
# BuildKit is required (cache and secret mounts; stages not needed for the target are skipped).

ARG BINARY_STAGE=build

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY scripts/image.sh scripts/image.sh
RUN scripts/image.sh build-deps
RUN --mount=type=secret,id=ca,target=/etc/ssl/certs/ca-certificates.crt \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt scripts/image.sh onnxruntime /opt/onnxruntime
COPY . .
RUN --mount=type=secret,id=ca,target=/etc/ssl/certs/ca-certificates.crt \
    --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    CARGO_HTTP_CAINFO=/etc/ssl/certs/ca-certificates.crt scripts/image.sh build /opt/categorizer

FROM scratch AS prebuilt
COPY prebuilt/onnxruntime/ /opt/onnxruntime/
COPY prebuilt/categorizer/ /opt/categorizer/

FROM ${BINARY_STAGE} AS binary

FROM debian:bookworm-slim
COPY scripts/image.sh /usr/local/share/categorizer/image.sh
RUN /usr/local/share/categorizer/image.sh runtime-deps && /usr/local/share/categorizer/image.sh user \
    && rm -rf /var/lib/apt/lists/*
COPY --from=binary /opt/onnxruntime/lib/ /opt/onnxruntime/lib/
COPY --from=binary /opt/categorizer/bin/categorizer /usr/local/bin/categorizer
USER categorizer
WORKDIR /srv/categorizer
ENV RUST_LOG=info \
    CATEGORIZER__MODELS__DIR=/srv/categorizer/models \
    CATEGORIZER__DEVICE=cpu
EXPOSE 5000
HEALTHCHECK --interval=15s --timeout=3s --start-period=120s --retries=3 \
  CMD ["categorizer", "healthcheck", "--url", "http://127.0.0.1:5000/readyz"]
ENTRYPOINT ["categorizer"]
CMD ["serve"]
