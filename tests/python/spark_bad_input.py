"""The Spark package's refusals, each naming what is wrong before any work starts.

    spark_bad_input.py STORE WORK

STORE is a store whose current model has its SQL; WORK a scratch directory."""

import json
import os
import shutil
import socket
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "integrations", "spark"))

from categorizer_spark import ModelError, load_model  # noqa: E402
from categorizer_spark.cli import main as score_main  # noqa: E402


def refused(what, f, *needles):
    try:
        f()
    except (ModelError, SystemExit, Exception) as e:  # noqa: BLE001
        text = str(e)
        missing = [n for n in needles if n not in text]
        if missing:
            print(f"FAIL {what}: the error does not name {missing}: {text}")
            return False
        print(f"ok   {what}: {text}")
        return True
    print(f"FAIL {what}: no error")
    return False


def main():
    store, work = sys.argv[1:3]
    os.makedirs(work, exist_ok=True)
    version = open(os.path.join(store, "CURRENT")).read().strip()
    ok = True

    # A version published before the SQL was stored: its manifest has no `sql`, its
    # directory no files.
    old = os.path.join(work, "old-version")
    shutil.rmtree(old, ignore_errors=True)
    shutil.copytree(os.path.join(store, version), old)
    manifest = json.load(open(os.path.join(old, "manifest.json")))
    manifest.pop("sql", None)
    json.dump(manifest, open(os.path.join(old, "manifest.json"), "w"))
    for name in os.listdir(old):
        if name.endswith(".sql"):
            os.remove(os.path.join(old, name))
    ok &= refused("a model published before the SQL export", lambda: load_model(old),
                  "categorizer export sql", "--dialect spark", old)

    # A damaged SQL file.
    damaged = os.path.join(work, "damaged")
    shutil.rmtree(damaged, ignore_errors=True)
    shutil.copytree(os.path.join(store, version), damaged)
    with open(os.path.join(damaged, "features.spark.sql"), "a") as f:
        f.write("-- edited\n")
    ok &= refused("a SQL file that is not the manifest's", lambda: load_model(damaged),
                  "features.spark.sql", "SHA-256")

    # A store that cannot be reached: a port nobody listens on.
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    start = time.time()
    ok &= refused("a store that cannot be reached",
                  lambda: load_model("s3://no-such-bucket/models", s3_endpoint=f"http://127.0.0.1:{port}",
                                     connect_timeout=1.0, request_timeout=2.0),
                  "s3://no-such-bucket/models")
    print(f"     (answered in {time.time() - start:.1f} s)")

    # An input without a raw column: named before Spark reads a row.
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    spark = SparkSession.builder.master("local[1]").config("spark.ui.enabled", "false").getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    from categorizer_spark import score

    model = load_model(store)
    columns = [c for c in model.columns if c != "Dt_Customer"]
    df = spark.createDataFrame([tuple("1" for _ in columns)], columns)
    ok &= refused("an input without Dt_Customer", lambda: score(df, model), "Dt_Customer")

    # The script: a missing model directory is a usage error (exit 2), before Spark starts.
    code = score_main(["--model", os.path.join(work, "nowhere"), "--input", "x.csv", "--output", os.path.join(work, "out")])
    if code != 2:
        print(f"FAIL the script exits {code} for a missing model")
        ok = False
    else:
        print("ok   the script exits 2 for a missing model")
    spark.stop()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
