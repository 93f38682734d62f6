"""Configs: every shipped config validates; grids expand; every key is documented."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel

from bench.config import StudyConfig, chain_id, load_config, parse_config

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_validates(path):
    cfg = load_config(path)
    assert cfg.variant_chains()[0][0].name == "baseline"


def test_study_b_configs_have_thirty_seeds_and_twenty_sparsities():
    for name in ("nih_cxr_lt_resnet50", "mimic_cxr_lt_resnet50"):
        cfg = load_config(ROOT / "configs" / f"{name}.yaml")
        assert cfg.seeds == list(range(30))
        ids = [chain_id(c) for c in cfg.variant_chains()]
        grid = [i for i in ids if i.startswith("l1_unstructured_global")]
        assert len(grid) == 19  # 0.05 ... 0.95; sparsity 0 is the baseline


def test_grid_expands_to_sorted_kwarg_ids_without_repeats():
    cfg = parse_config(
        {
            "study": "g",
            "variants": [
                {"name": "baseline"},
                {
                    "name": "l1_unstructured_global",
                    "kwargs": {"sparsity": [0.5, 0.9], "include_head": [True, False]},
                },
                {
                    "name": "l1_unstructured_global",
                    "kwargs": {"sparsity": 0.5, "include_head": True},
                },
                {
                    "chain": [
                        {"name": "structured_channels", "kwargs": {"ratio": 0.5}},
                        {"name": "static_int8"},
                    ]
                },
            ],
        }
    )
    ids = [chain_id(c) for c in cfg.variant_chains()]
    assert ids == [
        "baseline",
        "l1_unstructured_global[include_head=True,sparsity=0.5]",
        "l1_unstructured_global[include_head=True,sparsity=0.9]",
        "l1_unstructured_global[include_head=False,sparsity=0.5]",
        "l1_unstructured_global[include_head=False,sparsity=0.9]",
        "structured_channels[ratio=0.5]+static_int8",
    ]


def test_seed_range_form():
    assert parse_config({"study": "s", "seeds": {"start": 2, "stop": 5}}).seeds == [2, 3, 4]


def _keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    out = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if (
            isinstance(annotation, type)
            and issubclass(annotation, BaseModel)
            and name not in ("dataset", "model", "training", "protocol", "measure", "executor")
        ):
            out += _keys(annotation, f"{prefix}{name}.")
        elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
            out += _keys(annotation, "")
        else:
            out.append(f"{prefix}{name}")
    return out


def test_every_config_key_is_documented():
    doc = (ROOT / "docs" / "config.md").read_text()
    missing = [k for k in _keys(StudyConfig) if f"`{k}`" not in doc]
    assert not missing, f"keys missing from docs/config.md: {missing}"
