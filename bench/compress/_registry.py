"""Registry of compression variants (timm style): one plain function per variant.

A variant is ``fn(model, *, seed, context, **hyper) -> model``. ``context`` is a
:class:`CompressContext` giving what some variants need: calibration images and a
fine-tuning callback that runs the suite's one training loop.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

_VARIANTS: dict[str, VariantInfo] = {}


@dataclass(frozen=True)
class VariantInfo:
    name: str
    family: str
    fn: Callable[..., Any]
    hyper: dict[str, Any]  # keyword -> default (inspect.Parameter.empty when required)

    def check(self, kwargs: dict[str, Any]) -> None:
        unknown = sorted(set(kwargs) - set(self.hyper))
        if unknown:
            raise ValueError(
                f"variant {self.name!r} has no argument(s) {unknown}; "
                f"it takes {sorted(self.hyper) or 'no arguments'}"
            )
        missing = [
            k for k, d in self.hyper.items() if d is inspect.Parameter.empty and k not in kwargs
        ]
        if missing:
            raise ValueError(f"variant {self.name!r} needs argument(s) {missing}")
        from bench.compress._common import check_arguments  # imports this module: import late

        check_arguments(self.name, kwargs)


@dataclass
class CompressContext:
    """What a variant may use besides the model.

    calib: float tensor (N, 1, H, W) in [0, 1] of training images, for calibration.
    finetune: ``finetune(model, epochs) -> model`` trains with the suite's loop from the
    current weights on the cell's training split (validation for early stopping).
    example: one input batch for tracing / measuring.
    """

    calib: Any = None
    finetune: Callable[[Any, int], Any] | None = None
    example: Any = None


def register_variant(
    name: str, *, family: str
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: register ``fn`` under ``name``; its keyword-only params are its hyper-parameters."""

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        if name in _VARIANTS:
            raise ValueError(f"variant {name!r} registered twice")
        params = inspect.signature(fn).parameters
        hyper = {
            k: p.default
            for k, p in params.items()
            if p.kind is inspect.Parameter.KEYWORD_ONLY and k not in ("seed", "context")
        }
        _VARIANTS[name] = VariantInfo(name, family, fn, hyper)
        return fn

    return wrap


def get_variant(name: str) -> VariantInfo:
    if name not in _VARIANTS:
        import difflib

        close = difflib.get_close_matches(name, list(_VARIANTS), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(
            f"unknown variant {name!r}{hint} Known variants: {', '.join(sorted(_VARIANTS))}"
        )
    return _VARIANTS[name]


def list_variants(family: str | None = None) -> list[str]:
    return sorted(n for n, v in _VARIANTS.items() if family is None or v.family == family)


def variant_id(name: str, kwargs: dict[str, Any]) -> str:
    """``name[k=v,...]`` with sorted keys; ``name`` alone when there are no kwargs."""
    if not kwargs:
        return name
    return f"{name}[{','.join(f'{k}={kwargs[k]}' for k in sorted(kwargs))}]"


def validate_chain(chain: Any) -> None:
    """Fail early (at config load) on unknown names or keywords in a chain of steps."""
    for step in chain:
        get_variant(step.name).check(step.kwargs)


def apply_chain(model: Any, chain: Any, *, seed: int, context: CompressContext) -> Any:
    """Apply each step of a variant chain in order."""
    for step in chain:
        model = get_variant(step.name).fn(model, seed=seed, context=context, **step.kwargs)
    return model
