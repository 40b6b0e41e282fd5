# CPU-only image: the service, its templates and styles compiled in, and ONNX Runtime's
# library from PyPI's wheel. Every step is a subcommand of scripts/image.sh, which CI runs too.
#   docker build -t customer-categorizer .
#   docker run -p 5000:5000 -v categorizer-models:/srv/categorizer/models customer-categorizer

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY scripts/image.sh scripts/image.sh
RUN scripts/image.sh build-deps
RUN scripts/image.sh onnxruntime /opt/onnxruntime
COPY . .
RUN scripts/image.sh build /opt/categorizer

FROM debian:bookworm-slim
COPY scripts/image.sh /usr/local/share/categorizer/image.sh
RUN /usr/local/share/categorizer/image.sh runtime-deps && /usr/local/share/categorizer/image.sh user \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /opt/onnxruntime/lib/ /opt/onnxruntime/lib/
COPY --from=build /opt/categorizer/bin/categorizer /usr/local/bin/categorizer
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
