"""Structured channel pruning with torch-pruning: channels are removed, the model shrinks.

torch-pruning traces the model once to find groups of coupled layers (a conv, its
BatchNorm, the next conv's input channels, residual additions) and removes whole channels
from every member of a group, ranked by the group's summed weight magnitude. The final
classifier Linear is ignored so the output keeps its shape; the first conv keeps its input
channels because they are tied to the input.

The pruned model has a different structure from ``create_model``'s: its state dict cannot
be loaded back into a fresh model of the same arch.
"""

from __future__ import annotations

import torch_pruning as tp
from torch import nn

from bench.compress._common import (
    check_count,
    check_fraction,
    classifier_layer,
    copy_model,
    example_input,
    finetune,
    record_step,
)
from bench.compress._registry import CompressContext, register_variant

IMPORTANCE_P = {"l1": 1, "l2": 2}


@register_variant("structured_channels", family="structured")
def structured_channels(
    model: nn.Module,
    *,
    seed: int,
    context: CompressContext | None = None,
    ratio: float = 0.5,
    importance: str = "l1",
    round_to: int = 8,
    finetune_epochs: int = 0,
) -> nn.Module:
    """Remove ``ratio`` of the channels of every prunable layer (group L1/L2 magnitude).

    round_to: kept channel counts are rounded to a multiple of this (hardware-friendly);
    1 disables rounding. ``finetune_epochs`` > 0 fine-tunes the smaller model afterwards.
    """
    name = "structured_channels"
    ratio = check_fraction(name, "ratio", ratio)
    check_count(name, "round_to", round_to, 1)
    check_count(name, "finetune_epochs", finetune_epochs, 0)
    if importance not in IMPORTANCE_P:
        raise ValueError(
            f"variant {name!r}: importance must be one of {sorted(IMPORTANCE_P)}, got {importance!r}"
        )
    out = copy_model(model)
    example = example_input(context, name).to(next(out.parameters()).device)
    params_before = sum(p.numel() for p in out.parameters())
    was_training = out.training
    out.eval()  # tracing runs a forward pass: keep BatchNorm running statistics untouched
    pruner = tp.pruner.MetaPruner(
        out,
        example,
        importance=tp.importance.GroupMagnitudeImportance(p=IMPORTANCE_P[importance]),
        pruning_ratio=ratio,
        ignored_layers=[classifier_layer(out)],
        round_to=None if round_to == 1 else round_to,
    )
    pruner.step()
    out.train(was_training)
    out = finetune(context, out, finetune_epochs, name)
    params_after = sum(p.numel() for p in out.parameters())
    return record_step(
        out,
        model,
        family="structured",
        method="channels",
        structured=True,
        ratio=ratio,
        importance=importance,
        round_to=round_to,
        finetune_epochs=finetune_epochs,
        params_before=params_before,
        params_after=params_after,
    )
