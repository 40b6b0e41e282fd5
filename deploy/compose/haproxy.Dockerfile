# HAProxy from Debian 12's package, run unprivileged; its config is mounted by compose.yaml.
FROM debian:bookworm-slim
RUN apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends haproxy \
    && rm -rf /var/lib/apt/lists/* \
    && haproxy -v | head -n1
USER haproxy
EXPOSE 5000
STOPSIGNAL SIGUSR1
CMD ["haproxy", "-W", "-db", "-f", "/usr/local/etc/haproxy/haproxy.cfg"]
