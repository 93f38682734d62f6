"""Training throughput: the suite's step vs a plain ImageFolder + DataLoader loop.

Reference (study A's approach): ``torchvision.datasets.ImageFolder`` with
``Resize/ToTensor/Normalize`` and a ``DataLoader``, decoding and resizing every PNG every
epoch. Candidates: the suite's training step (bench/train.py's inner loop: decode-once uint8
cache gathered per batch, augmentation on tensors, Adam, cross-entropy) in the variants the
TrainingConfig offers (eager, channels_last, torch.compile, both). Same model (ResNet18 from
``create_model("resnet18", 2)``, same initial weights), same PNG files, same batch size,
timed epoch by epoch in interleaved rounds. Model FLOP utilisation (MFU) compares the step's
FLOP rate (3 × forward FLOPs from FlopCounterMode) with a large fp32 ``torch.mm`` timed in
the same rounds.

Run: ``python -m bench.perf.train_throughput --help``.
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from bench.augment import Augmenter
from bench.config import TrainingConfig
from bench.data.cache import load_pixels
from bench.data.readers import read_imagefolder
from bench.models import IMAGENET_MEAN, IMAGENET_STD, create_model
from bench.perf.common import (
    RESULTS_DIR,
    hardware,
    hardware_line,
    interleaved,
    log,
    markdown_table,
    median,
    write_result,
)
from bench.train import (
    _batches,
    _epoch_order,
    _gather,
    _optimizer,
    _targets,
    _to_tensor,
    build_loss,
)

VARIANTS = {
    "eager": {"channels_last": False, "compile": False},
    "channels_last": {"channels_last": True, "compile": False},
    "compile": {"channels_last": False, "compile": True},
    "compile+channels_last": {"channels_last": True, "compile": True},
}
TARGET_SPEEDUP = 3.0
TARGET_MFU = 0.5


def make_png_folder(root: Path, n_images: int, size: int, seed: int = 0) -> Path:
    """Write ``n_images`` grayscale PNGs (size × size) into ``root/{neg,pos}/``: smooth blobs
    plus fine noise, so they compress (and decode) roughly like radiographs, not like noise."""
    rng = np.random.default_rng(seed)
    low = max(4, size // 64)
    for i in range(n_images):
        folder = root / ("pos" if i % 2 else "neg")
        folder.mkdir(parents=True, exist_ok=True)
        coarse = Image.fromarray(rng.integers(40, 220, (low, low), dtype=np.uint8))
        smooth = np.asarray(coarse.resize((size, size), Image.Resampling.BICUBIC), np.int16)
        pixels = np.clip(smooth + rng.integers(-6, 7, (size, size)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels, "L").save(folder / f"img{i:05d}.png")
    return root


def plain_loader(
    root: Path, image_size: int, batch_size: int, workers: int, seed: int = 0
) -> torch.utils.data.DataLoader:
    """Study A's input pipeline: ImageFolder (RGB loader) + Resize/ToTensor/Normalize."""
    from torchvision import datasets, transforms

    tf = transforms.Compose(
        [
            transforms.Resize((image_size, image_size)),
            transforms.ToTensor(),
            transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )
    return torch.utils.data.DataLoader(
        datasets.ImageFolder(str(root), transform=tf),
        batch_size=batch_size,
        shuffle=True,
        num_workers=workers,
        generator=torch.Generator().manual_seed(seed),
    )


def plain_epoch(
    net: nn.Module, loader: torch.utils.data.DataLoader, optimizer: torch.optim.Optimizer
) -> float:
    """One epoch of the plain loop; returns images per second (decode included)."""
    net.train()
    criterion = nn.CrossEntropyLoss()
    start, seen = time.perf_counter(), 0
    for x, target in loader:
        loss = criterion(net(x), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        seen += len(target)
    return seen / (time.perf_counter() - start)


class SuiteStep:
    """bench/train.py's training step (``_fit``'s inner loop, without validation)."""

    def __init__(
        self, model: nn.Module, pixels: np.ndarray, labels: np.ndarray, cfg: TrainingConfig
    ) -> None:
        self.cfg = cfg
        self.model = model.to(memory_format=torch.channels_last) if cfg.channels_last else model
        self.train_model = torch.compile(self.model) if cfg.compile else self.model
        self.pixels, self.labels = pixels, labels
        self.idx = np.arange(len(labels))
        self.criterion = build_loss("binary", cfg, labels)
        self.optimizer = _optimizer([p for p in model.parameters() if p.requires_grad], cfg)
        self.targets = _targets(labels, "binary")
        self.augment = Augmenter(cfg.augment, 0)
        self.order_gen = torch.Generator().manual_seed(0)

    def epoch(self) -> float:
        """One training epoch over the cached pixels; returns images per second."""
        cpu = torch.device("cpu")
        self.train_model.train()
        start, seen = time.perf_counter(), 0
        order = _epoch_order(len(self.idx), self.labels, "binary", "none", self.order_gen)
        for pos in _batches(order, self.cfg.batch_size, None):
            x = self.augment(
                _to_tensor(_gather(self.pixels, self.idx[pos]), cpu, self.cfg.channels_last)
            )
            logits = self.train_model(x).float()
            loss = self.criterion(logits, self.targets[pos])
            if not np.isfinite(float(loss.detach())):
                raise RuntimeError("loss diverged in the throughput benchmark")
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            torch.softmax(logits.detach(), dim=1)  # fit keeps the probabilities per batch
            seen += len(pos)
        return seen / (time.perf_counter() - start)


def matmul_gflops(n: int = 2048, repeats: int = 3) -> float:
    """Measured fp32 matrix-multiply rate: 2n³ FLOPs per ``torch.mm``, best of ``repeats``."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = min(_seconds(lambda: torch.mm(a, b)) for _ in range(repeats))
    return 2 * n**3 / best / 1e9


def _seconds(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def forward_flops(model: nn.Module, image_size: int) -> int:
    """FLOPs of one forward pass on one (1, 1, size, size) image (FlopCounterMode)."""
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model.eval()(torch.rand(1, 1, image_size, image_size))
    model.train()
    return int(counter.get_total_flops())


def run(
    *,
    n_images: int = 128,
    png_size: int = 1024,
    image_size: int = 128,
    batch_size: int = 32,
    rounds: int = 3,
    workers: Sequence[int] = (0, 2),
    variants: Sequence[str] = tuple(VARIANTS),
    matmul_n: int = 2048,
    arch: str = "resnet18",
    out_dir: Path | None = RESULTS_DIR,
    work_dir: Path | None = None,
) -> dict[str, Any]:
    """Run the benchmark; returns (and with ``out_dir`` writes) the result dict."""
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        raise ValueError(
            f"train_throughput: unknown variant(s) {unknown}; choose from {list(VARIANTS)}"
        )
    with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
        root = Path(tmp) / "pngs"
        log(f"writing {n_images} PNGs of {png_size}x{png_size} to {root}")
        make_png_folder(root, n_images, png_size)
        png_mb = sum(p.stat().st_size for p in root.rglob("*.png")) / 2**20

        start = time.perf_counter()
        ds = read_imagefolder(root, "binary")
        pixels = np.asarray(load_pixels(ds, image_size, Path(tmp) / "cache"))
        cache_seconds = time.perf_counter() - start
        log(f"decode-once cache built in {cache_seconds:.1f} s")

        torch.manual_seed(0)
        base = create_model(arch, 2)
        flops_fwd = forward_flops(base, image_size)
        candidates: dict[str, Callable[[], float | None]] = {}
        for w in workers:
            net = copy.deepcopy(base).backbone  # same network; the loop normalises in transforms
            loader = plain_loader(root, image_size, batch_size, w)
            opt = torch.optim.Adam(net.parameters(), lr=TrainingConfig().lr)
            candidates[f"plain (workers={w})"] = lambda net=net, loader=loader, opt=opt: (
                plain_epoch(net, loader, opt)
            )
        for name in variants:
            cfg = TrainingConfig(batch_size=batch_size, device="cpu", **VARIANTS[name])
            step = SuiteStep(copy.deepcopy(base), pixels, ds.labels, cfg)
            log(f"warm-up epoch of suite step '{name}' (torch.compile compiles here)")
            warm = _seconds(step.epoch)
            log(f"  warm-up took {warm:.1f} s")
            candidates[f"suite {name}"] = step.epoch
        candidates["matmul"] = lambda: matmul_gflops(matmul_n)
        log(f"timing {len(candidates)} candidates in {rounds} interleaved rounds")
        values = interleaved(candidates, rounds)

    result = _summarise(values, flops_fwd, cache_seconds)
    result.update(
        benchmark="train_throughput",
        hardware=hardware(),
        settings={
            "n_images": n_images,
            "png_size": png_size,
            "png_total_mb": round(png_mb, 1),
            "image_size": image_size,
            "batch_size": batch_size,
            "rounds": rounds,
            "arch": arch,
            "matmul_n": matmul_n,
            "augment": TrainingConfig().augment.model_dump(),
            "optimizer": "adam",
        },
    )
    if out_dir is not None:
        write_result("train_throughput", result, to_markdown(result), out_dir)
    return result


def _summarise(
    values: dict[str, list[float]], flops_fwd: int, cache_seconds: float
) -> dict[str, Any]:
    matmul = values.pop("matmul")
    gflops = median(matmul)
    plain = {k: median(v) for k, v in values.items() if k.startswith("plain")}
    ref_name = max(plain, key=plain.get)
    train_flops = 3 * flops_fwd
    rows = []
    for name, vals in values.items():
        rate = median(vals)
        ratios = [v / r for v, r in zip(vals, values[ref_name], strict=False)]
        rows.append(
            {
                "candidate": name,
                "images_per_s": rate,
                "per_round": vals,
                # ratio within each round (same load), then the median over rounds
                "speedup_vs_plain": median(ratios),
                "gflops": rate * train_flops / 1e9,
                "mfu_vs_matmul": median(
                    [v * train_flops / 1e9 / g for v, g in zip(vals, matmul, strict=False)]
                ),
            }
        )
    suite = [r for r in rows if r["candidate"].startswith("suite")]
    best = max(suite, key=lambda r: r["images_per_s"]) if suite else None
    return {
        "reference": ref_name,
        "rows": rows,
        "matmul_gflops": gflops,
        "forward_gflop_per_image": flops_fwd / 1e9,
        "train_gflop_per_image": train_flops / 1e9,
        "cache_build_seconds": cache_seconds,
        "best_suite": best["candidate"] if best else None,
        "targets": {
            "speedup_vs_plain": TARGET_SPEEDUP,
            "mfu_vs_matmul": TARGET_MFU,
            "speedup_met": bool(best and best["speedup_vs_plain"] >= TARGET_SPEEDUP),
            "mfu_met": bool(best and best["mfu_vs_matmul"] >= TARGET_MFU),
        },
    }


def to_markdown(result: dict[str, Any]) -> str:
    s, t = result["settings"], result["targets"]
    cols = ["candidate", "images_per_s", "speedup_vs_plain", "gflops", "mfu_vs_matmul"]
    return (
        "# Training throughput\n\n"
        f"{hardware_line(result['hardware'])}\n\n"
        f"{s['n_images']} PNGs of {s['png_size']}² ({s['png_total_mb']} MB), {s['arch']} @ "
        f"{s['image_size']}, batch {s['batch_size']}, medians of {s['rounds']} interleaved "
        f"rounds; speedup and MFU are medians of per-round ratios. Reference: "
        f"{result['reference']} (the faster plain loop). "
        f"Matmul rate: {result['matmul_gflops']:.1f} GFLOP/s (fp32 torch.mm n={s['matmul_n']}); "
        f"training step ≈ {result['train_gflop_per_image']:.2f} GFLOP/image (3 × forward). "
        f"Decode-once cache build (one-off): {result['cache_build_seconds']:.1f} s.\n\n"
        + markdown_table(result["rows"], cols)
        + f"\nBest suite step: {result['best_suite']}. Target ≥ {t['speedup_vs_plain']}× the plain "
        f"loop: {'met' if t['speedup_met'] else 'not met'}; target ≥ {t['mfu_vs_matmul']:.0%} of "
        f"the matmul rate: {'met' if t['mfu_met'] else 'not met'}.\n"
    )


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(
        prog="python -m bench.perf.train_throughput", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--n-images", type=int, default=128, help="PNG files to generate (default 128)")
    p.add_argument("--png-size", type=int, default=1024, help="PNG side in pixels (default 1024)")
    p.add_argument("--image-size", type=int, default=128, help="training resolution (default 128)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds (default 3)")
    p.add_argument(
        "--workers",
        type=int,
        nargs="+",
        default=[0, 2],
        help="DataLoader workers of the plain loop",
    )
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--out", type=Path, default=RESULTS_DIR, help="output folder (results/perf)")
    a = p.parse_args(argv)
    return run(
        n_images=a.n_images,
        png_size=a.png_size,
        image_size=a.image_size,
        batch_size=a.batch_size,
        rounds=a.rounds,
        workers=a.workers,
        variants=a.variants,
        out_dir=a.out,
    )


if __name__ == "__main__":
    main()
