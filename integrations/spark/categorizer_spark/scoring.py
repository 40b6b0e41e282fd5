"""Scoring: the model's feature SQL in Spark, then ONNX Runtime over Arrow batches.

``score_batch`` is the part that runs in the Python workers (and is tested on its own against
the Rust scorer): a batch of the SQL's output (``ID``, ``row``, the 21 features, ``problem``)
becomes the prediction columns. The atypical flag and the explanations are computed from the
ONNX outputs and the manifest's segment space exactly as ``src/explain.rs`` computes them, in
float64 and in the same order of operations.
"""

from __future__ import annotations

import re
import uuid
from typing import Iterator

import numpy as np
import pyarrow as pa

from .model import Model, ModelError, load_model

INPUT = "customers"
TOP_FEATURES = 3

# One ONNX Runtime session per Python worker and model, reused for every batch and task the
# worker runs (Spark reuses its Python workers).
_SESSIONS: dict = {}


def _session(sha: str, model_bytes):
    sess = _SESSIONS.get(sha)
    if sess is None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        # Spark runs one task per core already; one thread per session does not oversubscribe.
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        data = model_bytes() if callable(model_bytes) else model_bytes
        sess = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
        _SESSIONS.clear()
        _SESSIONS[sha] = sess
    return sess


def output_schema(model: Model, explain: bool, id_type: pa.DataType) -> pa.Schema:
    fields = [
        pa.field("ID", id_type),
        pa.field("row", pa.int64()),
        pa.field("segment", pa.int64()),
        pa.field("segment_name", pa.string()),
    ]
    fields += [pa.field(f"probability_{i}", pa.float32()) for i in range(model.k)]
    fields.append(pa.field("atypical", pa.bool_()))
    if explain:
        fields.append(pa.field("runner_up", pa.int64()))
        fields += [pa.field(f"top_feature_{i + 1}", pa.string()) for i in range(TOP_FEATURES)]
    fields.append(pa.field("error", pa.string()))
    return pa.schema(fields)


class Scorer:
    """What a worker needs, small enough to ship in the task closure: the manifest's segment
    names, space and feature keys; the model bytes come through a broadcast."""

    def __init__(self, model: Model, explain: bool, model_bytes=None):
        if explain and not model.explains:
            raise ModelError(
                f"model {model.version} was published before explanations existed; "
                "retrain it to use --explain"
            )
        self.sha = model.manifest["onnx"]["sha256"]
        self.model_bytes = model_bytes if model_bytes is not None else model.onnx
        self.k = model.k
        self.keys = model.feature_keys
        self.names = model.segment_names
        self.explain = explain
        space = model.space
        self.p99 = None
        if space is not None:
            self.p99 = np.asarray(space["distance_p99"], dtype=np.float64)
            self.pca_mean = np.asarray(space["pca_mean"], dtype=np.float32).astype(np.float64)
            self.components = np.asarray(space["components"], dtype=np.float32).astype(np.float64)
            self.centres = np.asarray(space["centres"], dtype=np.float32).astype(np.float64)

    def __call__(self, batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
        n = batch.num_rows
        problem = batch.column("problem")
        ok = np.asarray(problem.is_null().to_numpy(zero_copy_only=False), dtype=bool)
        rows = np.flatnonzero(ok)
        m = len(rows)
        k = self.k
        seg = np.zeros(m, dtype=np.int64)
        prob = np.zeros((m, k), dtype=np.float32)
        atypical = np.zeros(m, dtype=bool)
        explained = None
        if m:
            x = np.empty((m, len(self.keys)), dtype=np.float32)
            for j, key in enumerate(self.keys):
                col = batch.column(key).to_numpy(zero_copy_only=False)
                x[:, j] = np.asarray(col, dtype=np.float32)[rows]
            sess = _session(self.sha, self.model_bytes)
            names = ["segment", "probabilities", "distances"]
            if self.explain:
                names.append("preprocessed")
            out = sess.run(names, {INPUT: x})
            seg, prob, dist = out[0].astype(np.int64), out[1], out[2]
            if self.p99 is not None:
                atypical = dist[np.arange(m), seg].astype(np.float64) > self.p99[seg]
            if self.explain:
                explained = self._explain(out[3], dist, seg)

        def spread(values, dtype):
            full = pa.nulls(n, dtype)
            if not m:
                return full
            mask = np.zeros(n, dtype=bool)
            mask[rows] = True
            arr = np.zeros(n, dtype=values.dtype) if values.dtype != object else np.empty(n, dtype=object)
            arr[rows] = values
            return pa.array(arr, type=dtype, mask=~mask)

        cols = {
            "ID": batch.column("ID"),
            "row": batch.column("row").cast(pa.int64()),
            "segment": spread(seg, pa.int64()),
            "segment_name": spread(
                np.array([self.names[s] if 0 <= s < len(self.names) else None for s in seg], dtype=object),
                pa.string(),
            ),
        }
        for i in range(k):
            cols[f"probability_{i}"] = spread(prob[:, i].astype(np.float32), pa.float32())
        cols["atypical"] = spread(atypical, pa.bool_())
        if self.explain:
            runner, tops = explained if explained is not None else (np.zeros(0, dtype=object), [])
            if m:
                cols["runner_up"] = spread(runner, pa.int64())
                for i in range(TOP_FEATURES):
                    cols[f"top_feature_{i + 1}"] = spread(tops[i], pa.string())
            else:
                cols["runner_up"] = pa.nulls(n, pa.int64())
                for i in range(TOP_FEATURES):
                    cols[f"top_feature_{i + 1}"] = pa.nulls(n, pa.string())
        cols["error"] = problem.cast(pa.string())
        return pa.RecordBatch.from_arrays(
            [cols[f.name].cast(f.type) for f in schema], schema=schema
        )

    def _explain(self, pre: np.ndarray, dist: np.ndarray, seg: np.ndarray):
        """``SegmentSpace::explain`` for every row, vectorised over rows and features and in
        its order over the embedding's dimensions, so the float64 results are the same."""
        m, k = dist.shape
        runner = np.full(m, None, dtype=object)
        tops = [np.full(m, None, dtype=object) for _ in range(TOP_FEATURES)]
        if k < 2:
            return runner, tops
        masked = dist.astype(np.float64).copy()
        masked[np.arange(m), seg] = np.inf
        r = np.argmin(masked, axis=1)
        d_s = dist[np.arange(m), seg].astype(np.float64)
        d_r = dist[np.arange(m), r].astype(np.float64)
        cs, cr = self.centres[seg], self.centres[r]
        j = self.components.shape[1]
        g = np.zeros((m, j))
        back = np.zeros((m, j))
        for t, w in enumerate(self.components):
            a, b = cs[:, t][:, None], cr[:, t][:, None]
            g = g + 2.0 * w[None, :] * (a - b)
            back = back + w[None, :] * (a + b) / 2.0
        halfway = self.pca_mean[None, :] + back
        denominator = (d_s + d_r)[:, None]
        with np.errstate(all="ignore"):
            c = np.where(denominator > 0.0, g * (pre.astype(np.float64) - halfway) / denominator, 0.0)
        margin = d_r - d_s
        good = np.isfinite(margin) & np.isfinite(c).all(axis=1)
        # Largest contribution first, ties by feature order.
        order = np.lexsort((np.broadcast_to(np.arange(j), c.shape), -c), axis=1)
        for i in np.flatnonzero(good):
            runner[i] = int(r[i])
            for n_top in range(TOP_FEATURES):
                tops[n_top][i] = self.keys[order[i, n_top]]
        return runner, tops


def score_batch(model: Model, batch: pa.RecordBatch, explain: bool = False) -> pa.RecordBatch:
    """The prediction columns of one batch of the feature SQL's output."""
    scorer = Scorer(model, explain)
    return scorer(batch, output_schema(model, explain, batch.schema.field("ID").type))


def _apply_sql(df, model: Model):
    """The model's feature SQL over ``df`` (a temporary view of it): ID, row, the 21
    features, problem."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import DateType, TimestampType

    missing = [c for c in model.columns if c not in df.columns]
    if missing:
        raise ModelError(
            f"the input has no column {', '.join(missing)} (model {model.version} reads the "
            f"29 raw columns: {', '.join(model.columns)})"
        )
    # A date the source holds as a date is written in the schema's format, as the Rust
    # reader does, so one rule reads every date.
    for f in df.schema.fields:
        if f.name in model.dates and isinstance(f.dataType, (DateType, TimestampType)):
            df = df.withColumn(f.name, F.date_format(F.col(f.name), _java_format(model.dates[f.name])))
    view = f"categorizer_input_{uuid.uuid4().hex}"
    df.createOrReplaceTempView(view)
    sql, count = re.subn(
        rf"^(\s*)FROM {re.escape(model.table)}$", rf"\1FROM {view}", model.sql, flags=re.M
    )
    if count != 1:
        raise ModelError(f"the features SQL does not read its table {model.table} once")
    return df.sparkSession.sql(sql)


def _java_format(strftime: str) -> str:
    return strftime.replace("%Y", "yyyy").replace("%m", "MM").replace("%d", "dd")


def score(df, model, explain: bool = False, **load_options):
    """Scores a Spark DataFrame of raw records (the 29 columns) with ``model`` (a
    :class:`Model`, or a version directory or store to load). Returns a DataFrame of ``ID``,
    ``row`` (Spark's row id: unique, increasing, not consecutive), ``segment``,
    ``segment_name``, ``probability_<id>``, ``atypical`` (with ``explain``, ``runner_up`` and
    ``top_feature_1..3``) and ``error``: a row that cannot be scored has empty predictions and
    the reason, named as ``categorizer predict`` names it."""
    from pyspark.sql.pandas.types import from_arrow_schema, to_arrow_type

    if not isinstance(model, Model):
        model = load_model(model, **load_options)
    _jit_sized_codegen(df.sparkSession)
    features = _apply_sql(df, model)
    _ship_package(df.sparkSession.sparkContext)
    schema = output_schema(model, explain, to_arrow_type(features.schema["ID"].dataType))
    # The model's bytes go to each executor once; the closure carries only the manifest's
    # small parts.
    broadcast = df.sparkSession.sparkContext.broadcast(model.onnx)
    scorer = Scorer(model, explain, model_bytes=lambda: broadcast.value)

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            if batch.num_rows:
                yield scorer(batch, schema)

    return features.mapInArrow(run, from_arrow_schema(schema))


_SHIPPED: set = set()


def _ship_package(sc) -> None:
    """This package, zipped, to every executor's Python path (once per Spark context): the
    workers unpickle the scoring function from it, and then need only onnxruntime, pyarrow
    and numpy installed."""
    import os
    import tempfile
    import zipfile

    key = sc.applicationId
    if key in _SHIPPED:
        return
    here = os.path.dirname(os.path.abspath(__file__))
    fd, path = tempfile.mkstemp(prefix="categorizer_spark-", suffix=".zip")
    with os.fdopen(fd, "wb") as f, zipfile.ZipFile(f, "w") as z:
        for name in sorted(os.listdir(here)):
            if name.endswith(".py"):
                z.write(os.path.join(here, name), f"categorizer_spark/{name}")
    sc.addPyFile(path)
    _SHIPPED.add(key)


HUGE_METHOD = "spark.sql.codegen.hugeMethodLimit"


def _jit_sized_codegen(spark) -> None:
    """Spark fuses the feature SQL's levels into one generated method larger than the 8000
    bytes of bytecode HotSpot compiles; run in the JVM's interpreter it made scoring 2-4x
    slower. With the limit at 8000 (the size Spark's documentation gives for it) Spark
    compiles such a stage operator by operator instead; a query whose code fits is unchanged."""
    try:
        limit = int(spark.conf.get(HUGE_METHOD))
    except (TypeError, ValueError):
        return
    if limit > 8000:
        spark.conf.set(HUGE_METHOD, "8000")
