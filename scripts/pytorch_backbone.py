#!/usr/bin/env python3
"""Rebuild a swift-arcface backbone in PyTorch, load its model.safetensors, and embed images.

Deployment check: the embeddings PyTorch computes from our weights must equal `arcface embed`'s.

    swift run -c release arcface embed --checkpoint runs/att_faces_arcface \\
        --images ../shared/data/att_faces --output /tmp/att.npy --flip-sum
    python3 scripts/pytorch_backbone.py --checkpoint runs/att_faces_arcface \\
        --compare /tmp/att.npy --flip-sum --limit 20

`--compare` reads the .tsv index beside the .npy for the image paths, embeds the first `--limit`
images in PyTorch and prints the largest absolute difference (exit status 1 above --tolerance,
default 1e-4). Without --compare, `--images a.pgm b.pgm ... --output out.npy` just embeds.

The architecture (Sources/Layers/Backbone.swift), rebuilt from the configuration JSON stored in the
checkpoint's metadata:

    stage k = 1..S, C_k = stageChannels[k]:
        Conv2d(C_{k-1}, C_k, 3, padding=1, bias=False) -> BatchNorm2d(C_k, eps=1e-5) -> PReLU(C_k)
        -> MaxPool2d(2)            (residual: IBasicBlock-style block, see ResidualBlock.swift)
    Flatten -> Dropout (identity at inference) -> Linear(C_S*h*w, D) -> BatchNorm1d(D, eps=1e-5)

Input: grey images [N, 1, H, W] with pixel values v/maxval mapped to 2*x - 1 in [-1, 1].
`--flip-sum` adds the embedding of the left-right mirrored image, as evaluation does.

Needs numpy, torch and safetensors (pip install torch safetensors). Not run by the test suite.
"""
import argparse
import json
import os
import sys

import numpy as np
import torch
from safetensors import safe_open
from torch import nn


class Stage(nn.Module):
    """conv3x3 (no bias) -> BatchNorm2d -> PReLU -> MaxPool2d(2); names match the checkpoint."""

    def __init__(self, cin, cout):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=1e-5)
        self.prelu = nn.PReLU(cout)
        self.pool = nn.MaxPool2d(2)

    def forward(self, x):
        return self.pool(self.prelu(self.bn(self.conv(x))))


class Shortcut(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 1, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=1e-5)

    def forward(self, x):
        return self.bn(self.conv(x))


class Block(nn.Module):
    """BN(conv3x3(PReLU(BN(conv3x3(x))))) + shortcut(x), as ResidualBlock.swift."""

    def __init__(self, cin, cout):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout, eps=1e-5)
        self.prelu = nn.PReLU(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout, eps=1e-5)
        self.shortcut = Shortcut(cin, cout) if cin != cout else None

    def forward(self, x):
        y = self.bn2(self.conv2(self.prelu(self.bn1(self.conv1(x)))))
        return y + (self.shortcut(x) if self.shortcut is not None else x)


class ResidualStage(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.block = Block(cin, cout)
        self.pool = nn.MaxPool2d(2)

    def forward(self, x):
        return self.pool(self.block(x))


class Backbone(nn.Module):
    """The default swift-arcface backbone; parameter names are the checkpoint's minus `backbone.`."""

    def __init__(self, config):
        super().__init__()
        channels, h, w = config["inputChannels"], config["inputHeight"], config["inputWidth"]
        for k, cout in enumerate(config["stageChannels"], start=1):
            stage = ResidualStage(channels, cout) if config.get("residual", False) else Stage(channels, cout)
            self.add_module(f"stage{k}", stage)
            channels, h, w = cout, h // 2, w // 2
        self.stage_count = len(config["stageChannels"])
        self.dropout = nn.Dropout(config["dropout"])
        self.fc = nn.Linear(channels * h * w, config["embeddingDimension"])
        self.features = nn.BatchNorm1d(config["embeddingDimension"], eps=1e-5)

    def forward(self, x):
        for k in range(1, self.stage_count + 1):
            x = getattr(self, f"stage{k}")(x)
        return self.features(self.fc(self.dropout(torch.flatten(x, 1))))


def load_backbone(checkpoint):
    """The backbone of a model.safetensors file (or a run folder holding one), in eval mode."""
    path = os.path.join(checkpoint, "model.safetensors") if os.path.isdir(checkpoint) else checkpoint
    with safe_open(path, framework="pt") as f:
        metadata = f.metadata() or {}
        if metadata.get("format") != "swift-arcface":
            sys.exit(f"{path}: not a swift-arcface checkpoint (metadata format = {metadata.get('format')})")
        tensors = {name: f.get_tensor(name) for name in f.keys()}
    config = json.loads(metadata["configuration"])["backbone"]
    model = Backbone(config)
    state = {name[len("backbone."):]: t for name, t in tensors.items() if name.startswith("backbone.")}
    for name, buffer in model.state_dict().items():  # PyTorch-only counters
        if name.endswith("num_batches_tracked"):
            state[name] = torch.zeros_like(buffer)
    model.load_state_dict(state, strict=True)
    model.eval()
    return model, config


def read_pgm(path):
    """A binary (P5, 8 or 16 bit) or plain (P2) PGM as float32 [H, W] in [0, 1]."""
    with open(path, "rb") as f:
        data = f.read()
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
    if data[:2] == b"P5":
        position += 1  # the single whitespace byte after maxval
        dtype = ">u2" if maxval > 255 else "u1"
        count = width * height
        pixels = np.frombuffer(data, dtype=dtype, count=count, offset=position)
    elif data[:2] == b"P2":
        pixels = np.array(data[position:].split()[: width * height], dtype=np.int64)
    else:
        raise ValueError(f"{path}: not a PGM file")
    return (pixels.astype(np.float64) / maxval).astype(np.float32).reshape(height, width)


def embed(model, paths, flip_sum, batch_size=50):
    """[N, D] float32 embeddings of the images at `paths`."""
    rows = []
    with torch.no_grad():
        for start in range(0, len(paths), batch_size):
            images = np.stack([read_pgm(p) for p in paths[start:start + batch_size]])[:, None]
            x = torch.from_numpy(images * 2 - 1)
            y = model(x)
            if flip_sum:
                y = y + model(torch.flip(x, dims=[3]))
            rows.append(y.numpy())
    return np.concatenate(rows).astype(np.float32)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="model.safetensors or the run folder")
    parser.add_argument("--compare", help="an `arcface embed` .npy (its .tsv index beside it gives the paths)")
    parser.add_argument("--images", nargs="*", default=[], help="images to embed (without --compare)")
    parser.add_argument("--output", help="write the PyTorch embeddings to this .npy")
    parser.add_argument("--flip-sum", action="store_true", help="add the mirrored image's embedding")
    parser.add_argument("--limit", type=int, default=20, help="images to compare (default 20)")
    parser.add_argument("--tolerance", type=float, default=1e-4, help="largest allowed absolute difference")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    model, config = load_backbone(args.checkpoint)
    print(f"backbone: stages {config['stageChannels']}, D = {config['embeddingDimension']}, "
          f"input {config['inputChannels']}x{config['inputHeight']}x{config['inputWidth']}, "
          f"{sum(p.numel() for p in model.parameters())} parameters")
    if args.compare:
        reference = np.load(args.compare)
        index = os.path.splitext(args.compare)[0] + ".tsv"
        with open(index, encoding="utf-8") as f:
            paths = [line.split("\t")[1] for line in f.read().splitlines()[1:]]
        count = min(args.limit, len(paths))
        ours = embed(model, paths[:count], args.flip_sum)
        difference = np.abs(ours - reference[:count])
        scale = np.abs(reference[:count]).max()
        print(f"{count} images: max |pytorch - swift| = {difference.max():.3g} "
              f"(embedding values up to {scale:.3g}; mean difference {difference.mean():.3g})")
        if args.output:
            np.save(args.output, ours)
        if not difference.max() <= args.tolerance:
            sys.exit(f"difference above the tolerance {args.tolerance}")
    else:
        if not args.images:
            sys.exit("give --compare FILE.npy or --images FILE ...")
        ours = embed(model, args.images, args.flip_sum)
        print(f"embedded {len(args.images)} images: {ours.shape}")
        if args.output:
            np.save(args.output, ours)


if __name__ == "__main__":
    main()
