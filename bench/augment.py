"""Batched training augmentation on the tensors' own device, reproducible from one seed.

Random parameters are drawn on the CPU from a ``torch.Generator`` seeded with the augment
seed and then moved to the batch's device, so the draws do not depend on the device and do
not touch the global RNG (model init and data order keep their own seeds).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from bench.config import AugmentConfig


class Augmenter:
    """Random horizontal flip, rotation ±``rotation``°, brightness and contrast jitter."""

    def __init__(self, cfg: AugmentConfig, seed: int) -> None:
        self.cfg = cfg
        self.generator = torch.Generator().manual_seed(seed)

    def _uniform(self, n: int, half_width: float) -> torch.Tensor:
        """n draws from U(-half_width, half_width)."""
        return (torch.rand(n, generator=self.generator, dtype=torch.float64) * 2 - 1) * half_width

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Augment a float batch (N, C, H, W) in [0, 1]; returns a new tensor in [0, 1]."""
        cfg, n = self.cfg, x.shape[0]
        if cfg.hflip:
            flip = torch.rand(n, generator=self.generator) < 0.5
            x = torch.where(flip.to(x.device).view(n, 1, 1, 1), x.flip(-1), x)
        if cfg.rotation > 0:
            angle = self._uniform(n, math.radians(cfg.rotation))
            cos, sin, zero = angle.cos(), angle.sin(), torch.zeros(n, dtype=angle.dtype)
            theta = torch.stack([cos, -sin, zero, sin, cos, zero], 1).view(n, 2, 3)
            theta = theta.to(device=x.device, dtype=x.dtype)
            grid = F.affine_grid(theta, list(x.shape), align_corners=False)
            x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        if cfg.brightness > 0:
            factor = 1 + self._uniform(n, cfg.brightness)
            x = (x * factor.to(device=x.device, dtype=x.dtype).view(n, 1, 1, 1)).clamp(0, 1)
        if cfg.contrast > 0:
            factor = (
                (1 + self._uniform(n, cfg.contrast))
                .to(device=x.device, dtype=x.dtype)
                .view(n, 1, 1, 1)
            )
            mean = x.mean(dim=(1, 2, 3), keepdim=True)
            x = (x - mean) * factor + mean
        return x.clamp(0, 1)
