#!/usr/bin/env bash
# Checks the deployment files offline: the Kubernetes manifests against the Kubernetes 1.37
# schemas bundled in kubernetes-validate (PyPI; strict: an unknown field fails), and the
# HAProxy config with HAProxy's own check. scripts/setup.sh test installs both.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/kubernetes-validate --strict --kubernetes-version 1.37.0 deploy/k8s/*.yaml
LISTEN=127.0.0.1:8080 REPLICA1=127.0.0.1:5001 REPLICA2=127.0.0.1:5002 REPLICA3=127.0.0.1:5003 \
  haproxy -c -f deploy/haproxy.cfg
