"""measure_model: sizes and MACs against values worked by hand, latency bookkeeping."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
import torch
from safetensors.torch import save
from torch import nn

from bench.compress import CompressContext
from bench.compress import prune as prune_mod
from bench.compress import quantize as quantize_mod
from bench.compress.measure import count_macs, is_quantized, measure_model
from bench.models import create_model


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def hand_model() -> nn.Sequential:
    """Conv 1→2 (3×3, no bias) on 4×4 → 2×2×2 → Linear 8→3; half of each weight is zero."""
    model = nn.Sequential(nn.Conv2d(1, 2, 3, bias=False), nn.Flatten(), nn.Linear(8, 3))
    with torch.no_grad():
        conv = torch.arange(1, 19, dtype=torch.float32).view(2, 1, 3, 3) / 18
        conv[0] = 0  # 9 of 18 zero
        model[0].weight.copy_(conv)
        lin = torch.arange(1, 25, dtype=torch.float32).view(3, 8) / 24
        lin[:, :4] = 0  # 12 of 24 zero
        model[2].weight.copy_(lin)
        model[2].bias.fill_(1.0)
    return model.eval()


EXAMPLE = torch.rand(1, 1, 4, 4)


def test_sizes_and_counts_match_hand_values() -> None:
    model = hand_model()
    r = measure_model(model, EXAMPLE, latency=False)
    # 18 conv + 24 linear weights + 3 biases; non-zero: 9 + 12 + 3
    assert (r["params"], r["nonzero_params"]) == (45, 24)
    assert r["sparsity"] == pytest.approx(21 / 42)
    assert r["bytes_dense"] == 45 * 4
    # bitmask ceil(numel/8) + 4 bytes per non-zero, per weight; bias dense
    assert r["bytes_sparse"] == (math.ceil(18 / 8) + 9 * 4) + (math.ceil(24 / 8) + 12 * 4) + 3 * 4
    # one byte per weight + one fp32 scale per output channel; bias fp32
    assert r["bytes_int8"] == (18 + 2 * 4) + (24 + 3 * 4) + 3 * 4
    assert (
        r["bytes_stored"] == len(save(model.state_dict())) and r["stored_format"] == "safetensors"
    )
    # conv: 2×2 outputs × 2 channels × 9 taps = 72; linear: 8 × 3 = 24
    assert r["macs"] == 72 + 24 and r["macs_source"] == "FlopCounterMode"
    assert r["dtype"] == "float32" and r["latency"] == [] and r["note"] == ""


def test_macs_of_resnet_match_the_analytic_count() -> None:
    model = create_model("small_resnet", 2)
    x = torch.rand(1, 1, 32, 32)
    expected = 0
    hooks = []

    def conv_macs(m: nn.Conv2d, _: tuple, out: torch.Tensor) -> None:
        nonlocal expected
        expected += out.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]

    def linear_macs(m: nn.Linear, _: tuple, out: torch.Tensor) -> None:
        nonlocal expected
        expected += out.numel() * m.in_features

    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(conv_macs))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(linear_macs))
    with torch.no_grad():
        model.eval()(x)
    for h in hooks:
        h.remove()
    assert count_macs(model, x) == expected


def test_dynamic_int8_weights_are_counted_unpacked() -> None:
    q = quantize_mod.dynamic_int8(hand_model(), seed=0, context=CompressContext(example=EXAMPLE))
    assert is_quantized(q)
    r = measure_model(q, EXAMPLE, latency=False)
    # the Linear weight is int8 inside packed params, zeros stay zero
    assert r["params"] == 45 and r["sparsity"] == pytest.approx(0.5)
    assert r["dtype"] == "int8" and r["stored_format"] == "torch.save"
    assert r["bytes_int8"] == r["bytes_stored"]
    assert r["macs"] == 96 and r["macs_source"].startswith("float model")


def test_quantized_macs_need_the_matching_input_size() -> None:
    model = create_model("small_resnet", 2).eval()
    ctx = CompressContext(calib=torch.rand(8, 1, 32, 32), example=torch.rand(1, 1, 32, 32))
    q = quantize_mod.static_int8(model, seed=0, context=ctx, calib_images=8)
    assert measure_model(q, ctx.example, latency=False)["macs"] == count_macs(model, ctx.example)
    other = measure_model(q, torch.rand(1, 1, 48, 48), latency=False)
    assert other["macs"] is None and other["macs_source"].startswith("not counted")


def test_latency_entries_and_state_restored() -> None:
    model = create_model("small_resnet", 2).train()
    pruned = prune_mod.l1_unstructured_global(model, seed=0, context=None, sparsity=0.5).train()
    torch.set_num_threads(2)
    r = measure_model(
        pruned, torch.rand(1, 1, 32, 32), threads=1, batch_sizes=(1, 3), warmup=1, repeats=3
    )
    assert torch.get_num_threads() == 2 and pruned.training
    assert [e["batch_size"] for e in r["latency"]] == [1, 3]
    for e in r["latency"]:
        assert e["device"] == "cpu" and e["threads"] == 1 and e["compiled"] is False
        assert 0 < e["p50_ms"] <= e["p95_ms"] and e["peak_mem_mb"] >= 0
    assert "no run-time saving without sparse kernels" in r["note"]
    assert {"cpu", "cores", "torch"} <= set(r["hardware"])


def test_half_precision_is_stored_at_two_bytes() -> None:
    model = hand_model()
    half = quantize_mod.fp16(model, seed=0, context=None)
    r = measure_model(half, EXAMPLE, latency=False)
    assert r["dtype"] == "float16" and r["bytes_dense"] == 45 * 4
    # the stored file holds 2-byte values: payload 90 bytes plus the safetensors header
    assert r["bytes_stored"] == len(save(half.state_dict())) < len(save(model.state_dict()))


@pytest.mark.slow
def test_compiled_reference_adds_compiled_entries() -> None:
    model = create_model("small_resnet", 2).eval()
    q = quantize_mod.static_int8(
        model, seed=0, context=CompressContext(calib=torch.rand(4, 1, 32, 32))
    )
    r = measure_model(
        q,
        torch.rand(1, 1, 32, 32),
        batch_sizes=(1,),
        repeats=2,
        compiled_reference=True,
        reference=model,
    )
    assert [e["compiled"] for e in r["latency"]] == [False, True]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_latency_and_int8_skip() -> None:
    model = create_model("small_resnet", 2)
    r = measure_model(model, torch.rand(1, 1, 32, 32), batch_sizes=(1, 4), repeats=3, device="cuda")
    assert [e["device"] for e in r["latency"]] == ["cuda", "cuda"] and "gpu" in r["hardware"]
    assert next(model.parameters()).device.type == "cpu"
    q = quantize_mod.dynamic_int8(
        model, seed=0, context=CompressContext(example=torch.rand(1, 1, 32, 32))
    )
    rq = measure_model(q, torch.rand(1, 1, 32, 32), device="cuda")
    assert rq["latency"] == [] and "CPU only" in rq["note"]
