"""bench.train and bench.augment on small structured synthetic arrays (no data readers)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.nn.utils import prune

from bench.augment import Augmenter
from bench.config import AugmentConfig, TrainingConfig
from bench.models import create_model
from bench.seeding import seed_everything
from bench.train import (
    FocalLoss,
    TrainingDiverged,
    _gather,
    build_loss,
    class_weights,
    fit,
    pos_weights,
    predict,
    resolve_device,
    state_dict_for_save,
)

SEEDS = {"init": 1, "order": 2, "augment": 3}
SIZE = 24


def _images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Noise images plus three independent marks: bright top-left square (class 0),
    bright bottom-right square (class 1), dark horizontal bar (class 2)."""
    rng = np.random.default_rng(seed)
    labels = (rng.random((n, 3)) < 0.5).astype(np.uint8)
    x = rng.normal(110, 20, (n, SIZE, SIZE))
    x[labels[:, 0] == 1, 2:9, 2:9] += 120
    x[labels[:, 1] == 1, 15:22, 15:22] += 120
    x[labels[:, 2] == 1, 10:14, :] -= 90
    return np.clip(x, 0, 255).astype(np.uint8), labels


def _cfg(**kw) -> TrainingConfig:
    base = dict(
        epochs=3,
        batch_size=25,
        threads=1,
        lr=3e-3,
        device="cpu",
        augment=AugmentConfig(hflip=False, rotation=5, brightness=0.1, contrast=0.1),
    )
    return TrainingConfig(**(base | kw))


def _model(num_classes: int, head: str = "linear") -> torch.nn.Module:
    seed_everything(SEEDS["init"])
    return create_model("small_resnet", num_classes, head=head)


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: the test machine's cores are shared, oversubscription is slow."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    return _images(200, 0)


SPLIT = np.arange(150), np.arange(150, 200)


def test_binary_training_learns(data) -> None:
    pixels, marks = data
    labels = np.eye(2, dtype=np.uint8)[marks[:, 0]]  # bright top-left square ⇒ class 1
    messages: list[str] = []
    res = fit(
        _model(2, "mlp"),
        pixels,
        labels,
        *SPLIT,
        task="binary",
        cfg=_cfg(),
        seeds=SEEDS,
        progress=messages.append,
    )
    val = res.history[res.history.phase == "val"].reset_index(drop=True)
    assert len(messages) == res.epochs_trained == 3 and len(res.history) == 6
    assert val.loss.min() < val.loss.iloc[0]
    assert res.best_epoch == int(val.epoch[val.loss.idxmin()])
    probs = predict(res.model, pixels, SPLIT[1], task="binary")
    assert probs.shape == (50, 2) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(1), 1, rtol=1e-5)
    assert val.auroc_macro.max() > 0.9
    assert res.thresholds.shape == (2,) and res.thresholds.sum() == pytest.approx(1)
    for key, value in res.best_state.items():  # the returned model holds the best weights
        torch.testing.assert_close(res.model.state_dict()[key].cpu(), value)


def test_multilabel_training_learns_and_history_columns(data) -> None:
    pixels, labels = data
    names = ["tl", "br", "bar"]
    res = fit(
        _model(3),
        pixels,
        labels,
        *SPLIT,
        task="multilabel",
        cfg=_cfg(pos_weight=True),
        seeds=SEEDS,
        class_names=names,
    )
    hist = res.history
    expected = {
        "epoch",
        "phase",
        "loss",
        "accuracy",
        "precision_macro",
        "recall_macro",
        "f1_macro",
        "auroc_macro",
        "auprc_macro",
        "lr",
        "seconds",
        "images_per_s",
    }
    expected |= {f"{m}__{c}" for m in ("ap", "auroc") for c in names}
    assert set(hist.columns) == expected
    assert set(hist.phase) == {"train", "val"}
    val = hist[hist.phase == "val"]
    assert val.loss.iloc[-1] < val.loss.iloc[0]
    assert val.auprc_macro.max() > 0.8
    assert res.thresholds.shape == (3,) and np.all((res.thresholds > 0) & (res.thresholds < 1))


def test_same_seeds_give_identical_predictions(data) -> None:
    pixels, labels = data
    cfg = _cfg(epochs=1, max_batches_per_epoch=3)
    runs = [
        fit(_model(3, "mlp"), pixels, labels, *SPLIT, task="multilabel", cfg=cfg, seeds=SEEDS)
        for _ in range(2)
    ]
    a, b = (predict(r.model, pixels, SPLIT[1], task="multilabel") for r in runs)
    assert np.array_equal(a, b)
    other = fit(
        _model(3, "mlp"),
        pixels,
        labels,
        *SPLIT,
        task="multilabel",
        cfg=cfg,
        seeds=SEEDS | {"order": 9},
    )
    assert not np.array_equal(a, predict(other.model, pixels, SPLIT[1], task="multilabel"))


def test_predict_rows_follow_index_order(data) -> None:
    pixels, _ = data
    model = _model(3)
    idx = np.array([7, 3, 180, 3, 0])
    full = predict(model, pixels, idx, task="multilabel", batch_size=2)
    single = np.concatenate([predict(model, pixels, [i], task="multilabel") for i in idx])
    np.testing.assert_allclose(full, single, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(_gather(pixels, idx), pixels[idx])


def test_diverging_loss_raises(data) -> None:
    pixels, labels = data
    with pytest.raises(TrainingDiverged, match="epoch 1, batch .*lower training.lr"):
        fit(
            _model(3),
            pixels,
            labels,
            *SPLIT,
            task="multilabel",
            cfg=_cfg(lr=1e30, optimizer="sgd"),
            seeds=SEEDS,
        )


def test_early_stopping_keep_last_and_sampler(data) -> None:
    pixels, marks = data
    labels = np.eye(2, dtype=np.uint8)[marks[:, 1]]
    cfg = _cfg(
        epochs=6,
        patience=1,
        lr=0.5,
        optimizer="sgd",
        keep_last=True,
        sampler="weighted",
        class_weights=True,
        schedule="cosine",
        max_batches_per_epoch=2,
    )
    res = fit(_model(2), pixels, labels, *SPLIT, task="binary", cfg=cfg, seeds=SEEDS)
    val = res.history[res.history.phase == "val"]
    losses = val.loss.to_numpy()
    # patience 1: training stops at the first epoch whose val loss does not improve on the best
    first_stale = next(i for i in range(1, len(losses)) if losses[i] >= losses[:i].min())
    assert res.epochs_trained == first_stale + 1
    lrs = val.lr.to_numpy()  # cosine schedule: 0.5 · (1 + cos(π e / 6)) / 2 at epoch e + 1
    np.testing.assert_allclose(
        lrs, [0.25 * (1 + math.cos(math.pi * e / 6)) for e in range(len(lrs))]
    )
    assert res.best_epoch < res.epochs_trained < 6  # stopped early, after a worse epoch
    # keep_last: the returned model has the last epoch's weights, not the best ones
    assert any(
        not torch.equal(res.model.state_dict()[k].cpu(), v) for k, v in res.best_state.items()
    )


def test_finetune_with_pruning_masks(data) -> None:
    pixels, labels = data
    model = _model(3)
    params = [
        (m, "weight") for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))
    ]
    prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=0.5)
    # fine-tuning = fit from the current weights (the runner's callback does exactly this)
    res = fit(
        model,
        pixels,
        labels,
        *SPLIT,
        task="multilabel",
        cfg=_cfg(max_batches_per_epoch=2, epochs=2),
        seeds=SEEDS,
    )
    assert res.epochs_trained == 2
    assert any(k.endswith("weight_mask") for k in res.best_state)
    conv = res.model.backbone.layer1[0].conv1
    assert torch.all(conv.weight[conv.weight_mask == 0] == 0)
    saved = state_dict_for_save(res.model)
    assert all(v.device.type == "cpu" and v.is_contiguous() for v in saved.values())


def test_focal_loss_by_hand() -> None:
    # two classes, softmax p = (0.9, 0.1), true class 0: focal = −(1 − 0.9)² · log 0.9
    logits = torch.log(torch.tensor([[0.9, 0.1]]))
    target = torch.tensor([0])
    focal = FocalLoss(2.0, multilabel=False)(logits, target)
    assert focal.item() == pytest.approx(-(0.1**2) * math.log(0.9), rel=1e-5)
    # γ = 0 is plain (weighted) cross-entropy / BCE
    z = torch.randn(6, 3)
    k = torch.tensor([0, 1, 2, 2, 1, 0])
    w = torch.tensor([0.5, 1.0, 2.0])
    torch.testing.assert_close(
        FocalLoss(0.0, False, weight=w)(z, k), F.cross_entropy(z, k, weight=w)
    )
    y = (torch.rand(6, 3) < 0.5).float()
    pw = torch.tensor([1.0, 3.0, 0.5])
    torch.testing.assert_close(
        FocalLoss(0.0, True, pos_weight=pw)(z, y),
        F.binary_cross_entropy_with_logits(z, y, pos_weight=pw),
    )
    # multi-label, one logit 0 (p = 0.5) with label 1: (1 − 0.5)² · log 2
    assert FocalLoss(2.0, True)(torch.zeros(1, 1), torch.ones(1, 1)).item() == pytest.approx(
        0.25 * math.log(2)
    )


def test_class_and_pos_weights_by_hand() -> None:
    labels = np.array([[1, 0], [1, 0], [1, 0], [0, 1]], dtype=np.uint8)
    # counts (3, 1) → 1/count (1/3, 1), mean 2/3 → (0.5, 1.5)
    torch.testing.assert_close(class_weights(labels), torch.tensor([0.5, 1.5]))
    multi = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 0], [0, 0, 0]], dtype=np.uint8)
    # neg/pos: 2/2, 3/1, and no positives → 1
    torch.testing.assert_close(pos_weights(multi), torch.tensor([1.0, 3.0, 1.0]))


def test_loss_choice_errors() -> None:
    y = np.eye(2, dtype=np.uint8)[[0, 1]]
    assert isinstance(build_loss("binary", _cfg(), y), torch.nn.CrossEntropyLoss)
    assert isinstance(build_loss("multilabel", _cfg(loss="focal"), y), FocalLoss)
    with pytest.raises(ValueError, match="pos_weight"):
        build_loss("multilabel", _cfg(class_weights=True), y)
    with pytest.raises(ValueError, match="'bce' is for multilabel"):
        build_loss("binary", _cfg(loss="bce"), y)


def test_augment_is_seeded_and_bounded() -> None:
    x = torch.rand(8, 1, 16, 16)
    cfg = AugmentConfig(hflip=True, rotation=15, brightness=0.3, contrast=0.3)
    a, b = Augmenter(cfg, 5)(x), Augmenter(cfg, 5)(x)
    assert torch.equal(a, b) and not torch.equal(a, Augmenter(cfg, 6)(x))
    assert a.shape == x.shape and a.min() >= 0 and a.max() <= 1
    flip_only = Augmenter(AugmentConfig(hflip=True, rotation=0, brightness=0, contrast=0), 0)(x)
    for i in range(8):  # each image is either unchanged or mirrored
        assert torch.equal(flip_only[i], x[i]) or torch.equal(flip_only[i], x[i].flip(-1))


def test_resolve_device() -> None:
    assert resolve_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        assert resolve_device("auto").type == "cpu"
        with pytest.raises(ValueError, match="no CUDA"):
            resolve_device("cuda")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_gpu_amp_channels_last(data, amp: str) -> None:
    pixels, labels = data
    cfg = _cfg(device="cuda", amp=amp, channels_last=True, epochs=2)
    res = fit(_model(3), pixels, labels, *SPLIT, task="multilabel", cfg=cfg, seeds=SEEDS)
    val = res.history[res.history.phase == "val"]
    assert np.isfinite(val.loss).all() and val.loss.iloc[-1] < val.loss.iloc[0]
    assert predict(res.model, pixels, SPLIT[1], task="multilabel").shape == (50, 3)


class _OOM(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")


def test_out_of_memory_hint(data) -> None:
    pixels, labels = data
    with pytest.raises(ValueError, match="lower training.batch_size") as err:
        fit(_OOM(), pixels, labels, *SPLIT, task="multilabel", cfg=_cfg(), seeds=SEEDS)
    assert isinstance(err.value.__cause__, torch.OutOfMemoryError)


def test_cpu_bf16_channels_last_runs(data) -> None:
    pixels, labels = data
    cfg = _cfg(amp="bf16", channels_last=True, epochs=1, max_batches_per_epoch=2)
    res = fit(_model(3), pixels, labels, *SPLIT, task="multilabel", cfg=cfg, seeds=SEEDS)
    assert np.isfinite(res.history.loss).all()
