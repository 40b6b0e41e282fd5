"""A load generator for the replica tests: THREADS clients, each on its own keep-alive
connection, POST one customer at a time to URL until the file STOP exists; then writes a
summary (requests, failures with their reasons and times, latency percentiles) as JSON.

    load_gen.py URL THREADS STOP OUT.json
"""

import json
import os
import sys
import threading
import time

import requests

CUSTOMER = {
    "Age": 45, "Education": 2, "Marital_Status": 1, "Parental_Status": 1, "Children": 1,
    "Income": 52000.0, "Total_Spending": 600.0, "Days_as_Customer": 500, "Recency": 30,
    "Wines": 300.0, "Fruits": 20.0, "Meat": 150.0, "Fish": 30.0, "Sweets": 20.0, "Gold": 40.0,
    "Web": 4, "Catalog": 2, "Store": 6, "Discount_Purchases": 2, "Total_Promo": 0,
    "NumWebVisitsMonth": 5,
}


def main():
    url, threads, stop, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    body = json.dumps({"customers": [CUSTOMER]})
    lock = threading.Lock()
    latencies, failures, versions = [], [], {}
    start = time.time()

    def client():
        s = requests.Session()
        while not os.path.exists(stop):
            t0 = time.time()
            try:
                r = s.post(url, data=body, headers={"content-type": "application/json"}, timeout=10)
                ok = r.status_code == 200
                why = None if ok else f"HTTP {r.status_code}: {r.text[:120]}"
                version = r.headers.get("x-model-version") if ok else None
            except requests.RequestException as e:
                ok, why, version = False, f"{type(e).__name__}: {str(e)[:120]}", None
            dt = time.time() - t0
            with lock:
                latencies.append(dt)
                if not ok:
                    failures.append({"at": round(t0 - start, 3), "why": why})
                if version:
                    versions.setdefault(version, [t0, t0])[1] = t0
    ts = [threading.Thread(target=client) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    latencies.sort()
    pct = lambda p: round(latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1e3, 2) if latencies else None
    summary = {
        "requests": len(latencies),
        "failed": len(failures),
        "seconds": round(time.time() - start, 1),
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "max_ms": pct(1.0),
        "failures": failures[:20],
        "started_at": start,
        # Each model version answering: the first and the last time (epoch seconds).
        "versions": {v: [a, b] for v, (a, b) in versions.items()},
    }
    with open(out, "w") as f:
        json.dump(summary, f, indent=1)


if __name__ == "__main__":
    main()
