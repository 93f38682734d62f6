"""SynthCXR-LT: the embedded *synthetic* chest-radiograph-like dataset (never a clinical result).

Labels, patients, views, ages and sexes are sampled, whole patient by whole patient, from
the real NIH ChestX-ray14 metadata (``Data_Entry_2017_v2020.csv.gz``, shipped inside the
torchxrayvision package), so the real long tail and co-occurrence of the 15 classes carry
over. The pixels are synthetic cartoons drawn by vectorised numpy on coordinate grids
normalised to [-1, 1] (so any size renders the same picture): thorax, lungs, heart,
diaphragm, ribs, clavicles and spine, with per-patient anatomy, PA/AP view effects,
exposure and noise, and one visual signature per finding whose strength varies per image.
See docs/synthetic-data.md.
"""

from __future__ import annotations

import argparse
import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from bench.data.dataset import CXRDataset, DataError

GENERATOR_VERSION = "1"
NIH_FILE = "Data_Entry_2017_v2020.csv.gz"
NIH_CLASSES: list[str] = [
    "No Finding",
    "Infiltration",
    "Effusion",
    "Atelectasis",
    "Nodule",
    "Mass",
    "Pneumothorax",
    "Consolidation",
    "Pleural Thickening",
    "Cardiomegaly",
    "Emphysema",
    "Edema",
    "Fibrosis",
    "Pneumonia",
    "Hernia",
]
BINARY_CLASSES = ["Normal", "Pneumonia"]
BINARY_POSITIVE = ("Pneumonia", "Consolidation", "Infiltration")
BINARY_POSITIVE_FRACTION = 178 / 378  # study A: 178 Pneumonia vs 200 Normal images
_TASK_CODE = {"multilabel": 0, "binary": 1}
_NIH_COLUMNS = ("Image Index", "Finding Labels", "Follow-up #", "Patient ID")
_NIH_COLUMNS += ("Patient Age", "Patient Gender", "View Position")
_CLS = {name: k for k, name in enumerate(NIH_CLASSES)}
_PIXELS_PER_CHUNK = 1 << 17  # ~32 images at 64 px: arrays stay in cache


@dataclass(frozen=True)
class NihMetadata:
    """The parsed NIH table: one row per real image, arrays read-only."""

    image: np.ndarray  # "00000001_000.png"
    patient: np.ndarray  # int patient id
    follow_up: np.ndarray
    age: np.ndarray
    sex: np.ndarray  # "M" / "F"
    view: np.ndarray  # "PA" / "AP"
    labels: np.ndarray  # (N, 15) uint8 in NIH_CLASSES order


def nih_metadata_path() -> Path:
    """Where torchxrayvision ships the NIH metadata file (found without importing torch)."""
    spec = importlib.util.find_spec("torchxrayvision")
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            f"SynthCXR-LT needs {NIH_FILE} from the torchxrayvision package, which is not "
            "installed; install it with `pip install torchxrayvision`"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data" / NIH_FILE


@lru_cache(maxsize=2)
def load_nih_metadata(path: Path) -> NihMetadata:
    """Read and parse the NIH ``Data_Entry`` csv.gz once per process (it takes ~0.5 s)."""
    if not path.is_file():
        raise DataError(
            f"{path}: the NIH ChestX-ray14 metadata file {NIH_FILE} of the torchxrayvision "
            "package is missing; reinstall torchxrayvision (`pip install --force-reinstall "
            "torchxrayvision`), which ships it in its data/ folder"
        )
    df = pd.read_csv(path)
    missing = [c for c in _NIH_COLUMNS if c not in df.columns]
    if missing:
        raise DataError(f"{path}: columns {missing} are missing; expected the NIH Data_Entry file")
    dummies = df["Finding Labels"].str.replace("Pleural_Thickening", "Pleural Thickening")
    dummies = dummies.str.get_dummies(sep="|")
    unknown = sorted(set(dummies.columns) - set(NIH_CLASSES))
    if unknown:
        row = int(np.flatnonzero(dummies[unknown[0]].to_numpy())[0])
        raise DataError(
            f"{path}: row {row + 2} has finding {unknown[0]!r}; expected one of {NIH_CLASSES}"
        )
    labels = dummies.reindex(columns=NIH_CLASSES, fill_value=0).to_numpy(np.uint8)
    meta = NihMetadata(
        image=df["Image Index"].to_numpy(str),
        patient=df["Patient ID"].to_numpy(np.int64),
        follow_up=df["Follow-up #"].to_numpy(np.int64),
        age=df["Patient Age"].to_numpy(np.int64),
        sex=df["Patient Gender"].to_numpy(str),
        view=df["View Position"].to_numpy(str),
        labels=labels,
    )
    for arr in vars(meta).values():
        arr.setflags(write=False)
    return meta


def make_synthetic(n_images: int, task: str = "multilabel", seed: int = 0) -> CXRDataset:
    """SynthCXR-LT with ``n_images`` synthetic images; same (n_images, task, seed), same data.

    ``task="multilabel"``: the 15 NIH classes (name "synthcxr-lt"). ``task="binary"``:
    "Normal" (No Finding) vs "Pneumonia" (any of Pneumonia/Consolidation/Infiltration),
    about 47% positive like study A (name "synthcxr-binary"). Whole real patients are
    sampled until ``n_images`` is reached; pixels come from ``render(indices, size)``.
    """
    if task not in _TASK_CODE:
        raise DataError(
            f"SynthCXR-LT task {task!r} is not supported; use one of {sorted(_TASK_CODE)}"
        )
    if not isinstance(n_images, (int, np.integer)) or n_images < 1:
        raise DataError(f"SynthCXR-LT n_images={n_images!r}: expected a positive integer")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise DataError(f"SynthCXR-LT seed={seed!r}: expected a non-negative integer")
    meta = load_nih_metadata(nih_metadata_path())
    rng = np.random.default_rng([int(seed), _TASK_CODE[task]])
    rows = _sample_rows(meta, int(n_images), task, rng)
    findings = meta.labels[rows]
    uniq, pid = np.unique(meta.patient[rows], return_inverse=True)
    order = np.argsort(np.argsort(rng.random(len(uniq))))  # random, stable synthetic numbering
    pid = order[pid]
    width = max(5, len(str(len(uniq))))
    patient_ids = np.array([f"P{p:0{width}d}" for p in pid])
    ids = np.array([f"{p}_{f:03d}" for p, f in zip(patient_ids, meta.follow_up[rows], strict=True)])
    params = _draw_params(rng, meta.view[rows], meta.sex[rows], pid, len(uniq))
    metadata = pd.DataFrame(
        {
            "view": meta.view[rows],
            "age": meta.age[rows],
            "sex": meta.sex[rows],
            "strength": np.where(findings[:, _CLS["No Finding"]] == 1, 0.0, params["strength"]),
            "nih_image": meta.image[rows],
        }
    )
    if task == "binary":
        positive = findings[:, [_CLS[c] for c in BINARY_POSITIVE]].any(1)
        labels = np.stack([~positive, positive], 1).astype(np.uint8)
        class_names, name = list(BINARY_CLASSES), "synthcxr-binary"
    else:
        labels, class_names, name = findings.copy(), list(NIH_CLASSES), "synthcxr-lt"
    noise_key = (int(seed), _TASK_CODE[task])

    def render(indices: np.ndarray, size: int) -> np.ndarray:
        return _render_images(params, findings, np.asarray(indices), size, noise_key)

    return CXRDataset(
        name=name,
        task=task,
        ids=ids,
        labels=labels,
        class_names=class_names,
        patient_ids=patient_ids,
        render=render,
        source_key=f"synthcxr-v{GENERATOR_VERSION}|n={int(n_images)}|task={task}|seed={int(seed)}",
        metadata=metadata,
    )


# ---------------------------------------------------------------------------- sampling


def _sample_rows(meta: NihMetadata, n: int, task: str, rng: np.random.Generator) -> np.ndarray:
    """Rows of the NIH table: whole patients in random order, images in follow-up order.

    Binary: patients holding a positive image come first, so large balanced samples fit.
    """
    if task == "binary":
        positive = meta.labels[:, [_CLS[c] for c in BINARY_POSITIVE]].any(1)
        eligible = positive | (meta.labels[:, _CLS["No Finding"]] == 1)
    else:
        positive = np.zeros(len(meta.patient), bool)
        eligible = np.ones(len(meta.patient), bool)
    cand = np.flatnonzero(eligible)
    patients, inv = np.unique(meta.patient[cand], return_inverse=True)
    n_pos = np.bincount(inv, weights=positive[cand], minlength=len(patients)).astype(np.int64)
    n_all = np.bincount(inv, minlength=len(patients))
    if task == "binary":  # patients with a positive image first, then normal-only ones
        targets = (round(n * BINARY_POSITIVE_FRACTION), n - round(n * BINARY_POSITIVE_FRACTION))
        with_pos = np.flatnonzero(n_pos > 0)
        order = np.concatenate(
            [rng.permutation(with_pos), rng.permutation(np.flatnonzero(n_pos == 0))]
        )
    else:
        targets, order = (0, n), rng.permutation(len(patients))
    chosen = _fill(order, n_pos, n_all - n_pos, targets)
    if chosen is None:
        raise DataError(
            f"SynthCXR-LT cannot draw {n} {task} images of whole patients from {NIH_FILE} "
            f"({int(n_pos.sum())} positive, {int((n_all - n_pos).sum())} other eligible images); "
            "ask for fewer images"
        )
    take = np.isin(inv, chosen)
    rank = np.empty(len(patients), np.int64)
    rank[chosen] = np.arange(len(chosen))
    rows = cand[take]
    return rows[np.lexsort((meta.follow_up[rows], rank[inv[take]]))]


def _fill(
    order: np.ndarray, a: np.ndarray, b: np.ndarray, targets: tuple[int, int]
) -> np.ndarray | None:
    """Patients, in ``order``, taken greedily when their (a, b) image counts still fit."""
    ca, cb = np.cumsum(a[order]), np.cumsum(b[order])
    ok = (ca <= targets[0]) & (cb <= targets[1])
    stop = int(np.argmin(ok)) if not ok.all() else len(order)  # whole prefix fits
    chosen = list(order[:stop])
    got_a, got_b = (int(ca[stop - 1]), int(cb[stop - 1])) if stop else (0, 0)
    for p in order[stop:]:
        if got_a == targets[0] and got_b == targets[1]:
            break
        if got_a + a[p] <= targets[0] and got_b + b[p] <= targets[1]:
            chosen.append(p)
            got_a, got_b = got_a + int(a[p]), got_b + int(b[p])
    if (got_a, got_b) != targets:
        return None
    return np.array(chosen, np.int64)


def _draw_params(
    rng: np.random.Generator,
    view: np.ndarray,
    sex: np.ndarray,
    pid: np.ndarray,
    n_patients: int,
) -> dict[str, np.ndarray]:
    """Every random number the renderer needs, per image (patient anatomy shared by index).

    Finding geometry is drawn for every image, so the stream never depends on the labels.
    """
    n = len(pid)
    female = sex == "F"

    def per_patient(values: np.ndarray) -> np.ndarray:
        return values[pid]

    u = rng.random
    p: dict[str, np.ndarray] = {}
    # patient anatomy: persists across a patient's images
    p["scale"] = per_patient(0.90 + 0.10 * u(n_patients)) * np.where(female, 0.96, 1.0)
    p["rot"] = per_patient(rng.normal(0, 0.045, n_patients)) + rng.normal(0, 0.012, n)
    p["tx"] = per_patient(rng.normal(0, 0.03, n_patients)) + rng.normal(0, 0.01, n)
    p["ty"] = per_patient(rng.normal(0.02, 0.03, n_patients)) + rng.normal(0, 0.01, n)
    p["lung_w"] = per_patient(0.93 + 0.12 * u(n_patients))
    p["lung_h"] = per_patient(0.92 + 0.14 * u(n_patients))
    p["heart_w"] = per_patient(np.clip(rng.normal(0.4, 0.025, n_patients), 0.33, 0.47))
    p["heart_y"] = per_patient(0.25 + 0.05 * u(n_patients))
    p["dome"] = per_patient(0.36 + 0.07 * u(n_patients)) + rng.normal(0, 0.015, n)
    p["dome_left"] = per_patient(0.03 + 0.04 * u(n_patients))
    p["rib_phase"] = per_patient(u(n_patients))
    p["rib_gap"] = per_patient(0.16 + 0.03 * u(n_patients))
    p["vessels"] = per_patient(rng.integers(11, 17, n_patients).astype(float))
    p["vessel_phase"] = per_patient(2 * np.pi * u(n_patients))
    p["bubble"] = per_patient(u(n_patients) * (u(n_patients) < 0.7))
    p["female"] = female.astype(float)
    p["ap"] = (view == "AP").astype(float)
    # exposure and strength: per image
    p["gain"] = rng.normal(1.0, 0.07, n) * np.where(view == "AP", 0.82, 1.0)
    p["offset"] = rng.normal(0.0, 0.035, n) + np.where(view == "AP", 0.06, 0.0)
    p["gamma"] = 0.85 + 0.35 * u(n)
    p["noise"] = 0.012 + 0.02 * u(n)
    p["strength"] = 0.25 + 0.75 * rng.beta(2.0, 1.6, n)
    # finding geometry
    p["side"] = np.where(u(n) < 0.5, -1.0, 1.0)
    p["both"] = (u(n) < 0.3).astype(float)
    p["pos"] = u((n, 6, 4))  # up to 6 blobs: x, y, radius, amplitude in [0, 1)
    p["shape"] = u((n, 6))  # assorted shape numbers per finding
    p["texture"] = 2 * np.pi * u((n, 4))
    return p


# ---------------------------------------------------------------------------- rendering


def _render_images(
    params: dict[str, np.ndarray],
    findings: np.ndarray,
    indices: np.ndarray,
    size: int,
    noise_key: tuple[int, int],
) -> np.ndarray:
    """(len(indices), size, size) uint8 synthetic images; row i depends only on image indices[i]."""
    if not isinstance(size, (int, np.integer)) or not 8 <= size <= 1024:
        raise ValueError(f"SynthCXR-LT render size={size!r}: expected an integer in 8..1024")
    indices = indices.astype(np.int64).ravel()
    n = len(findings)
    if len(indices) and (indices.min() < 0 or indices.max() >= n):
        raise ValueError(f"SynthCXR-LT render: indices must lie in 0..{n - 1}")
    out = np.empty((len(indices), size, size), np.uint8)
    chunk = max(1, _PIXELS_PER_CHUNK // (size * size))
    for start in range(0, len(indices), chunk):
        idx = indices[start : start + chunk]
        sub = {k: v[idx].astype(np.float32) for k, v in params.items()}
        img = _draw(sub, findings[idx], int(size))
        for j, i in enumerate(idx):  # per-image noise stream: independent of the batch
            g = np.random.default_rng([*noise_key, int(i), int(size)])
            img[j] += sub["noise"][j] * g.standard_normal((size, size), dtype=np.float32)
        img *= 255
        img += 0.5
        out[start : start + chunk] = np.clip(img, 0, 255).astype(np.uint8)
    return out


def _col(a: np.ndarray) -> np.ndarray:
    """Per-image values as an (n, 1, 1) float32 column that broadcasts over pixels."""
    return np.asarray(a, np.float32)[:, None, None]


def _step(z: np.ndarray) -> np.ndarray:
    """Smooth 0→1 step around z = 0 (a cheap stand-in for the logistic function)."""
    t = np.clip(z * np.float32(0.25) + np.float32(0.5), 0, 1)
    return t * t * (3 - 2 * t)


def _ellipse(u, v, cx, cy, ax, ay):
    """< 1 inside the ellipse centred at (cx, cy) with semi-axes (ax, ay)."""
    du, dv = (u - cx) / ax, (v - cy) / ay
    return du * du + dv * dv


def _gauss(u, v, cx, cy, r):
    return np.exp(-((u - cx) ** 2 + (v - cy) ** 2) / (2 * r * r))


@dataclass
class _Ctx:
    """What a finding's signature may look at, for the images that carry the finding."""

    p: dict[str, np.ndarray]  # per-image parameters
    u: np.ndarray  # (m, S, S) patient coordinates, x to the image right, y down
    v: np.ndarray
    lung_e: np.ndarray  # lung ellipse level (< 1 inside)
    lungs: np.ndarray  # lung fields (both), 0..1
    air: np.ndarray  # aerated lung not covered by heart or mediastinum
    mark: np.ndarray  # vessel markings density
    dome_top: np.ndarray  # (m, 1, 1)
    soft: float  # ~1 pixel in normalised units

    def take(self, rows: np.ndarray) -> _Ctx:
        pick = {k: getattr(self, k)[rows] for k in ("u", "v", "lung_e", "lungs", "air", "mark")}
        return _Ctx(
            p={k: a[rows] for k, a in self.p.items()},
            dome_top=self.dome_top[rows],
            soft=self.soft,
            **pick,
        )

    def col(self, key: str) -> np.ndarray:
        return _col(self.p[key])

    def amp(self, lo: float, hi: float) -> np.ndarray:
        """Density amplitude growing with the image's finding strength."""
        return _col(lo + (hi - lo) * self.p["strength"])

    def on_side(self) -> np.ndarray:
        """1 on the finding's chosen side (image left = patient right), 0 on the other."""
        return _step(self.col("side") * self.u / 0.01)

    def blob_centre(self, k: int, y_lo: float, y_hi: float) -> tuple[np.ndarray, np.ndarray]:
        """Centre of blob k: a random point in a lung between heights y_lo and y_hi."""
        pos = self.p["pos"][:, k]
        side = self.p["side"] if k == 0 else np.where(pos[:, 3] < 0.5, -1.0, 1.0)
        cx = side * self.p["lung_w"] * (0.22 + 0.3 * pos[:, 0])
        return _col(cx), _col(y_lo + (y_hi - y_lo) * pos[:, 1])


def _draw(p: dict[str, np.ndarray], f: np.ndarray, size: int) -> np.ndarray:
    """Float images in ~[0, 1] for one chunk, before noise: anatomy, then findings."""
    g = (np.arange(size, dtype=np.float32) * 2 + 1) / size - 1
    x, y = g[None, None, :], g[None, :, None]
    strength = p["strength"]
    emph = np.where(f[:, _CLS["Emphysema"]] == 1, strength, 0)
    cardio = np.where(f[:, _CLS["Cardiomegaly"]] == 1, strength, 0)
    ap = p["ap"]
    soft = 1.5 / size  # edges at least ~1 pixel wide at any size
    # patient pose: rotate, scale, shift
    c, sn, sc = _col(np.cos(p["rot"])), _col(np.sin(p["rot"])), _col(p["scale"])
    u = (c * x + sn * y - _col(p["tx"])) / sc
    v = (-sn * x + c * y - _col(p["ty"])) / sc
    au = np.abs(u)

    # body: chest wall, sloping shoulders and the neck; outside is air (black)
    shoulder = -0.97 + 0.9 * np.maximum(au - 0.2, 0) ** 2
    body = _step((0.9 + 0.04 * v - au) / 0.015) * _step((v - shoulder) / 0.02)
    # diaphragm domes: emphysema flattens and lowers them; AP (supine) raises them
    dome_top = _col(p["dome"] + 0.12 * emph - 0.04 * ap)
    dome_h = _col(0.11 * (1 - 0.85 * emph))
    lw, lh = _col(p["lung_w"]), _col(p["lung_h"] * (1 + 0.08 * emph))
    dome_y = dome_top + _col(p["dome_left"]) * (u > 0) + dome_h * ((au - 0.42) / 0.3) ** 2
    # lungs: egg-shaped fields, narrow apex and wide base, cut by the domes
    lung_e = _ellipse(au, v, 0.4 * lw, -0.1, 0.3 * lw * (1 + 0.3 * (v + 0.1)), 0.66 * lh)
    lungs = _step((1 - lung_e) / 0.04) * _step((dome_y - v) / (0.008 + soft / 2))
    # heart: tilted ellipse on the left dome; AP magnifies it, cardiomegaly enlarges it
    hw = _col(p["heart_w"] * (1 + 0.12 * ap) * (1 + 0.45 * cardio) * (1 - 0.1 * emph))
    hh = _col(0.26 * (1 + 0.15 * cardio))
    hu, hv = u - 0.08 - 0.5 * (hw - 0.4), v - _col(p["heart_y"])
    tilt_c, tilt_s = np.float32(np.cos(0.45)), np.float32(np.sin(0.45))
    heart = _ellipse(hu * tilt_c + hv * tilt_s, hv * tilt_c - hu * tilt_s, 0, 0, hw, hh)
    heart = _step((1 - heart) / 0.03) * _step((dome_top + 0.06 - v) / 0.02)
    med = _step((0.11 - np.abs(u - 0.02)) / 0.012) * _step((0.3 - v) / 0.03)
    med = np.maximum(med, 0.8 * _gauss(u, v, 0.14, -0.28, 0.065))  # aortic knob
    trachea = _step((0.035 - np.abs(u - 0.01)) / 0.006) * _step((-0.25 - v) / 0.03)
    air = lungs * (1 - heart) * (1 - med)

    # bones: ribs (arcs, clearest over the lungs), clavicles, spine
    t = v - 0.5 * au + 0.75 * au * au
    gap = _col(p["rib_gap"] * (1 + 0.15 * emph))
    ribs = np.maximum(np.cos(2 * np.pi * (t / gap - _col(p["rib_phase"]))), 0)
    ribs = ribs * ribs * ribs
    ribs *= ribs * _step((au - 0.08) / 0.015) * _step((dome_y + 0.05 - v) / 0.02)
    clav_y = -0.72 - 0.15 * (au - 0.08) + 0.35 * (au - 0.35) ** 2 - 0.05 * _col(ap)
    clav = np.exp(-(((v - clav_y) / 0.03) ** 2)) * _step((0.7 - au) / 0.015)
    spine = _step((0.065 - np.abs(u - 0.01)) / 0.006) * (0.75 + 0.25 * np.cos(2 * np.pi * v / 0.13))
    # lung markings: vessels radiating from the hila (streaks of constant direction)
    du = u - np.where(u < 0, np.float32(-0.2), np.float32(0.22))
    r = np.sqrt(du * du + v * v)
    streak = 0.5 + 0.5 * np.cos(
        _col(p["vessels"]) * 1.6 * v / (r + 0.02) + 3 * r + _col(p["vessel_phase"])
    )
    streak *= streak
    vessels = streak * streak * np.exp(-r / 0.4) * _col(1 - 0.8 * emph)
    hila = _gauss(au, v, 0.21, -0.02, 0.055)
    scapula = _col(ap) * _step((1 - _ellipse(au, v, 0.68, -0.4, 0.14, 0.32)) / 0.05)
    breast = _col(p["female"]) * _step((1 - _ellipse(au, v, 0.52, 0.3, 0.34, 0.24)) / 0.2)
    bubble = _col(p["bubble"]) * _gauss(u, v, 0.42, dome_top + _col(p["dome_left"]) + 0.13, 0.06)

    dens = 0.55 * body + 0.05 * heart + 0.08 * med + 0.1 * hila + 0.08 * scapula + 0.06 * breast
    dens -= _col(0.29 + 0.15 * emph) * air + 0.1 * trachea + 0.15 * bubble
    dens += (0.05 * ribs + 0.12 * spine + 0.15 * clav) * body + 0.1 * ribs * air
    mark = 0.13 * vessels * air
    dens += mark
    ctx = _Ctx(p, u, v, lung_e, lungs, air, mark, dome_top, soft)
    for name, signature in _SIGNATURES.items():
        rows = np.flatnonzero(f[:, _CLS[name]])
        if len(rows):
            dens[rows] += signature(ctx.take(rows))
    dens *= _col(p["gain"] * 1.05)
    dens += _col(p["offset"])
    return np.clip(dens, 0, 1) ** _col(p["gamma"])


def _effusion(c: _Ctx) -> np.ndarray:
    """Basal opacity whose upper surface (meniscus) rises towards the chest wall."""
    s = c.col("strength")
    both = c.col("both")
    rise = np.maximum(np.abs(c.u) - 0.2, 0)
    surface = c.dome_top - 0.01 - 0.3 * s - 0.5 * rise * rise * (1 + 2 * s)
    fluid = _step((c.v - surface) / (0.01 + c.soft / 2)) * c.air
    return c.amp(0.25, 0.45) * fluid * np.maximum(c.on_side(), both)


def _round(c: _Ctx, cx, cy, rad, edge: float) -> np.ndarray:
    return _step((rad - np.sqrt((c.u - cx) ** 2 + (c.v - cy) ** 2)) / (edge + c.soft / 2))


def _nodule(c: _Ctx) -> np.ndarray:
    """Small round opacity."""
    cx, cy = c.blob_centre(1, -0.5, 0.3)
    rad = _col(0.03 + 0.025 * c.p["pos"][:, 1, 2])
    return c.amp(0.22, 0.4) * _round(c, cx, cy, rad, 0.003) * c.lungs


def _mass(c: _Ctx) -> np.ndarray:
    """Larger, lobulated round opacity."""
    cx, cy = c.blob_centre(2, -0.45, 0.15)
    rad = _col(0.08 + 0.08 * c.p["pos"][:, 2, 2])
    lob = np.zeros_like(c.u)
    for k in range(3):
        ang = 2 * np.pi * (k / 3 + _col(c.p["shape"][:, 0]))
        ox, oy = 0.35 * rad * np.cos(ang), 0.35 * rad * np.sin(ang)
        lob = np.maximum(lob, _round(c, cx + ox, cy + oy, 0.8 * rad, 0.006))
    return c.amp(0.28, 0.5) * lob * c.lungs


def _pneumothorax(c: _Ctx) -> np.ndarray:
    """Peripheral lucency without vessel markings, edged by the visceral pleural line;
    the collapsed lung gets denser."""
    frac = 0.12 + 0.25 * c.col("strength")
    side, lw, lh = c.col("side"), c.col("lung_w"), c.col("lung_h")
    cx = side * 0.41 * lw - side * 0.31 * lw * frac * 0.8
    e2 = _ellipse(
        c.u, c.v, cx, -0.08 + 0.38 * lh * frac, 0.31 * lw * (1 - frac), 0.64 * lh * (1 - 0.6 * frac)
    )
    lung = c.on_side() * c.air
    gap = lung * _step((e2 - 1) / (0.02 + c.soft / 2))
    line = lung * np.exp(-(((e2 - 1) / (0.05 + 2 * c.soft)) ** 2))
    return 0.12 * line - gap * (0.14 + c.mark) + 0.1 * frac * lung * (1 - gap)


def _edema(c: _Ctx) -> np.ndarray:
    """Bilateral perihilar ("bat wing") haze."""
    haze = np.minimum(_gauss(c.u, c.v, -0.24, 0.0, 0.2) + _gauss(c.u, c.v, 0.27, 0.0, 0.2), 1)
    return c.amp(0.14, 0.3) * haze * c.lungs * _mottle(c)


def _mottle(c: _Ctx) -> np.ndarray:
    tex = c.p["texture"]
    return 0.75 + 0.25 * np.sin(17 * c.u + _col(tex[:, 0])) * np.sin(19 * c.v + _col(tex[:, 1]))


def _patches(c: _Ctx, blobs: tuple[int, ...], r0: float, r1: float, cluster: bool) -> np.ndarray:
    """Overlapping Gaussian patches at random lung points (clustered round the first one)."""
    pos = c.p["pos"]
    patch = np.zeros_like(c.u)
    cx0, cy0 = c.blob_centre(blobs[0], -0.35, 0.35)
    for j, k in enumerate(blobs):
        cx, cy = c.blob_centre(k, -0.35, 0.35)
        if cluster and j:
            cx = cx0 + 0.12 * (_col(pos[:, k, 0]) - 0.5)
            cy = cy0 + 0.2 * (_col(pos[:, k, 1]) - 0.5)
        blob = _gauss(c.u, c.v, cx, cy, _col(r0 + (r1 - r0) * pos[:, k, 2]))
        patch = np.maximum(patch, blob * _col(0.7 + 0.3 * pos[:, k, 3]))
    return patch * c.lungs


def _infiltration(c: _Ctx) -> np.ndarray:
    """Several faint, small patchy opacities scattered over both lungs."""
    return c.amp(0.16, 0.3) * _patches(c, (0, 1, 2, 3), 0.07, 0.12, False) * _mottle(c)


def _pneumonia(c: _Ctx) -> np.ndarray:
    """A cluster of medium patchy opacities in one zone."""
    return c.amp(0.16, 0.3) * _patches(c, (3, 4, 5), 0.09, 0.15, True) * _mottle(c)


def _consolidation(c: _Ctx) -> np.ndarray:
    """One large, dense, homogeneous opacity."""
    cx, cy = c.blob_centre(5, -0.35, 0.35)
    rad = _col(0.14 + 0.08 * c.p["pos"][:, 5, 2])
    return c.amp(0.25, 0.42) * _round(c, cx, cy, rad, 0.04) * c.lungs


def _fibrosis(c: _Ctx) -> np.ndarray:
    """Reticular lines (a warped mesh of three line families) in the peripheral lower zones."""
    tex = c.p["texture"]
    warp = 1.2 * np.sin(7 * c.u - 5 * c.v + _col(tex[:, 3]))  # irregular, not a fence
    net = np.zeros_like(c.u)
    for k, ang in enumerate((0.5, 2.1, 1.2)):
        ph = np.sin(np.pi * (np.cos(ang) * c.u + np.sin(ang) * c.v) / 0.12 + warp + _col(tex[:, k]))
        net = np.maximum(net, np.exp(-ph * ph / 0.04))
    zone = _step((c.v + 0.1) / 0.06) * _step((np.abs(c.u) - 0.2) / 0.04)
    return c.amp(0.1, 0.22) * net * zone * c.lungs


def _atelectasis(c: _Ctx) -> np.ndarray:
    """A plate-like line at the base, or a wedge pointing at the hilum."""
    shape, side = c.p["shape"], c.col("side")
    cx, cy = side * 0.4 * c.col("lung_w"), c.dome_top - 0.12 - 0.15 * _col(shape[:, 2])
    ang = _col(0.3 * (shape[:, 3] - 0.5))
    along = (c.u - cx) * np.cos(ang) + (c.v - cy) * np.sin(ang)
    across = (c.v - cy) * np.cos(ang) - (c.u - cx) * np.sin(ang)
    line = np.exp(-((across / (0.025 + c.soft)) ** 2)) * _step((0.15 - np.abs(along)) / 0.015)
    du = side * (c.u - side * 0.2)
    rr = np.sqrt(du * du + c.v * c.v)
    sin_dir = c.v / (rr + 1e-3)  # direction from the hilum, as a sine
    aim = _col(np.sin(0.3 + 0.8 * shape[:, 4]))
    wedge = _step((0.22 - np.abs(sin_dir - aim)) / 0.04) * _step((rr - 0.08) / 0.015)
    wedge *= _step((0.45 - rr) / 0.02) * (du > 0)
    linear = _col(shape[:, 1] < 0.5)
    return c.amp(0.2, 0.38) * (linear * line + (1 - linear) * wedge) * c.lungs * c.on_side()


def _pleural_thickening(c: _Ctx) -> np.ndarray:
    """A band along the inner lung edge: an apical cap or along the lateral wall."""
    side = c.col("side")
    du = side * (c.u - side * 0.41 * c.col("lung_w"))
    dv = c.v + 0.08
    apical = _col(c.p["shape"][:, 5] < 0.5)
    arc = apical * _step(-dv / 0.1 - 2) + (1 - apical) * _step(du / 0.02) * _step(
        (0.35 - dv) / 0.05
    )
    band = _step((c.lung_e - 0.72) / 0.025)
    return c.amp(0.2, 0.38) * band * arc * c.lungs * c.on_side()


def _hernia(c: _Ctx) -> np.ndarray:
    """Retrocardiac gas bubble with an air-fluid level and a thin wall."""
    shape = c.p["shape"]
    cx, cy = _col(0.08 + 0.1 * shape[:, 0]), c.dome_top - 0.06 - 0.06 * _col(shape[:, 1])
    rad = _col(0.07 + 0.04 * shape[:, 2])
    rho = np.sqrt((c.u - cx) ** 2 + (c.v - cy) ** 2) / rad
    gas = _step((1 - rho) / 0.04) * _step((cy + 0.35 * rad - c.v) / (0.005 + c.soft / 2))
    return c.amp(0.2, 0.35) * (0.35 * np.exp(-(((rho - 1) / 0.15) ** 2)) - gas)


# Cardiomegaly and emphysema change the anatomy itself (see ``_draw``).
_SIGNATURES = {
    "Effusion": _effusion,
    "Nodule": _nodule,
    "Mass": _mass,
    "Pneumothorax": _pneumothorax,
    "Edema": _edema,
    "Infiltration": _infiltration,
    "Pneumonia": _pneumonia,
    "Consolidation": _consolidation,
    "Fibrosis": _fibrosis,
    "Atelectasis": _atelectasis,
    "Pleural Thickening": _pleural_thickening,
    "Hernia": _hernia,
}

# ---------------------------------------------------------------------------- figure


def save_grid(path: Path, size: int = 128, seed: int = 0) -> Path:
    """One synthetic example per class (the strongest single-finding image), as a PNG grid."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ds = make_synthetic(20000, "multilabel", seed)
    strength = ds.metadata["strength"].to_numpy()
    single = ds.labels.sum(1) == 1
    picks = []
    for k in range(len(NIH_CLASSES)):
        pool = np.flatnonzero(ds.labels[:, k] & single)
        pool = pool if len(pool) else np.flatnonzero(ds.labels[:, k])
        picks.append(int(pool[np.argmax(strength[pool])]))
    pixels = ds.render(np.array(picks), size)
    fig, axes = plt.subplots(3, 5, figsize=(10, 6.6))
    for ax, img, k in zip(axes.ravel(), pixels, range(len(NIH_CLASSES)), strict=True):
        ax.imshow(img, cmap="gray", vmin=0, vmax=255)
        ax.set_title(NIH_CLASSES[k], fontsize=9)
        ax.axis("off")
    fig.suptitle("SynthCXR-LT (synthetic) — one example per class")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> None:
    """``python -m bench.data.synthetic --grid docs/img/synthcxr_grid.png``."""
    ap = argparse.ArgumentParser(description="SynthCXR-LT (synthetic data) utilities")
    ap.add_argument("--grid", type=Path, required=True, help="write the example grid PNG here")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    print(save_grid(args.grid, args.size, args.seed))


if __name__ == "__main__":
    main()
