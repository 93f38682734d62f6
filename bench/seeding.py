"""Independent seeds per purpose, derived from (study, seed, fold) so one factor can vary alone."""

from __future__ import annotations

import hashlib
import random

import numpy as np

PURPOSES = ("split", "init", "order", "augment", "compress")


def derive_seed(study: str, seed: int, fold: int, purpose: str) -> int:
    """A 63-bit seed that depends on every argument; the split seed ignores ``fold`` by design."""
    if purpose not in PURPOSES:
        raise ValueError(f"unknown seed purpose {purpose!r}; expected one of {PURPOSES}")
    key = f"{study}|{seed}|{fold if purpose != 'split' else '-'}|{purpose}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "little") >> 1


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (torch imported lazily so analysis code never needs it)."""
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
