"""Decode-once cache: decoding of each image kind, the second load decodes nothing, errors."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from joblib import parallel_config
from PIL import Image

from bench.data import cache
from bench.data.cache import decode_image, load_pixels
from bench.data.dataset import CXRDataset, DataError


def file_dataset(paths: list[Path], rows: list[str] | None = None) -> CXRDataset:
    n = len(paths)
    return CXRDataset(
        name="files",
        task="multilabel",
        ids=np.array([p.name for p in paths]),
        labels=np.zeros((n, 1), np.uint8),
        class_names=["x"],
        patient_ids=np.arange(n),
        paths=paths,
        source_key="test-files",
        rows=rows or [],
    )


@pytest.fixture
def images(tmp_path) -> dict[str, Path]:
    """One file per kind the cache must read, with known pixel content."""
    rng = np.random.default_rng(0)
    out = {}
    gray = rng.integers(0, 256, (16, 16), dtype=np.uint8)
    Image.fromarray(gray).save(out.setdefault("gray8", tmp_path / "gray8.png"))
    deep = np.linspace(1000, 5000, 256).reshape(16, 16).astype(np.uint16)
    Image.fromarray(deep).save(out.setdefault("gray16", tmp_path / "gray16.png"))
    rgb = np.zeros((16, 16, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 200, 100, 50
    Image.fromarray(rgb).save(out.setdefault("rgb_jpeg", tmp_path / "rgb.jpg"), quality=95)
    Image.new("L", (50, 30), 77).save(out.setdefault("wide", tmp_path / "wide.png"))
    Image.new("RGBA", (20, 20), (255, 255, 255, 128)).save(
        out.setdefault("rgba", tmp_path / "rgba.png")
    )
    return out


def test_decode_each_kind_against_independent_values(images):
    # 8-bit gray at its own size: bilinear resize to the same size is the identity
    np.testing.assert_array_equal(
        decode_image(images["gray8"], 16), np.asarray(Image.open(images["gray8"]))
    )
    # 16-bit: scaled by its own range, computed here with numpy: (v - 1000) * 255 / 4000
    assert Image.open(images["gray16"]).mode.startswith("I")
    deep = np.linspace(1000, 5000, 256).reshape(16, 16)
    np.testing.assert_array_equal(
        decode_image(images["gray16"], 16), np.rint((deep - 1000) * 255 / 4000)
    )
    # RGB → luma: ITU-R 601 weights 0.299 R + 0.587 G + 0.114 B = 124.3 (JPEG is lossy: ±2)
    assert np.abs(decode_image(images["rgb_jpeg"], 16).astype(int) - 124).max() <= 2
    # any size → square: a constant 50×30 image stays constant at 8×8
    wide = decode_image(images["wide"], 8)
    assert wide.shape == (8, 8) and np.all(wide == 77)
    assert decode_image(images["rgba"], 4).dtype == np.uint8


def test_decode_downscale_averages():
    img = Image.fromarray(np.tile(np.array([0, 255], np.uint8), (8, 4)))  # 8×8 stripes
    small = cache.to_gray_array(img, 4).astype(int)
    # anti-aliased shrinking averages neighbouring stripes: interior pixels ≈ 127.5; at the
    # borders the filter is cut off, but no pixel keeps a pure stripe value (0 or 255) as
    # nearest-neighbour subsampling would
    assert np.abs(small[:, 1:3] - 128).max() <= 2
    assert np.all((small > 64) & (small < 192))


def test_second_load_decodes_nothing(images, tmp_path):
    ds = file_dataset(list(images.values()))
    before = cache.decode_count
    first = load_pixels(ds, 12, tmp_path / "cache", workers=1)
    assert cache.decode_count - before == len(ds)
    assert isinstance(first, np.memmap) and first.shape == (5, 12, 12) and first.dtype == np.uint8
    for i, p in enumerate(ds.paths):
        np.testing.assert_array_equal(first[i], decode_image(p, 12))
    second = load_pixels(ds, 12, tmp_path / "cache", workers=1)
    assert cache.decode_count - before == len(ds)  # no image decoded again
    np.testing.assert_array_equal(first, second)
    files = os.listdir(tmp_path / "cache")
    assert files == [f"{cache.cache_key(ds, 12)}.npy"]  # no temp file left behind
    load_pixels(ds, 8, tmp_path / "cache", workers=1)  # another size: another entry
    assert cache.decode_count - before == 2 * len(ds)


def test_changed_file_invalidates_cache(images, tmp_path):
    ds = file_dataset([images["wide"], images["gray8"]])
    load_pixels(ds, 8, tmp_path / "cache", workers=1)
    Image.new("L", (50, 30), 5).save(images["wide"])
    os.utime(images["wide"], ns=(1, 1))  # mtime differs from the first write's for sure
    assert np.all(load_pixels(ds, 8, tmp_path / "cache", workers=1)[0] == 5)


def stripes(tmp_path: Path, n: int = 8) -> CXRDataset:
    paths = []
    for i in range(n):
        paths.append(tmp_path / f"{i}.png")
        Image.new("L", (10, 10), i * 30).save(paths[-1])
    return file_dataset(paths)


def test_chunks_reassembled_in_order(tmp_path):
    ds = stripes(tmp_path)
    with parallel_config(backend="threading"):  # same chunking as processes, no start-up cost
        pixels = load_pixels(ds, 6, tmp_path / "cache", workers=2)  # 8 chunks of 1 image
    assert [int(pixels[i, 0, 0]) for i in range(8)] == [i * 30 for i in range(8)]


@pytest.mark.slow
def test_decoding_in_worker_processes(tmp_path):
    ds = stripes(tmp_path)
    pixels = load_pixels(ds, 6, tmp_path / "cache", workers=2)  # joblib's default: loky processes
    assert [int(pixels[i, 0, 0]) for i in range(8)] == [i * 30 for i in range(8)]


def test_corrupt_image_names_file_and_row(images, tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    rows = ["labels.csv row 1", "labels.csv row 2", "labels.csv row 3"]
    ds = file_dataset([images["gray8"], images["wide"], bad], rows)
    with pytest.raises(
        DataError, match=r"broken\.png \(labels\.csv row 3\): cannot decode image.*Fix"
    ):
        load_pixels(ds, 8, tmp_path / "cache", workers=1)
    assert not list((tmp_path / "cache").iterdir())  # nothing half-written stays


def test_missing_file_is_a_data_error(images, tmp_path):
    ds = file_dataset([images["gray8"], tmp_path / "gone.png"])
    with pytest.raises(DataError, match="gone.png: image file not found"):
        load_pixels(ds, 8, tmp_path / "cache")


def test_render_dataset_cached_in_chunks(tmp_path, monkeypatch):
    calls = []

    def render(idx: np.ndarray, size: int) -> np.ndarray:
        calls.append(len(idx))
        return np.broadcast_to(
            (idx % 256).astype(np.uint8)[:, None, None], (len(idx), size, size)
        ).copy()

    n = 600
    ds = CXRDataset(
        name="rendered",
        task="multilabel",
        ids=np.arange(n),
        labels=np.zeros((n, 1)),
        class_names=["x"],
        patient_ids=np.arange(n),
        render=render,
        source_key="render-test-v1",
    )
    monkeypatch.setattr(cache, "MAX_CHUNK", 256)
    pixels = load_pixels(ds, 4, tmp_path / "cache", workers=1)
    assert calls == [256, 256, 88]
    np.testing.assert_array_equal(pixels[:, 2, 3], np.arange(n) % 256)
    load_pixels(ds, 4, tmp_path / "cache", workers=1)
    assert len(calls) == 3  # cache hit: render not called again


def test_render_needs_source_key(tmp_path):
    ds = CXRDataset(
        name="anon",
        task="multilabel",
        ids=np.arange(3),
        labels=np.zeros((3, 1)),
        class_names=["x"],
        patient_ids=np.arange(3),
        render=lambda idx, size: np.zeros((len(idx), size, size), np.uint8),
    )
    with pytest.raises(DataError, match="needs a source_key"):
        load_pixels(ds, 4, tmp_path / "cache")


def test_render_wrong_output_refused(tmp_path):
    ds = CXRDataset(
        name="bad-render",
        task="multilabel",
        ids=np.arange(3),
        labels=np.zeros((3, 1)),
        class_names=["x"],
        patient_ids=np.arange(3),
        render=lambda idx, size: np.zeros((len(idx), size, size), np.float32),
        source_key="bad",
    )
    with pytest.raises(DataError, match="render returned float32"):
        load_pixels(ds, 4, tmp_path / "cache")
