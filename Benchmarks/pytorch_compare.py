#!/usr/bin/env python3
"""Side by side with PyTorch: the margin head, the conv layer, the default model's training step and
arcface_torch's backbones (IResNet-18/34/50/100, MobileFaceNet).

Runs our `bench` (release build) with `--json` and the same workloads in PyTorch (CPU), in one
run and at the same thread count, and prints our/PyTorch time ratios (< 1: we are faster).

PyTorch side, written the straightforward way (as arcface_torch / most user code does):
- head: normalize(e) @ normalize(W).T, ArcFace margin on the target column
  (cos(θ+m) while θ+m ≤ π, else cos θ − m·sin m), × s, cross-entropy, autograd backward;
- conv: nn.Conv2d(16, 32, 3, padding=1, bias=False) on [N, 16, 56, 46], forward + backward;
- step: the default AT&T backbone (4 × [Conv3×3 → BatchNorm2d → PReLU → MaxPool2], Flatten,
  Dropout 0.5, Linear 4480 → 128, BatchNorm1d) + ArcFace (s = 16, m = 0.5, 30 classes) + SGD
  (momentum 0.9, weight decay 5e-4), synthetic 112×92 images;
- backbones: the IResNet and MobileFaceNet definitions of scripts/convert_arcface_torch.py (ours,
  written from arcface_torch's iresnet.py / mobilefacenet.py; their state_dict keys are checked
  against our networks' tensor names) on synthetic RGB 112×112 images: forward in eval mode under
  torch.inference_mode(), and a training step as bench's: zero_grad, forward in train mode,
  backward from a random [N, 512] ∂embedding, SGD (momentum 0.9, weight decay 5e-4); no margin
  head, no image gradient. Default layout (NCHW), so PyTorch picks its own conv backend (oneDNN).

Usage: python3 Benchmarks/pytorch_compare.py [--threads 1,2] [--batch-sizes 128,512]
       [--classes 10000,100000] [--step-batch-sizes 32] [--repetitions 5] [--only head,conv,step]
       [--rounds 1] [--backbones r50,mbf] [--backbone-batch-sizes 32] [--backbone-repetitions 3]
Requires torch (`pip install torch`); not needed by the package or its tests.
"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError:
    sys.exit("pytorch_compare: PyTorch is not installed (pip install torch)")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else 0.5 * (xs[n // 2 - 1] + xs[n // 2])


def timed(fn, warmup, repetitions):
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repetitions):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return median(samples)


def arcface_logits(embeddings, weight, labels, s, m):
    cos = F.linear(F.normalize(embeddings), F.normalize(weight)).clamp(-1, 1)
    target = cos.gather(1, labels[:, None])
    theta = torch.acos(target.clamp(-1 + 1e-7, 1 - 1e-7))
    with_margin = torch.where(theta + m <= math.pi, torch.cos(theta + m), target - m * math.sin(m))
    one_hot = torch.zeros_like(cos).scatter_(1, labels[:, None], 1.0)
    return s * (cos + one_hot * (with_margin - target))


def torch_head(n, k, d, warmup, repetitions):
    g = torch.Generator().manual_seed(0)
    weight = (0.01 * torch.randn(k, d, generator=g)).requires_grad_()
    embeddings = torch.randn(n, d, generator=g).requires_grad_()
    labels = torch.randint(0, k, (n,), generator=g)

    def step():
        weight.grad = None
        embeddings.grad = None
        loss = F.cross_entropy(arcface_logits(embeddings, weight, labels, 64.0, 0.5), labels)
        loss.backward()

    return timed(step, warmup, repetitions)


def torch_conv(n, warmup, repetitions):
    conv = nn.Conv2d(16, 32, 3, padding=1, bias=False)
    x = torch.randn(n, 16, 56, 46, requires_grad=True)
    grad = torch.randn(n, 32, 56, 46)

    def step():
        x.grad = None
        conv.weight.grad = None
        conv(x).backward(grad)

    return timed(step, warmup, repetitions)


class Backbone(nn.Module):
    def __init__(self, channels=(16, 32, 64, 128), dimension=128):
        super().__init__()
        layers, c = [], 1
        for out in channels:
            layers += [nn.Conv2d(c, out, 3, padding=1, bias=False), nn.BatchNorm2d(out), nn.PReLU(out), nn.MaxPool2d(2)]
            c = out
        self.stages = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(c * 7 * 5, dimension), nn.BatchNorm1d(dimension))

    def forward(self, x):
        return self.head(self.stages(x))


def torch_step(n, warmup, repetitions, classes=30):
    torch.manual_seed(0)
    backbone = Backbone()
    centers = nn.Parameter(0.01 * torch.randn(classes, 128))
    optimizer = torch.optim.SGD(list(backbone.parameters()) + [centers], lr=0.01, momentum=0.9, weight_decay=5e-4)
    images = (0.5 * torch.randn(n, 1, 112, 92)).clamp(-1, 1)
    labels = torch.arange(n) % classes
    backbone.train()

    def step():
        optimizer.zero_grad()
        loss = F.cross_entropy(arcface_logits(backbone(images), centers, labels, 16.0, 0.5), labels)
        loss.backward()
        optimizer.step()

    return timed(step, warmup, repetitions)


BACKBONE_FLOPS = {"r18": 5.2e9, "r34": 8.9e9, "r50": 12.6e9, "r100": 24.2e9, "mbf": 0.88e9}
IRESNET_DEPTHS = {"r18": 18, "r34": 34, "r50": 50, "r100": 100}


def torch_backbone_network(name):
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    from convert_arcface_torch import IRESNET_BLOCKS, definitions
    IResNet, MobileFaceNet = definitions()
    if name == "mbf":
        return MobileFaceNet()
    return IResNet(IRESNET_BLOCKS[IRESNET_DEPTHS[name]])


def torch_backbone(name, n, warmup, repetitions):
    """(forward seconds, training-step seconds), medians, as bench's backbone rows."""
    torch.manual_seed(0)
    network = torch_backbone_network(name)
    images = (0.5 * torch.randn(n, 3, 112, 112)).clamp(-1, 1)
    grad = torch.randn(n, 512) / n
    optimizer = torch.optim.SGD([p for p in network.parameters() if p.requires_grad], lr=1e-4, momentum=0.9,
                                weight_decay=5e-4)

    def forward():
        with torch.inference_mode():
            network(images)

    def train():
        optimizer.zero_grad()
        network(images).backward(grad)
        optimizer.step()

    network.eval()
    forward_time = timed(forward, warmup, repetitions)
    network.train()
    return forward_time, timed(train, warmup, repetitions)


def ours(bench, threads, args):
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        path = f.name
    command = [bench, "--threads", str(threads), "--batch-sizes", args.batch_sizes, "--classes", args.classes,
               "--chunked-batch-size", "0", "--step-batch-sizes", args.step_batch_sizes,
               "--repetitions", str(args.repetitions), "--warmup", str(args.warmup), "--only", args.only,
               "--backbones", args.backbones, "--backbone-batch-sizes", args.backbone_batch_sizes,
               "--backbone-repetitions", str(args.backbone_repetitions), "--json", path]
    print("running:", " ".join(command), flush=True)
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    with open(path) as f:
        report = json.load(f)
    os.unlink(path)
    return report


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bench", default=os.path.join(ROOT, ".build", "release", "bench"))
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--batch-sizes", default="128,512")
    parser.add_argument("--classes", default="10000,100000")
    parser.add_argument("--step-batch-sizes", default="32")
    parser.add_argument("--dimension", type=int, default=512)
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=1,
                        help="alternate ours and PyTorch this many times; report each side's median")
    parser.add_argument("--only", default="head,conv,step,backbones",
                        help="workloads to compare, comma-separated: head, conv, step, backbones (passed to bench --only)")
    parser.add_argument("--backbones", default="r50,mbf", help="backbones, comma-separated: r18, r34, r50, r100, mbf")
    parser.add_argument("--backbone-batch-sizes", default="32")
    parser.add_argument("--backbone-repetitions", type=int, default=3)
    args = parser.parse_args()
    if not os.path.exists(args.bench):
        subprocess.run(["swift", "build", "-c", "release", "--product", "bench"], cwd=ROOT, check=True)

    print(f"PyTorch {torch.__version__}, {torch.backends.cpu.get_cpu_capability()}")
    for threads in [int(t) for t in args.threads.split(",")]:
        torch.set_num_threads(threads)
        # Each round runs our bench, then the same workloads in PyTorch; with --rounds > 1 the
        # two alternate and each side keeps its median over the rounds (the machine may be shared).
        mine, theirs, env = {}, {}, None
        for _ in range(args.rounds):
            report = ours(args.bench, threads, args)
            env = report["environment"]
            for head in report["heads"]:
                n, k = head["batchSize"], head["classCount"]
                key = f"head N={n} K={k} D={args.dimension}"
                mine.setdefault(key, []).append(head["head"]["median"])
                theirs.setdefault(key, []).append(torch_head(n, k, args.dimension, args.warmup, args.repetitions))
            for conv in report["convolutions"]:
                n = conv["batchSize"]
                key = f"Conv2D 16→32 3×3 56×46 N={n}"
                mine.setdefault(key, []).append(conv["layer"]["median"])
                theirs.setdefault(key, []).append(torch_conv(n, args.warmup, args.repetitions))
            for step in report["steps"]:
                n = step["batchSize"]
                key = f"training step N={n}"
                mine.setdefault(key, []).append(step["step"]["median"])
                theirs.setdefault(key, []).append(torch_step(n, args.warmup, args.repetitions))
            convs = report.get("backboneConvolutions", [])
            if convs:
                layer = sum(c["count"] * c["layer"]["median"] for c in convs)
                gemms = sum(c["count"] * c["gemms"]["median"] for c in convs)
                shapes = ", ".join(f"C={c['channels']}: {c['ratio']:.2f}" for c in convs)
                print(f"ours: IResNet-50's stride-1 3×3 convolutions take {layer / gemms:.3f}× the GEMMs they issue "
                      f"({shapes})", flush=True)
            for row in report.get("backbones", []):
                name, n = row["family"], row["batchSize"]
                forward, train = torch_backbone(name, n, min(args.warmup, 1), args.backbone_repetitions)
                for mode, mine_s, theirs_s in (("forward", row["forward"]["median"], forward),
                                               ("train", row["training"]["median"], train)):
                    key = f"{name} {mode} N={n}"
                    mine.setdefault(key, []).append(mine_s)
                    theirs.setdefault(key, []).append(theirs_s)
        print(f"\n== {threads} thread(s); ours: OpenBLAS {env['blasCore']}, {env['toolchain']}; "
              f"median of {args.rounds} round(s)")
        print(f"{'workload':44s} {'ours ms':>10s} {'torch ms':>10s} {'ours/torch':>11s} {'speed-up':>9s}")
        backbone = lambda key: key.split(" ")[0] in BACKBONE_FLOPS
        for key in mine:
            m, t = median(mine[key]), median(theirs[key])
            label = key
            if key.startswith("training step"):
                n = int(key.split("N=")[1])
                label = f"{key} (img/s {n / m:.0f} vs {n / t:.0f})"
            elif backbone(key):
                name, mode, n = key.split(" ")[0], key.split(" ")[1], int(key.split("N=")[1])
                flops = BACKBONE_FLOPS[name] * n * (3 if mode == "train" else 1)
                label = f"{key} (img/s {n / m:.1f} vs {n / t:.1f}; GFLOP/s {flops / m / 1e9:.0f} vs {flops / t / 1e9:.0f})"
            print(f"{label:44s} {m * 1e3:10.2f} {t * 1e3:10.2f} {m / t:11.3f} {t / m:8.2f}x", flush=True)


if __name__ == "__main__":
    main()
