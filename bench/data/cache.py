"""Decode-once pixel cache: every image decoded, made grayscale and resized once, then
memory-mapped from ``cache_dir/<key>.npy`` as an (N, size, size) uint8 array.

The key is a sha256 of the dataset's ``source_key``, its image ids, every file's path,
size and mtime (or, for generated datasets, the generator's ``source_key``), the size and
a format version: change any image and the cache is rebuilt, never silently reused.
Images are resized to a square size × size with PIL's bilinear filter (anti-aliased when
shrinking); the aspect ratio is not kept, as chest X-ray classifiers conventionally do.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import uuid
import warnings
from pathlib import Path

import numpy as np
from joblib import Parallel, delayed
from PIL import Image, UnidentifiedImageError
from tqdm.auto import tqdm

from bench.data.dataset import CXRDataset, DataError

CACHE_VERSION = "1"
MAX_CHUNK = 256

decode_count = 0
"""Images decoded or rendered by ``load_pixels`` in this process (a cache hit adds none)."""

log = logging.getLogger(__name__)


def to_gray_array(img: Image.Image, size: int) -> np.ndarray:
    """A PIL image as a (size, size) uint8 grayscale array.

    8-bit modes are converted to ``L`` (RGB by PIL's luma weights); 16-bit and 32-bit
    modes (``I;16*``, ``I``, ``F``) are resized in floating point and scaled to 0..255 by
    the image's own min..max range (a constant image becomes 0).
    """
    if img.mode in ("L", "RGB", "RGBA", "P", "LA", "1", "CMYK", "YCbCr", "PA"):
        gray = img if img.mode == "L" else img.convert("L")
        return np.asarray(gray.resize((size, size), Image.Resampling.BILINEAR), dtype=np.uint8)
    values = np.asarray(img, dtype=np.float32)
    if values.ndim != 2:
        raise ValueError(f"unsupported image mode {img.mode!r} with shape {values.shape}")
    lo, hi = float(values.min()), float(values.max())
    resized = np.asarray(
        Image.fromarray(values, "F").resize((size, size), Image.Resampling.BILINEAR), np.float32
    )
    if hi <= lo:
        return np.zeros((size, size), np.uint8)
    return np.rint(np.clip((resized - lo) * (255.0 / (hi - lo)), 0, 255)).astype(np.uint8)


def decode_image(path: str | Path, size: int) -> np.ndarray:
    """Decode one PNG/JPEG (8 or 16 bit, gray or colour) to a (size, size) uint8 array.

    JPEGs are decoded with PIL's ``draft`` (DCT scaling to at least size × size), which
    is much faster for large images and changes values only slightly.
    """
    with Image.open(path) as img:
        if img.format == "JPEG":
            img.draft("L", (size, size))
        img.load()
        return to_gray_array(img, size)


def cache_key(dataset: CXRDataset, size: int) -> str:
    """sha256 over what determines the pixels: sources, ids, file stats or generator, size."""
    h = hashlib.sha256()
    h.update(f"v{CACHE_VERSION}|{dataset.source_key}|{size}|{len(dataset)}|".encode())
    h.update("\0".join(dataset.ids).encode())
    if dataset.paths is not None:
        for p in dataset.paths:
            try:
                st = os.stat(p)
            except OSError:
                raise DataError(
                    f"{p}: image file not found or unreadable; fix the dataset (check dataset.root)"
                ) from None
            h.update(f"\0{Path(p).resolve()}|{st.st_size}|{st.st_mtime_ns}".encode())
    elif not dataset.source_key:
        raise DataError(
            f"dataset {dataset.name!r}: a generated dataset needs a source_key naming the "
            "generator and its parameters, or its pixel cache could be reused wrongly"
        )
    return h.hexdigest()


def load_pixels(dataset: CXRDataset, size: int, cache_dir: Path, workers: int = 0) -> np.ndarray:
    """The (N, size, size) uint8 pixels of ``dataset``, memory-mapped read-only from the cache.

    The first call decodes (files in parallel with joblib, ``workers=0`` → all CPU cores)
    or renders every image and writes the array to a temporary file renamed atomically;
    later calls only map the file. A corrupt or unreadable image raises ``DataError``
    naming the file and its CSV row.
    """
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    target = cache_dir / f"{cache_key(dataset, size)}.npy"
    shape = (len(dataset), size, size)
    if target.is_file():
        try:
            pixels = np.load(target, mmap_mode="r")
            if pixels.shape == shape and pixels.dtype == np.uint8:
                return pixels
        except (ValueError, OSError):
            pass
        warnings.warn(
            f"{target}: cache file does not match the dataset; rebuilding it", stacklevel=2
        )
    _build(dataset, size, target, workers or os.cpu_count() or 1)
    return np.load(target, mmap_mode="r")


def _build(dataset: CXRDataset, size: int, target: Path, workers: int) -> None:
    """Decode or render every image into ``target`` (tmp file + os.replace)."""
    global decode_count
    n = len(dataset)
    # files: about 4 chunks per worker for load balance; rendering runs in-process
    chunk = (
        MAX_CHUNK if dataset.render is not None else min(MAX_CHUNK, math.ceil(n / (4 * workers)))
    )
    starts = range(0, n, chunk)
    tmp = target.with_name(f".{target.stem}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    log.info("decoding %d images of %s at %dpx into %s", n, dataset.name, size, target)
    try:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(n, size, size))
        with tqdm(total=n, desc=f"caching {dataset.name} at {size}px", unit="img") as bar:
            for start, block in zip(
                starts, _blocks(dataset, size, starts, chunk, workers), strict=True
            ):
                out[start : start + len(block)] = block
                decode_count += len(block)
                bar.update(len(block))
        out.flush()
        del out
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _blocks(dataset: CXRDataset, size: int, starts: range, chunk: int, workers: int):
    """Yield (len, size, size) uint8 blocks in order: rendered in-process or decoded by joblib."""
    n = len(dataset)
    if dataset.render is not None:
        for start in starts:
            idx = np.arange(start, min(start + chunk, n))
            block = np.asarray(dataset.render(idx, size))
            if block.shape != (len(idx), size, size) or block.dtype != np.uint8:
                raise DataError(
                    f"dataset {dataset.name!r}: render returned {block.dtype} {block.shape}, "
                    f"expected uint8 {(len(idx), size, size)}"
                )
            yield block
        return
    paths = [str(p) for p in dataset.paths]
    jobs = (delayed(_decode_chunk)(paths[s : s + chunk], size) for s in starts)
    n_jobs = min(workers, len(starts))
    for start, (block, errors) in zip(
        starts, Parallel(n_jobs=n_jobs, return_as="generator")(jobs), strict=True
    ):
        if errors:
            i, reason = errors[0]
            raise DataError(
                f"{dataset.where(start + i)}: cannot decode image ({reason}); "
                f"{len(errors)} bad image(s) in this chunk. Fix: re-download or replace the "
                "file, or remove its row from the dataset"
            )
        yield block


def _decode_chunk(paths: list[str], size: int) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """Decode a list of files; failures are returned (index, reason), not raised, so the
    parent process can name the CSV row."""
    out = np.zeros((len(paths), size, size), np.uint8)
    errors = []
    for i, path in enumerate(paths):
        try:
            out[i] = decode_image(path, size)
        except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as exc:
            errors.append((i, f"{type(exc).__name__}: {exc}"))
    return out, errors
