"""A model version as the Rust registry stores it: ``manifest.json``, ``model.onnx`` and the
exported feature SQL, from a version directory, or from a store's current model (the last
line of ``HISTORY``, else ``CURRENT``; a local directory or ``s3://bucket/prefix``), each file checked against the manifest's SHA-256."""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from typing import Optional

MODEL_FILE = "model.onnx"
MANIFEST_FILE = "manifest.json"
CURRENT_FILE = "CURRENT"
HISTORY_FILE = "HISTORY"
DIALECT = "spark"
VERSION_RE = re.compile(r"^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8}$")


class ModelError(Exception):
    """The model cannot be used: what is wrong, and where."""


@dataclass
class Model:
    version: str
    location: str
    manifest: dict
    onnx: bytes
    sql: str
    #: The raw columns the SQL reads (its ``-- columns:`` line).
    columns: list = field(default_factory=list)
    #: Date columns and their strftime formats (its ``-- dates:`` line).
    dates: dict = field(default_factory=dict)
    #: The table name the SQL reads (its ``-- table:`` line).
    table: str = "customers"

    @property
    def k(self) -> int:
        return int(self.manifest["k"])

    @property
    def segment_names(self) -> list:
        return [s.get("name", "") for s in self.manifest.get("segments", [])]

    @property
    def feature_keys(self) -> list:
        return [f["key"] for f in self.manifest["features"]]

    @property
    def space(self) -> Optional[dict]:
        """The segments' space (explanations and the atypical flag), when the model has it."""
        seg = self.manifest.get("segmentation") or {}
        space = seg.get("space")
        if space is None or len(space.get("centres", [])) != self.k:
            return None
        return space

    @property
    def explains(self) -> bool:
        return self.space is not None and any(
            o.startswith("preprocessed:") for o in self.manifest["onnx"].get("outputs", [])
        )


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class _Local:
    def __init__(self, root: str):
        self.root = root

    def describe(self) -> str:
        return self.root

    def read(self, *parts: str) -> Optional[bytes]:
        path = os.path.join(self.root, *parts)
        try:
            with open(path, "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None
        except OSError as e:
            raise ModelError(f"{path}: {e}") from e

    def version_parts(self, version: str) -> tuple:
        return (version,)


class _S3:
    """A store in S3 (``<prefix>CURRENT``, ``<prefix>versions/<version>/<file>``), read with
    pyarrow's S3 filesystem: the standard AWS credential chain, an endpoint for S3-compatible
    servers, and the timeouts of the Rust store's defaults."""

    def __init__(self, uri: str, endpoint, region, connect_timeout, request_timeout):
        from pyarrow import fs

        rest = uri[len("s3://"):]
        bucket, _, prefix = rest.partition("/")
        if not bucket:
            raise ModelError(f"{uri}: no bucket")
        self.uri = uri.rstrip("/")
        self.base = f"{bucket}/{prefix.strip('/')}".rstrip("/")
        endpoint = endpoint or os.environ.get("AWS_ENDPOINT_URL")
        kwargs = dict(
            region=region or os.environ.get("AWS_REGION") or "us-east-1",
            connect_timeout=connect_timeout,
            request_timeout=request_timeout,
            retry_strategy=fs.AwsStandardS3RetryStrategy(max_attempts=2),
        )
        if endpoint:
            scheme, _, host = endpoint.partition("://")
            kwargs.update(endpoint_override=host or scheme, scheme=scheme if host else "https")
        self.fs = fs.S3FileSystem(**kwargs)

    def describe(self) -> str:
        return self.uri

    def read(self, *parts: str) -> Optional[bytes]:
        path = "/".join([self.base, *parts])
        try:
            with self.fs.open_input_stream(path) as f:
                return f.read()
        except FileNotFoundError:
            return None
        except OSError as e:
            if "NoSuchKey" in str(e) or "not found" in str(e).lower():
                return None
            raise ModelError(f"{self.uri}: cannot read {path}: {e}") from e

    def version_parts(self, version: str) -> tuple:
        return ("versions", version)


def load_model(
    source: str,
    *,
    features_sql: Optional[str] = None,
    s3_endpoint: Optional[str] = None,
    s3_region: Optional[str] = None,
    connect_timeout: float = 2.0,
    request_timeout: float = 10.0,
) -> Model:
    """Loads a model version directory, or the current version of a store (a local
    directory or ``s3://bucket/prefix``). ``features_sql`` is a file of the model's Spark SQL
    for a version published before the SQL was stored with it."""
    if source.startswith("s3://"):
        store = _S3(source, s3_endpoint, s3_region, connect_timeout, request_timeout)
        version = _current(store)
        parts = store.version_parts(version)
    else:
        if not os.path.isdir(source):
            raise ModelError(f"{source}: no such model directory or store")
        store = _Local(source)
        if os.path.isfile(os.path.join(source, MODEL_FILE)):
            parts = ()
        else:
            parts = store.version_parts(_current(store))
    where = "/".join([store.describe(), *parts])

    def need(name: str) -> bytes:
        data = store.read(*parts, name)
        if data is None:
            raise ModelError(f"{where}: no {name}")
        return data

    try:
        manifest = json.loads(need(MANIFEST_FILE))
    except ValueError as e:
        raise ModelError(f"{where}/{MANIFEST_FILE}: not JSON: {e}") from e
    onnx = need(MODEL_FILE)
    want = manifest["onnx"]["sha256"].lower()
    if _sha256(onnx) != want:
        raise ModelError(
            f"{where}/{MODEL_FILE}: its SHA-256 is {_sha256(onnx)}, the manifest says {want}; "
            "the file is damaged or not this manifest's model"
        )
    if features_sql is not None:
        with open(features_sql, "rb") as f:
            sql = f.read()
    else:
        entry = next((s for s in manifest.get("sql", []) if s.get("dialect") == DIALECT), None)
        if entry is None:
            raise ModelError(
                f"model {manifest['version']} ({where}) was published before its features "
                "were exported as SQL; write them with `categorizer export sql --model "
                f"{where} --dialect spark --out features.spark.sql` and pass that file "
                "(--features-sql, or load_model(..., features_sql=...))"
            )
        sql = need(entry["file"])
        if _sha256(sql) != entry["sha256"].lower():
            raise ModelError(
                f"{where}/{entry['file']}: its SHA-256 is {_sha256(sql)}, the manifest says "
                f"{entry['sha256']}; the file is damaged or not this model's"
            )
    text = sql.decode("utf-8")
    header = _header(text)
    if header.get("dialect") != DIALECT:
        raise ModelError(
            f"the features SQL is for {header.get('dialect', 'an unknown engine')}, not spark"
        )
    if header.get("model") != manifest["version"]:
        raise ModelError(
            f"the features SQL is model {header.get('model')}'s, not {manifest['version']}'s"
        )
    dates = {}
    for item in filter(None, header.get("dates", "").split(", ")):
        name, _, fmt = item.partition("=")
        dates[name] = fmt
    return Model(
        version=manifest["version"],
        location=where,
        manifest=manifest,
        onnx=onnx,
        sql=text,
        columns=[c for c in header.get("columns", "").split(", ") if c],
        dates=dates,
        table=header.get("table", "customers"),
    )


def _current(store) -> str:
    """The store's current version: the last line of ``HISTORY`` (the object promotions
    swap), else ``CURRENT`` (a store written before the history)."""
    for name in (HISTORY_FILE, CURRENT_FILE):
        data = store.read(name)
        if data is None:
            continue
        lines = [l.strip() for l in data.decode("utf-8", "replace").splitlines() if l.strip()]
        if not lines:
            continue
        version = lines[-1]
        if not VERSION_RE.match(version):
            raise ModelError(f"{store.describe()}/{name} names no version: {version!r}")
        return version
    raise ModelError(
        f"{store.describe()}: no {HISTORY_FILE} or {CURRENT_FILE}: not a model version directory, nor a "
        "store with a current model"
    )


def _header(sql: str) -> dict:
    out = {}
    for line in sql.splitlines():
        if not line.startswith("-- "):
            break
        key, sep, value = line[3:].partition(": ")
        if sep and key.isidentifier():
            out[key] = value.strip()
    return out
