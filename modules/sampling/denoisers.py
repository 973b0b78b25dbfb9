"""Wrappers turning a discrete-time UNet into the sampler interface ``model(x, sigma, cond=...) -> x0``.

The UNet-like callable is ``apply_model(x_in, t, cond) -> output`` with t the (fractional) timestep batch and
``cond`` a dict of batched tensors (``crossattn``, ``vector``, ``concat``...). Preconditioning follows Karras et al.
2022, Table 1 / eq. 7 (``D(x) = c_skip x + c_out F(c_in x; t(sigma))``) with sigma_data = 1 for SD's VP training:

* eps-prediction (SD 1.x/2.x-base, SDXL): c_in = 1/sqrt(sigma^2 + 1), c_out = -sigma, c_skip = 1;
* v-prediction (SD 2.x 768-v; Salimans & Ho 2022, "Progressive Distillation", v = alpha eps - sigma_vp x0):
  c_in = 1/sqrt(sigma^2 + 1), c_out = -sigma/sqrt(sigma^2 + 1), c_skip = 1/(sigma^2 + 1).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from .common import append_dims
from .discrete import DiscreteSchedule

Tensor = torch.Tensor
ApplyModel = Callable[[Tensor, Tensor, dict[str, Tensor]], Tensor]


class DiscreteDenoiser:
    """k-diffusion-style denoiser over a discrete-time model (``prediction`` "eps" or "v").

    ``schedule`` gives sigma <-> t (interpolated, or quantized when the schedule says so); ``sigma_min``,
    ``sigma_max`` and ``get_sigmas`` expose it to the schedule code.
    """

    def __init__(self, apply_model: ApplyModel, schedule: DiscreteSchedule, prediction: str = "eps") -> None:
        if prediction not in ("eps", "v"):
            raise ValueError(f"prediction must be 'eps' or 'v', got {prediction!r}")
        self.apply_model = apply_model
        self.schedule = schedule
        self.prediction = prediction

    @property
    def sigma_min(self) -> Tensor:
        return self.schedule.sigma_min

    @property
    def sigma_max(self) -> Tensor:
        return self.schedule.sigma_max

    def get_sigmas(self, n: int) -> Tensor:
        return self.schedule.get_sigmas(n)

    def scalings(self, sigma: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(c_skip, c_out, c_in) for a sigma batch."""
        c_in = 1 / (sigma**2 + 1) ** 0.5
        if self.prediction == "eps":
            return torch.ones_like(sigma), -sigma, c_in
        return 1 / (sigma**2 + 1), -sigma / (sigma**2 + 1) ** 0.5, c_in

    def timesteps(self, sigma: Tensor) -> Tensor:
        """Model timesteps for a sigma batch (float, as A1111 feeds them to the UNet's timestep embedding)."""
        return self.schedule.sigma_to_t(sigma).to(sigma.dtype)

    def __call__(self, x: Tensor, sigma: Tensor, cond: dict[str, Tensor] | None = None, **_: Any) -> Tensor:
        sigma = torch.as_tensor(sigma, device=x.device, dtype=x.dtype).reshape(-1)
        if sigma.numel() == 1 and x.shape[0] != 1:
            sigma = sigma.expand(x.shape[0])
        c_skip, c_out, c_in = (append_dims(c, x.ndim) for c in self.scalings(sigma))
        out = self.apply_model(x * c_in, self.timesteps(sigma), cond or {})
        return out * c_out + x * c_skip


class LCMDenoiser(DiscreteDenoiser):
    """A1111's LCM denoiser (Luo et al. 2023, "Latent Consistency Models"): an eps-model queried only at the 50
    "original" LCM timesteps 19, 39, ..., 999 (nearest in log-sigma), with the consistency-model boundary
    condition ``D = c_skip x + c_out x0_eps`` where, for the scaled timestep 10 t and sigma_data 0.5,
    ``c_skip = 0.25 / ((10 t)^2 + 0.25)`` and ``c_out = 10 t / sqrt((10 t)^2 + 0.25)``."""

    ORIGINAL_STEPS = 50

    def __init__(self, apply_model: ApplyModel, alphas_cumprod: Tensor) -> None:
        total = alphas_cumprod.numel()
        self.skip = total // self.ORIGINAL_STEPS
        picked = torch.tensor([total - 1 - i * self.skip for i in range(self.ORIGINAL_STEPS)][::-1])
        super().__init__(apply_model, DiscreteSchedule(alphas_cumprod[picked]), prediction="eps")

    def timesteps(self, sigma: Tensor) -> Tensor:
        index = self.schedule.sigma_to_t(sigma, quantize=True)
        return (index * self.skip + (self.skip - 1)).to(sigma.dtype)

    def get_sigmas(self, n: int) -> Tensor:
        """LCM's own schedule: n model timesteps evenly spaced from 999 to 19, read off the 50-entry table."""
        hi = float(self.timesteps(self.sigma_max.reshape(1))[0])
        lo = float(self.timesteps(self.sigma_min.reshape(1))[0])
        ts = torch.linspace(hi, lo, n)
        idx = ((ts - (self.skip - 1)) / self.skip).clamp(0, len(self.schedule) - 1)
        return torch.cat([self.schedule.t_to_sigma(idx), torch.zeros(1)]).float()

    def __call__(self, x: Tensor, sigma: Tensor, cond: dict[str, Tensor] | None = None, **_: Any) -> Tensor:
        sigma = torch.as_tensor(sigma, device=x.device, dtype=x.dtype).reshape(-1)
        if sigma.numel() == 1 and x.shape[0] != 1:
            sigma = sigma.expand(x.shape[0])
        t = self.timesteps(sigma)
        c_in = append_dims(1 / (sigma**2 + 1) ** 0.5, x.ndim)
        eps = self.apply_model(x * c_in, t, cond or {})
        x0 = x - eps * append_dims(sigma, x.ndim)
        scaled = append_dims(t * 10.0, x.ndim)
        c_skip = 0.25 / (scaled**2 + 0.25)
        c_out = scaled / (scaled**2 + 0.25) ** 0.5
        return c_out * x0 + c_skip * x
