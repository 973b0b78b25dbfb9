"""The model's discrete noise schedule: alphas_cumprod -> sigmas, and sigma <-> timestep conversion.

Stable Diffusion (LDM, Rombach et al. 2022) trains on 1000 DDPM timesteps with the "scaled linear" beta schedule
``betas = linspace(sqrt(0.00085), sqrt(0.012), 1000) ** 2`` (``linear_start``/``linear_end`` in the LDM configs).
In the VE view of Karras et al. 2022, timestep t has ``sigma_t = sqrt((1 - alphabar_t) / alphabar_t)``.
Conversions interpolate log-sigma linearly between integer timesteps, as k-diffusion's ``DiscreteSchedule`` which
A1111 uses (its "Enable quantization in K samplers" option rounds to the nearest timestep instead).
"""

from __future__ import annotations

import torch

Tensor = torch.Tensor

SD_LINEAR_START = 0.00085
SD_LINEAR_END = 0.012
SD_TIMESTEPS = 1000


def scaled_linear_alphas_cumprod(
    linear_start: float = SD_LINEAR_START, linear_end: float = SD_LINEAR_END, timesteps: int = SD_TIMESTEPS
) -> Tensor:
    """alphabar_t for LDM's "linear" schedule (linear in sqrt(beta)), computed in float64 then stored as float32
    like the ``alphas_cumprod`` buffer of an LDM model."""
    betas = torch.linspace(linear_start**0.5, linear_end**0.5, timesteps, dtype=torch.float64) ** 2
    return torch.cumprod(1.0 - betas, dim=0).to(torch.float32)


def rescale_zero_terminal_snr(alphas_cumprod: Tensor) -> Tensor:
    """A1111's "Zero Terminal SNR" noise schedule: Lin et al. 2023 ("Common Diffusion Noise Schedules and Sample
    Steps are Flawed", Algorithm 1) shifts and scales sqrt(alphabar) so the last timestep has zero SNR. The last
    value is then clamped to a tiny positive number so sigma stays finite (A1111 uses 4.8973451890853435e-08)."""
    sqrt_ab = alphas_cumprod.double().sqrt()
    first, last = sqrt_ab[0].clone(), sqrt_ab[-1].clone()
    sqrt_ab = (sqrt_ab - last) * first / (first - last)
    out = sqrt_ab**2
    out[-1] = 4.8973451890853435e-08
    return out.to(alphas_cumprod.dtype)


class DiscreteSchedule:
    """Sigmas of a discrete-time model, ascending (``sigmas[0]`` = timestep 0), with sigma <-> t conversion.

    ``quantize=True`` makes :meth:`sigma_to_t` return the nearest integer timestep (A1111 ``enable_quantization``).
    """

    def __init__(self, alphas_cumprod: Tensor, quantize: bool = False) -> None:
        if alphas_cumprod.ndim != 1 or alphas_cumprod.numel() < 2:
            raise ValueError("DiscreteSchedule needs a 1-D alphas_cumprod with at least 2 timesteps")
        self.alphas_cumprod = alphas_cumprod
        self.sigmas = ((1 - alphas_cumprod) / alphas_cumprod) ** 0.5
        self.log_sigmas = self.sigmas.log()
        self.quantize = quantize

    @classmethod
    def sd_default(cls, quantize: bool = False) -> DiscreteSchedule:
        """The schedule shared by SD 1.x, SD 2.x and SDXL checkpoints."""
        return cls(scaled_linear_alphas_cumprod(), quantize=quantize)

    def __len__(self) -> int:
        return self.sigmas.numel()

    @property
    def sigma_min(self) -> Tensor:
        return self.sigmas[0]

    @property
    def sigma_max(self) -> Tensor:
        return self.sigmas[-1]

    def sigma_to_t(self, sigma: Tensor | float, quantize: bool | None = None) -> Tensor:
        """Continuous timestep of ``sigma`` by linear interpolation in log-sigma (clamped to [0, T-1])."""
        quantize = self.quantize if quantize is None else quantize
        device = sigma.device if isinstance(sigma, Tensor) else self.log_sigmas.device
        sigma = torch.as_tensor(sigma, device=device).to(self.log_sigmas.dtype)
        log_sigmas = self.log_sigmas.to(device)
        log_sigma = sigma.log().reshape(-1)
        dists = log_sigma - log_sigmas[:, None]  # (T, N)
        if quantize:
            return dists.abs().argmin(dim=0).view(sigma.shape).to(sigma.dtype)
        # index of the last table entry not above log_sigma, kept inside [0, T-2]
        low_idx = dists.ge(0).cumsum(dim=0).argmax(dim=0).clamp(max=len(self) - 2)
        high_idx = low_idx + 1
        low, high = log_sigmas[low_idx], log_sigmas[high_idx]
        w = ((low - log_sigma) / (low - high)).clamp(0, 1)
        t = (1 - w) * low_idx + w * high_idx
        return t.view(sigma.shape)

    def t_to_sigma(self, t: Tensor | float) -> Tensor:
        """Sigma at a (possibly fractional) timestep, interpolating log-sigma between neighbours."""
        device = t.device if isinstance(t, Tensor) else self.log_sigmas.device
        t = torch.as_tensor(t, device=device).to(self.log_sigmas.dtype)
        log_sigmas = self.log_sigmas.to(device)
        low_idx = t.floor().long().clamp(0, len(self) - 1)
        high_idx = t.ceil().long().clamp(0, len(self) - 1)
        w = t.frac()
        log_sigma = (1 - w) * log_sigmas[low_idx] + w * log_sigmas[high_idx]
        return log_sigma.exp()

    def get_sigmas(self, n: int) -> Tensor:
        """The model's own ("Uniform") schedule: n timesteps evenly spaced from T-1 to 0, then a final 0."""
        t = torch.linspace(len(self) - 1, 0, n, dtype=self.log_sigmas.dtype, device=self.log_sigmas.device)
        return torch.cat([self.t_to_sigma(t), t.new_zeros([1])])

    def log_alpha_at(self, t_continuous: Tensor) -> Tensor:
        """``log sqrt(alphabar)`` at continuous time ``t in (0, 1]`` (DPM-Solver's ``NoiseScheduleVP('discrete')``):
        timestep k <-> t = (k + 1) / T, linear interpolation of log sqrt(alphabar) in between."""
        n = len(self)
        log_alpha = 0.5 * self.alphas_cumprod.double().log()
        pos = (t_continuous.double() * n - 1).clamp(0, n - 1)
        low = pos.floor().long().clamp(max=n - 2)
        w = pos - low
        return (1 - w) * log_alpha[low] + w * log_alpha[low + 1]
