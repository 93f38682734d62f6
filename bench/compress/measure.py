"""Size, MACs and latency of a (compressed) model, measured rather than assumed.

Sizes are computed from the model's tensors so every variant is comparable:

- ``bytes_dense``: every tensor as dense fp32 (integer buffers at their own size);
- ``bytes_sparse``: Conv/Linear weights as a bitmask (numel / 8) plus the non-zero fp32
  values, everything else dense: what a sparse format would need;
- ``bytes_int8``: Conv/Linear weights at one byte plus one fp32 scale per output channel,
  everything else fp32; for an int8-quantized model, its actual serialised size;
- ``bytes_stored``: the real serialised state dict (safetensors when every entry is a plain
  tensor, otherwise ``torch.save``), as the store would write it.

The ``bytes_*`` figures are tensor payloads (no file header); ``bytes_stored`` is a file size.
"""

from __future__ import annotations

import contextlib
import copy
import io
import math
import os
import platform
import resource
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

_QUANTIZED_PACKAGES = ("torch.ao.nn.quantized", "torch.ao.nn.intrinsic.quantized")


@dataclass(frozen=True)
class _Entry:
    """One tensor of the model: size, non-zeros, and whether it is a prunable weight."""

    numel: int
    nnz: int
    prunable: bool
    is_param: bool
    floating: bool
    itemsize: int
    out_channels: int


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Evaluation mode for the duration, restoring the caller's train/eval flag."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


@contextlib.contextmanager
def _threads(n: int) -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def is_quantized(model: nn.Module) -> bool:
    """True when the model holds torch.ao quantized modules (FX int8 kernels, CPU only) or
    was converted by PT2E (its record says 8 bits; weights live in int8 buffers)."""
    if (getattr(model, "cxr_compress", None) or {}).get("bits") == 8:
        return True
    return any(type(m).__module__.startswith(_QUANTIZED_PACKAGES) for m in model.modules())


def count_macs(model: nn.Module, example: torch.Tensor) -> int:
    """Multiply-accumulates of one forward pass on ``example`` (FlopCounterMode flops / 2).

    Quantized ops are not counted by FlopCounterMode: count the float model instead.
    """
    counter = FlopCounterMode(display=False)
    with _eval_mode(model), torch.no_grad(), counter:
        model(example)
    return int(counter.get_total_flops()) // 2


def _entry(t: torch.Tensor, prunable: bool, is_param: bool) -> _Entry:
    values = t.dequantize() if t.is_quantized else t
    return _Entry(
        numel=t.numel(),
        nnz=int(torch.count_nonzero(values)),
        prunable=prunable,
        is_param=is_param,
        floating=values.is_floating_point(),
        itemsize=t.element_size(),
        out_channels=t.shape[0] if t.dim() else 1,
    )


def _inventory(model: nn.Module) -> list[_Entry]:
    """Every parameter and buffer, with quantized Conv/Linear weights unpacked."""
    entries = []
    for module in model.modules():
        quantized = type(module).__module__.startswith(_QUANTIZED_PACKAGES)
        if quantized and callable(getattr(module, "weight", None)):
            entries.append(_entry(module.weight(), True, True))
            bias = module.bias() if callable(getattr(module, "bias", None)) else None
            if bias is not None:
                entries.append(_entry(bias, False, True))
        prunable_module = isinstance(module, (nn.Conv2d, nn.Linear))
        for name, p in module.named_parameters(recurse=False):
            entries.append(_entry(p.detach(), prunable_module and name == "weight", True))
        for b in module.buffers(recurse=False):
            entries.append(_entry(b, False, False))
    return entries


def serialize_state(model: nn.Module) -> tuple[bytes, str]:
    """The state dict as bytes: safetensors for plain tensors, else torch.save (quantized)."""
    state = model.state_dict()
    plain = all(isinstance(v, torch.Tensor) and not v.is_quantized for v in state.values())
    if plain:
        from safetensors.torch import save

        return save({k: v.detach().contiguous().cpu() for k, v in state.items()}), "safetensors"
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue(), "torch.save"


def _dense_bytes(e: _Entry) -> int:
    return e.numel * (4 if e.floating else e.itemsize)


def _sizes(model: nn.Module, entries: list[_Entry], quantized: bool) -> dict[str, Any]:
    stored, fmt = serialize_state(model)
    prunable = [e for e in entries if e.prunable]
    others = sum(_dense_bytes(e) for e in entries if not e.prunable)
    bytes_int8 = (
        len(stored) if quantized else others + sum(e.numel + 4 * e.out_channels for e in prunable)
    )
    weights = sum(e.numel for e in prunable)
    return {
        "bytes_dense": sum(_dense_bytes(e) for e in entries),
        "bytes_sparse": others + sum(math.ceil(e.numel / 8) + 4 * e.nnz for e in prunable),
        "bytes_int8": bytes_int8,
        "bytes_stored": len(stored),
        "stored_format": fmt,
        "sparsity": 1 - sum(e.nnz for e in prunable) / weights if weights else 0.0,
    }


def _macs(model: nn.Module, example: torch.Tensor, quantized: bool) -> tuple[int | None, str]:
    if not quantized:
        return count_macs(model, example), "FlopCounterMode"
    info = getattr(model, "cxr_compress", None) or {}
    if info.get("float_macs_input") == list(example.shape):
        return int(info["float_macs"]), "float model before quantization (FlopCounterMode)"
    return (
        None,
        "not counted: quantized ops are invisible to FlopCounterMode and no float count was recorded for this input size",
    )


def _cpu_name() -> str:
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def hardware(device: str = "cpu") -> dict[str, Any]:
    """Where the numbers were taken: CPU model, cores, torch version, GPU name."""
    info = {
        "cpu": _cpu_name(),
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "quantized_engine": torch.backends.quantized.engine,
    }
    if torch.device(device).type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info


def _time_once(model: nn.Module, x: torch.Tensor, cuda: bool) -> float:
    if not cuda:
        start = time.perf_counter()
        model(x)
        return (time.perf_counter() - start) * 1e3
    begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    begin.record()
    model(x)
    end.record()
    torch.cuda.synchronize()
    return begin.elapsed_time(end)


def _latency(
    model: nn.Module,
    example: torch.Tensor,
    *,
    device: torch.device,
    batch_size: int,
    threads: int,
    warmup: int,
    repeats: int,
    compiled: bool,
) -> dict[str, Any]:
    """p50/p95 latency of one batch, and the peak memory it took (see ``memory_method``)."""
    cuda = device.type == "cuda"
    x = example[:1].expand(batch_size, *example.shape[1:]).contiguous().to(device)
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with torch.inference_mode():
        for _ in range(warmup):
            model(x)
        if cuda:
            torch.cuda.synchronize(device)
        times = [_time_once(model, x, cuda) for _ in range(repeats)]
    if cuda:
        peak_mb = torch.cuda.max_memory_allocated(device) / 2**20
    else:  # ru_maxrss is in KiB on Linux: growth of the process's high-water mark
        peak_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    return {
        "device": device.type,
        "batch_size": batch_size,
        "p50_ms": float(np.percentile(times, 50)),
        "p95_ms": float(np.percentile(times, 95)),
        "threads": threads,
        "compiled": compiled,
        "peak_mem_mb": float(peak_mb),
    }


def _latencies(
    model: nn.Module,
    example: torch.Tensor,
    device: torch.device,
    batch_sizes: Sequence[int],
    compiled: bool,
    **kw: Any,
) -> list[dict[str, Any]]:
    with _eval_mode(model):
        run = torch.compile(model) if compiled else model
        return [
            _latency(run, example, device=device, batch_size=b, compiled=compiled, **kw)
            for b in batch_sizes
        ]


def measure_model(
    model: nn.Module,
    example: torch.Tensor,
    *,
    threads: int = 1,
    batch_sizes: Sequence[int] = (1, 32),
    warmup: int = 3,
    repeats: int = 10,
    latency: bool = True,
    compiled_reference: bool = False,
    reference: nn.Module | None = None,
    device: str = "cpu",
) -> dict[str, Any]:
    """Parameters, sparsity, sizes, MACs (per image) and latency of ``model``.

    ``note`` joins the notes the compression steps recorded (e.g. that unstructured
    sparsity saves nothing at run time without sparse kernels).

    example: one input batch (N, 1, H, W); latency batches repeat its first image.
    compiled_reference: also time ``torch.compile(reference)`` (the dense fp32 baseline;
    ``model`` itself when ``reference`` is None), entries marked ``compiled: True``.
    The model's train/eval flag and device are left as they were.
    """
    dev = torch.device(device)
    quantized = is_quantized(model)
    entries = _inventory(model)
    params = [e for e in entries if e.is_param]
    info = getattr(model, "cxr_compress", None) or {}
    notes = list(dict.fromkeys(s["note"] for s in info.get("steps", []) if s.get("note")))
    cpu_example = example[:1].float().cpu()
    macs, macs_source = _macs(model, cpu_example, quantized)
    sizes = _sizes(model, entries, quantized)
    first_float = next(
        (p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32
    )
    result: dict[str, Any] = {
        "params": sum(e.numel for e in params),
        "nonzero_params": sum(e.nnz for e in params),
        **sizes,
        "macs": macs,
        "macs_source": macs_source,
        "dtype": "int8" if quantized else str(first_float).removeprefix("torch."),
        "latency": [],
        "memory_method": (
            "torch.cuda.max_memory_allocated"
            if dev.type == "cuda"
            else "growth of the process's peak RSS (ru_maxrss); 0 when an earlier peak was higher"
        ),
        "hardware": hardware(device),
    }
    if latency and quantized and dev.type != "cpu":
        notes.append("int8 model: runs on the CPU only, no latency on " + dev.type)
    elif latency:
        kw = {"threads": threads, "warmup": warmup, "repeats": repeats}
        with _threads(threads):
            target = model if dev.type == "cpu" else copy.deepcopy(model).to(dev)
            result["latency"] = _latencies(target, example, dev, batch_sizes, False, **kw)
            if compiled_reference:
                ref = reference if reference is not None else model
                ref = ref if dev.type == "cpu" else copy.deepcopy(ref).to(dev)
                result["latency"] += _latencies(ref, example, dev, batch_sizes, True, **kw)
    result["note"] = "; ".join(notes)
    return result
