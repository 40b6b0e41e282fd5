"""Detection figures of live monitoring (benches/monitoring.sh runs it).

Serves the model in STORE with BIN and sends customers resampled from FEATURES (the 21
features of the real data, a CSV from `categorizer features`), 100 per request, asking
GET /api/v1/monitoring after each request; each scenario on a fresh server (a fresh window):
  (a) 5,000 real customers resampled;  (b) the same with Income x 3;
  (c) every spending feature (Wines..Gold, Total_Spending) x 0.5;  (d) only the youngest quarter.
Prints, per scenario, after how many customers the report first said `drift` (and stayed so),
what it says at 5,000, and then the false-alarm rate of (a) over WINDOWS fresh windows.

    monitoring_detect.py BIN STORE FEATURES [WINDOWS]
"""

import json
import os
import random
import socket
import subprocess
import sys
import time

import requests

KEYS = ["Age", "Education", "Marital_Status", "Parental_Status", "Children", "Income",
        "Total_Spending", "Days_as_Customer", "Recency", "Wines", "Fruits", "Meat", "Fish",
        "Sweets", "Gold", "Web", "Catalog", "Store", "Discount_Purchases", "Total_Promo",
        "NumWebVisitsMonth"]
SPENDING = ["Wines", "Fruits", "Meat", "Fish", "Sweets", "Gold", "Total_Spending"]


def read_features(path):
    import csv
    with open(path) as f:
        rows = list(csv.DictReader(f))
    out = []
    for r in rows:
        c = {}
        for k in KEYS:
            v = r.get(k, "")
            c[k] = None if v in ("", "NaN", "nan") else float(v)
        out.append(c)
    return out


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Server:
    def __init__(self, bin_, store):
        self.port = free_port()
        env = dict(os.environ, RUST_LOG="warn")
        self.proc = subprocess.Popen([bin_, "serve", "--host", "127.0.0.1", "--port", str(self.port),
                                      "--models", store], env=env, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        self.url = f"http://127.0.0.1:{self.port}"
        for _ in range(400):
            try:
                if requests.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.05)
        raise RuntimeError("the server did not start")

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


def run(bin_, store, customers, session):
    """Sends `customers` 100 at a time; returns (first n from which the report said `drift`,
    first n from which it said `drift` or `feature_drift`, the final report)."""
    server = Server(bin_, store)
    first, first_any, sent, report = None, None, 0, None
    try:
        for i in range(0, len(customers), 100):
            chunk = customers[i:i + 100]
            r = session.post(server.url + "/api/v1/predict", json={"customers": chunk}, timeout=30)
            r.raise_for_status()
            sent += len(chunk)
            for _ in range(200):
                report = session.get(server.url + "/api/v1/monitoring", timeout=30).json()
                if report["rows"] + report["error_rows"] >= sent:
                    break
                time.sleep(0.01)
            if report["status"] == "drift":
                first = first or sent
            else:
                first = None
            if report["status"] in ("drift", "feature_drift"):
                first_any = first_any or sent
            else:
                first_any = None
    finally:
        server.stop()
    return first, first_any, report


def describe(report):
    drifted = [f["feature"] for f in report["features"] if f["drifted"]]
    seg = report.get("segment_shift") or {}
    aty = report.get("atypical") or {}
    return (f"status {report['status']}, dataset_drift {report['dataset_drift']}, "
            f"{report['drifted_features']}/{len(report['features'])} features drifted {drifted}; "
            f"segment shares {seg.get('test')} {seg.get('score', float('nan')):.3f} "
            f"({'drifted' if seg.get('drifted') else 'steady'}); "
            f"atypical {100 * aty.get('share', 0):.2f} % ({'drifted' if aty.get('drifted') else 'as expected'})")


def main():
    bin_, store, features = sys.argv[1], sys.argv[2], sys.argv[3]
    windows = int(sys.argv[4]) if len(sys.argv) > 4 else 100
    real = read_features(features)
    rng = random.Random(2026)
    session = requests.Session()

    def resample(n, pool=real):
        return [dict(rng.choice(pool)) for _ in range(n)]

    def scaled(rows, keys, factor):
        for r in rows:
            for k in keys:
                if r[k] is not None:
                    r[k] = r[k] * factor
        return rows

    ages = sorted(c["Age"] for c in real)
    young = [c for c in real if c["Age"] <= ages[len(ages) // 4]]
    scenarios = [
        ("(a) 5,000 real customers resampled", resample(5000)),
        ("(b) the same with Income x 3", scaled(resample(5000), ["Income"], 3.0)),
        ("(c) spending features x 0.5", scaled(resample(5000), SPENDING, 0.5)),
        ("(d) only the youngest quarter (Age <= %d)" % ages[len(ages) // 4], resample(5000, young)),
    ]
    for name, customers in scenarios:
        first, first_any, report = run(bin_, store, customers, session)
        print(f"{name}: `drift` {'from ' + str(first) + ' customers on' if first else 'never said'}, "
              f"`drift` or `feature_drift` {'from ' + str(first_any) + ' on' if first_any else 'never'}; "
              f"at 5,000: {describe(report)}", flush=True)
    if windows == 0:
        return
    alarms, feature_alarms, features = 0, 0, {}
    started = time.time()
    for w in range(windows):
        _, _, report = run(bin_, store, resample(5000), session)
        feature_alarms += report["status"] == "feature_drift"
        if report["status"] == "drift":
            alarms += 1
            for f in report["features"]:
                if f["drifted"]:
                    features[f["feature"]] = features.get(f["feature"], 0) + 1
            if (report.get("segment_shift") or {}).get("drifted"):
                features["segment shares"] = features.get("segment shares", 0) + 1
            if (report.get("atypical") or {}).get("drifted"):
                features["atypical"] = features.get("atypical", 0) + 1
    print(f"false alarms of (a) over {windows} fresh windows of 5,000: `drift` {alarms} "
          f"({100 * alarms / windows:.0f} %), by cause {features}; `feature_drift` {feature_alarms}; "
          f"{time.time() - started:.0f} s")


if __name__ == "__main__":
    main()
