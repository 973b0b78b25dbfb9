"""Checkpoint file → :class:`StableDiffusionModel`, timed stage by stage.

The seed report "Model loaded in 182.3s (calculate hash: 76.8s, load weights from disk: 5.3s, create model: 0.7s,
apply weights to model: 98.9s ...)" names the two costs this loader avoids:

* hashing is not part of loading (the manager hashes in the background, :mod:`modules.models.hashes`);
* weights are not copied into randomly initialised modules: safetensors are memory-mapped, networks are built on the
  ``meta`` device and filled with ``load_state_dict(assign=True)`` (``build_unet``/``build_vae``), so a file already
  in the target dtype is used in place;
* a safetensors file is converted while it is read (:func:`network_dtypes` gives each key its network's dtype,
  :func:`~modules.models.state_dict_io.read_safetensors_converted` releases each converted tensor's mapped pages), so
  loading fp32 networks from an fp16 file peaks at the fp32 weights, not at those plus the mapped file.

Stages: read the file (mmap / allow-list unpickler) → detect the family from shapes (a sidecar ``<stem>.yaml`` may
set the prediction type, as A1111 lets it override its guess) → build UNet, VAE (the checkpoint's own or the resolved
external file, :mod:`modules.models.vae_files`) and text encoders → settle SD2 eps/v with A1111's UNet probe. Every
failure is a :class:`CheckpointLoadError` naming the file.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

import torch
from torch import Tensor, nn

from modules.memory.precision import DtypePolicy, resolve_dtype_policy
from modules.models import sidecars
from modules.models.architectures import (
    ArchitectureMatch,
    UnknownArchitectureError,
    derive_vae_config,
    detect_architecture,
    resolve_prediction_type,
)
from modules.models.checkpoints import CheckpointInfo
from modules.models.nn.unet import UNET_PREFIX, build_unet
from modules.models.nn.vae import VAE_PREFIX, build_vae
from modules.models.sd_model import LoadTimings, StableDiffusionModel
from modules.models.state_dict_io import (
    CheckpointLoadError,
    DtypeRule,
    is_safetensors,
    read_safetensors_header,
    read_state_dict,
)
from modules.models.vae_files import VaeResolution, read_vae_state_dict

log = logging.getLogger(__name__)

UNetBuilder = Callable[[ArchitectureMatch, Mapping[str, Tensor], torch.dtype, torch.device], nn.Module]
VaeBuilder = Callable[[ArchitectureMatch, Mapping[str, Tensor], torch.dtype, torch.device], nn.Module]
TextEncoderBuilder = Callable[[ArchitectureMatch, Mapping[str, Tensor], torch.dtype, torch.device], object | None]


def _build_unet(match: ArchitectureMatch, state: Mapping[str, Tensor], dtype: torch.dtype,
                device: torch.device) -> nn.Module:
    return build_unet(match.unet, state, dtype, device)


def _build_vae(match: ArchitectureMatch, state: Mapping[str, Tensor], dtype: torch.dtype,
               device: torch.device) -> nn.Module:
    return build_vae(match.vae, state, dtype, device)


def _build_text_encoders(match: ArchitectureMatch, state: Mapping[str, Tensor], dtype: torch.dtype,
                         device: torch.device) -> object | None:
    """``modules.models.nn.text_encoders.load_text_encoders`` (imported on use: it pulls in transformers and
    open_clip); UNet-only files have no encoder specs and get None."""
    if not match.text_encoders:
        return None
    from modules.models.nn.text_encoders import load_text_encoders

    return load_text_encoders(state, device=device, dtype=dtype)


@dataclass(frozen=True)
class DevicePolicy:
    """Where and in which dtypes to build: the device probe result, the precision policy, the unpickler switch."""

    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    dtypes: DtypePolicy = field(default_factory=lambda: resolve_dtype_policy("cpu"))
    safe_unpickle: bool = True
    """False only with --disable-safe-unpickle."""
    channels_last: bool = False
    """``--opt-channelslast``: the UNet's 4-D weights in ``torch.channels_last`` (A1111 ``sd_models``)."""
    cpu_fast_path: bool = False
    """On a CPU device, switch the UNet and VAE to :mod:`modules.models.nn.cpu_fast` (oneDNN linears, channels_last);
    webui turns it on unless ``--disable-opt-cpu-fast-path``."""
    cpu_prepack: bool = True
    """With the CPU fast path, the UNet's weights are also kept reordered for oneDNN (a second copy: +1.6 GiB for
    SD1.5 in bf16, +3.2 GiB in fp32) when that fits a quarter of the free RAM; False with
    ``--disable-opt-cpu-prepack``. Measured in docs/benchmarks.md: ~10 % per step in the app."""
    share_file_memory: bool = True
    """False with ``--disable-model-loading-ram-optimization``: every weight gets memory of its own after the load
    instead of possibly still referencing the checkpoint file's mapped pages (A1111's flag turns off its RAM-saving
    load path the same way: more RAM, nothing tied to the file)."""
    mmap_safetensors: Callable[[], bool] = lambda: True
    """Asked at each load: False while the ``disable_mmap_load_safetensors`` setting is on."""


@dataclass(frozen=True)
class Builders:
    """The network constructors; tests and extensions may substitute their own."""

    unet: UNetBuilder = _build_unet
    vae: VaeBuilder = _build_vae
    text_encoders: TextEncoderBuilder = _build_text_encoders


DEFAULT_BUILDERS = Builders()


TEXT_ENCODER_PREFIXES = ("cond_stage_model.", "conditioner.")


def network_dtypes(dtypes: DtypePolicy, *, own_vae: bool) -> DtypeRule:
    """The read-time conversion rule: each key takes the dtype of the network it belongs to (UNet, VAE, text
    encoders, by the LDM/SGM key prefixes); the checkpoint's VAE keys are left alone when an external VAE replaces it,
    and keys of no network (EMA copies, optimizer leftovers) are never converted or read."""

    def rule(key: str) -> torch.dtype | None:
        if key.startswith(UNET_PREFIX):
            return dtypes.unet
        if key.startswith(VAE_PREFIX):
            return dtypes.vae if own_vae else None
        if key.startswith(TEXT_ENCODER_PREFIXES):
            return dtypes.text_encoder
        return None

    return rule


def _nhwc_keys(policy: DevicePolicy, device: torch.device) -> Callable[[str], bool]:
    """Keys whose 4-D weights are read straight into ``channels_last``: the UNet's and VAE's when the model manager
    will turn on the CPU fast path (NHWC UNet and VAE), the UNet's with ``--opt-channelslast``; none otherwise."""
    if policy.cpu_fast_path and policy.device.type == "cpu" and device.type == "cpu":
        return lambda key: key.startswith((UNET_PREFIX, VAE_PREFIX))
    if policy.channels_last:
        return lambda key: key.startswith(UNET_PREFIX)
    return lambda key: False


def estimated_weight_bytes(info: CheckpointInfo, dtypes: DtypePolicy) -> int | None:
    """Bytes the networks of ``info`` will take once loaded under ``dtypes``: from the safetensors header (each
    float tensor of a network at its network's dtype), or the file size scaled from fp16 for pickles. None when the
    file cannot be inspected (the load itself will report why)."""
    path = info.filename
    rule = network_dtypes(dtypes, own_vae=True)
    try:
        if not is_safetensors(path):
            return int(path.stat().st_size * dtypes.unet.itemsize / 2)
        header = read_safetensors_header(path)
    except (OSError, CheckpointLoadError):
        return None
    total = 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        begin, end = entry["data_offsets"]
        dtype = rule(name)
        if dtype is None:
            continue
        itemsize = FLOAT_ITEMSIZES.get(entry["dtype"])
        total += (end - begin) if itemsize is None else (end - begin) // itemsize * dtype.itemsize
    return total


FLOAT_ITEMSIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1}


def _own_memory(module: nn.Module) -> None:
    """Give every parameter and buffer its own storage (no view of a memory-mapped file)."""
    with torch.no_grad():
        for tensor in [*module.parameters(), *module.buffers()]:
            tensor.data = tensor.data.clone()


def _wrap_build_errors(info: CheckpointInfo, what: str, build: Callable[[], object | None]) -> object | None:
    try:
        return build()
    except (ValueError, RuntimeError, KeyError) as error:
        raise CheckpointLoadError(info.filename, f"{what}: {error}") from error


def detect(info: CheckpointInfo, shapes: Mapping[str, tuple[int, ...]]) -> tuple[ArchitectureMatch, str | None]:
    """Detect the family; a sidecar yaml's prediction type overrides the family default (returned separately so
    the SD2 probe is skipped). In-channel hints that contradict the weights are logged, the weights win."""
    override: str | None = None
    hints: sidecars.ConfigHints | None = None
    if info.config_path is not None:
        try:
            hints = sidecars.read_config_hints(info.config_path)
        except (OSError, ValueError) as error:
            raise CheckpointLoadError(info.filename, f"its config {info.config_path} is unreadable: {error}") from None
        override = hints.prediction_type
    try:
        match = detect_architecture(shapes, prediction_type=override)
    except UnknownArchitectureError as error:
        raise CheckpointLoadError(info.filename, f"unknown model architecture: {error}") from error
    if hints is not None and hints.in_channels not in (None, match.unet.in_channels):
        log.warning("%s: %s says in_channels=%s but the weights have %s; using the weights", info.filename,
                    hints.path.name, hints.in_channels, match.unet.in_channels)
    return match, override


def load_vae_module(
    info: CheckpointInfo, match: ArchitectureMatch, checkpoint_state: Mapping[str, Tensor] | None,
    resolution: VaeResolution, policy: DevicePolicy, device: torch.device, builders: Builders = DEFAULT_BUILDERS,
) -> nn.Module:
    """The VAE ``resolution`` asks for: an external file, or the checkpoint's own (re-read if not given)."""
    if resolution.path is not None:
        state = read_vae_state_dict(resolution.path, safe_unpickle=policy.safe_unpickle)
        try:
            # the file's own shapes decide its layout (the checkpoint's may be absent or differ)
            config, _ = derive_vae_config({VAE_PREFIX + k: tuple(v.shape) for k, v in state.items()}, match.preset)
            return builders.vae(replace(match, vae=config, has_vae=True), state, policy.dtypes.vae, device)
        except (ValueError, RuntimeError, KeyError) as error:
            raise CheckpointLoadError(resolution.path, f"not a usable VAE for {match.title}: {error}") from error
    if not match.has_vae:
        raise CheckpointLoadError(info.filename, "the checkpoint contains no VAE; choose a VAE file (sd_vae setting "
                                  "or --vae-path) to use it")
    if checkpoint_state is None:
        full = read_state_dict(info.filename, safe_unpickle=policy.safe_unpickle, mmap=policy.mmap_safetensors())
        checkpoint_state = {k: v for k, v in full.items() if k.startswith(VAE_PREFIX)}
    own_state = checkpoint_state
    module = _wrap_build_errors(info, "VAE", lambda: builders.vae(match, own_state, policy.dtypes.vae, device))
    assert isinstance(module, nn.Module)
    return module


def load_checkpoint(
    info: CheckpointInfo,
    device_policy: DevicePolicy | None = None,
    *,
    vae: VaeResolution | None = None,
    device: torch.device | str | None = None,
    builders: Builders = DEFAULT_BUILDERS,
) -> StableDiffusionModel:
    """Load ``info`` into a :class:`StableDiffusionModel` on ``device`` (default: the policy's device).

    ``vae`` defaults to the checkpoint's own VAE. The manager passes ``device="cpu"`` and lets the offload policy
    place the networks. The result's ``timings.summary()`` is the A1111-style "Model loaded in …" line.
    """
    policy = device_policy or DevicePolicy()
    target = torch.device(device) if device is not None else policy.device
    resolution = vae or VaeResolution(None, "the checkpoint's own VAE")
    timings = LoadTimings()
    with timings.stage("load weights from disk"):
        state = read_state_dict(info.filename, safe_unpickle=policy.safe_unpickle, mmap=policy.mmap_safetensors(),
                                dtype_for=network_dtypes(policy.dtypes, own_vae=resolution.path is None),
                                channels_last=_nhwc_keys(policy, target))
    with timings.stage("detect architecture"):
        match, override = detect(info, {key: tuple(value.shape) for key, value in state.items()})
    dtypes = policy.dtypes
    with timings.stage("create UNet and apply weights"):
        unet = _wrap_build_errors(info, "UNet", lambda: builders.unet(match, state, dtypes.unet, target))
    assert isinstance(unet, nn.Module)
    if match.needs_prediction_probe or override is not None:
        with timings.stage("detect prediction type"):
            match = resolve_prediction_type(match, unet, override)  # type: ignore[arg-type]
    with timings.stage("create VAE and apply weights"):
        vae_module = load_vae_module(info, match, state, resolution, policy, target, builders)
    with timings.stage("create text encoders and apply weights"):
        text_encoders = _wrap_build_errors(
            info, "text encoder", lambda: builders.text_encoders(match, state, dtypes.text_encoder, target))
    state.clear()  # drop tensors no network took (EMA copies, optimizer leftovers)
    if not policy.share_file_memory:
        with timings.stage("copy weights out of the file mapping"):
            for module in (unet, vae_module, getattr(text_encoders, "clip_l", None),
                           getattr(text_encoders, "open_clip", None)):
                if isinstance(module, nn.Module):
                    _own_memory(module)
    model = StableDiffusionModel(
        checkpoint=info, architecture=match, unet=unet, vae=vae_module, text_encoders=text_encoders, dtypes=dtypes,
        device=policy.device, vae_resolution=resolution, timings=timings,
    )
    log.info("%s: %s, %s-prediction. %s", info.title, match.title, match.prediction_type, timings.summary())
    return model
