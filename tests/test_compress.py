"""Compression variants: the contract every registered variant meets, and per-family checks."""

from __future__ import annotations

import copy
from collections.abc import Iterator

import pytest
import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck

from bench.compress import CompressContext, apply_chain, get_variant, list_variants
from bench.compress import prune as prune_mod
from bench.compress import quantize as quantize_mod  # noqa: F401  (registers the variants)
from bench.compress import structured as structured_mod  # noqa: F401
from bench.compress.measure import count_macs, is_quantized, measure_model
from bench.config import VariantSpec
from bench.models import create_model

SIZE = 32
N_CLASSES = 3
# hyper-parameters for variants that have required ones; a new variant with required
# arguments must be added here for the contract test to run it
CONTRACT_KWARGS = {
    "l1_unstructured_global": {"sparsity": 0.5},
    "random_unstructured_global": {"sparsity": 0.5},
    "l1_unstructured_layerwise": {"sparsity": 0.5},
    "l1_unstructured_finetune": {"sparsity": 0.5},
    "l1_unstructured_per_layer": {
        "sparsities": {"backbone.layer1.0.conv1": 0.5, "backbone.fc": 0.25}
    },
}
MEASURE_KEYS = {
    "params", "nonzero_params", "sparsity", "bytes_dense", "bytes_sparse", "bytes_int8",
    "bytes_stored", "macs", "macs_source", "dtype", "latency", "hardware", "note",
}  # fmt: skip


def toy_images(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Noisy images whose class is where a bright bar sits (left, middle, right third)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, N_CLASSES, (n,), generator=g)
    x = 0.3 * torch.rand(n, 1, SIZE, SIZE, generator=g)
    third = SIZE // N_CLASSES
    for i, label in enumerate(y.tolist()):
        x[i, 0, 4:-4, label * third : (label + 1) * third] += 0.6
    return x.clamp(0, 1), y


def sgd_steps(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int, lr: float
) -> nn.Module:
    """A few deterministic full-batch Adam steps (the stand-in for the suite's loop)."""
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    model.train()
    for _ in range(steps):
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """Small models: one thread is faster and avoids OpenMP spinning on a shared machine."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def data() -> dict[str, torch.Tensor]:
    x_train, y_train = toy_images(96, seed=1)
    x_test, y_test = toy_images(128, seed=2)
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


@pytest.fixture(scope="module")
def trained(data: dict[str, torch.Tensor]) -> nn.Module:
    torch.manual_seed(0)
    model = create_model("small_resnet", N_CLASSES)
    model = sgd_steps(model, data["x_train"], data["y_train"], steps=30, lr=3e-3)
    with torch.no_grad():
        acc = (model(data["x_test"]).argmax(1) == data["y_test"]).float().mean()
    assert acc > 0.9, f"toy model did not learn the toy task (accuracy {acc:.2f})"
    return model


@pytest.fixture(scope="module")
def context(data: dict[str, torch.Tensor]) -> CompressContext:
    x, y = data["x_train"][:32], data["y_train"][:32]

    def finetune(model: nn.Module, epochs: int) -> nn.Module:
        return sgd_steps(model, x, y, steps=2 * epochs, lr=1e-3)

    return CompressContext(calib=data["x_train"], finetune=finetune, example=data["x_test"][:1])


def _weights(model: nn.Module) -> list[torch.Tensor]:
    return [m.weight.detach() for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def _zero_fraction(tensors: list[torch.Tensor]) -> float:
    return sum(int((t == 0).sum()) for t in tensors) / sum(t.numel() for t in tensors)


@pytest.mark.parametrize("name", list_variants())
def test_variant_contract(
    name: str, trained: nn.Module, context: CompressContext, data: dict
) -> None:
    kwargs = CONTRACT_KWARGS.get(name, {})
    info = get_variant(name)
    info.check(kwargs)  # fails for a new variant with required arguments missing above
    x = data["x_test"][:8]
    before = {k: v.clone() for k, v in trained.state_dict().items()}
    with torch.no_grad():
        reference = trained(x)

    first = info.fn(trained, seed=3, context=context, **kwargs).eval()
    second = info.fn(trained, seed=3, context=context, **kwargs).eval()

    # the input model is untouched
    assert all(torch.equal(v, trained.state_dict()[k]) for k, v in before.items())
    with torch.no_grad():
        out1, out2 = first(x), second(x)
    assert out1.shape == reference.shape and out1.dtype == torch.float32
    assert torch.equal(out1, out2), "same seed must give the same model"
    record = first.cxr_compress
    assert record["family"] == info.family and record["steps"][-1]["family"] == info.family
    if "sparsity" in kwargs:
        assert record["achieved_sparsity"] == pytest.approx(kwargs["sparsity"], abs=0.005)
        assert _zero_fraction(_weights(first)) == pytest.approx(kwargs["sparsity"], abs=0.005)
    if info.family == "quantize":
        assert is_quantized(first) and record["bits"] == 8 and record["cpu_only"] is True
    if info.family == "precision":
        dtypes = {p.dtype for p in first.parameters()}
        assert dtypes == {torch.float16 if name == "fp16" else torch.bfloat16}
    result = measure_model(first, x[:1], batch_sizes=(1, 2), warmup=1, repeats=2)
    assert MEASURE_KEYS <= set(result)
    assert result["macs"] > 0 and len(result["latency"]) == 2


def test_global_l1_removes_the_smallest_magnitudes(
    trained: nn.Module, context: CompressContext
) -> None:
    pruned = get_variant("l1_unstructured_global").fn(
        trained, seed=0, context=context, sparsity=0.7
    )
    orig = torch.cat([w.flatten().abs() for w in _weights(trained)])
    kept = torch.cat([w.flatten() != 0 for w in _weights(pruned)])
    assert kept.float().mean().item() == pytest.approx(0.3, abs=0.001)
    # global threshold: every removed weight is no larger than every kept one
    assert orig[~kept].max() <= orig[kept].min()
    # and it is global, not per layer: layer sparsities differ
    per_layer = [float((w == 0).float().mean()) for w in _weights(pruned)]
    assert max(per_layer) - min(per_layer) > 0.2


def test_include_head_false_leaves_the_classifier_dense(
    trained: nn.Module, context: CompressContext
) -> None:
    pruned = prune_mod.l1_unstructured_global(
        trained, seed=0, context=context, sparsity=0.9, include_head=False
    )
    assert int((pruned.backbone.fc.weight == 0).sum()) == 0
    assert _zero_fraction(_weights(pruned)[:-1]) == pytest.approx(0.9, abs=0.005)


def test_layerwise_prunes_every_layer_equally(trained: nn.Module, context: CompressContext) -> None:
    pruned = prune_mod.l1_unstructured_layerwise(trained, seed=0, context=context, sparsity=0.6)
    for w in _weights(pruned):
        assert float((w == 0).float().mean()) == pytest.approx(0.6, abs=0.5 / w.numel() + 1e-9)


def test_random_control_is_seeded(trained: nn.Module, context: CompressContext) -> None:
    fn = prune_mod.random_unstructured_global
    masks = [
        torch.cat(
            [w.flatten() == 0 for w in _weights(fn(trained, seed=s, context=context, sparsity=0.5))]
        )
        for s in (1, 1, 2)
    ]
    assert torch.equal(masks[0], masks[1]) and not torch.equal(masks[0], masks[2])
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    fn(trained, seed=1, context=context, sparsity=0.5)
    assert torch.equal(torch.rand(1), expected_next), "the caller's RNG stream must be untouched"


def test_finetune_keeps_the_mask_fixed(trained: nn.Module, context: CompressContext) -> None:
    one_shot = prune_mod.l1_unstructured_global(trained, seed=0, context=context, sparsity=0.5)
    tuned = prune_mod.l1_unstructured_finetune(
        trained, seed=0, context=context, sparsity=0.5, finetune_epochs=2
    )
    for a, b in zip(_weights(one_shot), _weights(tuned), strict=True):
        assert torch.equal(a == 0, b == 0)
    assert not all(
        torch.equal(a, b) for a, b in zip(_weights(one_shot), _weights(tuned), strict=True)
    )
    assert "weight_orig" not in "".join(tuned.state_dict())


def test_iterative_three_by_twenty_percent(trained: nn.Module, context: CompressContext) -> None:
    pruned = prune_mod.iterative_l1(
        trained, seed=0, context=context, steps=3, rate=0.2, finetune_epochs=1
    )
    # 1 - 0.8**3 = 0.488: each step removes 20% of what remains
    assert pruned.cxr_compress["achieved_sparsity"] == pytest.approx(0.488, abs=0.002)
    assert _zero_fraction(_weights(pruned)) == pytest.approx(0.488, abs=0.002)
    assert pruned.cxr_compress["expected_sparsity"] == pytest.approx(0.488)


@pytest.mark.parametrize("value", [1.0, -0.1, 1.5])
def test_out_of_range_sparsity_is_refused(
    value: float, trained: nn.Module, context: CompressContext
) -> None:
    with pytest.raises(ValueError, match=r"sparsity must be a number in \[0, 1\)"):
        prune_mod.l1_unstructured_global(trained, seed=0, context=context, sparsity=value)


def test_unknown_keyword_is_refused_by_the_registry() -> None:
    with pytest.raises(ValueError, match="has no argument"):
        get_variant("l1_unstructured_global").check({"sparsty": 0.5})
    with pytest.raises(ValueError, match="needs argument"):
        get_variant("l1_unstructured_global").check({})


def test_finetune_without_callback_is_refused(trained: nn.Module) -> None:
    with pytest.raises(ValueError, match="needs a fine-tuning callback"):
        prune_mod.l1_unstructured_finetune(
            trained, seed=0, context=CompressContext(), sparsity=0.5, finetune_epochs=1
        )


def test_static_int8_agrees_with_fp32(
    trained: nn.Module, context: CompressContext, data: dict
) -> None:
    q = get_variant("static_int8").fn(trained, seed=0, context=context)
    x = data["x_test"]
    with torch.no_grad():
        agree = (q(x).argmax(1) == trained(x).argmax(1)).float().mean().item()
    assert agree >= 0.95
    assert q.cxr_compress["path"] == "fx" and q.cxr_compress["calib_images"] == 64


def test_static_int8_pt2e_agrees_with_fp32_and_is_deterministic(
    trained: nn.Module, context: CompressContext, data: dict
) -> None:
    first = quantize_mod.static_int8(trained, seed=0, context=context, path="pt2e")
    second = quantize_mod.static_int8(trained, seed=0, context=context, path="pt2e")
    first.eval()  # an exported graph refuses .eval() unless the variant allowed it
    x = data["x_test"]  # 128 images: the dynamic batch dimension takes any batch size
    with torch.no_grad():
        out, again, ref = first(x), second(x), trained(x)
    assert (out.argmax(1) == ref.argmax(1)).float().mean().item() >= 0.95
    assert torch.equal(out, again)
    assert first.cxr_compress["path"] == "pt2e" and first.cxr_compress["bits"] == 8
    # int8 weights replace the fp32 ones: no dead fp32 copies left in the state dict
    state = first.state_dict()
    int8 = sum(v.numel() for v in state.values() if v.dtype == torch.int8)
    assert int8 == sum(w.numel() for w in _weights(trained))
    assert not any(k.endswith(".weight") and v.dtype == torch.float32 for k, v in state.items())
    copy.deepcopy(first)  # the runner and measure_model may copy it


def test_chain_structured_then_static_int8_pt2e(
    trained: nn.Module, context: CompressContext, data: dict
) -> None:
    chain = (
        VariantSpec(name="structured_channels", kwargs={"ratio": 0.5}),
        VariantSpec(name="static_int8", kwargs={"path": "pt2e"}),
    )
    model = apply_chain(trained, chain, seed=0, context=context)
    small = structured_mod.structured_channels(trained, seed=0, context=context, ratio=0.5)
    x = data["x_test"]
    with torch.no_grad():
        agree = (model(x).argmax(1) == small(x).argmax(1)).float().mean().item()
    assert agree >= 0.95
    assert [s["family"] for s in model.cxr_compress["steps"]] == ["structured", "quantize"]


@pytest.mark.parametrize(
    "block",
    [
        BasicBlock(16, 16),
        BasicBlock(
            8, 16, stride=2, downsample=nn.Sequential(nn.Conv2d(8, 16, 1, 2), nn.BatchNorm2d(16))
        ),
        Bottleneck(16, 4),
    ],
    ids=["basic", "basic_downsample", "bottleneck"],
)
def test_unshare_block_relu_keeps_the_maths(block: nn.Module) -> None:
    torch.manual_seed(0)
    for m in block.modules():  # non-trivial BatchNorm statistics
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    block.eval()
    x = torch.randn(2, block.conv1.in_channels, 8, 8)
    with torch.no_grad():
        reference = block(x)
        unshared = quantize_mod.unshare_block_relu(copy.deepcopy(block))
        assert type(unshared) is not type(block) and isinstance(unshared, type(block))
        assert torch.equal(unshared(x), reference)


def test_fp16_casts_at_the_boundary(
    trained: nn.Module, context: CompressContext, data: dict
) -> None:
    half = quantize_mod.fp16(trained, seed=0, context=context)
    x = data["x_test"][:8]
    with torch.no_grad():
        out, ref = half(x), trained(x)
    assert out.dtype == torch.float32
    assert torch.allclose(out, ref, atol=0.05, rtol=0.05)


def test_structured_half_cuts_macs(trained: nn.Module, context: CompressContext) -> None:
    small = structured_mod.structured_channels(trained, seed=0, context=context, ratio=0.5)
    x = context.example
    assert count_macs(trained, x) / count_macs(small, x) >= 1.8
    assert sum(p.numel() for p in small.parameters()) < 0.5 * sum(
        p.numel() for p in trained.parameters()
    )
    assert small.backbone.fc.out_features == N_CLASSES
    assert all(
        c % 8 == 0 for c in (m.out_channels for m in small.modules() if isinstance(m, nn.Conv2d))
    )


def test_chain_structured_then_static_int8(
    trained: nn.Module, context: CompressContext, data: dict
) -> None:
    chain = (
        VariantSpec(name="structured_channels", kwargs={"ratio": 0.5}),
        VariantSpec(name="static_int8"),
    )
    model = apply_chain(trained, chain, seed=0, context=context)
    small = structured_mod.structured_channels(trained, seed=0, context=context, ratio=0.5)
    x = data["x_test"][:4]
    assert is_quantized(model) and model(x).shape == (4, N_CLASSES)
    assert [s["family"] for s in model.cxr_compress["steps"]] == ["structured", "quantize"]
    measured = measure_model(model, x[:1], latency=False)
    assert measured["macs"] == count_macs(small, x[:1])  # counted on the float pruned model


def test_prune_then_int8_keeps_the_zeros(trained: nn.Module, context: CompressContext) -> None:
    chain = (
        VariantSpec(name="l1_unstructured_global", kwargs={"sparsity": 0.6}),
        VariantSpec(name="static_int8"),
    )
    model = apply_chain(trained, chain, seed=0, context=context)
    # symmetric per-channel int8 maps 0 to 0; small kept weights may also round to 0
    assert measure_model(model, context.example, latency=False)["sparsity"] >= 0.6
