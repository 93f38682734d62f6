"""Quantization (int8) and reduced precision (fp16 / bf16).

Static int8 has two paths behind ``static_int8(path=...)``:

- ``"fx"`` (default): PyTorch's FX graph mode (``torch.ao.quantization.quantize_fx``) with
  the qconfig of the active quantized engine (``x86`` on x86 CPUs): conv-bn-relu fused,
  weights int8 per channel, activations uint8 per tensor; fast in eager mode (fbgemm/onednn
  int8 kernels).
- ``"pt2e"``: torch.export with a dynamic batch dimension → torchao's X86InductorQuantizer
  → ``prepare_pt2e`` / calibration / ``convert_pt2e``. The result is a GraphModule of
  quantize / dequantize ops around fp32 ops: correct but slow in eager mode, fast only under
  ``torch.compile`` with inductor ``freezing`` (which fuses them into int8 kernels).
  torchvision ResNet blocks are switched to a forward with one ReLU call per activation
  first (:func:`unshare_block_relu`), without which the quantizer fails on the pinned
  torch 2.14.1 / torchao 0.18.0.

Quantized models run on the CPU only; they are recorded with ``cpu_only: True``.
See docs/compression.md for why FX is the default.
"""

from __future__ import annotations

import contextlib
import types
import warnings
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn
from torch.ao.quantization import (
    get_default_qat_qconfig_mapping,
    get_default_qconfig_mapping,
    quantize_dynamic,
)
from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx, prepare_qat_fx
from torchvision.models.resnet import BasicBlock, Bottleneck

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
PT2E_MAX_BATCH = 4096  # upper bound of the exported graph's dynamic batch dimension
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

    path: "fx" (FX graph mode; int8 kernels in eager mode) or "pt2e" (torch.export +
    X86InductorQuantizer; int8 kernels only once the model is compiled with inductor and
    ``torch._inductor.config.freezing = True``).
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


class _ExportBasicBlock(BasicBlock):
    """torchvision's BasicBlock with one ReLU call per activation (functional, same maths)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + identity)


class _ExportBottleneck(Bottleneck):
    """torchvision's Bottleneck with one ReLU call per activation (functional, same maths)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        return F.relu(self.bn3(self.conv3(out)) + identity)


_EXPORT_BLOCKS = {BasicBlock: _ExportBasicBlock, Bottleneck: _ExportBottleneck}


def unshare_block_relu(model: nn.Module) -> nn.Module:
    """Switch torchvision ResNet blocks, in place, to a forward that calls each ReLU once.

    A torchvision block calls its one ``self.relu`` module two or three times; in the
    exported graph that is one source partition with several outputs, and
    X86InductorQuantizer then fails with "Input partition has more than one output node".
    Only the class changes (weights, channel counts of pruned blocks and maths stay).
    """
    for m in model.modules():
        if type(m) in _EXPORT_BLOCKS:
            m.__class__ = _EXPORT_BLOCKS[type(m)]
    return model


def _static_pt2e(
    model: nn.Module, example: torch.Tensor, images: torch.Tensor
) -> tuple[nn.Module, str]:
    """torch.export (dynamic batch) → X86InductorQuantizer → calibrate → convert_pt2e."""
    import torchao
    import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer as xiq
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    quantizer = xiq.X86InductorQuantizer()
    quantizer.set_global(xiq.get_default_x86_inductor_quantization_config())
    # two images: a batch-1 example would specialise the batch dimension to 1
    sample = example[:1].expand(2, *example.shape[1:]).contiguous()
    batch = torch.export.Dim("batch", min=1, max=PT2E_MAX_BATCH)
    with _quiet():
        try:
            exported = torch.export.export(
                unshare_block_relu(model), (sample,), dynamic_shapes=({0: batch},)
            ).module()
            prepared = prepare_pt2e(exported, quantizer)
        except Exception as exc:  # export or annotation can fail on other architectures
            raise RuntimeError(
                f"static_int8 path='pt2e' failed on torch {torch.__version__} / torchao "
                f"{torchao.__version__}: {type(exc).__name__}: {exc}. Use path='fx' (the default)."
            ) from exc
        _calibrate(prepared, images)
        out = convert_pt2e(prepared)
    _drop_unused_tensors(out)
    # an exported graph refuses .eval() / .train(); allow them so that the runner and
    # measure_model can treat it like any other model
    out.train = types.MethodType(_train_exported, out)
    out.eval = types.MethodType(nn.Module.eval, out)
    return out.eval(), "x86_inductor"


def _train_exported(self: torch.fx.GraphModule, mode: bool = True) -> torch.fx.GraphModule:
    """``nn.Module.train`` for an exported graph: switches its dropout / batchnorm ops."""
    import torchao.quantization.pt2e as pt2e

    move = pt2e.move_exported_model_to_train if mode else pt2e.move_exported_model_to_eval
    move(self)
    for m in self.modules():
        m.training = mode
    return self


def _drop_unused_tensors(graph_module: torch.fx.GraphModule) -> None:
    """Delete parameters and buffers the graph no longer reads.

    convert_pt2e folds each quantized weight into a new int8 constant but leaves the fp32
    original on its submodule, which would make the int8 model larger than the fp32 one.
    """
    nodes = graph_module.graph.nodes
    used = {n.target for n in nodes if n.op == "get_attr"}
    called = tuple(f"{n.target}." for n in nodes if n.op == "call_module")
    tensors = [*graph_module.named_parameters(), *graph_module.named_buffers()]
    for name, _ in tensors:
        if name not in used and not name.startswith(called):
            owner, _, attr = name.rpartition(".")
            delattr(graph_module.get_submodule(owner), attr)


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
