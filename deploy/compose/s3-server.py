"""moto's S3 server on $PORT with the buckets named in $BUCKETS (comma-separated) created.

    s3-server            serve until SIGTERM
    s3-server --check    exit 0 when the server answers and every bucket exists (healthcheck)
"""

import os
import signal
import sys
import threading
import urllib.request

PORT = int(os.environ.get("PORT", "9000"))
BUCKETS = [b for b in os.environ.get("BUCKETS", "").split(",") if b]


def check():
    for bucket in BUCKETS or [""]:
        urllib.request.urlopen(f"http://127.0.0.1:{PORT}/{bucket}", timeout=2).read()


def main():
    if sys.argv[1:] == ["--check"]:
        try:
            check()
        except Exception as e:  # noqa: BLE001 - any failure is "not healthy"
            print(e, file=sys.stderr)
            sys.exit(1)
        return
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="0.0.0.0", port=PORT, verbose=False)
    server.start()
    for bucket in BUCKETS:
        request = urllib.request.Request(f"http://127.0.0.1:{PORT}/{bucket}", method="PUT")
        urllib.request.urlopen(request, timeout=10).read()
    print(f"s3: moto on :{PORT}, buckets {BUCKETS}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    server.stop()


if __name__ == "__main__":
    main()
