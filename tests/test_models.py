"""bench.models: every arch builds, heads, grayscale handling, and weight loading without network."""

from __future__ import annotations

import pytest
import torch
import torchvision
from safetensors.torch import save_file

from bench.models import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    WeightsError,
    create_model,
    imagenet_checkpoint,
)


@pytest.mark.parametrize("arch", ["small_resnet", "resnet18", "resnet34"])
@pytest.mark.parametrize("head", ["linear", "mlp"])
def test_small_archs_output_shape(arch: str, head: str) -> None:
    model = create_model(arch, 5, head=head).eval()
    assert model(torch.rand(2, 1, 64, 64)).shape == (2, 5)
    assert model.cxr_info == {
        "arch": arch,
        "head": head,
        "weights": "none",
        "grayscale": "replicate",
        "num_classes": 5,
    }


@pytest.mark.parametrize("arch", ["resnet50", "densenet121", "efficientnet_b0"])
def test_big_archs_output_shape(arch: str) -> None:
    model = create_model(arch, 3, head="mlp", grayscale="adapt_conv1").eval()
    with torch.inference_mode():
        assert model(torch.rand(1, 1, 64, 64)).shape == (1, 3)


def test_small_resnet_is_small() -> None:
    n = sum(p.numel() for p in create_model("small_resnet", 2).parameters())
    assert 0.4e6 < n < 1.0e6


def test_mlp_head_layout() -> None:
    head = create_model("resnet18", 2, head="mlp").backbone.fc
    kinds = [type(m) for m in head]
    assert kinds == [
        torch.nn.Linear,
        torch.nn.BatchNorm1d,
        torch.nn.ReLU,
        torch.nn.Dropout,
        torch.nn.Linear,
    ]
    assert (head[0].in_features, head[0].out_features) == (512, 512)
    assert head[3].p == 0.5 and head[4].out_features == 2


def test_input_adapter_normalises_and_replicates() -> None:
    adapter = create_model("small_resnet", 2).input
    x = torch.rand(2, 1, 8, 8)
    out = adapter(x)
    assert out.shape == (2, 3, 8, 8)
    for c in range(3):  # reference: the ImageNet normalisation written out by hand
        torch.testing.assert_close(out[:, c], (x[:, 0] - IMAGENET_MEAN[c]) / IMAGENET_STD[c])


def test_adapt_conv1_sums_rgb_kernels() -> None:
    torch.manual_seed(0)
    rgb = create_model("resnet18", 2)
    torch.manual_seed(0)  # same init ⇒ same RGB conv1 before adaptation
    gray = create_model("resnet18", 2, grayscale="adapt_conv1")
    assert gray.backbone.conv1.in_channels == 1
    torch.testing.assert_close(
        gray.backbone.conv1.weight, rgb.backbone.conv1.weight.sum(1, keepdim=True)
    )
    assert gray.input(torch.rand(1, 1, 4, 4)).shape == (1, 1, 4, 4)
    assert gray.eval()(torch.rand(1, 1, 64, 64)).shape == (1, 2)
    assert gray.cxr_info["grayscale"] == "adapt_conv1"


def test_fx_trace_and_export() -> None:
    model = create_model("small_resnet", 3, head="mlp").eval()
    x = torch.rand(2, 1, 32, 32)
    traced = torch.fx.symbolic_trace(model)
    torch.testing.assert_close(traced(x), model(x))
    exported = torch.export.export(model, (x,))
    torch.testing.assert_close(exported.module()(x), model(x))


@pytest.fixture
def hub_dir(tmp_path):
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    yield tmp_path / "hub"
    torch.hub.set_dir(old)


def test_imagenet_from_local_cache(hub_dir) -> None:
    _, path = imagenet_checkpoint("resnet18")
    assert path == hub_dir / "checkpoints" / "resnet18-f37072fd.pth"
    path.parent.mkdir(parents=True)
    torch.manual_seed(1)
    fake = torchvision.models.resnet18()
    torch.save(fake.state_dict(), path)
    model = create_model("resnet18", 4, weights="imagenet")
    torch.testing.assert_close(model.backbone.layer1[0].conv1.weight, fake.layer1[0].conv1.weight)
    assert model.backbone.fc.out_features == 4
    gray = create_model("resnet18", 4, weights="imagenet", grayscale="adapt_conv1")
    torch.testing.assert_close(gray.backbone.conv1.weight, fake.conv1.weight.sum(1, keepdim=True))


def test_imagenet_missing_names_the_file(hub_dir) -> None:
    with pytest.raises(WeightsError) as err:
        create_model("resnet18", 2, weights="imagenet")
    msg = str(err.value)
    assert str(hub_dir / "checkpoints" / "resnet18-f37072fd.pth") in msg
    assert "allow_download" in msg and "https://download.pytorch.org" in msg


def test_imagenet_not_for_small_resnet() -> None:
    with pytest.raises(ValueError, match="small_resnet"):
        create_model("small_resnet", 2, weights="imagenet")


def test_full_model_safetensors_roundtrip(tmp_path) -> None:
    src = create_model("small_resnet", 3, head="mlp")
    path = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, str(path))
    dst = create_model("small_resnet", 3, head="mlp", weights=str(path))
    x = torch.rand(2, 1, 32, 32)
    torch.testing.assert_close(dst.eval()(x), src.eval()(x))


def test_backbone_pt_state_dict(tmp_path) -> None:
    backbone = torchvision.models.resnet18()
    path = tmp_path / "backbone.pt"
    torch.save(backbone.state_dict(), path)  # 1000-class fc: ignored, the head is new
    model = create_model("resnet18", 2, weights=str(path))
    torch.testing.assert_close(
        model.backbone.layer4[1].conv2.weight, backbone.layer4[1].conv2.weight
    )
    assert model.backbone.fc.out_features == 2


def test_mismatched_keys_reported(tmp_path) -> None:
    path = tmp_path / "model.pt"
    torch.save(create_model("small_resnet", 3).state_dict(), path)
    with pytest.raises(ValueError, match="shape mismatch.*backbone.fc.weight"):
        create_model("small_resnet", 5, weights=str(path))
    with pytest.raises(ValueError, match="missing"):
        create_model("small_resnet", 3, head="mlp", weights=str(path))


def test_non_state_dict_refused(tmp_path) -> None:
    path = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), path)
    with pytest.raises(ValueError, match="not a state dict"):
        create_model("small_resnet", 2, weights=str(path))


class _Custom:
    pass


def test_pickled_object_refused(tmp_path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"w": _Custom()}, path)  # torch.save pickles the object; weights_only refuses
    with pytest.raises(ValueError, match="weights_only=True.*UnpicklingError"):
        create_model("small_resnet", 2, weights=str(path))


def test_missing_weights_file(tmp_path) -> None:
    with pytest.raises(WeightsError, match="nope.pt"):
        create_model("small_resnet", 2, weights=str(tmp_path / "nope.pt"))


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="model.arch"):
        create_model("vgg", 2)
    with pytest.raises(ValueError, match="model.head"):
        create_model("small_resnet", 2, head="deep")


def test_corrupt_safetensors_refused(tmp_path) -> None:
    path = tmp_path / "broken.safetensors"
    path.write_bytes(b"not a safetensors file")
    with pytest.raises(WeightsError, match="not a valid safetensors file"):
        create_model("small_resnet", 2, weights=str(path))
