"""Quantization (int8) and reduced precision (fp16 / bf16).

int8 uses PyTorch's FX graph mode (``torch.ao.quantization.quantize_fx``) with the qconfig
of the active quantized engine (``x86`` on x86 CPUs): conv-bn-relu are fused, weights are
int8 per channel, activations uint8 per tensor. The PT2E path (torch.export → torchao's
X86InductorQuantizer) is kept behind ``static_int8(path="pt2e")`` but fails on the pinned
torch 2.14.1 / torchao 0.18.0 for ResNets (see docs/compression.md). Quantized models run
on the CPU only; they are recorded with ``cpu_only: True``.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

import torch
from torch import nn
from torch.ao.quantization import (
    get_default_qat_qconfig_mapping,
    get_default_qconfig_mapping,
    quantize_dynamic,
)
from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx, prepare_qat_fx

from bench.compress._common import calib_images as _calib_images
from bench.compress._common import (
    check_count,
    copy_model,
    example_input,
    finetune,
    record_step,
)
from bench.compress._registry import CompressContext, register_variant
from bench.compress.measure import count_macs

CALIB_BATCH = 32
HALF_NOTE = (
    "{dtype} weights and activations; on CPUs without native half-precision support "
    "convolutions are far slower than fp32 (intended for GPUs)"
)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Hide torch.ao's deprecation notices (the FX path is what works on the pinned versions)."""
    with warnings.catch_warnings():
        for pattern in (
            "torch.ao.quantization is deprecated",
            "Please use quant_min and quant_max",
            "torch.quantize_per_tensor, torch.quantize_per_channel",
        ):
            warnings.filterwarnings("ignore", message=pattern)
        yield


def _float_cpu_copy(model: nn.Module) -> nn.Module:
    return copy_model(model).to("cpu").float()


def _int8_record(
    model: nn.Module,
    source: nn.Module,
    float_model: nn.Module,
    example: torch.Tensor,
    **info: object,
) -> nn.Module:
    """Record an int8 step; MACs are counted on the float model (quantized ops are not)."""
    return record_step(
        model,
        source,
        family="quantize",
        bits=8,
        cpu_only=True,
        float_macs=count_macs(float_model, example[:1]),
        float_macs_input=list(example[:1].shape),
        **info,
    )


@torch.no_grad()
def _calibrate(model: nn.Module, images: torch.Tensor) -> None:
    for batch in images.split(CALIB_BATCH):
        model(batch)


@register_variant("dynamic_int8", family="quantize")
def dynamic_int8(
    model: nn.Module, *, seed: int, context: CompressContext | None = None
) -> nn.Module:
    """int8 weights (activations quantized on the fly) for nn.Linear only, as in study A.

    On a ResNet this touches only the head: convolutions stay fp32.
    """
    float_model = _float_cpu_copy(model).eval()
    with _quiet():
        out = quantize_dynamic(copy_model(float_model), {nn.Linear}, dtype=torch.qint8)
    return _int8_record(
        out,
        model,
        float_model,
        example_input(context, "dynamic_int8"),
        method="dynamic_int8",
        path="eager",
        scope="Linear",
        note="dynamic int8 quantizes nn.Linear only; convolutions stay fp32",
    )


@register_variant("static_int8", family="quantize")
def static_int8(
    model: nn.Module,
    *,
    seed: int,
    context: CompressContext | None = None,
    calib_images: int = 64,
    path: str = "fx",
) -> nn.Module:
    """Post-training static int8 of the whole network, calibrated on ``calib_images`` images.

    path: "fx" (FX graph mode, works on the pinned versions) or "pt2e" (torch.export +
    torchao X86InductorQuantizer; raises a RuntimeError where it fails).
    """
    name = "static_int8"
    check_count(name, "calib_images", calib_images, 1)
    if path not in ("fx", "pt2e"):
        raise ValueError(f"variant {name!r}: path must be 'fx' or 'pt2e', got {path!r}")
    images = _calib_images(context, calib_images, name).cpu()
    example = example_input(context, name)
    float_model = _float_cpu_copy(model).eval()
    prepare = _static_fx if path == "fx" else _static_pt2e
    out, backend = prepare(copy_model(float_model), example, images)
    return _int8_record(
        out,
        model,
        float_model,
        example,
        method="static_int8",
        path=path,
        backend=backend,
        scope="all",
        calib_images=len(images),
    )


def _static_fx(
    model: nn.Module, example: torch.Tensor, images: torch.Tensor
) -> tuple[nn.Module, str]:
    backend = torch.backends.quantized.engine
    with _quiet():
        prepared = prepare_fx(model, get_default_qconfig_mapping(backend), (example,))
        _calibrate(prepared, images)
        return convert_fx(prepared), backend


def _static_pt2e(
    model: nn.Module, example: torch.Tensor, images: torch.Tensor
) -> tuple[nn.Module, str]:
    import torchao
    import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer as xiq
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    quantizer = xiq.X86InductorQuantizer()
    quantizer.set_global(xiq.get_default_x86_inductor_quantization_config())
    try:
        exported = torch.export.export(model, (example,)).module()
        prepared = prepare_pt2e(exported, quantizer)
    except Exception as exc:  # the quantizer's annotation fails on some graphs
        raise RuntimeError(
            f"static_int8 path='pt2e' failed on torch {torch.__version__} / torchao "
            f"{torchao.__version__}: {type(exc).__name__}: {exc}. Use path='fx' (the default)."
        ) from exc
    _calibrate(prepared, images)
    return convert_pt2e(prepared), "x86_inductor"


@register_variant("qat_int8", family="quantize")
def qat_int8(
    model: nn.Module, *, seed: int, context: CompressContext | None = None, finetune_epochs: int = 1
) -> nn.Module:
    """Quantization-aware training: fake-quantized fine-tuning, then conversion to int8.

    The fine-tuning callback receives the QAT-prepared GraphModule (on the CPU).
    """
    name = "qat_int8"
    check_count(name, "finetune_epochs", finetune_epochs, 1)
    example = example_input(context, name)
    float_model = _float_cpu_copy(model).eval()
    backend = torch.backends.quantized.engine
    with _quiet():
        prepared = prepare_qat_fx(
            copy_model(float_model).train(), get_default_qat_qconfig_mapping(backend), (example,)
        )
        prepared = finetune(context, prepared, finetune_epochs, name)
        out = convert_fx(prepared.cpu().eval())
    return _int8_record(
        out,
        model,
        float_model,
        example,
        method="qat_int8",
        path="fx",
        backend=backend,
        scope="all",
        finetune_epochs=finetune_epochs,
    )


class CastBoundary(nn.Module):
    """Runs ``model`` in ``dtype`` but takes and returns float32, casting at the boundary."""

    def __init__(self, model: nn.Module, dtype: torch.dtype) -> None:
        super().__init__()
        self.model = model.to(dtype)
        self.dtype = dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.to(self.dtype)).float()


def _half(model: nn.Module, dtype: torch.dtype, label: str) -> nn.Module:
    out = CastBoundary(copy_model(model), dtype)
    return record_step(
        out,
        model,
        family="precision",
        method=label,
        bits=16,
        dtype=label,
        note=HALF_NOTE.format(dtype=label),
    )


@register_variant("fp16", family="precision")
def fp16(model: nn.Module, *, seed: int, context: CompressContext | None = None) -> nn.Module:
    """Weights and activations in float16 (IEEE half)."""
    return _half(model, torch.float16, "float16")


@register_variant("bf16", family="precision")
def bf16(model: nn.Module, *, seed: int, context: CompressContext | None = None) -> nn.Module:
    """Weights and activations in bfloat16 (fp32 range, 8-bit mantissa)."""
    return _half(model, torch.bfloat16, "bfloat16")
