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
   difference from the `.npy` rows, also relative to the largest |embedding| value (failure above
   `--tolerance` + `--relative-tolerance` x that value, defaults 1e-4 and 1e-5: an untrained
   network in inference mode can have embedding values of 1e7, where float32 alone differs by 10).

Preprocessing, as `arcface` does it (FaceData, 8-bit, at the model's input size): each
sample v becomes float32 v/255*2 - 1, i.e. (v - 127.5)/127.5 in [-1, 1]; grey images feed
C = 1 as they are and C = 3 as three copies of the grey plane; RGB images feed C = 3 as planes
R, G, B (and C = 1 as 0.299 R + 0.587 G + 0.114 B, not handled here). This script reads binary
PGM files and 8-bit RGB or grey PNG files of exactly the model's input size (the AT&T faces are
92x112, the default CNN's input); other sizes would need the project's bilinear resize and
centre crop, which it does not reimplement.

For the RGB 112x112 families (IResNet, MobileFaceNet) `--make-images DIR` writes synthetic RGB
112x112 PNG faces (smooth random colour fields, per identity folder, seeded), to embed and compare:

    python3 scripts/check_onnx.py --make-images /tmp/rgb112
    arcface embed --checkpoint RUN --images /tmp/rgb112 --output /tmp/rgb.npy
    arcface export --checkpoint RUN --onnx /tmp/model.onnx
    python3 scripts/check_onnx.py /tmp/model.onnx --compare /tmp/rgb.npy

Needs numpy, onnx and onnxruntime (pip install onnx onnxruntime). Not run by the test suite.
"""
import argparse
import os
import struct
import sys
import zlib

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


def read_png(path):
    """An 8-bit, non-interlaced grey (colour type 0) or RGB (colour type 2) PNG as uint8 [H, W, C]."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path}: not a PNG file")
    position, idat, header = 8, b"", None
    while position < len(data):
        length, kind = struct.unpack(">I4s", data[position:position + 8])
        body = data[position + 8:position + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        position += 12 + length
    width, height, depth, colour, _, _, interlace = header
    if depth != 8 or colour not in (0, 2) or interlace != 0:
        raise ValueError(f"{path}: only 8-bit grey or RGB non-interlaced PNG is handled here")
    channels = 1 if colour == 0 else 3
    raw = zlib.decompress(idat)
    stride = width * channels
    rows, previous = [], bytearray(stride)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up = previous[i]
            upper_left = previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 255
            elif kind == 2:
                line[i] = (line[i] + up) & 255
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 255
            elif kind == 4:
                p = left + up - upper_left
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - upper_left)
                line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else upper_left)) & 255
        rows.append(bytes(line))
        previous = line
    return np.frombuffer(b"".join(rows), dtype=np.uint8).reshape(height, width, channels)


def write_png(path, pixels):
    """Writes uint8 [H, W, 3] as an RGB PNG (filter 0 on every row)."""
    height, width, _ = pixels.shape
    raw = b"".join(b"\x00" + pixels[y].tobytes() for y in range(height))
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def make_images(folder, identities=4, per_identity=5, size=112, seed=0):
    """Synthetic RGB faces: per identity a smooth random colour field, per image a shifted,
    noisier copy; `identities` folders of `per_identity` PNG files each."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:size, 0:size] / size
    for k in range(identities):
        base = rng.normal(size=(3, 4))
        os.makedirs(os.path.join(folder, f"id{k}"), exist_ok=True)
        for j in range(per_identity):
            phase = rng.normal(scale=0.3, size=3)
            planes = [np.sin(6 * (base[c, 0] * xs + base[c, 1] * ys) + base[c, 2] + phase[c]) * 0.4
                      + base[c, 3] * 0.2 + rng.normal(scale=0.08, size=(size, size)) for c in range(3)]
            image = np.clip(np.stack(planes, axis=-1) * 127.5 + 127.5, 0, 255).astype(np.uint8)
            write_png(os.path.join(folder, f"id{k}", f"{j}.png"), image)
    print(f"wrote {identities * per_identity} RGB {size}x{size} PNG images in {folder}")


def preprocess(path, channels, height, width):
    """The network input [C, H, W] of one image: v/255*2 - 1 (float32), as arcface's batches."""
    if path.lower().endswith(".png"):
        pixels = read_png(path)
        image = pixels.transpose(2, 0, 1).astype(np.float32) / np.float32(255)
        if image.shape[0] == 1:
            image = np.repeat(image, channels, axis=0)
        elif channels != 3:
            fail(f"{path} is RGB and the model takes {channels} channel(s): this script does not convert to grey")
    else:
        image = read_pgm(path)[None, :, :]
        image = np.repeat(image, channels, axis=0)
    if image.shape[1:] != (height, width):
        fail(f"{path} is {image.shape[2]}x{image.shape[1]}, the model takes {width}x{height}: this script does not resize")
    return image * np.float32(2) - np.float32(1)


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
    parser.add_argument("model", nargs="?", help="the .onnx file written by arcface export")
    parser.add_argument("--make-images", metavar="DIR", help="write synthetic RGB 112x112 PNG faces into DIR and stop")
    parser.add_argument("--compare", help="an arcface embed .npy (no --flip-sum, no --normalize); its .tsv beside it")
    parser.add_argument("--limit", type=int, default=40, help="images to compare (default 40)")
    parser.add_argument("--tolerance", type=float, default=1e-4,
                        help="allowed absolute difference (default 1e-4), on top of --relative-tolerance")
    parser.add_argument("--relative-tolerance", type=float, default=1e-5,
                        help="allowed difference per unit of the largest |embedding| value (default 1e-5: float32 round-off "
                             "through a deep network); the bound is tolerance + relative-tolerance * max|embedding|")
    args = parser.parse_args()
    if args.make_images:
        make_images(args.make_images)
        return
    if not args.model:
        parser.error("the model is required (or --make-images DIR)")

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
    bound = args.tolerance + args.relative_tolerance * scale
    print(f"onnxruntime {ort.__version__} vs arcface embed on {len(paths)} images (batch of {len(paths)} and batches of 1): "
          f"largest |difference| {worst:.3g}, {worst / scale if scale > 0 else 0:.3g} of the largest |embedding| value "
          f"{scale:.3g} (bound {args.tolerance:g} + {args.relative_tolerance:g} x {scale:.3g} = {bound:.3g})")
    if not worst <= bound:
        fail(f"largest difference {worst:.3g} > {bound:.3g}")
    print("OK")


if __name__ == "__main__":
    main()
