"""PIE images: a montage figure and a blinded reader-study kit (``cxrbench reader-kit``).

Pixels come from the study's decode-once cache (``study.json: pixels``, rows in dataset
order, read with NumPy only) and are matched to images through the study's split table.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from analysis.io import ResultsError
from analysis.reader_study import ReaderKit, make_reader_kit
from analysis.study import load_study, parse_variant
from analysis.study_b import pie_masks


def default_variant(variants: list[str]) -> str:
    """Study B's choice: global L1 at sparsity 0.9 when present, else the last variant."""
    for v in variants:
        if parse_variant(v) == ("l1_unstructured_global", 0.9):
            return v
    return variants[-1]


def _images_for(root: Path, info: dict, image_ids: np.ndarray) -> np.ndarray | None:
    pixels = Path(info.get("pixels", ""))
    splits = sorted((root / "splits").glob("fold0-*.parquet"))
    if not pixels.is_file() or not splits:
        return None
    order = pd.read_parquet(splits[0], columns=["image_id"])["image_id"]
    row = pd.Series(np.arange(len(order)), index=order.to_numpy())
    return np.load(pixels, mmap_mode="r")[row[image_ids].to_numpy()]


def labels_text(y: np.ndarray, class_names: list[str]) -> list[str]:
    return [
        "; ".join(c for c, on in zip(class_names, row, strict=True) if on) or "none" for row in y
    ]


def reader_kit(
    study_dir: Path | str,
    out_dir: Path | str,
    *,
    variant: str | None = None,
    rule: str = "spearman",
    q: float = 0.05,
    n_per_group: int | None = None,
    montage: int = 24,
    rng: int = 0,
) -> tuple[ReaderKit, list[Path]]:
    """PIEs of ``variant`` (by ``rule``): a blinded reader kit in ``out_dir`` and a montage
    of up to ``montage`` PIE images in the study's figures folder."""
    from paper_figures.study_b import plot_pie_montage

    root = Path(study_dir)
    study = load_study(root)
    ps = study.ps
    variant = variant or default_variant(ps.variants[1:])
    if variant not in ps.variants:
        raise ResultsError(f"{root}: no finished variant {variant!r}; finished: {ps.variants}")
    masks = pie_masks(study, ps.variants.index(variant), q)
    if rule not in masks:
        raise ResultsError(
            f"rule {rule!r} does not apply to a {ps.task} task; use one of {sorted(masks)}"
        )
    is_pie = masks[rule]
    if not is_pie.any():
        raise ResultsError(f"{variant}: no PIEs by the {rule} rule; nothing to show")
    images = _images_for(root, study.info, ps.image_ids)
    shown = labels_text(ps.y, ps.class_names)
    kit = make_reader_kit(
        ps.image_ids,
        is_pie,
        out_dir,
        n_per_group=n_per_group,
        shown_labels=shown,
        images=images,
        rng=rng,
    )
    figures: list[Path] = []
    if images is not None and montage:
        pick = np.flatnonzero(is_pie)[:montage]
        note = (
            "Synthetic data (SynthCXR-LT)" if study.info.get("dataset", {}).get("synthetic") else ""
        )
        figures = plot_pie_montage(
            np.asarray(images[pick]),
            [shown[i] for i in pick],
            root / "figures" / "pie_montage",
            note,
        )
    return kit, figures
