"""Latent noise for (seed, shape, source): A1111's ``modules/rng.py`` semantics without global RNG state.

Sources (A1111 setting ``randn_source``, infotext ``RNG``):

* ``"GPU"`` (A1111 default) — ``torch.randn`` from a generator on the compute device. On a CPU-only machine that is
  the CPU generator; A1111 also uses the CPU generator on MPS, and so do we.
* ``"CPU"`` — ``torch.randn`` from a CPU ``torch.Generator`` seeded with the seed, moved to the device: identical on
  every machine.
* ``"NV"`` — the noise an NVIDIA card's ``torch.randn`` produces, computed with Philox4x32-10 + Box-Muller in
  NumPy (``modules.processing.philox``), identical on every machine.

Every draw comes from an explicit generator object (``torch.Generator`` or ``PhiloxGenerator``): nothing here calls
``torch.manual_seed`` or changes ``torch``'s or ``random``'s global state.

``ImageRNG`` reproduces A1111's ``rng.ImageRNG``: one generator per image (so a batch gives the same images as
single generations), variation seeds by ``slerp``, "resize seed from" by centred pasting, and
``eta_noise_seed_delta`` (ENSD) re-seeding for the sampler noise after the initial latent.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol

import torch

from modules.processing.philox import PhiloxGenerator, seed_to_key

RandnSource = Literal["GPU", "CPU", "NV"]
RANDN_SOURCES: tuple[str, ...] = ("GPU", "CPU", "NV")
"""Valid values of the ``randn_source`` setting, A1111 order."""

LATENT_DOWNSCALE = 8
"""Pixels per latent cell used by A1111's ``seed_resize_from_w/h`` (``opt_f``)."""

SLERP_PARALLEL_THRESHOLD = 0.9995
"""A1111's ``slerp`` falls back to a linear blend when the mean row cosine exceeds this."""

_CPU = torch.device("cpu")


class NoiseGenerator(Protocol):
    """A seeded stream of standard-normal tensors (one per image)."""

    def randn(self, shape: Sequence[int]) -> torch.Tensor:
        """Draw float32 normals of ``shape`` on the target device, advancing the stream."""
        ...


def check_source(source: str) -> RandnSource:
    """Validate a ``randn_source`` value, raising ``ValueError`` that lists the valid ones."""
    if source not in RANDN_SOURCES:
        raise ValueError(f"unknown random number source {source!r}; expected one of {', '.join(RANDN_SOURCES)}")
    return source  # type: ignore[return-value]


def generator_device(source: str, device: torch.device | str) -> torch.device:
    """Where the torch generator for ``source`` lives: the device for ``GPU`` (CPU on MPS, as A1111), else CPU."""
    device = torch.device(device)
    if check_source(source) == "GPU" and device.type != "mps":
        return device
    return _CPU


class TorchNoiseGenerator:
    """``GPU``/``CPU`` source: a ``torch.Generator`` seeded with ``seed`` (A1111 ``rng.create_generator``)."""

    def __init__(self, seed: int, source: str = "GPU", device: torch.device | str = _CPU) -> None:
        self.device = torch.device(device)
        self.generator_device = generator_device(source, self.device)
        seed_to_key(seed)  # same range check (and message) as torch.manual_seed, raised as ValueError
        self.generator = torch.Generator(self.generator_device)
        self.generator.manual_seed(int(seed))

    def randn(self, shape: Sequence[int]) -> torch.Tensor:
        """``torch.randn(shape, generator=…)`` on the generator's device, moved to the target device."""
        noise = torch.randn(tuple(shape), generator=self.generator, device=self.generator_device, dtype=torch.float32)
        return noise.to(self.device)


class PhiloxNoiseGenerator:
    """``NV`` source: CUDA-identical normals from ``PhiloxGenerator`` (A1111 ``rng_philox.Generator``)."""

    def __init__(self, seed: int, device: torch.device | str = _CPU) -> None:
        self.device = torch.device(device)
        self.philox = PhiloxGenerator(int(seed))

    def randn(self, shape: Sequence[int]) -> torch.Tensor:
        """The next CUDA ``randn(shape)`` of this seed, as a float32 tensor on the target device."""
        return torch.from_numpy(self.philox.randn(tuple(shape))).to(self.device)


def create_generator(seed: int, source: str = "GPU", device: torch.device | str = _CPU) -> NoiseGenerator:
    """A fresh noise stream for ``seed`` from ``source`` producing tensors on ``device``."""
    if check_source(source) == "NV":
        return PhiloxNoiseGenerator(seed, device)
    return TorchNoiseGenerator(seed, source, device)


def randn(seed: int, shape: Sequence[int], source: str = "GPU", device: torch.device | str = _CPU) -> torch.Tensor:
    """The first normal tensor of ``seed``'s stream (A1111 ``devices.randn`` / ``randn_local``), float32."""
    return create_generator(seed, source, device).randn(shape)


def slerp(val: float, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """A1111's spherical interpolation used for variation seeds (``modules/rng.py``).

    Works row-wise over dim 1 of ``(C, H, W)`` noise: normalises along dim 1, takes the per-(C, W) cosine; when the
    *mean* cosine is above 0.9995 it returns the linear blend ``low * val + high * (1 - val)`` (A1111's fallback,
    written as A1111 has it), otherwise ``sin((1-val)ω)/sin ω · low + sin(val ω)/sin ω · high``. So ``val = 0``
    gives ``low`` and ``val = 1`` gives ``high``. From the discussion at
    https://discuss.pytorch.org/t/help-regarding-slerp-function-for-generative-model-sampling/32475 (via A1111).
    """
    low_norm = low / torch.norm(low, dim=1, keepdim=True)
    high_norm = high / torch.norm(high, dim=1, keepdim=True)
    dot = (low_norm * high_norm).sum(1)
    if dot.mean() > SLERP_PARALLEL_THRESHOLD:
        return low * val + high * (1 - val)
    omega = torch.acos(dot)
    sin_omega = torch.sin(omega)
    low_weight = (torch.sin((1.0 - val) * omega) / sin_omega).unsqueeze(1)
    high_weight = (torch.sin(val * omega) / sin_omega).unsqueeze(1)
    return low_weight * low + high_weight * high


def paste_centered(target: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    """Copy ``source`` (C, h, w) into the centre of ``target`` (C, H, W), cropping it where it is bigger.

    A1111 ``ImageRNG.first`` for ``seed_resize_from``: offsets ``(H - h) // 2`` / ``(W - w) // 2`` (floor division,
    so odd margins put the extra cell at the bottom/right, and a bigger source is cropped symmetrically the same
    way). Returns a new tensor; ``target`` is not modified.
    """
    result = target.clone()
    dy = (target.shape[1] - source.shape[1]) // 2
    dx = (target.shape[2] - source.shape[2]) // 2
    height = source.shape[1] if dy >= 0 else source.shape[1] + 2 * dy
    width = source.shape[2] if dx >= 0 else source.shape[2] + 2 * dx
    to_y, to_x = max(dy, 0), max(dx, 0)
    from_y, from_x = max(-dy, 0), max(-dx, 0)
    result[:, to_y : to_y + height, to_x : to_x + width] = source[:, from_y : from_y + height, from_x : from_x + width]
    return result


class ImageRNG:
    """Noise for one batch of images: initial latent noise (``first``) and the sampler's later draws (``next``).

    ``shape`` is one image's latent shape ``(C, H, W)``; ``seeds`` / ``subseeds`` one entry per image (see
    ``modules.processing.seeds.image_seeds``). Semantics of A1111 ``rng.ImageRNG``:

    * ``first()``: for image ``i``, the first draw of generator ``seeds[i]``. With a variation
      (``subseed_strength != 0``) it is ``slerp(strength, noise(seed), noise(subseed))``. With
      ``seed_resize_from_w/h > 0`` the seed (and subseed) noise is made at ``(C, from_h // 8, from_w // 8)`` and
      pasted centred into the full-size first draw of the seed.
    * ``next()``: the next draw from each image's generator — these feed ancestral/SDE samplers. When
      ``eta_noise_seed_delta`` (ENSD) is non-zero the generators are replaced after ``first()`` by fresh ones
      seeded with ``seed + ENSD``; the initial noise is unaffected. The first ``next()`` before any ``first()``
      returns ``first()`` (A1111 processing draws the initial latent with ``rng.next()``).
    """

    def __init__(
        self,
        shape: Sequence[int],
        seeds: Sequence[int],
        subseeds: Sequence[int] | None = None,
        subseed_strength: float = 0.0,
        seed_resize_from_h: int = 0,
        seed_resize_from_w: int = 0,
        *,
        source: str = "GPU",
        device: torch.device | str = _CPU,
        eta_noise_seed_delta: int = 0,
        downscale: int = LATENT_DOWNSCALE,
    ) -> None:
        self.shape = tuple(int(s) for s in shape)
        if len(self.shape) != 3 or min(self.shape) <= 0:
            raise ValueError(f"latent noise shape must be (channels, height, width) > 0, got {tuple(shape)}")
        if len(seeds) == 0:
            raise ValueError("ImageRNG needs at least one seed (one per image)")
        self.seeds = [int(s) for s in seeds]
        self.subseeds = None if subseeds is None else [int(s) for s in subseeds]
        self.subseed_strength = float(subseed_strength)
        self.seed_resize_from_h = int(seed_resize_from_h or 0)
        self.seed_resize_from_w = int(seed_resize_from_w or 0)
        self.source = check_source(source)
        self.device = torch.device(device)
        self.eta_noise_seed_delta = int(eta_noise_seed_delta or 0)
        self.downscale = int(downscale)
        self.generators = [self._generator(seed) for seed in self.seeds]
        self.is_first = True

    def _generator(self, seed: int) -> NoiseGenerator:
        return create_generator(seed, self.source, self.device)

    @property
    def noise_shape(self) -> tuple[int, int, int]:
        """Shape the seed noise is generated at: the latent shape, or the "resize seed from" size."""
        if self.seed_resize_from_h <= 0 or self.seed_resize_from_w <= 0:
            return self.shape  # type: ignore[return-value]
        return (
            self.shape[0],
            self.seed_resize_from_h // self.downscale,
            self.seed_resize_from_w // self.downscale,
        )

    def _variation_subseed(self, index: int) -> int | None:
        if self.subseeds is None or self.subseed_strength == 0:
            return None
        return self.subseeds[index] if index < len(self.subseeds) else 0  # A1111: missing subseeds count as 0

    def first(self) -> torch.Tensor:
        """Initial latent noise, stacked ``(N, C, H, W)`` float32 on the device; arms ``next()`` for sampler noise."""
        noise_shape = self.noise_shape
        resized = noise_shape != self.shape
        if resized and min(noise_shape) <= 0:
            raise ValueError(
                f"seed resize size {self.seed_resize_from_w}x{self.seed_resize_from_h} is smaller than one latent cell"
            )
        images = []
        for index, (seed, generator) in enumerate(zip(self.seeds, self.generators, strict=True)):
            subseed = self._variation_subseed(index)
            full = generator.randn(self.shape)
            noise = self._generator(seed).randn(noise_shape) if resized else full
            if subseed is not None:
                noise = slerp(self.subseed_strength, noise, self._generator(subseed).randn(noise_shape))
            if resized:
                noise = paste_centered(full, noise)
            images.append(noise)
        if self.eta_noise_seed_delta:
            self.generators = [self._generator(seed + self.eta_noise_seed_delta) for seed in self.seeds]
        self.is_first = False
        return torch.stack(images)

    def next(self) -> torch.Tensor:
        """The next noise draw for every image, ``(N, C, H, W)``; the very first call returns ``first()``."""
        if self.is_first:
            return self.first()
        return torch.stack([generator.randn(self.shape) for generator in self.generators])
