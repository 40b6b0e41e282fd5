#!/usr/bin/env bash
# The real servers the integration tests talk to, on loopback ports:
#   MongoDB wire protocol: SecantusDB (PyPI secantusdb, in .venv-mongo), in memory
#   S3 API:                moto's server (PyPI moto[server], in .venv-s3), in memory
#
#   scripts/services.sh install      create the two virtual environments (idempotent)
#   scripts/services.sh start FILE   install, start both, wait until they answer, and write
#                                    the variables the tests read into FILE (to source)
#   scripts/services.sh stop FILE    stop the servers FILE describes
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
MONGO_PKG="secantusdb==0.7.0b3"
S3_PKG="moto[server]==5.2.5"

venv() { # DIR PACKAGE MODULE
  if ! "$1/bin/python" -c "import $3" 2>/dev/null; then
    echo "services: installing $2 into $1" >&2
    [ -x "$1/bin/pip" ] || python3 -m venv "$1"
    "$1/bin/pip" install --quiet --disable-pip-version-check "$2"
  fi
}

install() {
  venv "$root/.venv-mongo" "$MONGO_PKG" secantus
  venv "$root/.venv-s3" "$S3_PKG" moto
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_port() { # PORT NAME LOG
  for _ in $(seq 1 200); do
    if python3 -c "import socket,sys; s=socket.socket(); s.settimeout(0.2); sys.exit(s.connect_ex(('127.0.0.1', $1)))"; then
      return 0
    fi
    sleep 0.1
  done
  echo "services: $2 did not start on port $1; its log:" >&2
  cat "$3" >&2
  return 1
}

case "${1:-}" in
  install) install ;;
  start)
    out="${2:?usage: $0 start FILE}"
    install
    logs="$(mktemp -d)"
    mport="$(free_port)"
    "$root/.venv-mongo/bin/secantusd-py" --host 127.0.0.1 --port "$mport" --storage-path :memory: \
      >"$logs/mongo.log" 2>&1 &
    mpid=$!
    sport="$(free_port)"
    "$root/.venv-s3/bin/moto_server" -H 127.0.0.1 -p "$sport" >"$logs/s3.log" 2>&1 &
    spid=$!
    wait_port "$mport" SecantusDB "$logs/mongo.log"
    wait_port "$sport" moto "$logs/s3.log"
    cat >"$out" <<VARS
export CATEGORIZER_TEST_MONGODB=mongodb://127.0.0.1:$mport
export CATEGORIZER_TEST_S3=http://127.0.0.1:$sport
# moto accepts any credentials; the S3 client reads them from the environment, as in production.
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
SERVICES_PIDS="$mpid $spid"
SERVICES_LOGS=$logs
VARS
    echo "services: SecantusDB on 127.0.0.1:$mport, moto S3 on 127.0.0.1:$sport (logs in $logs)" >&2
    ;;
  stop)
    file="${2:?usage: $0 stop FILE}"
    # shellcheck disable=SC1090
    . "$file"
    kill $SERVICES_PIDS 2>/dev/null || true
    ;;
  *) echo "usage: $0 install | start FILE | stop FILE" >&2; exit 2 ;;
esac
