#!/usr/bin/env python3
"""Convert between arcface_torch's backbone.pth and swift-arcface's safetensors, and check that
PyTorch and `arcface embed` agree.

    # arcface_torch -> a backbone-only model file (configuration metadata included) for
    # arcface embed / evaluate-protocol / export --checkpoint and arcface train --init-from
    python3 scripts/convert_arcface_torch.py to-safetensors backbone.pth r50.safetensors
    # ours -> arcface_torch (the backbone's state_dict, num_batches_tracked added, no head)
    python3 scripts/convert_arcface_torch.py to-pth runs/NAME/model.safetensors backbone.pth
    # PyTorch (these definitions, our weights) against arcface embed (no --flip-sum, no --normalize)
    python3 scripts/convert_arcface_torch.py compare runs/NAME/model.safetensors /tmp/e.npy

The tensor names are the same on both sides: IResNet and MobileFaceNet in swift-arcface carry
arcface_torch's state_dict keys (`conv1.weight`, `layer2.0.downsample.1.running_var`,
`features.weight`, `layers.3.layers.0.layers.1.layers.0.weight`, ...). Converting only drops or
adds `num_batches_tracked` (int64) and the `head.*` tensors. `to-safetensors` writes a backbone-only
model file with the metadata `Experiment.saveBackbone` writes: `format` swift-arcface, `version` 1,
`kind` backbone, the `configuration` JSON
(`{"backbone":{"depth":50,"dropout":0,"embeddingDimension":512,"inputChannels":3,"inputHeight":112,"inputWidth":112,"kind":"iresnet"}}`,
or for MobileFaceNet `"kind":"mobilefacenet"` with `"blocks":[1,4,6,2],"scale":2` (get_mbf) or
`[2,8,12,4]` and 4 (get_mbf_large); every other key at its default) and the `preprocessing` JSON
(RGB 3x112x112, (v - 127.5)/127.5), plus `source` and `arcface_torch` (the network's name). The
family, IResNet depth, MobileFaceNet blocks and scale and the embedding size come from the keys and
shapes. `arcface embed`, `evaluate-protocol` and `export --onnx` take the file as `--checkpoint`
(and say "configuration stored in the file"); `arcface train --init-from` takes it too (the run's
configuration names the family). A file without that metadata (another tool's) still loads: the
Swift loader infers the same configuration from the names and shapes.

The PyTorch definitions below are written for this script from the facts of insightface's
recognition/arcface_torch/backbones/iresnet.py and mobilefacenet.py (layer order, kernel sizes,
groups, eps 1e-5, `features` BatchNorm1d; MobileFaceNet's `blocks` and `scale` as `get_mbf` and
`get_mbf_large` take them, `layers.1` a Residual when blocks[0] > 1), and checked by key and shape against the file.
`compare` reads the .tsv beside the .npy for the image paths, prepares them as check_onnx.py
does (8-bit PNG/PGM of exactly the model's input size, (v - 127.5)/127.5, R, G, B planes) and
prints the largest absolute and relative difference (exit 1 above 1e-4 + 1e-5 x max|embedding|).
Needs numpy and torch; safetensors files are read and written here (no safetensors package).
"""
import argparse
import json
import os
import struct
import sys

import numpy as np

DTYPES = {"F32": np.float32, "F64": np.float64, "I64": np.int64, "I32": np.int32, "F16": np.float16}


def read_safetensors(path):
    """{name: numpy array}, metadata."""
    with open(path, "rb") as f:
        data = f.read()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + length])
    metadata = header.pop("__metadata__", {})
    base = 8 + length
    tensors = {}
    for name, entry in header.items():
        begin, end = entry["data_offsets"]
        tensors[name] = np.frombuffer(data[base + begin:base + end], dtype=DTYPES[entry["dtype"]]).reshape(entry["shape"]).copy()
    return tensors, metadata


def write_safetensors(path, tensors, metadata=None):
    """Float32 (and int64) tensors, names sorted, offsets contiguous."""
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        array = np.ascontiguousarray(tensors[name])
        dtype = {np.dtype(np.float32): "F32", np.dtype(np.int64): "I64"}[array.dtype]
        blob = array.tobytes()
        header[name] = {"dtype": dtype, "shape": list(array.shape), "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    if metadata:
        header["__metadata__"] = metadata
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def definitions():
    import torch
    from torch import nn

    class IBlock(nn.Module):
        """bn1 -> conv1 3x3 -> bn2 -> prelu -> conv2 3x3 (stride) -> bn3, + x or downsample(x)."""
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.bn1 = nn.BatchNorm2d(cin, eps=1e-5)
            self.conv1 = nn.Conv2d(cin, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout, eps=1e-5)
            self.prelu = nn.PReLU(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, stride, 1, bias=False)
            self.bn3 = nn.BatchNorm2d(cout, eps=1e-5)
            self.downsample = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout, eps=1e-5))
                               if stride != 1 or cin != cout else None)

        def forward(self, x):
            y = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
            return y + (self.downsample(x) if self.downsample is not None else x)

    class IResNet(nn.Module):
        def __init__(self, blocks, features=512):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(64, eps=1e-5)
            self.prelu = nn.PReLU(64)
            c = 64
            for index, (channels, count) in enumerate(zip([64, 128, 256, 512], blocks)):
                stage = []
                for b in range(count):
                    stage.append(IBlock(c, channels, 2 if b == 0 else 1))
                    c = channels
                setattr(self, f"layer{index + 1}", nn.Sequential(*stage))
            self.bn2 = nn.BatchNorm2d(512, eps=1e-5)
            self.dropout = nn.Dropout(0)
            self.fc = nn.Linear(512 * 7 * 7, features)
            self.features = nn.BatchNorm1d(features, eps=1e-5)
            self.features.weight.requires_grad = False

        def forward(self, x):
            x = self.prelu(self.bn1(self.conv1(x)))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.features(self.fc(self.dropout(torch.flatten(self.bn2(x), 1))))

    class Block(nn.Module):
        """conv -> BN (-> PReLU): arcface_torch's ConvBlock / LinearBlock, children in `layers`."""
        def __init__(self, cin, cout, k, stride, padding, groups, activation):
            super().__init__()
            parts = [nn.Conv2d(cin, cout, k, stride, padding, groups=groups, bias=False), nn.BatchNorm2d(cout)]
            if activation:
                parts.append(nn.PReLU(cout))
            self.layers = nn.Sequential(*parts)

        def forward(self, x):
            return self.layers(x)

    class DepthWise(nn.Module):
        def __init__(self, cin, cout, residual, stride, groups):
            super().__init__()
            self.residual = residual
            self.layers = nn.Sequential(Block(cin, groups, 1, 1, 0, 1, True), Block(groups, groups, 3, stride, 1, groups, True),
                                        Block(groups, cout, 1, 1, 0, 1, False))

        def forward(self, x):
            return self.layers(x) + x if self.residual else self.layers(x)

    class Residual(nn.Module):
        def __init__(self, c, count, groups):
            super().__init__()
            self.layers = nn.Sequential(*[DepthWise(c, c, True, 1, groups) for _ in range(count)])

        def forward(self, x):
            return self.layers(x)

    class GDC(nn.Module):
        def __init__(self, features):
            super().__init__()
            self.layers = nn.Sequential(Block(512, 512, 7, 1, 0, 512, False), nn.Flatten(),
                                        nn.Linear(512, features, bias=False), nn.BatchNorm1d(features))

        def forward(self, x):
            return self.layers(x)

    class MobileFaceNet(nn.Module):
        """get_mbf by default; get_mbf_large is blocks (2, 8, 12, 4), scale 4."""
        def __init__(self, blocks=(1, 4, 6, 2), scale=2, features=512):
            super().__init__()
            narrow, wide = 64 * scale, 128 * scale
            self.layers = nn.ModuleList([
                Block(3, narrow, 3, 2, 1, 1, True),
                Block(narrow, narrow, 3, 1, 1, 64, True) if blocks[0] == 1 else Residual(narrow, blocks[0], 128),
                DepthWise(narrow, narrow, False, 2, 128), Residual(narrow, blocks[1], 128),
                DepthWise(narrow, wide, False, 2, 256), Residual(wide, blocks[2], 256),
                DepthWise(wide, wide, False, 2, 512), Residual(wide, blocks[3], 256),
            ])
            self.conv_sep = Block(wide, 512, 1, 1, 0, 1, True)
            self.features = GDC(features)

        def forward(self, x):
            for layer in self.layers:
                x = layer(x)
            return self.features(self.conv_sep(x))

    return IResNet, MobileFaceNet


IRESNET_BLOCKS = {18: [2, 2, 2, 2], 34: [3, 4, 6, 3], 50: [3, 4, 14, 3], 100: [3, 13, 30, 3]}
MBF = ([1, 4, 6, 2], 2)         # get_mbf: blocks, scale
MBF_LARGE = ([2, 8, 12, 4], 4)  # get_mbf_large


def guess_backbone(tensors):
    """The `backbone` configuration of an arcface_torch state_dict, from its keys and shapes (as
    the Swift loader infers it from a file without configuration metadata)."""
    if "conv1.weight" in tensors:
        counts = [len({k.split(".")[1] for k in tensors if k.startswith(f"layer{i}.")}) for i in range(1, 5)]
        depth = next((d for d, b in IRESNET_BLOCKS.items() if b == counts), None)
        if depth is None:
            sys.exit(f"IResNet with blocks {counts} per stage is not an arcface_torch depth ({IRESNET_BLOCKS})")
        return {"kind": "iresnet", "depth": depth, "embeddingDimension": int(tensors["fc.weight"].shape[0])}
    if "layers.0.layers.0.weight" in tensors:
        def residual_blocks(module):
            prefix = f"layers.{module}.layers."
            return len({k[len(prefix):].split(".")[0] for k in tensors if k.startswith(prefix) and k[len(prefix):].count(".") > 0})
        # layers.1 is the grouped ConvBlock (blocks[0] == 1) or a Residual of blocks[0] DepthWise blocks.
        blocks = [1 if "layers.1.layers.0.weight" in tensors else residual_blocks(1)] + [residual_blocks(m) for m in (3, 5, 7)]
        scale = int(tensors["layers.0.layers.0.weight"].shape[0]) // 64
        return {"kind": "mobilefacenet", "blocks": blocks, "scale": scale,
                "embeddingDimension": int(tensors["features.layers.2.weight"].shape[0])}
    sys.exit("neither 'conv1.weight' (IResNet) nor 'layers.0.layers.0.weight' (MobileFaceNet): not an arcface_torch backbone")


def network_for(tensors, metadata):
    """The PyTorch network of a file and its name: from its configuration metadata, else guessed from its keys."""
    IResNet, MobileFaceNet = definitions()
    backbone = json.loads(metadata["configuration"]).get("backbone") if "configuration" in metadata else None
    backbone = backbone or guess_backbone(tensors)
    kind = backbone.get("kind", "default")
    if kind == "iresnet":
        depth = backbone["depth"]
        return IResNet(IRESNET_BLOCKS[depth], tensors["fc.weight"].shape[0]), f"IResNet-{depth}"
    if kind == "mobilefacenet":
        blocks, scale = list(backbone.get("blocks", MBF[0])), backbone.get("scale", MBF[1])
        name = {tuple(MBF[0]) + (MBF[1],): "MobileFaceNet (get_mbf)",
                tuple(MBF_LARGE[0]) + (MBF_LARGE[1],): "MobileFaceNet (get_mbf_large)"}.get(
            tuple(blocks) + (scale,), f"MobileFaceNet (blocks {tuple(blocks)}, scale {scale})")
        return MobileFaceNet(blocks, scale, tensors["features.layers.2.weight"].shape[0]), name
    sys.exit(f"{kind!r} backbones are not arcface_torch's (use scripts/pytorch_backbone.py)")


def backbone_metadata(backbone):
    """The metadata of a backbone-only model file as `Experiment.saveBackbone` writes it: format,
    version, kind and the `configuration` JSON (the backbone: kind, IResNet depth or MobileFaceNet
    blocks and scale, embedding size, RGB 3x112x112 input, no dropout; every other key at its
    default), and the `preprocessing` JSON ((v - 127.5)/127.5, RGB planes)."""
    configuration = {"backbone": dict(backbone, inputChannels=3, inputHeight=112, inputWidth=112, dropout=0)}
    preprocessing = {"channelOrder": "rgb", "channels": 3, "height": 112, "mean": 127.5, "standardDeviation": 127.5, "width": 112}
    return {"format": "swift-arcface", "version": "1", "kind": "backbone",
            "configuration": json.dumps(configuration, sort_keys=True, separators=(",", ":")),
            "preprocessing": json.dumps(preprocessing, sort_keys=True, separators=(",", ":"))}


def load_into(network, tensors):
    """Loads our tensors (head.* and momentum.* ignored) into `network`, checking keys and shapes."""
    import torch
    state = network.state_dict()
    ours = {k: v for k, v in tensors.items() if not k.startswith(("head.", "momentum.")) and not k.endswith("num_batches_tracked")}
    theirs = {k for k in state if not k.endswith("num_batches_tracked")}
    if set(ours) != theirs:
        sys.exit(f"keys differ: only in the file {sorted(set(ours) - theirs)[:5]}, only in PyTorch {sorted(theirs - set(ours))[:5]}")
    for name, array in ours.items():
        if list(state[name].shape) != list(array.shape):
            sys.exit(f"{name}: shape {list(array.shape)} in the file, {list(state[name].shape)} in PyTorch")
        state[name] = torch.from_numpy(array.astype(np.float32))
    network.load_state_dict(state)
    return network.eval()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    a = sub.add_parser("to-safetensors")
    a.add_argument("pth")
    a.add_argument("output")
    b = sub.add_parser("to-pth")
    b.add_argument("safetensors")
    b.add_argument("output")
    c = sub.add_parser("compare")
    c.add_argument("safetensors")
    c.add_argument("npy")
    c.add_argument("--limit", type=int, default=20)
    args = parser.parse_args()
    import torch

    if args.command == "to-safetensors":
        state = torch.load(args.pth, map_location="cpu", weights_only=True)
        state = state.get("state_dict", state)
        tensors = {k.removeprefix("module."): v.float().numpy() for k, v in state.items()
                   if not k.endswith("num_batches_tracked")}
        backbone = guess_backbone(tensors)
        network, name = network_for(tensors, {"configuration": json.dumps({"backbone": backbone})})
        load_into(network, tensors)   # checks every key and shape
        metadata = backbone_metadata(backbone)
        metadata.update({"source": os.path.basename(args.pth), "arcface_torch": name})
        write_safetensors(args.output, tensors, metadata)
        print(f"wrote {args.output}: {name}, {len(tensors)} tensors, configuration {metadata['configuration']} "
              "(use with arcface train --init-from, or --checkpoint of embed, evaluate-protocol, export)")
    elif args.command == "to-pth":
        tensors, metadata = read_safetensors(args.safetensors)
        network, name = network_for(tensors, metadata)
        load_into(network, tensors)
        torch.save(network.state_dict(), args.output)
        print(f"wrote {args.output}: {name} state_dict ({len(network.state_dict())} entries, num_batches_tracked 0)")
    else:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from check_onnx import preprocess
        tensors, metadata = read_safetensors(args.safetensors)
        network, name = network_for(tensors, metadata)
        load_into(network, tensors)
        expected = np.load(args.npy)
        with open(os.path.splitext(args.npy)[0] + ".tsv", encoding="utf-8") as f:
            paths = [line.rstrip("\n").split("\t")[1] for line in f][1:][: args.limit]
        batch = np.stack([preprocess(p, 3, 112, 112) for p in paths])
        with torch.no_grad():
            ours = network(torch.from_numpy(batch).float()).numpy()
        reference = expected[: len(paths)]
        worst = float(np.abs(ours - reference).max())
        scale = float(np.abs(reference).max())
        bound = 1e-4 + 1e-5 * scale
        print(f"PyTorch {torch.__version__} ({name}) vs arcface embed on {len(paths)} images: largest |difference| {worst:.3g}, "
              f"{worst / scale if scale else 0:.3g} of the largest |embedding| value {scale:.3g} (bound {bound:.3g})")
        if not worst <= bound:
            sys.exit(1)
        print("OK")


if __name__ == "__main__":
    main()
