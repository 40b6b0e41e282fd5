"""Helpers for benches/vs-python.sh: the data set, the Python pipeline, the report.

  vs_python.py gen REAL N OUT      real records resampled to N rows (seed 7), written to OUT
  vs_python.py run FILE            the plain Python pipeline on FILE; prints per-stage seconds as JSON
  vs_python.py score REAL FILE OUT bulk scoring of FILE into OUT by a pipeline fitted on REAL; prints
                                   per-stage seconds as JSON
  vs_python.py report PY.json PY.time RUST_METRICS.json RUST.time OUT.json
                                   side-by-side table on stdout, everything as JSON in OUT.json
"""

import json
import os
import sys

# Thread pools size themselves when numpy/sklearn/xgboost load, so this must precede the imports.
os.environ.setdefault("OMP_NUM_THREADS", "2")

from time import perf_counter  # noqa: E402

SPEND = ["MntWines", "MntFruits", "MntMeatProducts", "MntFishProducts", "MntSweetProducts", "MntGoldProds"]
FEATURES = ["Age", "Education", "Marital_Status", "Parental_Status", "Children", "Income", "Total_Spending",
            "Days_as_Customer", "Recency", "Wines", "Fruits", "Meat", "Fish", "Sweets", "Gold", "Web",
            "Catalog", "Store", "Discount_Purchases", "Total_Promo", "NumWebVisitsMonth"]
# Yeo-Johnson on these (the features the Rust schema marks skewed), StandardScaler on the rest.
SKEWED = ["Age", "Total_Spending", "Wines", "Fruits", "Meat", "Fish", "Sweets", "Gold"]


def gen(real, n, out):
    import numpy as np
    import pandas as pd

    # Dt_Customer stays the dd-mm-YYYY string it was; nothing else is parsed.
    df = pd.read_csv(real, sep="\t", dtype={"Dt_Customer": str})
    rng = np.random.default_rng(7)
    df = df.iloc[rng.integers(0, len(df), n)].reset_index(drop=True)
    jitter = rng.uniform(0.9, 1.1, size=(n, 1 + len(SPEND)))
    for j, c in enumerate(["Income"] + SPEND):
        # Int64 keeps a missing Income missing (an empty field) instead of writing 'nan' or a float.
        df[c] = np.rint(df[c] * jitter[:, j]).astype("Int64")
    df["ID"] = np.arange(1, n + 1)
    df.to_csv(out, sep="\t", index=False)


def features(df):
    import pandas as pd

    f = pd.DataFrame(index=df.index)
    f["Age"] = 2014 - df["Year_Birth"]  # reference date 2014-12-31, as the Rust side, never today
    f["Education"] = df["Education"].map({"Basic": 0, "2n Cycle": 1, "Graduation": 2, "Master": 3, "PhD": 4})
    f["Marital_Status"] = df["Marital_Status"].isin(["Married", "Together"]).astype(int)
    children = df["Kidhome"] + df["Teenhome"]
    f["Parental_Status"] = (children > 0).astype(int)
    f["Children"] = children
    f["Income"] = df["Income"]
    f["Total_Spending"] = df[SPEND].sum(axis=1)
    joined = pd.to_datetime(df["Dt_Customer"], format="%d-%m-%Y")
    f["Days_as_Customer"] = (pd.Timestamp("2014-12-31") - joined).dt.days
    f["Recency"] = df["Recency"]
    for name, col in zip(["Wines", "Fruits", "Meat", "Fish", "Sweets", "Gold"], SPEND):
        f[name] = df[col]
    f["Web"] = df["NumWebPurchases"]
    f["Catalog"] = df["NumCatalogPurchases"]
    f["Store"] = df["NumStorePurchases"]
    f["Discount_Purchases"] = df["NumDealsPurchases"]
    f["Total_Promo"] = df[[f"AcceptedCmp{i}" for i in range(1, 6)]].sum(axis=1)
    f["NumWebVisitsMonth"] = df["NumWebVisitsMonth"]
    return f[FEATURES].astype(float)


class Laps:
    """Seconds per stage, each counted from the end of the one before: `lap("read")`."""

    def __init__(self):
        self.seconds = {}
        self.start = self.t = perf_counter()

    def __call__(self, stage):
        now = perf_counter()
        self.seconds[stage] = now - self.t
        self.t = now

    def total(self):
        self.seconds["total"] = perf_counter() - self.start
        return self.seconds


def preprocessing():
    """Median imputation, Yeo-Johnson on the skewed features and standard scaling on the rest,
    and the column order that puts the transformed matrix back in feature order."""
    import numpy as np
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import PowerTransformer, StandardScaler

    skewed = [FEATURES.index(c) for c in SKEWED]
    others = [i for i in range(len(FEATURES)) if i not in skewed]
    prep = make_pipeline(
        SimpleImputer(strategy="median"),
        ColumnTransformer([
            ("yeo_johnson", PowerTransformer(method="yeo-johnson", standardize=True), skewed),
            ("standard", StandardScaler(), others),
        ]),
    )
    # ColumnTransformer puts the skewed columns first; put them back in feature order (the
    # order matters to nothing here but keeps the matrix the same as the Rust side's).
    return prep, np.argsort(skewed + others)


def score(real, path, out):
    """Bulk scoring as a pandas user writes it: the pipeline fitted on REAL (not timed), then
    PATH read, its features computed, preprocessed, classified by XGBoost, and written to OUT
    with segment and probability_<id> appended. Prints per-stage seconds as JSON."""
    import numpy as np
    import pandas as pd
    import xgboost
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA

    x = features(pd.read_csv(real, sep="\t"))
    prep, order = preprocessing()
    p = prep.fit_transform(x.to_numpy())[:, order]
    km = KMeans(n_clusters=3, n_init=10, random_state=42).fit(PCA(n_components=2).fit_transform(p))
    clf = xgboost.XGBClassifier(n_estimators=100, max_depth=4, learning_rate=0.3, tree_method="hist", n_jobs=2)
    clf.fit(p, km.labels_)

    lap = Laps()

    df = pd.read_csv(path, sep="\t")
    lap("read")
    x = features(df)
    lap("features")
    proba = clf.predict_proba(prep.transform(x.to_numpy())[:, order])
    lap("predict")
    df["segment"] = proba.argmax(axis=1)
    for j in range(proba.shape[1]):
        df[f"probability_{j}"] = proba[:, j]
    df.to_csv(out, sep="\t", index=False)
    lap("write")
    seconds = lap.total()
    print(json.dumps({"rows": len(df), "seconds": seconds, "rows_per_second": len(df) / seconds["total"],
                      "segments": np.bincount(proba.argmax(axis=1)).tolist()}))


def run(path):
    import numpy as np
    import pandas as pd
    import sklearn
    import xgboost
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA
    from sklearn.metrics import davies_bouldin_score, f1_score, silhouette_score
    from sklearn.model_selection import train_test_split

    lap = Laps()

    x = features(pd.read_csv(path, sep="\t"))
    lap("read_features")

    x_train, x_test = train_test_split(x, test_size=0.2, random_state=42)
    prep, order = preprocessing()
    p_train = prep.fit_transform(x_train.to_numpy())[:, order]
    p_test = prep.transform(x_test.to_numpy())[:, order]
    pca = PCA(n_components=2)
    z_train = pca.fit_transform(p_train)
    z_test = pca.transform(p_test)
    lap("preprocess_pca")

    km = KMeans(n_clusters=3, n_init=10, random_state=42).fit(z_train)
    y_train, y_test = km.labels_, km.predict(z_test)
    lap("kmeans")

    # Silhouette is O(n^2): score a 10,000-row sample of a larger training split.
    sample = 10_000 if len(z_train) > 10_000 else None
    sil = silhouette_score(z_train, y_train, sample_size=sample, random_state=42)
    dbi = davies_bouldin_score(z_train, y_train)
    lap("metrics")

    clf = xgboost.XGBClassifier(n_estimators=100, max_depth=4, learning_rate=0.3, tree_method="hist", n_jobs=2)
    clf.fit(p_train, y_train)
    f1 = f1_score(y_test, clf.predict(p_test), average="weighted")
    lap("classifier")

    seconds = lap.total()
    print(json.dumps({
        "rows": len(x), "train_rows": len(x_train), "test_rows": len(x_test),
        "seconds": seconds, "silhouette": sil, "davies_bouldin": dbi, "f1": f1,
        "versions": {"python": sys.version.split()[0], "numpy": np.__version__, "pandas": pd.__version__,
                     "sklearn": sklearn.__version__, "xgboost": xgboost.__version__},
    }))


def gnu_time(path):
    """Wall seconds and peak RSS (MB) from a `/usr/bin/time -v -o PATH` report."""
    info = dict(line.strip().rsplit(": ", 1) for line in open(path) if ": " in line)
    wall = 0.0
    for part in info["Elapsed (wall clock) time (h:mm:ss or m:ss)"].split(":"):  # h:mm:ss or m:ss.ss
        wall = wall * 60 + float(part)
    return wall, int(info["Maximum resident set size (kbytes)"]) / 1024


def report(py_json, py_time, rust_json, rust_time, out):
    py = json.load(open(py_json))
    rust = json.load(open(rust_json))
    py_wall, py_rss = gnu_time(py_time)
    rust_wall, rust_rss = gnu_time(rust_time)
    ps, rs = py["seconds"], rust["seconds"]
    cands = {c["kind"]: c for c in rust["classifier"]["candidates"]}
    # (row, python seconds, rust seconds); Rust stages summed to match the Python stage boundaries.
    rows = [
        # A streamed run (above training.sample_rows) reads, validates and derives in pass one
        # and assigns every row in pass two; Python holds every row and fits on all of them.
        ("read+features", ps["read_features"],
         rs["pass_one"] if "pass_one" in rs else rs["ingest"] + rs["validate"] + rs["features"]),
        ("preprocess+PCA", ps["preprocess_pca"], rs["split"] + rs["preprocess"] + rs["device"] + rs["pca"]),
        ("KMeans", ps["kmeans"], rs["kmeans"]),
        ("metrics", ps["metrics"], rs["metrics"]),
        # Python trains one XGBoost; Rust trains its candidates (gbdt is the XGBoost peer) and picks one.
        ("classifier (stage)", ps["classifier"], rs["classifier"]),
        *[(f"  {kind}" + (" vs XGBoost" if kind == "gbdt" else ""), ps["classifier"] if kind == "gbdt" else None,
           c["seconds"]) for kind, c in cands.items()],
        *([("assign every row (pass two)", None, rs["pass_two"])] if "pass_two" in rs else []),
        ("total in process", ps["total"], rs["total"]),
        ("wall (with start-up)", py_wall, rust_wall),
    ]
    # The JSON first, so a reader that stops early (| head) still leaves the full result.
    json.dump({
        "rows": py["rows"],
        "python": {**py, "wall_seconds": py_wall, "peak_rss_mb": py_rss},
        "rust": {"seconds": rs, "silhouette": rust["silhouette"], "davies_bouldin": rust["davies_bouldin"],
                 "candidates": [{"kind": k, "seconds": c["seconds"], "f1": c["test"]["f1"]} for k, c in cands.items()],
                 "chosen": rust["classifier"]["chosen"], "wall_seconds": rust_wall, "peak_rss_mb": rust_rss},
        "table": [{"stage": n.strip(), "python_s": p, "rust_s": r, "ratio": p / r if p is not None and r else None}
                  for n, p, r in rows],
    }, open(out, "w"), indent=2)

    def line(name, p, r, digits, ratio=False):
        cell = lambda v: f"{v:10.{digits}f}" if v is not None else f"{'-':>10}"  # noqa: E731
        tail = (f"{p / r:8.1f}x" if p is not None and r else f"{'-':>9}") if ratio else ""
        print(f"{name:<28}{cell(p)}{cell(r)}{tail}")

    print(f"\n{py['rows']} rows, Python {py['versions']['python']} (2 threads) vs Rust (--device cpu)")
    print(f"{'stage':<28}{'Python s':>10}{'Rust s':>10}{'ratio':>9}")
    for name, p, r in rows:
        line(name, p, r, 3, ratio=True)
    print("(ratio = Python / Rust; above 1 means Rust is faster)\n")
    print(f"{'quality':<28}{'Python':>10}{'Rust':>10}")
    line("silhouette (train)", py["silhouette"], rust["silhouette"], 4)
    line("Davies-Bouldin (train)", py["davies_bouldin"], rust["davies_bouldin"], 4)
    for kind, c in cands.items():  # Python's XGBoost F1 sits beside its peer, Rust's gbdt
        line(f"weighted F1 (test), {kind}", py["f1"] if kind == "gbdt" else None, c["test"]["f1"], 4)
    line("peak RSS, MB", py_rss, rust_rss, 0)
    print(f"\nwrote {out}")

def score_report(py_json, py_time, rust_log, rust_time):
    py = json.load(open(py_json))
    py_wall, py_rss = gnu_time(py_time)
    rust_wall, rust_rss = gnu_time(rust_time)
    rows = py["rows"]
    print(f"\nbulk scoring of {rows} rows into a TSV with the predictions appended (2 cores)")
    print("Python stages, s: " + ", ".join(f"{k} {v:.2f}" for k, v in py["seconds"].items()))
    print("Rust: " + open(rust_log).read().strip())
    # Python's figure is its timed stages only (no imports, no fitting): the ratio favours it.
    py_s = py["seconds"]["total"]
    print(f"{'':<28}{'Python':>12}{'Rust':>12}{'ratio':>9}")
    print(f"{'s (Python: stages; Rust: wall)':<28}{py_s:12.2f}{rust_wall:12.2f}{py_s / rust_wall:8.1f}x")
    print(f"{'rows/s':<28}{rows / py_s:12.0f}{rows / rust_wall:12.0f}")
    print(f"{'peak RSS, MB':<28}{py_rss:12.0f}{rust_rss:12.0f}")
    print(f"(Python's wall time with imports and fitting: {py_wall:.2f} s; ratio = Python / Rust)")


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "gen":
        gen(args[0], int(args[1]), args[2])
    elif cmd == "run":
        run(args[0])
    elif cmd == "score":
        score(*args)
    elif cmd == "score-report":
        score_report(*args)
    elif cmd == "report":
        report(*args)
    else:
        sys.exit(__doc__)
