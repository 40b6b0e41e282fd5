#!/usr/bin/env bash
# Checks the deployment files offline: the Kubernetes manifests against the Kubernetes 1.37
# schemas bundled in kubernetes-validate (PyPI; strict: an unknown field fails), the HAProxy
# configs with HAProxy's own check, and compose.yaml against the Compose Specification schema
# of docker-compose 1.29. scripts/setup.sh test installs all three. (scripts/compose.sh test
# runs compose.yaml in a Docker engine.)
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/kubernetes-validate --strict --kubernetes-version 1.37.0 deploy/k8s/*.yaml
LISTEN=127.0.0.1:8080 REPLICA1=127.0.0.1:5001 REPLICA2=127.0.0.1:5002 REPLICA3=127.0.0.1:5003 \
  haproxy -c -f deploy/haproxy.cfg
# The compose file's balancer (its replicas resolved at run time: init-addr none).
haproxy -c -f deploy/compose/haproxy.cfg
docker-compose -f deploy/compose.yaml config -q
echo "deploy: compose.yaml is valid"
