"""The model where the data lives gives the Rust binary's answers, row by row.

    spark_parity.py BIN STORE WORK [REAL_DATA] [ROWS]

With the categorizer binary BIN and a model store STORE (its CURRENT model), in the directory
WORK: writes a file of real-shaped rows (the real records resampled as benches/vs-python.sh
resamples them, or `categorizer generate` rows without the real data) plus hostile rows, then
checks on every row that
  * Spark (`categorizer_spark.score`, local[2], the stored features.spark.sql) and
    `categorizer predict --on-error keep --explain` give the same segment, an error on the
    same rows naming the same field, probabilities within 1e-6, the same atypical flag and
    the same explanation columns;
  * DuckDB's features.duckdb.sql gives the 21 features `categorizer features --on-error keep`
    gives (whole numbers to the last bit, others within 1e-9 relative) and a problem on the
    rows it sets aside, naming the same field;
  * docs/spark-and-sql.md's DuckDB + ONNX Runtime snippet, run as written, segments the same rows as
    the binary.
Exits 1 with the differences when any row differs.
"""

import json
import math
import os
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "integrations", "spark"))

SPEND = ["MntWines", "MntFruits", "MntMeatProducts", "MntFishProducts", "MntSweetProducts", "MntGoldProds"]
failures = []


def fail(what):
    failures.append(what)
    if len(failures) <= 40:
        print("MISMATCH:", what)


def base_rows(bin_path, work, real, rows):
    """Real-shaped rows as text: the real records resampled (seed 7, income and spending
    jittered ±10 %), or the seeded generator's rows."""
    if real and os.path.exists(real):
        df = pd.read_csv(real, sep="\t", dtype=str, keep_default_na=False)
        rng = np.random.default_rng(7)
        df = df.iloc[rng.integers(0, len(df), rows)].reset_index(drop=True)
        jitter = rng.uniform(0.9, 1.1, size=(rows, 1 + len(SPEND)))
        for j, c in enumerate(["Income"] + SPEND):
            v = pd.to_numeric(df[c].replace("", np.nan))
            df[c] = np.rint(v * jitter[:, j]).astype("Int64").astype(str).replace("<NA>", "")
        df["ID"] = [str(i) for i in range(1, rows + 1)]
        return df
    path = os.path.join(work, "generated.tsv")
    subprocess.run([bin_path, "generate", "--rows", str(rows), "--seed", "7", "--out", path], check=True)
    df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    df["ID"] = [str(i) for i in range(1, len(df) + 1)]
    return df


def hostile(base, reference_year=2014):
    """A copy of a valid row per case, one thing changed in each."""
    row = base.iloc[0].to_dict()
    cases = [
        ("missing Income", {"Income": ""}),
        ("NaN Income", {"Income": "NaN"}),
        ("unknown Education", {"Education": "PhD2"}),
        ("missing Education", {"Education": ""}),
        ("unknown Marital_Status", {"Marital_Status": "Complicated"}),
        ("impossible date", {"Dt_Customer": "31-02-2014"}),
        ("date in another format", {"Dt_Customer": "2014-02-03"}),
        ("date not zero-padded", {"Dt_Customer": "4-9-2012"}),
        ("missing date", {"Dt_Customer": ""}),
        ("Age out of range", {"Year_Birth": "1850"}),
        ("text in a number column", {"MntWines": "lots"}),
        ("text in an unused number column", {"Z_Revenue": "eleven"}),
        # Teenhome pinned: the message names Children = Kidhome + Teenhome, and the base row's
        # Teenhome depends on the data (real records or generated ones).
        ("fraction in Kidhome", {"Kidhome": "0.5", "Teenhome": "0"}),
        ("1e400 in Income", {"Income": "1e400"}),
        ("spaces around a number", {"Recency": " 7 "}),
        ("a long bad text", {"NumWebPurchases": "x" * 100}),
        ("a quote in a category", {"Education": "Ph'D"}),
        # One past each feature's bound (where a raw value can put it there).
        ("Age max+1", {"Year_Birth": str(reference_year - 131)}),
        ("Age min-1", {"Year_Birth": str(reference_year + 1)}),
        ("Children max+1", {"Kidhome": "21", "Teenhome": "0"}),
        ("Children min-1", {"Kidhome": "-1", "Teenhome": "0"}),
        ("Income max+1", {"Income": "10000001"}),
        ("Income min-1", {"Income": "-1"}),
        ("Total_Spending max+1", {"MntWines": "1000001"}),
        ("Fruits min-1", {"MntFruits": "-1"}),
        ("Days_as_Customer max+1", {"Dt_Customer": "01-01-1914"}),
        ("Days_as_Customer min-1", {"Dt_Customer": "01-01-2015"}),
        ("Recency max+1", {"Recency": "36501"}),
        ("Recency min-1", {"Recency": "-1"}),
        ("Web max+1", {"NumWebPurchases": "10001"}),
        ("Catalog max+1", {"NumCatalogPurchases": "10001"}),
        ("Store max+1", {"NumStorePurchases": "10001"}),
        ("Discount_Purchases max+1", {"NumDealsPurchases": "10001"}),
        ("Total_Promo max+1", {"AcceptedCmp1": "6"}),
        ("NumWebVisitsMonth max+1", {"NumWebVisitsMonth": "10001"}),
        ("NumWebVisitsMonth fraction", {"NumWebVisitsMonth": "2.5"}),
        ("a fraction an f32 rounds away", {"Recency": "7.0000000001"}),
    ]
    out = []
    for i, (name, change) in enumerate(cases):
        r = dict(row)
        r.update(change)
        r["ID"] = str(9_000_000 + i)
        out.append(r)
    return pd.DataFrame(out, columns=base.columns), [c[0] for c in cases]


def field(message):
    return None if message is None else message.split(":", 1)[0]


def has_number(message):
    return message is not None and (" is outside [" in message or "is not a whole number" in message)


def same_error(where, got, want):
    if (got is None) != (want is None):
        fail(f"{where}: error {got!r} vs the binary's {want!r}")
    elif want is not None:
        if field(got) != field(want):
            fail(f"{where}: error names {field(got)!r}, the binary {field(want)!r} ({got!r} vs {want!r})")
        elif not has_number(want) and got != want:
            fail(f"{where}: error {got!r} vs the binary's {want!r}")


def nullish(v):
    return v is None or (isinstance(v, float) and math.isnan(v))


def main():
    bin_path, store, work = sys.argv[1:4]
    real = sys.argv[4] if len(sys.argv) > 4 and sys.argv[4] else None
    rows = int(sys.argv[5]) if len(sys.argv) > 5 else 3000
    os.makedirs(work, exist_ok=True)
    base = base_rows(bin_path, work, real, rows)
    bad, names = hostile(base)
    data = pd.concat([base, bad], ignore_index=True)
    tsv = os.path.join(work, "customers.tsv")
    data.to_csv(tsv, sep="\t", index=False)
    ids = data["ID"].tolist()
    print(f"{len(base)} real-shaped rows ({'real records resampled' if real and os.path.exists(real) else 'generated'}) + {len(bad)} hostile rows")

    # The binary's answers.
    rust_pred = os.path.join(work, "rust.parquet")
    rust_feat = os.path.join(work, "rust-features.parquet")
    subprocess.run([bin_path, "predict", "--model", store, "--input", tsv, "--output", rust_pred,
                    "--on-error", "keep", "--explain", "--quiet"], check=True)
    subprocess.run([bin_path, "features", "--input", tsv, "--output", rust_feat, "--on-error", "keep"], check=True)
    rust = pq.read_table(rust_pred).to_pandas()
    rust["ID"] = ids
    rust = rust.set_index("ID")
    feats = pq.read_table(rust_feat).to_pandas()
    feats["ID"] = [ids[r - 1] for r in feats["row"]]
    feats = feats.set_index("ID")
    for i, name in enumerate(names):
        print(f"  hostile {name!r}: the binary says {rust.loc[str(9_000_000 + i), 'error']!r}")

    from categorizer_spark import load_model, score
    from categorizer_spark.cli import read_input

    model = load_model(store)
    keys = model.feature_keys
    k = model.k

    # Spark.
    from pyspark.sql import SparkSession

    # The workers run this interpreter (the venv's, with pyarrow and onnxruntime).
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    spark = (
        SparkSession.builder.master("local[2]")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    got = score(read_input(spark, tsv, None), model, explain=True).toPandas().set_index("ID")
    if sorted(got.index) != sorted(rust.index):
        fail(f"Spark returned {len(got)} rows for {len(rust)} IDs")
    checked = 0
    for id_ in rust.index:
        if id_ not in got.index:
            continue
        g, r = got.loc[id_], rust.loc[id_]
        where = f"Spark, ID {id_}"
        same_error(where, None if nullish(g["error"]) else g["error"], None if nullish(r["error"]) else r["error"])
        if nullish(r["error"]) and nullish(g["error"]):
            if int(g["segment"]) != int(r["segment"]):
                fail(f"{where}: segment {g['segment']} vs {r['segment']}")
            for i in range(k):
                if abs(float(g[f"probability_{i}"]) - float(r[f"probability_{i}"])) > 1e-6:
                    fail(f"{where}: probability_{i} {g[f'probability_{i}']} vs {r[f'probability_{i}']}")
            if bool(g["atypical"]) != bool(r["atypical"]):
                fail(f"{where}: atypical {g['atypical']} vs {r['atypical']}")
            if g["segment_name"] != r["segment_name"]:
                fail(f"{where}: segment_name {g['segment_name']!r} vs {r['segment_name']!r}")
            for c in ["runner_up", "top_feature_1", "top_feature_2", "top_feature_3"]:
                a, b = g[c], r[c]
                if nullish(a) or nullish(b):
                    agree = nullish(a) and nullish(b)
                else:
                    agree = int(a) == int(b) if c == "runner_up" else a == b
                if not agree:
                    fail(f"{where}: {c} {a!r} vs {b!r}")
            checked += 1
    print(f"Spark: {len(got)} rows, {checked} scored rows compared, {int(got['error'].notna().sum())} row errors")

    # DuckDB: the features.
    import duckdb

    sql = open(os.path.join(model_dir(store, model.version), "features.duckdb.sql")).read()
    con = duckdb.connect()
    con.execute(f"CREATE VIEW customers AS SELECT * FROM read_csv('{tsv}', delim='\t', header=true, all_varchar=true, quote='\"', escape='\"')")
    duck = con.sql(sql).arrow().read_all().to_pandas().set_index("ID")
    whole = {f["key"] for f in model.manifest["features"] if f["kind"] in ("integer", "coded")}
    compared = 0
    for id_ in feats.index:
        d, r = duck.loc[id_], feats.loc[id_]
        where = f"DuckDB, ID {id_}"
        same_error(where, None if nullish(d["problem"]) else d["problem"], None if nullish(r["error"]) else r["error"])
        if not nullish(r["error"]):
            continue
        for key in keys:
            a, b = d[key], r[key]
            if nullish(a) or nullish(b):
                if nullish(a) != nullish(b):
                    fail(f"{where}: {key} {a!r} vs {b!r}")
                continue
            if key in whole:
                if np.float32(a).tobytes() != np.float32(b).tobytes():
                    fail(f"{where}: {key} {a!r} vs {b!r} (not the same bits)")
            elif abs(float(a) - float(b)) > 1e-9 * max(abs(float(b)), 1e-300):
                fail(f"{where}: {key} {a!r} vs {b!r}")
        compared += 1
    print(f"DuckDB: {len(duck)} rows, {compared} rows' 21 features compared, {int(duck['problem'].notna().sum())} problems")

    # The same SQL over the table with its date column typed, as DuckDB's read_csv or a
    # warehouse types it (DATE, then TIMESTAMP): every row the text table reads without a
    # problem gets the same 21 features, to the bit.
    for typ in ("DATE", "TIMESTAMP"):
        con.execute(
            "CREATE OR REPLACE VIEW typed AS SELECT * REPLACE "
            f"(CAST(TRY_STRPTIME(Dt_Customer, '%d-%m-%Y') AS {typ}) AS Dt_Customer) FROM customers"
        )
        typed_sql, n = re.subn(r"^(\s*)FROM customers$", r"\1FROM typed", sql, flags=re.M)
        if n != 1:
            fail("the DuckDB SQL does not read its table once")
        typed = con.sql(typed_sql).arrow().read_all().to_pandas().set_index("ID")
        same = 0
        for id_ in duck.index:
            d = duck.loc[id_]
            if not nullish(d["problem"]):
                continue
            t = typed.loc[id_]
            if not nullish(t["problem"]):
                fail(f"DuckDB with {typ} dates, ID {id_}: {t['problem']!r}")
            for key in keys:
                a, b = t[key], d[key]
                if nullish(a) != nullish(b) or (
                    not nullish(a) and np.float64(a).tobytes() != np.float64(b).tobytes()
                ):
                    fail(f"DuckDB with {typ} dates, ID {id_}: {key} {a!r} vs {b!r}")
            same += 1
        print(f"DuckDB with {typ} dates: {same} rows, the same 21 features as from text")

    # docs/spark-and-sql.md's Python-only snippet, as written, in a directory with the store as models/.
    readme = open(os.path.join(ROOT, "docs", "spark-and-sql.md")).read()
    m = re.search(r"<!-- duckdb-snippet -->\n```python\n(.*?)```\n<!-- /duckdb-snippet -->", readme, re.S)
    if not m:
        fail("docs/spark-and-sql.md has no duckdb-snippet")
    else:
        snippet_dir = os.path.join(work, "snippet")
        os.makedirs(snippet_dir, exist_ok=True)
        link = os.path.join(snippet_dir, "models")
        if not os.path.exists(link):
            os.symlink(os.path.abspath(store), link)
        subprocess.run([bin_path, "generate", "--rows", "500", "--seed", "11",
                        "--out", os.path.join(snippet_dir, "customers.parquet")], check=True, capture_output=True)
        scope = {}
        cwd = os.getcwd()
        os.chdir(snippet_dir)
        try:
            exec(compile(m.group(1), "docs duckdb-snippet", "exec"), scope)
        finally:
            os.chdir(cwd)
        snip_pred = os.path.join(work, "snippet-rust.parquet")
        subprocess.run([bin_path, "predict", "--model", store, "--input",
                        os.path.join(snippet_dir, "customers.parquet"), "--output", snip_pred,
                        "--on-error", "keep", "--quiet"], check=True)
        want = pq.read_table(snip_pred).to_pandas()
        want = want[want["error"].isna()]
        segment = scope.get("segment")
        if segment is None or len(segment) != len(want):
            fail(f"the snippet scored {None if segment is None else len(segment)} rows, the binary {len(want)}")
        elif (np.asarray(segment) != want["segment"].to_numpy()).any():
            fail("the snippet's segments differ from the binary's")
        else:
            print(f"docs snippet: {len(segment)} rows, the binary's segments")

    spark.stop()
    if failures:
        print(f"{len(failures)} mismatches")
        return 1
    print("every row agrees")
    return 0


def model_dir(store, version):
    return store if os.path.exists(os.path.join(store, "model.onnx")) else os.path.join(store, version)


if __name__ == "__main__":
    sys.exit(main())
