"""``spark-submit integrations/spark/score.py --model DIR|s3://BUCKET/PREFIX --input PATH
--output PATH [--explain]``: reads raw records from any Spark source, scores them, writes the
predictions (Parquet, or CSV by the output's extension)."""

from __future__ import annotations

import argparse
import os
import sys
import time

from .model import ModelError, load_model
from .scoring import score

CSV_EXTENSIONS = (".csv", ".tsv", ".txt")


def sniff_separator(header: str) -> str:
    """The Rust reader's rule: whichever of tab, comma, semicolon the header has most of (the
    later of equals)."""
    best, count = "\t", -1
    for sep in ("\t", ",", ";"):
        c = header.count(sep)
        if c >= count:
            best, count = sep, c
    return best


def read_input(spark, source: str, input_format: str | None):
    """A table name, a Parquet file or directory, or a CSV/TSV file or directory (all
    columns as text, the separator sniffed from the first line)."""
    fmt = input_format
    lower = source.lower().rstrip("/")
    if fmt is None:
        path_like = "/" in source or "://" in source or os.path.exists(source)
        if not path_like and spark.catalog.tableExists(source):
            fmt = "table"
        elif lower.endswith(CSV_EXTENSIONS):
            fmt = "csv"
        else:
            fmt = "parquet"
    if fmt == "table":
        return spark.table(source)
    if fmt == "parquet":
        return spark.read.parquet(source)
    if fmt != "csv":
        raise SystemExit(f"--input-format: {fmt} is not table, parquet or csv")
    first = spark.read.text(source).limit(1).collect()
    if not first:
        raise SystemExit(f"{source}: empty")
    return (
        spark.read.option("header", True)
        .option("sep", sniff_separator(first[0][0]))
        .option("quote", '"')
        .option("escape", '"')
        .option("inferSchema", False)
        .option("mode", "PERMISSIVE")
        .csv(source)
    )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="score.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="a model version directory, or a store (directory or s3://bucket/prefix) whose current model (the last line of HISTORY) is used")
    p.add_argument("--input", required=True, help="a table name, a Parquet file or directory, or a CSV/TSV file or directory")
    p.add_argument("--input-format", choices=["table", "parquet", "csv"], help="instead of guessing from --input")
    p.add_argument("--output", required=True, help="a directory: Parquet, or CSV when it ends in .csv/.tsv")
    p.add_argument("--explain", action="store_true", help="add runner_up and top_feature_1..3")
    p.add_argument("--features-sql", help="the model's Spark SQL, for a model published before it was stored with it")
    p.add_argument("--s3-endpoint", help="an S3-compatible endpoint (default: $AWS_ENDPOINT_URL, else AWS)")
    p.add_argument("--s3-region", help="default: $AWS_REGION, else us-east-1")
    p.add_argument("--mode", default="errorifexists", choices=["errorifexists", "overwrite"], help="when --output exists")
    args = p.parse_args(argv)

    # The model first: a missing model or an unreachable store fails before Spark starts.
    try:
        model = load_model(
            args.model,
            features_sql=args.features_sql,
            s3_endpoint=args.s3_endpoint,
            s3_region=args.s3_region,
        )
    except ModelError as e:
        print(f"score.py: {e}", file=sys.stderr)
        return 2

    from pyspark.sql import SparkSession

    spark = SparkSession.builder.appName(f"categorizer-score-{model.version}").getOrCreate()
    start = time.time()
    try:
        df = read_input(spark, args.input, args.input_format)
        out = score(df, model, explain=args.explain)
    except ModelError as e:
        print(f"score.py: {e}", file=sys.stderr)
        return 2
    writer = out.write.mode(args.mode)
    if args.output.lower().rstrip("/").endswith(CSV_EXTENSIONS):
        sep = "\t" if args.output.lower().rstrip("/").endswith(".tsv") else ","
        writer.option("header", True).option("sep", sep).csv(args.output)
    else:
        writer.parquet(args.output)
    print(
        f"scored {args.input} with model {model.version} into {args.output} "
        f"in {time.time() - start:.1f} s",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
