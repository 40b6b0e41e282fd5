"""Checks an exported model outside Rust: onnx.checker (full check) accepts it, and Python's
onnxruntime, fed the 21 features that `categorizer features` computed, gives the same segment
on every row as `categorizer predict` did on the raw records.

usage: check_onnx.py MODEL.onnx FEATURES.csv PREDICTIONS.csv
Prints one summary line; exits 1 on any disagreement.
"""
import csv
import sys

import numpy as np
import onnx
import onnxruntime as ort


def read(path):
    with open(path, newline="") as f:
        sample = f.readline()
        f.seek(0)
        delimiter = "\t" if sample.count("\t") > sample.count(",") else ","
        return list(csv.DictReader(f, delimiter=delimiter))


def main(model_path, features_path, predictions_path):
    model = onnx.load(model_path)
    onnx.checker.check_model(model, full_check=True)
    names = model.graph.input[0].doc_string.split(": ", 1)[1].split(", ")
    assert len(names) == 21, names

    features = read(features_path)
    x = np.array([[float(r[n]) if r[n] != "" else np.nan for n in names] for r in features],
                 dtype=np.float32)
    session = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    segment, probabilities, embedding, distances = session.run(
        ["segment", "probabilities", "embedding", "distances"], {"customers": x})

    predicted = read(predictions_path)
    by_row = {i + 1: r for i, r in enumerate(predicted)}
    agree = 0
    for r, s in zip(features, segment):
        want = by_row[int(r["row"])]["segment"]
        agree += want != "" and int(want) == int(s)
    n = len(features)
    ok = agree == n and np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    opsets = ", ".join(f"{o.domain or 'ai.onnx'} {o.version}" for o in model.opset_import)
    print(f"onnx.checker: ok (ir {model.ir_version}, opsets {opsets}); "
          f"onnxruntime {ort.__version__}: {agree}/{n} segments agree with categorizer predict; "
          f"shapes {segment.shape} {probabilities.shape} {embedding.shape} {distances.shape}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
