"""Study → cells → executor. A cell is (seed, fold, variant chain); the unit of work is the
(seed, fold) group: train (or reload) its baseline once, then derive every variant from
that baseline, so every comparison is paired by seed, fold and image."""

from __future__ import annotations

import copy
import json
import os
import platform
import subprocess
import time
import traceback
from dataclasses import dataclass, field
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.config import StudyConfig, VariantSpec, chain_id
from bench.data.dataset import CXRDataset
from bench.data.splits import Split
from bench.seeding import derive_seed
from bench.store import RunDir, Store, run_id_for

BASELINE = (VariantSpec(name="baseline"),)
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Cell:
    seed: int
    fold: int
    chain: tuple[VariantSpec, ...]
    config: dict[str, Any]
    run_id: str

    @property
    def variant_id(self) -> str:
        return chain_id(self.chain)


@dataclass
class Group:
    """One (seed, fold): its baseline cell and the variant cells derived from it."""

    seed: int
    fold: int
    baseline: Cell
    variants: list[Cell] = field(default_factory=list)

    @property
    def cells(self) -> list[Cell]:
        return [self.baseline, *self.variants]


@dataclass
class StudyData:
    """What a worker needs: labels and ids in memory, pixels memory-mapped from the cache."""

    task: str
    class_names: list[str]
    ids: np.ndarray
    patient_ids: np.ndarray
    labels: np.ndarray
    pixels_path: str
    splits: list[Split]

    def pixels(self) -> np.ndarray:
        return np.load(self.pixels_path, mmap_mode="r")


def cell_config(
    cfg: StudyConfig, seed: int, fold: int, chain: tuple[VariantSpec, ...]
) -> dict[str, Any]:
    """Everything that determines a cell's result (not the executor or measurement settings)."""
    dataset = cfg.dataset.model_dump(mode="json", exclude={"cache_dir", "decode_workers"})
    return {
        "schema": SCHEMA_VERSION,
        "study": cfg.study,
        "task": cfg.task,
        "dataset": dataset,
        "model": cfg.model.model_dump(mode="json"),
        "training": cfg.training.model_dump(mode="json"),
        "protocol": cfg.protocol.model_dump(mode="json"),
        "seed": seed,
        "fold": fold,
        "variant": [s.model_dump(mode="json") for s in chain],
    }


def plan(cfg: StudyConfig, n_folds: int) -> list[Group]:
    """Every (seed, fold) group of the study, with its cells and run ids."""
    chains = [c for c in cfg.variant_chains() if c != BASELINE]
    groups = []
    for seed in cfg.seeds:
        for fold in range(n_folds):

            def make(chain: tuple[VariantSpec, ...], seed: int = seed, fold: int = fold) -> Cell:
                conf = cell_config(cfg, seed, fold, chain)
                return Cell(seed, fold, chain, conf, run_id_for(conf))

            groups.append(Group(seed, fold, make(BASELINE), [make(c) for c in chains]))
    return groups


def prepare(cfg: StudyConfig, progress: bool = True) -> tuple[CXRDataset, StudyData]:
    """Load the dataset, fill the decode-once cache, make and check the splits, save them."""
    from bench.data.cache import load_pixels
    from bench.data.readers import load_dataset
    from bench.data.splits import check_no_leak, make_splits, split_frame

    dataset = load_dataset(cfg.dataset, cfg.task)
    pixels = load_pixels(
        dataset, cfg.dataset.image_size, cfg.dataset.cache_dir, cfg.dataset.decode_workers
    )
    splits = make_splits(dataset, cfg.protocol)
    store = Store(cfg.study_dir)
    for split in splits:
        check_no_leak(dataset, split)
        store.write_split(
            f"fold{split.fold}-{split.content_hash(dataset)}", split_frame(split, dataset)
        )
    data = StudyData(
        task=dataset.task,
        class_names=list(dataset.class_names),
        ids=dataset.ids,
        patient_ids=dataset.patient_ids,
        labels=dataset.labels,
        pixels_path=str(Path(pixels.filename).resolve()),
        splits=splits,
    )
    return dataset, data


# --------------------------------------------------------------------------------------------
# Work inside a worker


def _environment() -> dict[str, Any]:
    import torch

    versions = {}
    for pkg in (
        "torch",
        "torchvision",
        "numpy",
        "scikit-learn",
        "torch-pruning",
        "torchao",
        "cxrbench",
    ):
        try:
            versions[pkg] = importlib_metadata.version(pkg)
        except importlib_metadata.PackageNotFoundError:
            versions[pkg] = None
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).parent,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return {
        "git_commit": commit or None,
        "versions": versions,
        "hardware": {
            "machine": platform.machine(),
            "processor": platform.processor(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        },
        "python": platform.python_version(),
        "host": platform.node(),
    }


def _predictions_frame(
    data: StudyData, cell: Cell, index: np.ndarray, part: str, probs: np.ndarray
) -> pd.DataFrame:
    cols: dict[str, Any] = {
        "image_id": data.ids[index],
        "patient_id": data.patient_ids[index],
        "split": part,
        "fold": np.full(len(index), cell.fold, np.int32),
        "seed": np.full(len(index), cell.seed, np.int32),
        "variant_id": cell.variant_id,
    }
    for k, name in enumerate(data.class_names):
        cols[f"label__{name}"] = data.labels[index, k].astype(np.uint8)
    for k, name in enumerate(data.class_names):
        cols[f"prob__{name}"] = probs[:, k].astype(np.float32)
    return pd.DataFrame(cols)


class GroupWorker:
    """Runs one (seed, fold) group in the current process."""

    def __init__(self, cfg: StudyConfig, data: StudyData, group: Group, owner: str) -> None:
        import torch

        self.cfg, self.data, self.group, self.owner = cfg, data, group, owner
        self.store = Store(cfg.study_dir)
        self.split = next(s for s in data.splits if s.fold == group.fold)
        self.pixels = data.pixels()
        self.seeds = {
            p: derive_seed(cfg.study, group.seed, group.fold, p)
            for p in ("init", "order", "augment", "compress")
        }
        torch.set_num_threads(cfg.training.threads or cfg.executor.threads_per_worker)

    # -- pieces ---------------------------------------------------------------------------

    def _images(self, index: np.ndarray) -> Any:
        """Images as the model takes them: float (n, 1, H, W) in [0, 1]."""
        import torch

        return torch.from_numpy(np.asarray(self.pixels[index], np.float32) / 255.0)[:, None]

    def _log_start(self, run: RunDir, cell: Cell) -> None:
        self._log(
            run, f"start {cell.variant_id} (seed {cell.seed}, fold {cell.fold}) by {self.owner}"
        )

    def _log(self, run: RunDir, line: str) -> None:
        """Epoch progress into the cell's log.txt; also keeps the cell's claim alive."""
        with open(run.path / "log.txt", "a") as fh:
            fh.write(f"{time.strftime('%H:%M:%S')} {line}\n")
        self.store.heartbeat(run.path.name, self.owner)

    def _fit(self, model: Any, epochs: int | None, log: RunDir) -> Any:
        from bench.train import fit

        training = (
            self.cfg.training
            if epochs is None
            else self.cfg.training.model_copy(update={"epochs": epochs})
        )
        return fit(
            model,
            self.pixels,
            self.data.labels,
            self.split.train,
            self.split.val,
            task=self.data.task,
            cfg=training,
            seeds=self.seeds,
            progress=lambda line: self._log(log, line),
            class_names=self.data.class_names,
        )

    def _evaluate(self, cell: Cell, model: Any, run: RunDir, extra: dict[str, Any]) -> np.ndarray:
        """Predict val and test; choose this model's thresholds on its own validation
        predictions (never on test); write predictions.parquet and metrics.json."""
        import torch

        from bench.metrics import choose_thresholds, classification_metrics
        from bench.train import predict

        device = None if _runs_anywhere(model) else torch.device("cpu")
        labels, task = self.data.labels, self.data.task
        probs = {
            part: predict(
                model,
                self.pixels,
                idx,
                task=task,
                batch_size=self.cfg.training.eval_batch_size,
                device=device,
            )
            for part, idx in (("val", self.split.val), ("test", self.split.test))
        }
        thresholds = choose_thresholds(
            labels[self.split.val], probs["val"], task, self.cfg.training.threshold
        )
        metrics: dict[str, Any] = {
            "task": task,
            "class_names": self.data.class_names,
            "thresholds": [None if np.isnan(t) else float(t) for t in thresholds],
            "threshold_rule": f"{self.cfg.training.threshold} on validation",
        }
        frames = []
        for part, idx in (("test", self.split.test), ("val", self.split.val)):
            frames.append(_predictions_frame(self.data, cell, idx, part, probs[part]))
            metrics[part] = classification_metrics(
                labels[idx],
                probs[part],
                task,
                thresholds=thresholds,
                class_names=self.data.class_names,
            )
        run.parquet(
            "predictions.parquet",
            pd.concat(frames, ignore_index=True),
            {"class_names": json.dumps(self.data.class_names), "task": task},
        )
        run.json("metrics.json", {**metrics, **extra})
        return thresholds

    def _measure(self, model: Any, run: RunDir, reference: Any | None) -> None:
        from bench.compress.measure import measure_model

        m = self.cfg.measure
        result = measure_model(
            model,
            self._images(self.split.test[:1]),
            threads=m.threads,
            batch_sizes=m.batch_sizes,
            warmup=m.warmup,
            repeats=m.repeats,
            latency=m.latency,
            compiled_reference=m.compiled_reference,
            reference=reference,
        )
        result["input_size"] = self.cfg.dataset.image_size
        run.json("measure.json", result)

    def _write_meta(self, cell: Cell, run: RunDir, started: float, info: dict[str, Any]) -> None:
        run.json("config.json", cell.config)
        run.json(
            "meta.json",
            {
                **_environment(),
                "seeds": self.seeds,
                "run_id": cell.run_id,
                "started_at": started,
                "seconds": time.time() - started,
                **info,
            },
        )

    # -- cells ----------------------------------------------------------------------------

    def baseline(self) -> Any:
        """The group's trained baseline: from its checkpoint when done, trained otherwise."""
        from safetensors.torch import load_file, save

        from bench.models import create_model
        from bench.seeding import seed_everything
        from bench.train import state_dict_for_save

        cell = self.group.baseline
        run = self.store.run(cell.run_id)
        seed_everything(self.seeds["init"])
        mc = self.cfg.model
        model = create_model(
            mc.arch,
            len(self.data.class_names),
            head=mc.head,
            weights=mc.weights,
            grayscale=mc.grayscale,
            allow_download=mc.allow_download,
        )
        if self.store.is_done(cell.run_id):
            model.load_state_dict(load_file(run.path / "model.safetensors"))
            return model.eval()
        started = time.time()
        self._log_start(run, cell)
        result = self._fit(model, None, run)
        model = result.model
        run.raw("model.safetensors", save(state_dict_for_save(model)))
        run.parquet("history.parquet", result.history)
        extra = {"epochs_trained": result.epochs_trained, "best_epoch": result.best_epoch}
        self._evaluate(cell, model, run, extra)
        self._measure(model, run, None)
        self._write_meta(cell, run, started, {})
        run.finish()
        return model

    def variant(self, cell: Cell, baseline: Any) -> None:
        """Derive one variant from the baseline (fine-tuning through the same loop)."""
        from bench.compress import CompressContext, apply_chain

        run = self.store.run(cell.run_id)
        started = time.time()
        self._log_start(run, cell)
        histories = []

        def finetune(model: Any, epochs: int) -> Any:
            result = self._fit(model, epochs, run)
            histories.append(result.history.assign(finetune_round=len(histories)))
            return result.model

        context = CompressContext(
            calib=self._images(np.sort(self.split.train[:256])),
            finetune=finetune,
            example=self._images(self.split.test[:1]),
        )
        model = apply_chain(
            copy.deepcopy(baseline), cell.chain, seed=self.seeds["compress"], context=context
        )
        model.eval()
        info = dict(getattr(model, "cxr_compress", {}) or {})
        if histories:
            run.parquet("history.parquet", pd.concat(histories, ignore_index=True))
        self._evaluate(cell, model, run, {"compress": info})
        self._measure(model, run, baseline)
        self._write_meta(cell, run, started, {"compress": info})
        run.finish()

    def run(self) -> dict[str, str]:
        """Run every pending cell of the group; returns run_id → done | failed | skipped."""
        base_id = self.group.baseline.run_id
        pending = [c for c in self.group.variants if not self.store.is_done(c.run_id)]
        outcome = {c.run_id: "done" for c in self.group.cells if self.store.is_done(c.run_id)}
        if base_id in outcome and not pending:
            return outcome
        if base_id not in outcome and not self.store.claim(base_id, self.owner):
            return {**{c.run_id: "skipped" for c in self.group.cells}, **outcome}
        try:
            baseline = self.baseline()
            outcome[base_id] = "done"
        except Exception:
            self.store.run(base_id).fail(traceback.format_exc())
            return {**{c.run_id: "failed" for c in self.group.cells}, **outcome}
        finally:
            self.store.release(base_id, self.owner)
        for cell in pending:
            if not self.store.claim(cell.run_id, self.owner):
                outcome[cell.run_id] = "skipped"
                continue
            try:
                if not self.store.is_done(cell.run_id):  # another sweep may have finished it
                    self.variant(cell, baseline)
                outcome[cell.run_id] = "done"
            except Exception:
                self.store.run(cell.run_id).fail(traceback.format_exc())
                outcome[cell.run_id] = "failed"
            finally:
                self.store.release(cell.run_id, self.owner)
        return outcome


def _runs_anywhere(model: Any) -> bool:
    """Quantized models run on the CPU only; everything else may use the configured device."""
    return not (getattr(model, "cxr_compress", None) or {}).get("cpu_only", False)


def run_group(cfg: StudyConfig, data: StudyData, group: Group, owner: str) -> dict[str, str]:
    """Entry point for every executor: run one (seed, fold) group."""
    return GroupWorker(cfg, data, group, owner).run()


# --------------------------------------------------------------------------------------------
# The sweep


@dataclass
class SweepSummary:
    states: dict[str, str]  # run_id -> done | failed | skipped | pending
    errors: list[str]

    @property
    def failed(self) -> list[str]:
        return [r for r, s in self.states.items() if s == "failed"]

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for state in self.states.values():
            counts[state] = counts.get(state, 0) + 1
        return counts


def study_info(
    cfg: StudyConfig, dataset: CXRDataset, data: StudyData, groups: list[Group]
) -> dict[str, Any]:
    return {
        "schema": SCHEMA_VERSION,
        "study": cfg.study,
        "config": cfg.model_dump(mode="json"),
        "task": data.task,
        "class_names": data.class_names,
        "dataset": {
            "name": dataset.name,
            "n_images": len(dataset),
            "synthetic": dataset.name.startswith("synthcxr"),
        },
        "folds": len(data.splits),
        "pixels": data.pixels_path,  # decode-once cache, rows in dataset order (for PIE montages)
        "positives": [
            {
                "fold": s.fold,
                **{part: data.labels[idx].sum(0).tolist() for part, idx in s.parts().items()},
                **{f"n_{part}": len(idx) for part, idx in s.parts().items()},
            }
            for s in data.splits
        ],
        "cells": [
            {"run_id": c.run_id, "seed": c.seed, "fold": c.fold, "variant_id": c.variant_id}
            for g in groups
            for c in g.cells
        ],
    }


def run_study(
    cfg: StudyConfig, *, max_groups: int | None = None, progress: bool = True
) -> SweepSummary:
    """Run (or resume) every cell of a study; done cells are skipped, failures reported."""
    import socket
    import uuid

    from tqdm import tqdm

    from bench.executors import execute

    dataset, data = prepare(cfg)
    groups = plan(cfg, len(data.splits))
    store = Store(cfg.study_dir)
    store.write_study(study_info(cfg, dataset, data, groups))
    owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    states = {c.run_id: "done" for g in groups for c in g.cells if store.is_done(c.run_id)}
    todo = [g for g in groups if any(c.run_id not in states for c in g.cells)][:max_groups]
    errors: list[str] = []
    total = sum(len(g.cells) for g in groups)
    with tqdm(
        total=total, initial=len(states), unit="cell", disable=not progress, desc=cfg.study
    ) as bar:
        tasks = [(cfg, data, g, owner) for g in todo]
        for (_, _, group, _), result in execute(run_group, tasks, cfg.executor, store.root):
            if isinstance(result, BaseException):
                errors.append(
                    f"seed {group.seed} fold {group.fold}: {type(result).__name__}: {result}"
                )
                result = {c.run_id: "failed" for c in group.cells}
            states.update(result)
            bar.update(sum(1 for c in group.cells if result.get(c.run_id) != "skipped"))
    for g in groups:
        for c in g.cells:
            states.setdefault(c.run_id, "pending")
    for run_id, state in states.items():
        if state == "failed" and (store.runs / run_id / "error.txt").is_file():
            last = (store.runs / run_id / "error.txt").read_text().strip().splitlines()[-1:]
            errors.append(
                f"{run_id}: {last[0] if last else 'failed'} (see {store.runs / run_id / 'error.txt'})"
            )
    return SweepSummary(states, errors)


def study_status(study_dir: Path, workers: int = 1) -> tuple[pd.DataFrame, float | None]:
    """Per cell: seed, fold, variant, state; plus the estimated seconds left (None if unknown)."""
    store = Store(study_dir)
    info_path = store.root / "study.json"
    if not info_path.is_file():
        raise FileNotFoundError(
            f"{info_path}: not a study folder (no study.json); run `cxrbench run CONFIG` first"
        )
    info = json.loads(info_path.read_text())
    rows = []
    for cell in info["cells"]:
        state = store.state(cell["run_id"])
        seconds = None
        if state == "done":
            try:
                seconds = json.loads((store.runs / cell["run_id"] / "meta.json").read_text())[
                    "seconds"
                ]
            except (OSError, ValueError, KeyError):
                pass
        rows.append({**cell, "state": state, "seconds": seconds})
    table = pd.DataFrame(rows)
    table["is_baseline"] = table["variant_id"] == "baseline"
    left = None
    done = table.dropna(subset=["seconds"])
    if len(done):
        mean = done.groupby("is_baseline")["seconds"].mean()
        todo = table[table["state"].isin(["pending", "running", "failed"])]
        left = float(sum(mean.get(b, done["seconds"].mean()) for b in todo["is_baseline"])) / max(
            workers, 1
        )
    return table.drop(columns="is_baseline"), left
