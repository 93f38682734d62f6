"""Unstructured magnitude pruning (torch.nn.utils.prune) and the identity baseline.

Pruned weights are set to zero but stay in dense tensors: the model is no smaller and no
faster without sparse storage and sparse kernels (measure.py reports the sparse-encoded
size separately). Every variant makes the pruning permanent (``prune.remove``) so the
returned state dict is plain.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import prune

from bench.compress._common import (
    check_count,
    check_fraction,
    classifier_layer,
    copy_model,
    finetune,
    record_step,
)
from bench.compress._registry import CompressContext, register_variant

UNSTRUCTURED_NOTE = (
    "unstructured sparsity: weights are zero but stored and computed dense; "
    "no run-time saving without sparse kernels"
)

Targets = list[tuple[nn.Module, str]]


def prune_targets_named(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, module) of every Conv2d and Linear layer, in module order."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def prune_targets(model: nn.Module, include_head: bool = True) -> Targets:
    """Every Conv2d and Linear weight, optionally without the final classifier Linear."""
    head = classifier_layer(model) if not include_head else None
    return [(m, "weight") for _, m in prune_targets_named(model) if m is not head]


def _zero_fraction(targets: Targets) -> float:
    zeros = sum(int((getattr(m, n) == 0).sum()) for m, n in targets)
    return zeros / sum(getattr(m, n).numel() for m, n in targets)


def _make_permanent(targets: Targets) -> None:
    for module, name in targets:
        prune.remove(module, name)


def _global(targets: Targets, method: type[prune.BasePruningMethod], amount: float) -> None:
    prune.global_unstructured(targets, pruning_method=method, amount=amount)


def _one_shot_global(
    model: nn.Module,
    method: type[prune.BasePruningMethod],
    sparsity: float,
    include_head: bool = True,
    seed: int | None = None,
) -> tuple[nn.Module, Targets]:
    """A pruned copy (masks still attached) and its targets. A ``seed`` seeds the global RNG
    that RandomUnstructured draws from, inside a fork so the caller's stream is untouched."""
    out = copy_model(model)
    targets = prune_targets(out, include_head)
    if seed is None:
        _global(targets, method, sparsity)
        return out, targets
    device = next(out.parameters()).device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        _global(targets, method, sparsity)
    return out, targets


def _finish(model: nn.Module, source: nn.Module, targets: Targets, **info: object) -> nn.Module:
    """Remove the reparametrisation and record the achieved sparsity over the pruned tensors."""
    _make_permanent(targets)
    return record_step(
        model,
        source,
        family="prune",
        structured=False,
        achieved_sparsity=_zero_fraction(targets),
        pruned_tensors=len(targets),
        note=UNSTRUCTURED_NOTE,
        **info,
    )


@register_variant("baseline", family="baseline")
def baseline(model: nn.Module, *, seed: int, context: CompressContext | None = None) -> nn.Module:
    """The dense model unchanged (a copy, recorded as the baseline step)."""
    return record_step(copy_model(model), model, family="baseline", method="baseline")


@register_variant("l1_unstructured_global", family="prune")
def l1_unstructured_global(
    model: nn.Module,
    *,
    seed: int,
    context: CompressContext | None = None,
    sparsity: float,
    include_head: bool = True,
) -> nn.Module:
    """One-shot global L1 pruning: the ``sparsity`` smallest-|w| of all Conv2d/Linear weights."""
    sparsity = check_fraction("l1_unstructured_global", "sparsity", sparsity)
    out, targets = _one_shot_global(model, prune.L1Unstructured, sparsity, include_head)
    return _finish(
        out, model, targets, method="l1_global", sparsity=sparsity, include_head=include_head
    )


@register_variant("random_unstructured_global", family="prune")
def random_unstructured_global(
    model: nn.Module,
    *,
    seed: int,
    context: CompressContext | None = None,
    sparsity: float,
    include_head: bool = True,
) -> nn.Module:
    """Control: the same global budget as L1, but weights chosen uniformly at random (seeded)."""
    sparsity = check_fraction("random_unstructured_global", "sparsity", sparsity)
    out, targets = _one_shot_global(model, prune.RandomUnstructured, sparsity, include_head, seed)
    return _finish(
        out,
        model,
        targets,
        method="random_global",
        sparsity=sparsity,
        include_head=include_head,
        seed=seed,
    )


@register_variant("l1_unstructured_layerwise", family="prune")
def l1_unstructured_layerwise(
    model: nn.Module, *, seed: int, context: CompressContext | None = None, sparsity: float
) -> nn.Module:
    """L1 pruning of every Conv2d/Linear weight tensor to the same ``sparsity``."""
    sparsity = check_fraction("l1_unstructured_layerwise", "sparsity", sparsity)
    out = copy_model(model)
    targets = prune_targets(out)
    for module, name in targets:
        prune.l1_unstructured(module, name, amount=sparsity)
    return _finish(out, model, targets, method="l1_layerwise", sparsity=sparsity)


@register_variant("l1_unstructured_per_layer", family="prune")
def l1_unstructured_per_layer(
    model: nn.Module,
    *,
    seed: int,
    context: CompressContext | None = None,
    sparsities: dict[str, float],
) -> nn.Module:
    """L1 pruning of each named layer to its own sparsity (e.g. derived by
    ``cxrbench sensitivity --max-drop``); layers not named stay dense."""
    if not isinstance(sparsities, dict) or not sparsities:
        raise ValueError(
            "variant 'l1_unstructured_per_layer': sparsities must be a mapping layer -> fraction, "
            "e.g. {backbone.layer1.0.conv1: 0.5}; `cxrbench sensitivity --max-drop` prints one"
        )
    out = copy_model(model)
    modules = dict(out.named_modules())
    targets = []
    for layer, amount in sparsities.items():
        module = modules.get(layer)
        if not isinstance(module, (nn.Conv2d, nn.Linear)):
            raise ValueError(
                f"variant 'l1_unstructured_per_layer': {layer!r} is not a Conv2d/Linear layer of "
                f"this model; names look like {next(n for n, _ in prune_targets_named(out))!r}"
            )
        amount = check_fraction("l1_unstructured_per_layer", f"sparsities[{layer}]", amount)
        prune.l1_unstructured(module, "weight", amount=amount)
        targets.append((module, "weight"))
    return _finish(out, model, targets, method="l1_per_layer", sparsities=dict(sparsities))


@register_variant("l1_unstructured_finetune", family="prune")
def l1_unstructured_finetune(
    model: nn.Module,
    *,
    seed: int,
    context: CompressContext | None = None,
    sparsity: float,
    finetune_epochs: int = 1,
) -> nn.Module:
    """One-shot global L1, then fine-tuning with the masks fixed (pruned weights stay zero)."""
    sparsity = check_fraction("l1_unstructured_finetune", "sparsity", sparsity)
    check_count("l1_unstructured_finetune", "finetune_epochs", finetune_epochs, 0)
    out, _ = _one_shot_global(model, prune.L1Unstructured, sparsity)
    # the masks stay as forward pre-hooks while training, so gradients never revive a weight
    out = finetune(context, out, finetune_epochs, "l1_unstructured_finetune")
    targets = prune_targets(out)
    return _finish(
        out,
        model,
        targets,
        method="l1_global_finetune",
        sparsity=sparsity,
        finetune_epochs=finetune_epochs,
    )


@register_variant("iterative_l1", family="prune")
def iterative_l1(
    model: nn.Module,
    *,
    seed: int,
    context: CompressContext | None = None,
    steps: int = 3,
    rate: float = 0.2,
    finetune_epochs: int = 0,
) -> nn.Module:
    """``steps`` rounds of global L1, each removing ``rate`` of the *remaining* weights.

    Final sparsity is 1 − (1 − rate)^steps (3 × 20% → 48.8%). With ``finetune_epochs`` > 0
    the model is fine-tuned (masks fixed) after every round.
    """
    check_count("iterative_l1", "steps", steps, 1)
    rate = check_fraction("iterative_l1", "rate", rate)
    check_count("iterative_l1", "finetune_epochs", finetune_epochs, 0)
    out = copy_model(model)
    for _ in range(steps):
        # repeated pruning of a pruned tensor ranks only the still-unpruned entries
        _global(prune_targets(out), prune.L1Unstructured, rate)
        out = finetune(context, out, finetune_epochs, "iterative_l1")
    return _finish(
        out,
        model,
        prune_targets(out),
        method="l1_global_iterative",
        steps=steps,
        rate=rate,
        expected_sparsity=1 - (1 - rate) ** steps,
        finetune_epochs=finetune_epochs,
    )
