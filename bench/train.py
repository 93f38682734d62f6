"""The suite's one training loop, its losses, and batched prediction.

Images come from the decode-once uint8 cache (an (N, H, W) array, possibly a memmap),
gathered by index per batch; files are never decoded here. Randomness: the caller seeds
model init; ``fit`` draws data order (and dropout, via the global RNG inside a forked RNG
state) from ``seeds["order"]`` and augmentation from ``seeds["augment"]``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from bench.augment import Augmenter
from bench.config import TrainingConfig
from bench.metrics import choose_thresholds, classification_metrics


class TrainingDiverged(ValueError):
    """The loss became NaN or infinite."""


@dataclass
class FitResult:
    """What :func:`fit` returns.

    model: best-val-loss weights loaded (last epoch's with ``keep_last``); best_state: the
    best epoch's state dict (CPU tensors); thresholds: chosen on validation with ``model``.
    """

    model: nn.Module
    history: pd.DataFrame
    best_epoch: int
    best_state: dict[str, torch.Tensor]
    thresholds: np.ndarray
    epochs_trained: int


def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    """ "auto" → CUDA when available else CPU; asking for "cuda" without one is an error."""
    if isinstance(name, torch.device):
        return name
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if str(name).startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(
            "training.device: 'cuda' requested but no CUDA device is available; use auto or cpu"
        )
    return torch.device(name)


def state_dict_for_save(model: nn.Module) -> dict[str, torch.Tensor]:
    """Contiguous, unshared CPU copies of the state dict (what safetensors can write)."""
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}


class FocalLoss(nn.Module):
    """Focal loss (Lin et al. 2017): mean of −(1 − p_t)^γ · log p_t.

    Single-label: softmax over classes, optional class ``weight`` (weighted mean, as
    ``F.cross_entropy``). Multi-label: per-element sigmoid focal term times
    ``BCEWithLogits(pos_weight)``. With γ = 0 both equal the plain (weighted) CE / BCE.
    """

    def __init__(
        self,
        gamma: float,
        multilabel: bool,
        weight: torch.Tensor | None = None,
        pos_weight: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        self.gamma, self.multilabel = gamma, multilabel
        self.register_buffer("weight", weight)
        self.register_buffer("pos_weight", pos_weight)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.multilabel:
            bce = F.binary_cross_entropy_with_logits(
                logits, target, pos_weight=self.pos_weight, reduction="none"
            )
            prob = torch.sigmoid(logits)
            p_t = torch.where(target > 0.5, prob, 1 - prob)
            return ((1 - p_t) ** self.gamma * bce).mean()
        log_p_t = F.log_softmax(logits, dim=1).gather(1, target[:, None]).squeeze(1)
        loss = -((1 - log_p_t.exp()) ** self.gamma) * log_p_t
        if self.weight is None:
            return loss.mean()
        w = self.weight[target]
        return (w * loss).sum() / w.sum()


def class_weights(labels: np.ndarray) -> torch.Tensor:
    """Inverse-frequency class weights, normalised to mean 1 over the classes present.

    A class absent from the training labels gets weight 0.
    """
    counts = np.asarray(labels).sum(0).astype(np.float64)
    inv = np.where(counts > 0, 1 / np.maximum(counts, 1), 0.0)
    return torch.tensor(inv / inv[counts > 0].mean(), dtype=torch.float32)


def pos_weights(labels: np.ndarray) -> torch.Tensor:
    """neg/pos per class for BCE; 1 for a class with no positives in the training labels."""
    labels = np.asarray(labels)
    pos = labels.sum(0).astype(np.float64)
    neg = len(labels) - pos
    return torch.tensor(np.where(pos > 0, neg / np.maximum(pos, 1), 1.0), dtype=torch.float32)


def build_loss(task: str, cfg: TrainingConfig, train_labels: np.ndarray) -> nn.Module:
    """The criterion for ``task`` as configured; its targets are class indices for
    single-label tasks and float 0/1 matrices for multi-label."""
    multilabel = task == "multilabel"
    kind = cfg.loss if cfg.loss != "auto" else ("bce" if multilabel else "ce")
    if multilabel and kind == "ce":
        raise ValueError("training.loss: 'ce' is for single-label tasks; use bce, focal or auto")
    if not multilabel and kind == "bce":
        raise ValueError(
            f"training.loss: 'bce' is for multilabel tasks, this task is {task}; use ce, focal or auto"
        )
    if multilabel and cfg.class_weights:
        raise ValueError(
            "training.class_weights is for single-label tasks; use training.pos_weight for multilabel"
        )
    if not multilabel and cfg.pos_weight:
        raise ValueError(
            f"training.pos_weight is for multilabel tasks; use training.class_weights for {task}"
        )
    weight = class_weights(train_labels) if cfg.class_weights else None
    pos_weight = pos_weights(train_labels) if cfg.pos_weight else None
    if kind == "focal":
        return FocalLoss(cfg.focal_gamma, multilabel, weight=weight, pos_weight=pos_weight)
    if multilabel:
        return nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    return nn.CrossEntropyLoss(weight=weight)


def _gather(pixels: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """pixels[idx] read in sorted order (memmap-friendly), returned in ``idx`` order."""
    order = np.argsort(idx, kind="stable")
    block = np.take(pixels, idx[order], axis=0)
    out = np.empty_like(block)
    out[order] = block
    return out


def _to_tensor(batch: np.ndarray, device: torch.device, channels_last: bool) -> torch.Tensor:
    """uint8 (n, H, W) → float (n, 1, H, W) in [0, 1] on ``device``."""
    x = torch.from_numpy(np.ascontiguousarray(batch)).to(device, non_blocking=True)
    x = x.unsqueeze(1).float().div_(255)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def _model_device(model: nn.Module) -> torch.device:
    for t in list(model.parameters()) + list(model.buffers()):
        return t.device
    return torch.device("cpu")


def _autocast(device: torch.device, amp: str) -> contextlib.AbstractContextManager:
    if amp == "none":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if amp == "bf16" else torch.float16)


def _logits(
    model: nn.Module,
    pixels: np.ndarray,
    index: np.ndarray,
    batch_size: int,
    device: torch.device,
    amp: str = "none",
    channels_last: bool = False,
) -> torch.Tensor:
    """float32 logits (len(index), C) on ``device``, rows in ``index`` order, eval mode."""
    model.eval()
    out = []
    with torch.inference_mode(), _autocast(device, amp):
        for start in range(0, len(index), batch_size):
            x = _to_tensor(
                _gather(pixels, index[start : start + batch_size]), device, channels_last
            )
            out.append(model(x).float())
    return torch.cat(out)


def _activate(logits: torch.Tensor, task: str) -> torch.Tensor:
    return torch.sigmoid(logits) if task == "multilabel" else torch.softmax(logits, dim=1)


def predict(
    model: nn.Module,
    pixels: np.ndarray,
    index: np.ndarray,
    *,
    task: str,
    batch_size: int = 256,
    device: str | torch.device | None = None,
) -> np.ndarray:
    """Probabilities (len(index), C) float32 in ``index`` order: softmax for single-label
    tasks, sigmoid for multi-label. ``device`` defaults to the model's own."""
    index = np.asarray(index, dtype=np.int64)
    device = _model_device(model) if device is None else resolve_device(device)
    model.to(device)
    if len(index) == 0:
        raise ValueError("predict: empty index; nothing to predict")
    return (
        _activate(_logits(model, pixels, index, batch_size, device), task)
        .cpu()
        .numpy()
        .astype(np.float32)
    )


def _targets(labels: np.ndarray, task: str) -> torch.Tensor:
    if task == "multilabel":
        return torch.from_numpy(np.asarray(labels, dtype=np.float32))
    return torch.from_numpy(np.asarray(labels).argmax(1).astype(np.int64))


def _epoch_order(
    n: int, train_labels: np.ndarray, task: str, sampler: str, generator: torch.Generator
) -> np.ndarray:
    """Positions into the training set for one epoch: a permutation, or class-balanced
    draws with replacement (WeightedRandomSampler equivalent, weights 1 / class count)."""
    if sampler == "none":
        return torch.randperm(n, generator=generator).numpy()
    if task == "multilabel":
        raise ValueError(
            "training.sampler: 'weighted' is for single-label tasks; use pos_weight for multilabel"
        )
    counts = train_labels.sum(0).astype(np.float64)
    weights = 1 / counts[train_labels.argmax(1)]
    return torch.multinomial(
        torch.from_numpy(weights), n, replacement=True, generator=generator
    ).numpy()


def _batches(order: np.ndarray, batch_size: int, limit: int | None) -> Iterator[np.ndarray]:
    """Consecutive batches; a trailing batch of one is dropped (BatchNorm cannot train on it)."""
    starts = range(0, len(order), batch_size)
    for i, start in enumerate(starts):
        batch = order[start : start + batch_size]
        if (limit is not None and i >= limit) or (len(batch) == 1 and len(order) > 1):
            return
        yield batch


def _is_oom(exc: BaseException) -> bool:
    msg = str(exc).lower()
    return (
        isinstance(exc, torch.OutOfMemoryError)
        or "out of memory" in msg
        or "can't allocate memory" in msg
    )


def _optimizer(params: Sequence[nn.Parameter], cfg: TrainingConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
        )
    cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    return cls(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


@contextlib.contextmanager
def _training_environment(
    cfg: TrainingConfig, device: torch.device, seeds: dict[str, int]
) -> Iterator[None]:
    """Thread count from the config (restored after), dropout & co. seeded from the order
    seed inside a forked RNG, and out-of-memory errors turned into a batch-size hint."""
    threads = torch.get_num_threads()
    if cfg.threads is not None and device.type == "cpu":
        torch.set_num_threads(cfg.threads)
    fork_devices = [device.index or 0] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=fork_devices):
            torch.manual_seed(seeds["order"])
            yield
    except RuntimeError as exc:
        if _is_oom(exc):
            raise ValueError(
                f"out of memory while training on {device} with training.batch_size="
                f"{cfg.batch_size}: lower training.batch_size (or eval_batch_size, image_size)"
            ) from exc
        raise
    finally:
        torch.set_num_threads(threads)


def fit(
    model: nn.Module,
    pixels: np.ndarray,
    labels: np.ndarray,
    train_idx: np.ndarray,
    val_idx: np.ndarray,
    *,
    task: str,
    cfg: TrainingConfig,
    seeds: dict[str, int],
    progress: Callable[[str], None] | None = None,
    class_names: Sequence[str] | None = None,
) -> FitResult:
    """Train ``model`` in place on ``train_idx``; validate on ``val_idx`` every epoch.

    Best checkpoint = minimum validation loss (kept in memory); early stopping after
    ``cfg.patience`` epochs without improvement. Raises :class:`TrainingDiverged` on a
    non-finite loss and ValueError (with a batch-size hint) on out-of-memory.
    """
    train_idx = np.asarray(train_idx, dtype=np.int64)
    val_idx = np.asarray(val_idx, dtype=np.int64)
    if len(train_idx) < 2 or len(val_idx) == 0:
        raise ValueError(
            f"fit: need at least 2 training and 1 validation images, got {len(train_idx)} and {len(val_idx)}"
        )
    missing = {"order", "augment"} - set(seeds)
    if missing:
        raise ValueError(
            f"fit: seeds lacks {sorted(missing)}; expected keys 'init', 'order', 'augment'"
        )
    labels = np.asarray(labels)
    device = resolve_device(cfg.device)
    with _training_environment(cfg, device, seeds):
        train_labels, val_labels = labels[train_idx], labels[val_idx]
        model.to(device)
        if cfg.channels_last:
            model.to(memory_format=torch.channels_last)
        criterion = build_loss(task, cfg, train_labels).to(device)
        optimizer = _optimizer([p for p in model.parameters() if p.requires_grad], cfg)
        scheduler = (
            torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, cfg.epochs)
            if cfg.schedule == "cosine"
            else None
        )
        scaler = torch.amp.GradScaler(device.type, enabled=cfg.amp == "fp16")
        train_model = torch.compile(model) if cfg.compile else model
        order_gen = torch.Generator().manual_seed(seeds["order"])
        augment = Augmenter(cfg.augment, seeds["augment"])
        train_targets, val_targets = (
            _targets(train_labels, task),
            _targets(val_labels, task).to(device),
        )

        rows: list[dict[str, float]] = []
        best_loss, best_epoch, best_state, stale = float("inf"), 0, state_dict_for_save(model), 0
        epoch = 0
        for epoch in range(1, cfg.epochs + 1):
            lr = optimizer.param_groups[0]["lr"]
            start = time.perf_counter()
            train_model.train()
            seen, loss_sum, probs, used = 0, 0.0, [], []
            order = _epoch_order(len(train_idx), train_labels, task, cfg.sampler, order_gen)
            for b, pos in enumerate(_batches(order, cfg.batch_size, cfg.max_batches_per_epoch)):
                x = augment(_to_tensor(_gather(pixels, train_idx[pos]), device, cfg.channels_last))
                target = train_targets[pos].to(device, non_blocking=True)
                with _autocast(device, cfg.amp):
                    logits = train_model(x).float()
                loss = criterion(logits, target)
                value = float(loss.detach())
                if not np.isfinite(value):
                    raise TrainingDiverged(
                        f"training diverged: loss is {value} at epoch {epoch}, batch {b + 1} "
                        f"(lr={lr:g}); lower training.lr, or set training.amp: none"
                    )
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                seen += len(pos)
                loss_sum += value * len(pos)
                probs.append(_activate(logits.detach(), task).cpu())
                used.append(pos)
            train_seconds = time.perf_counter() - start
            pos = np.concatenate(used)
            rows.append(
                _row(
                    epoch,
                    "train",
                    lr,
                    train_seconds,
                    seen,
                    train_labels[pos],
                    torch.cat(probs).numpy(),
                    loss_sum / seen,
                    task,
                    class_names,
                )
            )

            start = time.perf_counter()
            val_logits = _logits(
                model, pixels, val_idx, cfg.eval_batch_size, device, cfg.amp, cfg.channels_last
            )
            val_loss = float(criterion(val_logits, val_targets))
            if not np.isfinite(val_loss):
                raise TrainingDiverged(
                    f"training diverged: validation loss is {val_loss} after epoch {epoch} (lr={lr:g}); lower training.lr"
                )
            val_probs = _activate(val_logits, task).cpu().numpy()
            val_seconds = time.perf_counter() - start
            rows.append(
                _row(
                    epoch,
                    "val",
                    lr,
                    val_seconds,
                    len(val_idx),
                    val_labels,
                    val_probs,
                    val_loss,
                    task,
                    class_names,
                )
            )

            if scheduler is not None:
                scheduler.step()
            if val_loss < best_loss:
                best_loss, best_epoch, best_state, stale = (
                    val_loss,
                    epoch,
                    state_dict_for_save(model),
                    0,
                )
            else:
                stale += 1
            if progress is not None:
                val = rows[-1]
                progress(
                    f"epoch {epoch}/{cfg.epochs}: train loss {rows[-2]['loss']:.4f}, val loss {val_loss:.4f}, "
                    f"val auroc {val['auroc_macro']:.3f} ({train_seconds + val_seconds:.1f} s)"
                )
            if cfg.patience is not None and stale >= cfg.patience:
                break

        if not cfg.keep_last:
            model.load_state_dict(best_state)
        val_probs = predict(
            model, pixels, val_idx, task=task, batch_size=cfg.eval_batch_size, device=device
        )
        thresholds = choose_thresholds(val_labels, val_probs, task, cfg.threshold)
        return FitResult(
            model=model,
            history=pd.DataFrame(rows),
            best_epoch=best_epoch,
            best_state=best_state,
            thresholds=thresholds,
            epochs_trained=epoch,
        )


def _row(
    epoch: int,
    phase: str,
    lr: float,
    seconds: float,
    n_images: int,
    y: np.ndarray,
    p: np.ndarray,
    loss: float,
    task: str,
    class_names: Sequence[str] | None,
) -> dict[str, float]:
    metrics = classification_metrics(y, p, task, loss=loss, class_names=class_names)
    return {
        "epoch": epoch,
        "phase": phase,
        **metrics,
        "lr": lr,
        "seconds": seconds,
        "images_per_s": n_images / seconds if seconds > 0 else float("nan"),
    }
