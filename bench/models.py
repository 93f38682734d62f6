"""Classifiers for (N, 1, H, W) chest X-rays in [0, 1]: torchvision backbones plus a head.

Every model is ``nn.Sequential(input=InputAdapter, backbone=<torchvision net>)`` so that
compression, calibration and latency measurement need nothing but images, and the graph
stays FX-traceable, ``torch.export``-able and friendly to torch-pruning (no Python control
flow on tensor values, no custom autograd).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch import nn
from torchvision.models.resnet import BasicBlock, conv1x1

ARCHS = ("small_resnet", "resnet18", "resnet34", "resnet50", "densenet121", "efficientnet_b0")
HEADS = ("linear", "mlp")
GRAYSCALE = ("replicate", "adapt_conv1")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# dotted path of the final classifier Linear (replaced by the head) and of the first conv
_CLASSIFIER = {"densenet121": "classifier", "efficientnet_b0": "classifier.1"}
_CONV1 = {"densenet121": "features.conv0", "efficientnet_b0": "features.0.0"}


class WeightsError(ValueError):
    """Weights that cannot be used: the message names the file, what is wrong and the fix."""


class InputAdapter(nn.Module):
    """ImageNet normalisation, then grayscale → 3 channels (replicate) or kept as 1 channel.

    With ``channels=1`` (the backbone's conv1 was adapted) the single channel is normalised
    with the mean of the ImageNet means and stds, as timm does for 1-channel inputs.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        if channels not in (1, 3):
            raise ValueError(f"InputAdapter: channels must be 1 or 3, got {channels}")
        mean, std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
        if channels == 1:
            mean, std = mean.mean(0, keepdim=True), std.mean(0, keepdim=True)
        self.channels = channels
        self.register_buffer("mean", mean.view(1, channels, 1, 1), persistent=False)
        self.register_buffer("std", std.view(1, channels, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.expand(-1, self.channels, -1, -1) - self.mean) / self.std


class SmallResNet(nn.Module):
    """A ResNet of torchvision BasicBlocks, widths 16/32/64/128 (~0.7M params), for CPU demos.

    Attribute names follow torchvision's ResNet (conv1 … fc) so heads and conv1 adaptation
    treat it like the big ones.
    """

    def __init__(
        self, num_classes: int = 1000, widths: tuple[int, ...] = (16, 32, 64, 128), blocks: int = 2
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, widths[0], kernel_size=3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        layers, inplanes = [], widths[0]
        for i, width in enumerate(widths):
            stride = 1 if i == 0 else 2
            down = None
            if stride != 1 or inplanes != width:
                down = nn.Sequential(conv1x1(inplanes, width, stride), nn.BatchNorm2d(width))
            stage = [BasicBlock(inplanes, width, stride, down)]
            stage += [BasicBlock(width, width) for _ in range(blocks - 1)]
            layers.append(nn.Sequential(*stage))
            inplanes = width
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(inplanes, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def imagenet_checkpoint(arch: str) -> tuple[Any, Path]:
    """torchvision's ImageNet weights enum for ``arch`` and its file in the torch hub cache."""
    if arch not in ARCHS[1:]:
        raise WeightsError(
            f"model.weights: 'imagenet' is not available for arch {arch!r}; "
            f"use one of {list(ARCHS[1:])} or weights: none"
        )
    enum = torchvision.models.get_model_weights(arch).IMAGENET1K_V1
    path = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(enum.url)
    return enum, path


def create_model(
    arch: str,
    num_classes: int,
    *,
    head: str = "linear",
    weights: str = "none",
    grayscale: str = "replicate",
    allow_download: bool = False,
) -> nn.Sequential:
    """Build ``Sequential(input=InputAdapter, backbone=net)`` with a ``head`` for ``num_classes``.

    weights: "none"; "imagenet" (torchvision's IMAGENET1K_V1, read from the torch hub
    cache, downloaded only with ``allow_download``); or a path to a ``.safetensors`` /
    ``torch.save`` state dict, either of a whole model from this function or of a bare
    torchvision backbone (its classifier keys are then ignored: the head is new).
    """
    for name, value, allowed in (
        ("arch", arch, ARCHS),
        ("head", head, HEADS),
        ("grayscale", grayscale, GRAYSCALE),
    ):
        if value not in allowed:
            raise ValueError(f"model.{name}: {value!r} is not one of {list(allowed)}")
    if num_classes < 1:
        raise ValueError(f"create_model: num_classes must be >= 1, got {num_classes}")
    net = _backbone(arch, weights, allow_download)
    file_state = None
    if weights not in ("none", "imagenet"):
        file_state = read_state_dict(weights)
        if not any(k.startswith("backbone.") for k in file_state):
            _load_backbone_state(net, arch, file_state, weights)
            file_state = None
    _set_module(
        net,
        _CLASSIFIER.get(arch, "fc"),
        _make_head(head, _classifier(net, arch).in_features, num_classes),
    )
    if grayscale == "adapt_conv1":
        _adapt_conv1(net, _CONV1.get(arch, "conv1"))
    model = nn.Sequential(
        OrderedDict(input=InputAdapter(1 if grayscale == "adapt_conv1" else 3), backbone=net)
    )
    if file_state is not None:
        _load_checked(model, file_state, weights, "a model saved by cxrbench")
    model.cxr_info = {
        "arch": arch,
        "head": head,
        "weights": weights,
        "grayscale": grayscale,
        "num_classes": num_classes,
    }
    return model


def _backbone(arch: str, weights: str, allow_download: bool) -> nn.Module:
    """The torchvision network with its 1000-class classifier, ImageNet weights if asked."""
    if arch == "small_resnet":
        if weights == "imagenet":
            imagenet_checkpoint(arch)  # raises the clear error
        return SmallResNet()
    if weights != "imagenet":
        return torchvision.models.get_model(arch, weights=None)
    enum, path = imagenet_checkpoint(arch)
    if not path.is_file() and not allow_download:
        raise WeightsError(
            f"model.weights: imagenet: {path} not found. Download {enum.url} on a machine with "
            f"network and copy it to {path} (or set TORCH_HOME), or set model.allow_download: true"
        )
    return torchvision.models.get_model(arch, weights=enum)


def _make_head(head: str, features: int, num_classes: int) -> nn.Module:
    if head == "linear":
        return nn.Linear(features, num_classes)
    return nn.Sequential(
        nn.Linear(features, 512),
        nn.BatchNorm1d(512),
        nn.ReLU(inplace=True),
        nn.Dropout(0.5),
        nn.Linear(512, num_classes),
    )


def _classifier(net: nn.Module, arch: str) -> nn.Linear:
    return net.get_submodule(_CLASSIFIER.get(arch, "fc"))


def _set_module(root: nn.Module, dotted: str, module: nn.Module) -> None:
    parent, _, name = dotted.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, name, module)


def _adapt_conv1(net: nn.Module, dotted: str) -> None:
    """Replace the RGB first conv by a 1-channel conv whose kernel is the sum of the RGB ones."""
    old = net.get_submodule(dotted)
    new = nn.Conv2d(
        1,
        old.out_channels,
        old.kernel_size,
        old.stride,
        old.padding,
        old.dilation,
        old.groups,
        old.bias is not None,
    )
    with torch.no_grad():
        new.weight.copy_(old.weight.sum(1, keepdim=True))
        if old.bias is not None:
            new.bias.copy_(old.bias)
    _set_module(net, dotted, new)


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """A state dict from ``.safetensors`` or a ``torch.save`` file, never unpickling objects."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(
            f"model.weights: {path} not found; give 'none', 'imagenet' or the path to a "
            ".safetensors / .pt state-dict file"
        )
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as exc:  # safetensors raises its own error types
            raise WeightsError(
                f"model.weights: {path} is not a valid safetensors file: {exc}"
            ) from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError for objects, RuntimeError for non-torch files
        raise WeightsError(
            f"model.weights: {path} could not be read as a plain state dict with "
            f"torch.load(weights_only=True) ({type(exc).__name__}: {str(exc).splitlines()[0]}); "
            "save weights with torch.save(model.state_dict(), path) or as .safetensors"
        ) from None
    if (
        isinstance(state, Mapping)
        and "state_dict" in state
        and isinstance(state["state_dict"], Mapping)
    ):
        state = state["state_dict"]
    if (
        not isinstance(state, Mapping)
        or not state
        or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items())
    ):
        raise WeightsError(
            f"model.weights: {path} holds a {type(state).__name__}, not a state dict "
            "(a mapping of parameter names to tensors); save torch.save(model.state_dict(), path)"
        )
    return dict(state)


def _load_backbone_state(
    net: nn.Module, arch: str, state: dict[str, torch.Tensor], source: str
) -> None:
    """Load a bare torchvision-layout state dict, ignoring classifier keys on both sides."""
    prefix = _CLASSIFIER.get(arch, "fc") + "."
    state = {k: v for k, v in state.items() if not k.startswith(prefix)}
    target = {k: v for k, v in net.state_dict().items() if not k.startswith(prefix)}
    _check_keys(target, state, source, f"a torchvision {arch} backbone")
    net.load_state_dict(state, strict=False)


def _load_checked(model: nn.Module, state: dict[str, torch.Tensor], source: str, kind: str) -> None:
    _check_keys(model.state_dict(), state, source, kind)
    model.load_state_dict(state)


def _check_keys(
    target: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor], source: str, kind: str
) -> None:
    """Raise a ValueError listing missing, unexpected and wrongly-shaped keys."""
    missing = sorted(set(target) - set(state))
    unexpected = sorted(set(state) - set(target))
    shapes = [
        f"{k} {tuple(state[k].shape)} vs model {tuple(target[k].shape)}"
        for k in sorted(set(state) & set(target))
        if state[k].shape != target[k].shape
    ]
    if missing or unexpected or shapes:
        parts = [
            f"{label} ({len(items)}): {items[:5]}{' …' if len(items) > 5 else ''}"
            for label, items in (
                ("missing", missing),
                ("unexpected", unexpected),
                ("shape mismatch", shapes),
            )
            if items
        ]
        raise WeightsError(
            f"model.weights: {source} does not match {kind}: "
            + "; ".join(parts)
            + ". Check model.arch, model.head, model.grayscale and the number of classes."
        )
