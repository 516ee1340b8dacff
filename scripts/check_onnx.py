#!/usr/bin/env python3
"""Check an `arcface export` ONNX model: the ONNX checker, the deployment contract, and
onnxruntime's embeddings against `arcface embed`'s.

    swift run -c release arcface export --checkpoint runs/att_faces_arcface --onnx /tmp/model.onnx
    swift run -c release arcface embed --checkpoint runs/att_faces_arcface \\
        --images ../shared/data/att_faces --output /tmp/att.npy
    python3 scripts/check_onnx.py /tmp/model.onnx --compare /tmp/att.npy --limit 40

Checks, in order (exit status 1 at the first failure):

1. `onnx.checker.check_model(model, full_check=True)` (with shape inference).
2. The contract InsightFace's model loader expects: exactly one graph input, named `data`, float
   `[N, C, H, W]` with a symbolic batch axis (a `dim_param`), and exactly one output `[N, D]`;
   the first node is not `Sub`, `Mul` or `Div` (the loader guesses the input normalization from
   the first nodes: ours is outside the graph); no `Reshape` anywhere (a fixed-batch Reshape
   breaks batching, insightface issue #2406) and a `Flatten` with `axis = 1`; `PRelu` slopes
   `[C, 1, 1]`; `Gemm` with `transB = 1`; opset >= 11.
3. With `--compare E.npy` (an `arcface embed` output without --flip-sum and --normalize, whose
   `.tsv` index beside it names the images): embeds the first `--limit` images listed there with
   onnxruntime, once as one batch and once an image at a time, and prints the largest absolute
   difference from the `.npy` rows (failure above `--tolerance`, default 1e-4).

Preprocessing, as `arcface` does it (FaceData: PGM, 8-bit, at the model's input size): each
sample v becomes float32 v/255*2 - 1, i.e. (v - 127.5)/127.5 in [-1, 1]; grey images feed
C = 1 as they are and C = 3 as three copies of the grey plane. This script reads PGM files of
exactly the model's input size (the AT&T faces are 92x112, the default); other images would
need the project's bilinear resize and centre crop, which it does not reimplement.

Needs numpy, onnx and onnxruntime (pip install onnx onnxruntime). Not run by the test suite.
"""
import argparse
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort


def fail(message):
    print(f"FAIL: {message}")
    sys.exit(1)


def read_pgm(path):
    """A binary (P5, 8-bit) PGM as float32 [H, W] with samples v/255."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] != b"P5":
        raise ValueError(f"{path}: not a binary PGM file")
    tokens, position = [], 2
    while len(tokens) < 3:
        while data[position:position + 1].isspace():
            position += 1
        if data[position:position + 1] == b"#":
            while data[position:position + 1] not in (b"\n", b"\r"):
                position += 1
            continue
        start = position
        while not data[position:position + 1].isspace() and data[position:position + 1] != b"#":
            position += 1
        tokens.append(int(data[start:position]))
    width, height, maxval = tokens
    if maxval > 255:
        raise ValueError(f"{path}: 16-bit PGM is not handled here")
    position += 1  # the single whitespace byte after maxval
    pixels = np.frombuffer(data, dtype=np.uint8, count=width * height, offset=position)
    return pixels.reshape(height, width).astype(np.float32) / np.float32(maxval)


def preprocess(path, channels, height, width):
    """The network input [C, H, W] of one image: v/255*2 - 1 (float32), as arcface's batches."""
    grey = read_pgm(path)
    if grey.shape != (height, width):
        fail(f"{path} is {grey.shape[1]}x{grey.shape[0]}, the model takes {width}x{height}: this script does not resize")
    x = grey * np.float32(2) - np.float32(1)
    return np.repeat(x[None, :, :], channels, axis=0)


def check_contract(model):
    graph = model.graph
    opset = {entry.domain: entry.version for entry in model.opset_import}
    if opset.get("", opset.get("ai.onnx", 0)) < 11:
        fail(f"default-domain opset {opset} < 11")
    initializers = {t.name: t for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    if len(inputs) != 1 or inputs[0].name != "data":
        fail(f"graph inputs {[i.name for i in inputs]}, expected exactly ['data']")
    dims = inputs[0].type.tensor_type.shape.dim
    if len(dims) != 4 or not dims[0].dim_param or dims[0].HasField("dim_value"):
        fail(f"input shape {dims}: expected [N, C, H, W] with a symbolic N")
    if any(not d.HasField("dim_value") for d in dims[1:]):
        fail("input C, H, W must be fixed sizes")
    if inputs[0].type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
        fail("input is not float32")
    if len(graph.output) != 1:
        fail(f"{len(graph.output)} graph outputs, expected exactly one (the embedding)")
    out_dims = graph.output[0].type.tensor_type.shape.dim
    if len(out_dims) != 2 or out_dims[0].dim_param != dims[0].dim_param:
        fail(f"output shape {out_dims}: expected [{dims[0].dim_param}, D]")
    ops = [node.op_type for node in graph.node]
    if ops[0] in ("Sub", "Mul", "Div"):
        fail(f"the first node is {ops[0]}: the normalization must stay outside the graph")
    if "Reshape" in ops:
        fail("the graph has a Reshape (use Flatten(axis=1))")
    flattens = [n for n in graph.node if n.op_type == "Flatten"]
    if not flattens or any(onnx.helper.get_attribute_value(a) != 1 for n in flattens for a in n.attribute if a.name == "axis"):
        fail("no Flatten with axis = 1")
    for node in graph.node:
        attributes = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "PRelu":
            slope = initializers[node.input[1]]
            if len(slope.dims) != 3 or list(slope.dims[1:]) != [1, 1]:
                fail(f"{node.name}: PRelu slope {list(slope.dims)}, expected [C, 1, 1]")
        if node.op_type == "Gemm" and attributes.get("transB", 0) != 1:
            fail(f"{node.name}: Gemm without transB = 1")
    shape = [d.dim_param for d in dims[:1]] + [d.dim_value for d in dims[1:]]
    print(f"contract: input data {shape}, output {graph.output[0].name} "
          f"[{out_dims[0].dim_param}, {out_dims[1].dim_value}], opset {opset.get('', opset.get('ai.onnx'))}, "
          f"ir_version {model.ir_version}, {len(ops)} nodes: {' '.join(ops)}")
    return [d.dim_value for d in dims[1:]], graph.output[0].name


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="the .onnx file written by arcface export")
    parser.add_argument("--compare", help="an arcface embed .npy (no --flip-sum, no --normalize); its .tsv beside it")
    parser.add_argument("--limit", type=int, default=40, help="images to compare (default 40)")
    parser.add_argument("--tolerance", type=float, default=1e-4, help="largest allowed absolute difference")
    args = parser.parse_args()

    model = onnx.load(args.model)
    onnx.checker.check_model(model, full_check=True)
    print(f"onnx.checker.check_model(full_check=True): passed (onnx {onnx.__version__})")
    (channels, height, width), output_name = check_contract(model)
    if not args.compare:
        return

    expected = np.load(args.compare)
    tsv = os.path.splitext(args.compare)[0] + ".tsv"
    with open(tsv, encoding="utf-8") as f:
        rows = [line.rstrip("\n").split("\t") for line in f][1:]
    paths = [row[1] for row in rows][: args.limit]
    batch = np.stack([preprocess(p, channels, height, width) for p in paths])
    session = ort.InferenceSession(args.model, providers=["CPUExecutionProvider"])
    together = session.run([output_name], {"data": batch})[0]
    one_by_one = np.concatenate([session.run([output_name], {"data": batch[i:i + 1]})[0] for i in range(len(paths))])
    reference = expected[: len(paths)]
    worst = max(float(np.abs(together - reference).max()), float(np.abs(one_by_one - reference).max()))
    scale = float(np.abs(reference).max())
    print(f"onnxruntime {ort.__version__} vs arcface embed on {len(paths)} images (batch of {len(paths)} and batches of 1): "
          f"largest |difference| {worst:.3g} (largest |embedding| value {scale:.3g}; tolerance {args.tolerance:g})")
    if not worst <= args.tolerance:
        fail(f"largest difference {worst:.3g} > {args.tolerance:g}")
    print("OK")


if __name__ == "__main__":
    main()
