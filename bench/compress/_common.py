"""Plumbing shared by the variant modules: argument checks, fine-tuning, the step record.

Every variant records what it did on the returned model as ``model.cxr_compress``: a
JSON-able dict holding every step of the chain so far (``steps``) with the latest step's
keys merged on top, so ``model.cxr_compress["achieved_sparsity"]`` reads directly.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from bench.compress._registry import CompressContext

ATTR = "cxr_compress"


def copy_model(model: nn.Module) -> nn.Module:
    """A deep copy, so that no variant mutates the model it was given."""
    return copy.deepcopy(model)


def record_step(model: nn.Module, source: nn.Module, **info: Any) -> nn.Module:
    """Attach ``info`` to ``model`` after the steps already recorded on ``source``."""
    steps = list((getattr(source, ATTR, None) or {}).get("steps", [])) + [info]
    merged: dict[str, Any] = {}
    for step in steps:
        merged.update(step)
    merged["steps"] = steps
    setattr(model, ATTR, merged)
    return model


def check_fraction(variant: str, name: str, value: Any) -> float:
    """``value`` as a float in [0, 1), or a ValueError naming the variant and argument."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(
            f"variant {variant!r}: {name} must be a number in [0, 1) (the fraction of weights "
            f"to remove), got {value!r}; e.g. {name}: 0.5"
        )
    return float(value)


def check_count(variant: str, name: str, value: Any, minimum: int) -> int:
    """``value`` as an int >= ``minimum``, or a ValueError naming the variant and argument."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(
            f"variant {variant!r}: {name} must be an integer >= {minimum}, got {value!r}"
        )
    return value


def finetune(
    context: CompressContext | None, model: nn.Module, epochs: int, variant: str
) -> nn.Module:
    """Run the suite's fine-tuning callback for ``epochs`` (no-op at 0)."""
    check_count(variant, "finetune_epochs", epochs, 0)
    if epochs == 0:
        return model
    if context is None or context.finetune is None:
        raise ValueError(
            f"variant {variant!r}: finetune_epochs={epochs} needs a fine-tuning callback "
            "(context.finetune, set by the runner); use finetune_epochs=0 outside the runner"
        )
    return context.finetune(model, epochs)


def calib_images(context: CompressContext | None, n: int, variant: str) -> torch.Tensor:
    """The first ``n`` calibration images (float (N, 1, H, W) in [0, 1])."""
    calib = None if context is None else context.calib
    if calib is None or len(calib) == 0:
        raise ValueError(
            f"variant {variant!r} needs calibration images (context.calib, a float tensor "
            "(N, 1, H, W) in [0, 1]); the runner passes training images"
        )
    return torch.as_tensor(calib[:n], dtype=torch.float32)


def example_input(context: CompressContext | None, variant: str) -> torch.Tensor:
    """One input batch for tracing: ``context.example``, else the first calibration image."""
    if context is not None and context.example is not None:
        return torch.as_tensor(context.example, dtype=torch.float32)
    return calib_images(context, 1, variant)


def classifier_layer(model: nn.Module) -> nn.Linear:
    """The final classifier: the last ``nn.Linear`` in module order (torchvision convention)."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError("model has no nn.Linear classifier layer; cannot locate the head")
    return linears[-1]


def _choice(*allowed: str) -> Any:
    def check(variant: str, name: str, value: Any) -> str:
        if value not in allowed:
            raise ValueError(
                f"variant {variant!r}: {name} must be one of {list(allowed)}, got {value!r}"
            )
        return value

    return check


#: Argument checks by name, shared by every variant; the registry runs them when a config
#: loads, so a bad value fails before any training (the variants run them again when applied).
ARGUMENT_CHECKS: dict[str, Any] = {
    "sparsity": check_fraction,
    "ratio": check_fraction,
    "rate": check_fraction,
    "steps": lambda v, n, x: check_count(v, n, x, 1),
    "finetune_epochs": lambda v, n, x: check_count(v, n, x, 0),
    "calib_images": lambda v, n, x: check_count(v, n, x, 1),
    "round_to": lambda v, n, x: check_count(v, n, x, 1),
    "importance": _choice("l1", "l2"),
    "path": _choice("fx", "pt2e"),
}


def check_arguments(variant: str, kwargs: dict[str, Any]) -> None:
    """Run the shared check of every named argument in ``kwargs``."""
    for name, value in kwargs.items():
        if name in ARGUMENT_CHECKS:
            ARGUMENT_CHECKS[name](variant, name, value)
