"""Dtype policy and NaN guards (A1111 ``modules/devices.py`` semantics for the precision flags).

Defaults: fp16 weights with autocast on CUDA/MPS (A1111's default); on the CPU fp32, or bf16 where the CPU computes
bf16 natively (detected by :func:`modules.memory.devices.cpu_supports_bf16`, overridable with ``cpu_bf16``).

Flags, as A1111 defines them:

* ``--no-half`` – every network in fp32.
* ``--no-half-vae`` – the VAE in fp32 (fp16 VAEs overflow into NaN → black images, seed report 002).
* ``--precision full|half|autocast`` – ``autocast`` (default) runs under ``torch.autocast``; ``full`` disables
  autocast and computes in fp32 (use with ``--no-half``); ``half`` (A1111 1.10) is fp16 without autocast casting.
* ``--upcast-sampling`` – keep fp16 weights but do the sampling maths in fp32 (no effect with ``--no-half``); the
  networks read :attr:`DtypePolicy.upcast_sampling`.
* ``--disable-nan-check`` – skip :func:`check_for_nans`.

NaN handling: NaN out of the UNet raises :class:`NansError` naming the flags that fix it; NaN out of the VAE decode
converts the VAE to fp32 and decodes again (A1111's ``auto_vae_precision`` setting, on by default), reporting that it
did so; only if that also fails is :class:`NansError` raised.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

import torch

from modules.memory.devices import cpu_supports_bf16

log = logging.getLogger(__name__)

PrecisionMode = Literal["full", "half", "autocast"]
NanSite = Literal["unet", "vae", "text_encoder"]


@dataclass(frozen=True)
class PrecisionFlags:
    """The command-line inputs of the dtype policy (plain values; ``modules.cli`` fills them)."""

    no_half: bool = False
    no_half_vae: bool = False
    precision: PrecisionMode = "autocast"
    upcast_sampling: bool = False
    disable_nan_check: bool = False
    cpu_bf16: bool | None = None
    """None = use bf16 on the CPU when it is native (detected); True/False force it."""


@dataclass(frozen=True)
class DtypePolicy:
    """Which dtype each network is stored in, and how inference is run."""

    device_type: str
    unet: torch.dtype
    text_encoder: torch.dtype
    vae: torch.dtype
    autocast: bool
    upcast_sampling: bool
    nan_check: bool
    flags: PrecisionFlags

    @property
    def sampling(self) -> torch.dtype:
        """Dtype of latents during sampling: fp32 with ``--upcast-sampling``, else the UNet's."""
        return torch.float32 if self.upcast_sampling else self.unet

    def autocast_context(self) -> contextlib.AbstractContextManager[object]:
        """``torch.autocast`` in the UNet dtype when the policy uses autocast, else a no-op context."""
        if not self.autocast:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.unet)

    def with_fp32_vae(self) -> DtypePolicy:
        """This policy with the VAE in fp32 (after a NaN decode, as A1111 switches to --no-half-vae for the session)."""
        return replace(self, vae=torch.float32)


def resolve_dtype_policy(device: torch.device | str, flags: PrecisionFlags | None = None) -> DtypePolicy:
    """Turn the flags into dtypes for ``device`` (rules in the module docstring)."""
    flags = flags or PrecisionFlags()
    device_type = torch.device(device).type
    if flags.precision not in ("full", "half", "autocast"):
        raise ValueError(f"--precision must be full, half or autocast, not {flags.precision!r}")
    if device_type == "cpu":
        use_bf16 = cpu_supports_bf16() if flags.cpu_bf16 is None else flags.cpu_bf16
        half = torch.float16 if flags.precision == "half" else (torch.bfloat16 if use_bf16 else torch.float32)
    else:
        half = torch.float16
    if flags.no_half or flags.precision == "full":
        if flags.precision == "full" and not flags.no_half:
            log.info("--precision full without --no-half: running every network in fp32")
        half = torch.float32
    vae = torch.float32 if flags.no_half_vae else half
    upcast = flags.upcast_sampling and half == torch.float16
    # A1111 samples under `devices.without_autocast()` when the UNet needs upcasting: the sampler's maths stays in
    # fp32 and only the UNet's input is cast to fp16 (our `unet_apply` casts x in and the output back to fp32).
    autocast = flags.precision == "autocast" and half != torch.float32 and not upcast
    return DtypePolicy(
        device_type=device_type,
        unet=half,
        text_encoder=half,
        vae=vae,
        autocast=autocast,
        upcast_sampling=upcast,
        nan_check=not flags.disable_nan_check,
        flags=flags,
    )


class NansError(RuntimeError):
    """NaNs came out of a network; the message names the flags that avoid it (A1111 ``NansException``)."""

    def __init__(self, site: NanSite, message: str) -> None:
        self.site = site
        super().__init__(message)


def _fix_suggestions(site: NanSite, flags: PrecisionFlags, dtype: torch.dtype | None = None) -> list[str]:
    """The precision flags that could avoid NaNs in `site`; none when that network already runs in fp32 (then
    precision is not the cause, and A1111's advice to add --no-half or --precision full would not help)."""
    if dtype == torch.float32:
        return []
    if site == "vae":
        return [] if flags.no_half or flags.no_half_vae else ["--no-half-vae"]
    suggestions = []
    if not flags.no_half:
        suggestions.append("--no-half")
    if flags.precision != "full":
        suggestions.append("--precision full")
    if not flags.upcast_sampling and not flags.no_half:
        suggestions.append("--upcast-sampling")
    return suggestions


def nans_message(site: NanSite, flags: PrecisionFlags, dtype: torch.dtype | None = None) -> str:
    """A1111-style explanation of a NaN result, listing only the fixes not already in use. `dtype` is the dtype
    the network ran in: in fp32 no precision flag helps, so the message says the weights are the likely cause."""
    names = {"unet": "the UNet", "vae": "the VAE", "text_encoder": "the text encoder"}
    message = f"A tensor with NaNs was produced in {names[site]}."
    fixes = _fix_suggestions(site, flags, dtype)
    if fixes:
        message += (
            " This usually means half precision cannot represent the values (or the GPU does not support fp16 well)."
            f" Try {', '.join(fixes[:-1]) + ' or ' if len(fixes) > 1 else ''}{fixes[-1]} to fix this."
        )
    elif dtype == torch.float32:
        message += (" It already ran in full precision (float32), so precision flags will not help: the checkpoint"
                    " (or a LoRA/embedding in the prompt) is probably damaged, or the CFG scale or steps are extreme.")
    return message + " Use --disable-nan-check to disable this check (expect black images)."


def has_nans(tensor: torch.Tensor) -> bool:
    """True if any element is NaN (one reduction and one device sync)."""
    return bool(torch.isnan(tensor).any().item())


def check_for_nans(tensor: torch.Tensor, site: NanSite, policy: DtypePolicy) -> None:
    """Raise :class:`NansError` if ``tensor`` has NaNs and the check is enabled (A1111 ``test_for_nans``)."""
    if policy.nan_check and has_nans(tensor):
        dtype = {"unet": policy.unet, "vae": policy.vae, "text_encoder": policy.text_encoder}[site]
        raise NansError(site, nans_message(site, policy.flags, dtype))


@dataclass
class VaeDecodeResult:
    """Decoded images and whether the fp32 retry was needed (``message`` explains it for the UI/log)."""

    images: torch.Tensor
    retried_in_fp32: bool = False
    message: str | None = None


def _module_dtype(module: torch.nn.Module) -> torch.dtype:
    return next(module.parameters()).dtype


def decode_with_nan_retry(
    decode: Callable[[torch.Tensor], torch.Tensor],
    latents: torch.Tensor,
    vae: torch.nn.Module,
    policy: DtypePolicy,
    *,
    auto_vae_precision: bool = True,
    auto_vae_precision_bfloat16: bool = False,
) -> VaeDecodeResult:
    """Decode ``latents`` with ``decode`` (which uses ``vae``); on NaN convert ``vae`` and decode again.

    A1111: "A tensor with NaNs was produced in VAE. Web UI will now convert VAE into 32-bit float and retry."
    The VAE stays converted afterwards (the caller should adopt :meth:`DtypePolicy.with_fp32_vae`). The retry dtype
    is fp32, or bf16 with ``auto_vae_precision_bfloat16`` (A1111 1.10: it overrides ``auto_vae_precision``; bf16
    has fp32's range at half the memory). With both off, or if the VAE already has the retry dtype, or the retry
    also yields NaN, :class:`NansError`.
    """
    images = decode(latents.to(_module_dtype(vae)))
    if not policy.nan_check or not has_nans(images):
        return VaeDecodeResult(images)
    retry = torch.bfloat16 if auto_vae_precision_bfloat16 else torch.float32
    if not (auto_vae_precision or auto_vae_precision_bfloat16) or _module_dtype(vae) in (retry, torch.float32):
        raise NansError("vae", nans_message("vae", policy.flags, _module_dtype(vae)))
    name = "bfloat16" if retry == torch.bfloat16 else "32-bit float"
    message = (f"A tensor with NaNs was produced in the VAE; the VAE was converted to {name} and the image "
               "decoded again. Start with --no-half-vae to skip the failed half-precision attempt.")
    log.warning(message)
    vae.to(retry)
    with torch.autocast(policy.device_type, enabled=False):
        images = decode(latents.to(retry))
    if has_nans(images):
        raise NansError("vae", "A tensor with NaNs was produced in the VAE even in 32-bit float: the latents or the "
                        "VAE weights contain NaN/inf (check the checkpoint or VAE file).")
    return VaeDecodeResult(images, retried_in_fp32=True, message=message)
