# An S3-compatible store for compose.yaml: moto's server (PyPI) with its buckets created at
# start. Behind a TLS-inspecting proxy pass the host's CA bundle as a BuildKit secret:
#   docker build --secret id=ca,src=/etc/ssl/certs/ca-certificates.crt -f s3.Dockerfile .
FROM debian:bookworm-slim
RUN apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
       ca-certificates python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*
RUN --mount=type=secret,id=ca,target=/etc/ssl/certs/ca-certificates.crt \
    python3 -m venv /opt/moto \
    && PIP_CERT=/etc/ssl/certs/ca-certificates.crt /opt/moto/bin/pip install --quiet \
       --disable-pip-version-check "moto[server]==5.2.5"
COPY s3-server.py /usr/local/bin/s3-server
RUN useradd --system --uid 10002 moto
USER moto
ENV PATH=/opt/moto/bin:$PATH PORT=9000
EXPOSE 9000
CMD ["python3", "/usr/local/bin/s3-server"]
