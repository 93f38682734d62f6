"""Study configuration: YAML validated with pydantic; every key documented in docs/config.md."""

from __future__ import annotations

import difflib
import itertools
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


class ConfigError(ValueError):
    """A config that cannot be used; the message names the key path and the fix."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SyntheticConfig(_Section):
    n_images: int = Field(3000, ge=20)
    seed: int = 0


class CsvColumns(_Section):
    path_column: str = "path"
    label_columns: list[str] | None = None
    patient_column: str | None = None
    label_column: str | None = None  # single-label CSVs: one column holding the class name


class DatasetConfig(_Section):
    kind: Literal["synthetic", "imagefolder", "cxr_lt", "nih_data_entry", "medmnist", "csv"] = (
        "synthetic"
    )
    root: Path | None = None
    files: dict[str, Path] = Field(default_factory=dict)
    columns: CsvColumns = CsvColumns()
    synthetic: SyntheticConfig = SyntheticConfig()
    image_size: int = Field(64, ge=16, le=1024)
    cache_dir: Path = Path(".cache/cxrbench")
    missing_positives: Literal["warn", "error"] = "warn"
    decode_workers: int = Field(0, ge=0)


class ModelConfig(_Section):
    arch: Literal[
        "small_resnet", "resnet18", "resnet34", "resnet50", "densenet121", "efficientnet_b0"
    ] = "small_resnet"
    head: Literal["linear", "mlp"] = "linear"
    weights: str = "none"  # none | imagenet | path to a .safetensors / state-dict file
    allow_download: bool = False
    grayscale: Literal["replicate", "adapt_conv1"] = "replicate"


class AugmentConfig(_Section):
    hflip: bool = True
    rotation: float = Field(10.0, ge=0, le=180)
    brightness: float = Field(0.1, ge=0, le=1)
    contrast: float = Field(0.1, ge=0, le=1)


class TrainingConfig(_Section):
    epochs: int = Field(10, ge=1)
    batch_size: int = Field(64, ge=1)
    eval_batch_size: int = Field(256, ge=1)
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    schedule: Literal["none", "cosine"] = "none"
    patience: int | None = Field(None, ge=1)
    loss: Literal["auto", "ce", "bce", "focal"] = "auto"
    focal_gamma: float = Field(2.0, ge=0)
    class_weights: bool = False
    pos_weight: bool = False
    sampler: Literal["none", "weighted"] = "none"
    augment: AugmentConfig = AugmentConfig()
    amp: Literal["none", "bf16", "fp16"] = "none"
    channels_last: bool = False
    compile: bool = False
    threads: int | None = Field(None, ge=1)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threshold: Literal["max_f1", "youden"] = "max_f1"
    keep_last: bool = False
    max_batches_per_epoch: int | None = Field(None, ge=1)


class ProtocolConfig(_Section):
    kind: Literal["holdout", "kfold", "official"] = "holdout"
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)
    k: int = Field(5, ge=2)
    val_fraction: float = Field(0.15, gt=0, lt=1)
    split_seed: int = 0

    @field_validator("fractions")
    @classmethod
    def _sum_to_one(cls, v: tuple[float, float, float]) -> tuple[float, float, float]:
        if abs(sum(v) - 1) > 1e-6 or min(v) <= 0:
            raise ValueError(f"train/val/test fractions must be positive and sum to 1, got {v}")
        return v


class VariantSpec(_Section):
    """One compression step: a registered variant name and its keyword arguments."""

    name: str
    kwargs: dict[str, Any] = Field(default_factory=dict)


class VariantEntry(_Section):
    """A variant, or a chain of variants applied in order (e.g. prune then quantize).

    A list value in ``kwargs`` is a grid: the entry expands into one variant per value
    (several lists expand to their product). Use ``grid: false`` to pass a list as-is.
    """

    name: str | None = None
    kwargs: dict[str, Any] = Field(default_factory=dict)
    chain: list[VariantSpec] | None = None
    grid: bool = True

    @model_validator(mode="after")
    def _one_form(self) -> VariantEntry:
        if (self.name is None) == (self.chain is None):
            raise ValueError(
                "a variant entry needs either 'name' (with optional 'kwargs') or 'chain'"
            )
        return self

    def expand(self) -> list[tuple[VariantSpec, ...]]:
        """The concrete variant chains this entry stands for."""
        steps = (
            self.chain
            if self.chain is not None
            else [VariantSpec(name=self.name, kwargs=self.kwargs)]
        )
        options = []
        for step in steps:
            keys = sorted(step.kwargs)
            values = [
                step.kwargs[k]
                if self.grid and isinstance(step.kwargs[k], list)
                else [step.kwargs[k]]
                for k in keys
            ]
            options.append(
                [
                    VariantSpec(name=step.name, kwargs=dict(zip(keys, combo, strict=True)))
                    for combo in itertools.product(*values)
                ]
            )
        return [tuple(c) for c in itertools.product(*options)]


class MeasureConfig(_Section):
    latency: bool = True
    threads: int = Field(1, ge=1)
    batch_sizes: tuple[int, ...] = (1, 32)
    warmup: int = Field(3, ge=0)
    repeats: int = Field(10, ge=1)
    compiled_reference: bool = False


class SlurmConfig(_Section):
    """SLURM through submitit; ``cluster: local`` runs the same jobs as local processes."""

    cluster: Literal["slurm", "local"] = "slurm"
    partition: str | None = None
    timeout_min: int = Field(240, ge=1)
    cpus_per_task: int = Field(4, ge=1)
    gpus_per_node: int = Field(0, ge=0)
    mem_gb: int = Field(32, ge=1)
    extra: dict[str, Any] = Field(default_factory=dict)


class ExecutorConfig(_Section):
    kind: Literal["local", "dask", "slurm"] = "local"
    workers: int = Field(1, ge=1)
    threads_per_worker: int = Field(1, ge=1)
    scheduler: str | None = None
    retries: int = Field(1, ge=0)
    slurm: SlurmConfig = SlurmConfig()


class StudyConfig(_Section):
    study: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    output: Path = Path("results")
    task: Literal["binary", "multiclass", "multilabel"] = "multilabel"
    dataset: DatasetConfig = DatasetConfig()
    model: ModelConfig = ModelConfig()
    training: TrainingConfig = TrainingConfig()
    protocol: ProtocolConfig = ProtocolConfig()
    seeds: list[int] = Field(default_factory=lambda: [0])
    variants: list[VariantEntry] = Field(default_factory=lambda: [VariantEntry(name="baseline")])
    measure: MeasureConfig = MeasureConfig()
    executor: ExecutorConfig = ExecutorConfig()

    @field_validator("seeds", mode="before")
    @classmethod
    def _seed_range(cls, v: Any) -> Any:
        if isinstance(v, dict):  # {start: 0, stop: 30}
            return list(range(int(v.get("start", 0)), int(v["stop"])))
        return v

    @property
    def study_dir(self) -> Path:
        return self.output / self.study

    def variant_chains(self) -> list[tuple[VariantSpec, ...]]:
        """Every concrete variant chain, grids expanded, in config order, without repeats."""
        seen: dict[str, tuple[VariantSpec, ...]] = {}
        for entry in self.variants:
            for chain in entry.expand():
                seen.setdefault(chain_id(chain), chain)
        return list(seen.values())


def chain_id(chain: tuple[VariantSpec, ...]) -> str:
    """Stable variant id: ``name[k=v,...]`` per step, joined with ``+``."""
    from bench.compress import variant_id

    return "+".join(variant_id(step.name, step.kwargs) for step in chain)


def _suggest(loc: tuple[Any, ...], model: type[BaseModel]) -> str:
    """'did you mean' for a misspelt key, searching the section the key sits in."""
    section: Any = model
    for part in loc[:-1]:
        fields = getattr(section, "model_fields", None)
        if not fields or part not in fields:
            return ""
        section = fields[part].annotation
    fields = getattr(section, "model_fields", None)
    if not fields:
        return ""
    close = difflib.get_close_matches(str(loc[-1]), list(fields), n=1)
    return f"; did you mean '{close[0]}'?" if close else f"; allowed keys: {', '.join(fields)}"


def parse_config(data: dict[str, Any], source: str = "<config>") -> StudyConfig:
    """Validate a config mapping; errors name the key path, the problem and a suggestion."""
    try:
        cfg = StudyConfig.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            path = ".".join(str(p) for p in loc) or "(top level)"
            hint = _suggest(loc, StudyConfig) if err["type"] == "extra_forbidden" else ""
            lines.append(f"  {path}: {err['msg']}{hint}")
        raise ConfigError(f"{source}: invalid config\n" + "\n".join(lines)) from None
    from bench.compress import validate_chain

    for chain in cfg.variant_chains():
        try:
            validate_chain(chain)
        except ValueError as exc:
            raise ConfigError(f"{source}: variants: {exc}") from None
    return cfg


def load_config(path: str | Path) -> StudyConfig:
    """Read and validate a YAML config (``yaml.safe_load``)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"{path}: config file not found; pass the path to a YAML file (see configs/)"
        )
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: expected a mapping of sections at the top level, got {type(data).__name__}"
        )
    return parse_config(data, str(path))
