#!/usr/bin/env python3
"""The state_dict keys, shapes and trainable-parameter counts of arcface_torch's backbones.

Standard-library Python, written from the definitions in insightface's
recognition/arcface_torch/backbones/iresnet.py (IResNet-18/34/50/100) and mobilefacenet.py
(MobileFaceNet: get_mbf, blocks (1, 4, 6, 2), scale 2; get_mbf_large, blocks (2, 8, 12, 4),
scale 4; and blocks (2, 1, 1, 1), scale 1; num_features 512), independently of the
Swift code: it walks the module trees in PyTorch's registration order and lists what
`module.state_dict()` holds (each module's parameters, then its buffers, then its children).

    python3 scripts/arcface_torch_keys.py            # prints the counts
    python3 scripts/arcface_torch_keys.py --swift    # writes Tests/LayersTests/ArcFaceTorchKeys.swift

With PyTorch installed, `--check-torch` also builds the networks from torch.nn modules named
the same way and compares keys, shapes and counts (a second, independent derivation).
"""
import sys
from pathlib import Path

# Each entry: (key, shape, trainable). BatchNorm's num_batches_tracked is an int64 scalar.


def conv(prefix, cin, cout, k, groups=1, bias=False):
    out = [(f"{prefix}.weight", [cout, cin // groups, k, k], True)]
    if bias:
        out.append((f"{prefix}.bias", [cout], True))
    return out


def batchnorm(prefix, c, weight_trainable=True):
    return [(f"{prefix}.weight", [c], weight_trainable), (f"{prefix}.bias", [c], True),
            (f"{prefix}.running_mean", [c], False), (f"{prefix}.running_var", [c], False),
            (f"{prefix}.num_batches_tracked", [], False)]


def prelu(prefix, c):
    return [(f"{prefix}.weight", [c], True)]


def linear(prefix, fin, fout, bias=True):
    out = [(f"{prefix}.weight", [fout, fin], True)]
    if bias:
        out.append((f"{prefix}.bias", [fout], True))
    return out


IRESNET_BLOCKS = {18: [2, 2, 2, 2], 34: [3, 4, 6, 3], 50: [3, 4, 14, 3], 100: [3, 13, 30, 3]}


def iresnet(depth, num_features=512):
    keys = conv("conv1", 3, 64, 3) + batchnorm("bn1", 64) + prelu("prelu", 64)
    inplanes = 64
    for stage, (planes, blocks) in enumerate(zip([64, 128, 256, 512], IRESNET_BLOCKS[depth]), start=1):
        for index in range(blocks):
            p = f"layer{stage}.{index}"
            keys += batchnorm(f"{p}.bn1", inplanes) + conv(f"{p}.conv1", inplanes, planes, 3)
            keys += batchnorm(f"{p}.bn2", planes) + prelu(f"{p}.prelu", planes)
            keys += conv(f"{p}.conv2", planes, planes, 3) + batchnorm(f"{p}.bn3", planes)
            if index == 0:  # stride 2 in every stage's first block
                keys += conv(f"{p}.downsample.0", inplanes, planes, 1) + batchnorm(f"{p}.downsample.1", planes)
            inplanes = planes
    keys += batchnorm("bn2", 512)
    keys += linear("fc", 512 * 7 * 7, num_features)
    keys += batchnorm("features", num_features, weight_trainable=False)  # requires_grad = False
    return keys


def conv_block(prefix, cin, cout, k, groups=1):
    return conv(f"{prefix}.layers.0", cin, cout, k, groups) + batchnorm(f"{prefix}.layers.1", cout) + prelu(f"{prefix}.layers.2", cout)


def linear_block(prefix, cin, cout, k, groups=1):
    return conv(f"{prefix}.layers.0", cin, cout, k, groups) + batchnorm(f"{prefix}.layers.1", cout)


def depthwise(prefix, cin, cout, groups):
    return (conv_block(f"{prefix}.layers.0", cin, groups, 1) + conv_block(f"{prefix}.layers.1", groups, groups, 3, groups)
            + linear_block(f"{prefix}.layers.2", groups, cout, 1))


def residual(prefix, c, blocks, groups):
    keys = []
    for index in range(blocks):
        keys += depthwise(f"{prefix}.layers.{index}", c, c, groups)
    return keys


def mobilefacenet(num_features=512, blocks=(1, 4, 6, 2), scale=2):
    keys = conv_block("layers.0", 3, 64 * scale, 3)
    if blocks[0] == 1:  # a grouped ConvBlock, else a Residual of blocks[0] DepthWise blocks
        keys += conv_block("layers.1", 64 * scale, 64 * scale, 3, groups=64)
    else:
        keys += residual("layers.1", 64 * scale, blocks[0], 128)
    keys += depthwise("layers.2", 64 * scale, 64 * scale, 128)
    keys += residual("layers.3", 64 * scale, blocks[1], 128)
    keys += depthwise("layers.4", 64 * scale, 128 * scale, 256)
    keys += residual("layers.5", 128 * scale, blocks[2], 256)
    keys += depthwise("layers.6", 128 * scale, 128 * scale, 512)
    keys += residual("layers.7", 128 * scale, blocks[3], 256)
    keys += conv_block("conv_sep", 128 * scale, 512, 1)
    keys += linear_block("features.layers.0", 512, 512, 7, groups=512)
    keys += linear("features.layers.2", 512, num_features, bias=False)
    keys += batchnorm("features.layers.3", num_features)
    return keys


NETWORKS = {"r18": lambda: iresnet(18), "r34": lambda: iresnet(34), "r50": lambda: iresnet(50),
            "r100": lambda: iresnet(100), "mbf": mobilefacenet,
            "mbf_large": lambda: mobilefacenet(blocks=(2, 8, 12, 4), scale=4),   # get_mbf_large
            "mbf_s1_b2111": lambda: mobilefacenet(blocks=(2, 1, 1, 1), scale=1)}  # other blocks and scale


def count(keys):
    total = 0
    for _, shape, trainable in keys:
        if trainable:
            n = 1
            for d in shape:
                n *= d
            total += n
    return total


def swift_source():
    lines = ["// Generated by scripts/arcface_torch_keys.py --swift: arcface_torch's state_dict keys and",
             "// shapes (num_batches_tracked included, shape []) and trainable-parameter counts. Do not edit.",
             "", "enum ArcFaceTorchKeys {"]
    lines.append("    static let trainableParameterCounts: [String: Int] = [")
    for name, make in NETWORKS.items():
        lines.append(f'        "{name}": {count(make())},')
    lines.append("    ]")
    lines.append("")
    lines.append("    static let stateDictionaries: [String: [(key: String, shape: [Int])]] = [")
    for name, make in NETWORKS.items():
        lines.append(f'        "{name}": [')
        for key, shape, _ in make():
            lines.append(f'            ("{key}", {shape}),')
        lines.append("        ],")
    lines.append("    ]")
    lines.append("}")
    return "\n".join(lines) + "\n"


def check_torch():
    import torch  # noqa: F401  (only with --check-torch)
    from torch import nn

    def seq(*m):
        return nn.Sequential(*m)

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.bn1, self.conv1 = nn.BatchNorm2d(cin, eps=1e-5), nn.Conv2d(cin, cout, 3, 1, 1, bias=False)
            self.bn2, self.prelu = nn.BatchNorm2d(cout, eps=1e-5), nn.PReLU(cout)
            self.conv2, self.bn3 = nn.Conv2d(cout, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout, eps=1e-5)
            self.downsample = seq(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)) if stride != 1 or cin != cout else None

    class IRes(nn.Module):
        def __init__(self, blocks):
            super().__init__()
            self.conv1, self.bn1, self.prelu = nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.PReLU(64)
            cin = 64
            for s, (c, b) in enumerate(zip([64, 128, 256, 512], blocks), start=1):
                layers = []
                for i in range(b):
                    layers.append(Block(cin, c, 2 if i == 0 else 1))
                    cin = c
                setattr(self, f"layer{s}", seq(*layers))
            self.bn2, self.dropout, self.fc = nn.BatchNorm2d(512), nn.Dropout(0), nn.Linear(512 * 49, 512)
            self.features = nn.BatchNorm1d(512)
            self.features.weight.requires_grad = False

    for depth, blocks in IRESNET_BLOCKS.items():
        m = IRes(blocks)
        ours = {k: s for k, s, _ in iresnet(depth)}
        theirs = {k: list(v.shape) for k, v in m.state_dict().items()}
        assert ours == theirs, f"r{depth}: keys or shapes differ"
        trainable = sum(p.numel() for p in m.parameters() if p.requires_grad)
        assert trainable == count(iresnet(depth)), f"r{depth}: {trainable} vs {count(iresnet(depth))}"
    print("torch agrees on the IResNet keys, shapes and counts")

    # MobileFaceNet: the torch.nn definition of convert_arcface_torch.py (written apart from this file).
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from convert_arcface_torch import definitions
    _, MobileFaceNet = definitions()
    for name, (blocks, scale) in {"mbf": ((1, 4, 6, 2), 2), "mbf_large": ((2, 8, 12, 4), 4),
                                  "mbf_s1_b2111": ((2, 1, 1, 1), 1)}.items():
        m = MobileFaceNet(blocks=blocks, scale=scale)
        ours = {k: s for k, s, _ in NETWORKS[name]()}
        theirs = {k: list(v.shape) for k, v in m.state_dict().items()}
        assert ours == theirs, f"{name}: keys or shapes differ: {sorted(set(ours) ^ set(theirs))[:5]}"
        trainable = sum(p.numel() for p in m.parameters() if p.requires_grad)
        assert trainable == count(NETWORKS[name]()), f"{name}: {trainable} vs {count(NETWORKS[name]())}"
    print("torch agrees on the MobileFaceNet keys, shapes and counts")


def main():
    if "--check-torch" in sys.argv:
        check_torch()
    if "--swift" in sys.argv:
        path = Path(__file__).resolve().parent.parent / "Tests" / "LayersTests" / "ArcFaceTorchKeys.swift"
        path.write_text(swift_source())
        print(f"wrote {path}")
    for name, make in NETWORKS.items():
        keys = make()
        print(f"{name}: {count(keys):,} trainable parameters, {len(keys)} state_dict keys")


if __name__ == "__main__":
    main()
