"""Architecture registry: which model family a checkpoint is, decided from its keys and tensor shapes.

An :class:`Architecture` recognises its own weights (spandrel's architecture registry, ComfyUI's
``supported_models``); the ordered registry is tried first to last, specialised families before general ones, the
way A1111's ``guess_model_config_from_state_dict`` checks them (SDXL, SDXL refiner, SD2, then SD1 by input
channels: 9 = inpainting, 8 = instruct-pix2pix). Filenames are never consulted. Presets (``configs/<family>.json``)
supply what shapes cannot tell (head layout, schedule, latent scale, text-encoder roles); everything that shapes can
tell (channels, levels, blocks, transformer depths, context width, ADM width, VAE layout) is derived from them, so
fine-tunes with unusual depths load too.

SD2 epsilon vs v-prediction cannot be read from shapes: A1111 runs the UNet once
(:func:`is_v_prediction_sd2`); a ``v_pred`` key in the file, or an override from the caller (sidecar config), wins.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any

import torch

from .nn.unet import UNET_PREFIX, UNetConfig, UNetModel
from .nn.vae import VAE_PREFIX, VAEConfig

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"

Shapes = Mapping[str, Sequence[int]]


class UnknownArchitectureError(ValueError):
    """The weights match no registered family, or are damaged; the message says what was found."""


@dataclass(frozen=True)
class TextEncoderSpec:
    """A text encoder inside the checkpoint: ``kind`` (``clip-l``, ``openclip-h``, ``openclip-bigg``), the key
    ``prefix`` of its weights, which hidden state conditions the UNet, and whether its pooled output is used."""

    kind: str
    prefix: str
    output: str = "last"
    pooled: bool = False


@dataclass(frozen=True)
class ArchitectureMatch:
    """What :func:`detect_architecture` found. ``prediction_source`` tells where ``prediction_type`` came from;
    ``needs_prediction_probe`` is True for SD2 without an override (run :func:`resolve_prediction_type`)."""

    family: str
    title: str
    unet: UNetConfig
    vae: VAEConfig
    has_vae: bool
    text_encoders: tuple[TextEncoderSpec, ...]
    prediction_type: str
    prediction_source: str
    needs_prediction_probe: bool
    zero_terminal_snr: bool
    conditioning: str
    latent_scale_factor: float
    default_image_size: int
    preset: Mapping[str, Any] = field(compare=False, repr=False)

    @property
    def text_encoder_kinds(self) -> tuple[str, ...]:
        return tuple(t.kind for t in self.text_encoders)

    @property
    def is_sdxl(self) -> bool:
        return self.unet.adm_in_channels is not None


@cache
def load_preset(family: str) -> dict[str, Any]:
    """The preset ``configs/<family>.json`` (full-size hyper-parameters of the original release)."""
    path = CONFIG_DIR / f"{family}.json"
    if not path.is_file():
        raise FileNotFoundError(f"no architecture preset {path}")
    return json.loads(path.read_text(encoding="utf-8"))


# --- shape helpers ---------------------------------------------------------------------------------------------

def _as_shapes(shapes: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """``{key: shape}`` from shapes or from tensors (anything with ``.shape``), so a state dict works as well."""
    return {k: tuple(v.shape) if hasattr(v, "shape") else tuple(v) for k, v in shapes.items()}


def _sub(shapes: Shapes, prefix: str) -> dict[str, tuple[int, ...]]:
    return {k[len(prefix):]: s for k, s in _as_shapes(shapes).items() if k.startswith(prefix)}


def _indices(keys: Mapping[str, Any], pattern: str) -> list[int]:
    rx = re.compile(pattern)
    return sorted({int(m.group(1)) for k in keys if (m := rx.match(k))})


def _need(keys: Mapping[str, tuple[int, ...]], key: str, what: str) -> tuple[int, ...]:
    if key not in keys:
        raise UnknownArchitectureError(f"damaged {what} weights: key {key!r} is missing")
    return keys[key]


def summarize_keys(shapes: Shapes, limit: int = 6) -> str:
    """"N keys with prefixes a.*, b.*" for error messages (two dotted components per prefix)."""
    counts = Counter(".".join(k.split(".")[:2]) if k.count(".") >= 2 else k.split(".")[0] for k in shapes)
    prefixes = ", ".join(f"{p}.* ({n})" for p, n in counts.most_common(limit))
    more = f" and {len(counts) - limit} more" if len(counts) > limit else ""
    return f"{len(shapes)} keys with prefixes {prefixes}{more}" if shapes else "no keys at all"


def derive_unet_config(shapes: Shapes, preset: Mapping[str, Any]) -> UNetConfig:
    """UNet hyper-parameters from the ``model.diffusion_model.*`` shapes; the head layout comes from ``preset``."""
    u = _sub(shapes, UNET_PREFIX)
    conv_in = _need(u, "input_blocks.0.0.weight", "UNet")
    mc, in_channels = conv_in[0], conv_in[1]
    ted = _need(u, "time_embed.0.weight", "UNet")
    if ted != (4 * mc, mc):
        raise UnknownArchitectureError(f"UNet time_embed.0.weight has shape {ted}, expected {(4 * mc, mc)}")
    out_channels = _need(u, "out.2.weight", "UNet")[0]

    def depth(block: str) -> int:
        return len(_indices(u, re.escape(block) + r"\.transformer_blocks\.(\d+)\."))

    channel_mult: list[int] = []
    num_res_blocks: list[int] = []
    depth_in: list[int] = []
    new_level = True
    for n in _indices(u, r"input_blocks\.(\d+)\.")[1:]:
        if f"input_blocks.{n}.0.op.weight" in u:
            new_level = True
            continue
        out_ch = _need(u, f"input_blocks.{n}.0.out_layers.3.weight", "UNet")[0]
        if out_ch % mc:
            raise UnknownArchitectureError(f"UNet input_blocks.{n} has {out_ch} channels, not a multiple of {mc}")
        if new_level:
            channel_mult.append(out_ch // mc)
            num_res_blocks.append(0)
            new_level = False
        num_res_blocks[-1] += 1
        depth_in.append(depth(f"input_blocks.{n}.1"))
    if not channel_mult:
        raise UnknownArchitectureError("damaged UNet weights: no input_blocks ResBlocks found")
    depth_out = [depth(f"output_blocks.{n}.1") for n in _indices(u, r"output_blocks\.(\d+)\.")]
    if len(depth_out) != sum(n + 1 for n in num_res_blocks):
        raise UnknownArchitectureError(
            f"damaged UNet weights: {len(depth_out)} output blocks for {len(num_res_blocks)} levels of "
            f"{num_res_blocks} ResBlocks (expected {sum(n + 1 for n in num_res_blocks)})")
    context = next((s[1] for k, s in u.items() if k.endswith("attn2.to_k.weight")), None)
    proj_in = next((s for k, s in u.items() if k.endswith(".proj_in.weight")), None)
    label = u.get("label_emb.0.0.weight")
    p = preset["unet"]
    return UNetConfig(
        in_channels=in_channels,
        out_channels=out_channels,
        model_channels=mc,
        channel_mult=tuple(channel_mult),
        num_res_blocks=tuple(num_res_blocks),
        transformer_depth_input=tuple(depth_in),
        transformer_depth_output=tuple(depth_out),
        transformer_depth_middle=depth("middle_block.1"),
        context_dim=context if context is not None else p["context_dim"],
        num_heads=p["num_heads"],
        num_head_channels=p["num_head_channels"],
        use_linear_in_transformer=(len(proj_in) == 2) if proj_in is not None else p["use_linear_in_transformer"],
        adm_in_channels=label[1] if label is not None else None,
    )


def derive_vae_config(shapes: Shapes, preset: Mapping[str, Any]) -> tuple[VAEConfig, bool]:
    """(VAE config, weights present) from ``first_stage_model.*`` shapes; the preset's VAE when there are none."""
    v = _sub(shapes, VAE_PREFIX)
    if not v:
        return VAEConfig.from_dict(preset["vae"]), False
    conv_in = _need(v, "encoder.conv_in.weight", "VAE")
    ch = conv_in[0]
    levels = _indices(v, r"encoder\.down\.(\d+)\.block\.0\.conv2\.weight")
    if not levels:
        raise UnknownArchitectureError("damaged VAE weights: no encoder.down.N.block.0 found")
    z_channels = _need(v, "decoder.conv_in.weight", "VAE")[1]
    return VAEConfig(
        in_channels=conv_in[1],
        out_ch=_need(v, "decoder.conv_out.weight", "VAE")[0],
        ch=ch,
        ch_mult=tuple(v[f"encoder.down.{i}.block.0.conv2.weight"][0] // ch for i in levels),
        num_res_blocks=len(_indices(v, r"encoder\.down\.0\.block\.(\d+)\.conv1\.weight")),
        z_channels=z_channels,
        embed_dim=_need(v, "post_quant_conv.weight", "VAE")[1],
        double_z=_need(v, "encoder.conv_out.weight", "VAE")[0] == 2 * z_channels,
        attn_levels=tuple(i for i in levels if f"encoder.down.{i}.attn.0.q.weight" in v),
    ), True


# --- architectures -----------------------------------------------------------------------------------------------

_CLIP_L_SD1 = ("cond_stage_model.transformer.text_model.embeddings.token_embedding.weight",
               "cond_stage_model.transformer.embeddings.token_embedding.weight")
_OPENCLIP_SD2 = ("cond_stage_model.model.ln_final.weight",
                 "cond_stage_model.model.transformer.resblocks.0.attn.in_proj_weight")
_SDXL_BASE = ("conditioner.embedders.1.model.ln_final.weight",)
_SDXL_REFINER = ("conditioner.embedders.0.model.ln_final.weight",)


@dataclass(frozen=True)
class Architecture:
    """A family that recognises its weights: by the text-encoder keys it ships with (``markers``; any one present)
    and the UNet input channels; for UNet-only files by context width and ADM presence (``bare_context``)."""

    family: str
    markers: tuple[str, ...]
    in_channels: int
    bare_context: int
    bare_adm: bool

    def matches(self, shapes: Shapes, unet_in: int, context: int | None, has_adm: bool, bare: bool) -> bool:
        if unet_in != self.in_channels:
            return False
        if bare:
            return context == self.bare_context and has_adm == self.bare_adm
        return any(m in shapes for m in self.markers)

    def describe(self, shapes: Shapes, bare: bool = False) -> ArchitectureMatch:
        preset = load_preset(self.family)
        unet = derive_unet_config(shapes, preset)
        vae, has_vae = derive_vae_config(shapes, preset)
        encoders = tuple(TextEncoderSpec(**t) for t in preset["text_encoders"]) if not bare else ()
        return ArchitectureMatch(
            family=self.family, title=preset["title"], unet=unet, vae=vae, has_vae=has_vae, text_encoders=encoders,
            prediction_type=preset["prediction_type"], prediction_source="family default",
            needs_prediction_probe=self.family == "sd2", zero_terminal_snr="ztsnr" in shapes,
            conditioning=preset["conditioning"], latent_scale_factor=float(preset["latent_scale_factor"]),
            default_image_size=int(preset["default_image_size"]), preset=preset,
        )


ARCHITECTURES: list[Architecture] = [
    Architecture("sdxl-inpaint", _SDXL_BASE, 9, 2048, True),
    Architecture("sdxl", _SDXL_BASE, 4, 2048, True),
    Architecture("sdxl-refiner", _SDXL_REFINER, 4, 1280, True),
    Architecture("sd2-inpaint", _OPENCLIP_SD2, 9, 1024, False),
    Architecture("sd2", _OPENCLIP_SD2, 4, 1024, False),
    Architecture("sd1-inpaint", _CLIP_L_SD1, 9, 768, False),
    Architecture("ip2p", _CLIP_L_SD1, 8, 768, False),
    Architecture("sd1", _CLIP_L_SD1, 4, 768, False),
]


def register_architecture(arch: Architecture, index: int = 0) -> None:
    """Add a family; it is tried at ``index`` (default first, so more specific ones go before the built-ins)."""
    ARCHITECTURES.insert(index, arch)


_UNSUPPORTED = (
    ("model.diffusion_model.x_embedder.proj.weight", "an SD3-style MMDiT model"),
    ("model.diffusion_model.double_blocks.0.img_attn.qkv.weight", "a Flux model"),
    ("depth_model.model.pretrained.act_postprocess3.0.project.0.bias", "an SD2 depth-to-image model"),
    ("embedder.model.ln_final.weight", "an SD2 unCLIP model"),
    ("cond_stage_model.roberta.embeddings.word_embeddings.weight", "an AltDiffusion model"),
)


def _no_unet_message(shapes: Shapes) -> str:
    keys = list(shapes)
    hint = ""
    if any(k.startswith(("encoder.", "decoder.")) for k in keys):
        hint = " This looks like a standalone VAE; put it in models/VAE."
    elif any(k.startswith(("lora_unet_", "lora_te")) or ".lora_" in k for k in keys):
        hint = " This looks like a LoRA; put it in models/Lora."
    elif any(k.startswith(("down_blocks.", "unet.", "conv_in.")) for k in keys):
        hint = " This looks like diffusers-format weights; use an original single-file checkpoint."
    elif any(k.startswith("string_to_param") or k == "emb_params" for k in keys):
        hint = " This looks like a textual-inversion embedding; put it in embeddings/."
    return f"no {UNET_PREFIX}* keys; found {summarize_keys(shapes)}.{hint}"


def _normalize_prediction(value: str) -> str:
    v = value.strip().lower()
    if v in ("v", "v_prediction", "v-prediction", "vpred", "v_pred"):
        return "v"
    if v in ("eps", "epsilon", "noise"):
        return "eps"
    raise ValueError(f"unknown prediction type {value!r}; use 'eps' or 'v'")


def with_prediction(match: ArchitectureMatch, prediction_type: str, source: str) -> ArchitectureMatch:
    """A copy of ``match`` with the prediction type decided; SD2 becomes ``sd2-v`` for v-prediction."""
    prediction = _normalize_prediction(prediction_type)
    family, title, preset = match.family, match.title, match.preset
    if family in ("sd2", "sd2-v"):
        family = "sd2-v" if prediction == "v" else "sd2"
        preset = load_preset(family)
        title = preset["title"]
    return replace(match, family=family, title=title, preset=preset, prediction_type=prediction,
                   prediction_source=source, needs_prediction_probe=False,
                   default_image_size=int(preset["default_image_size"]))


def detect_architecture(shapes: Mapping[str, Any], *, prediction_type: str | None = None) -> ArchitectureMatch:
    """Detect the family of a checkpoint from ``{key: shape}`` (a state dict's ``{k: v.shape}`` works).

    ``prediction_type`` ("eps"/"v") overrides the family default (from a sidecar config). A ``v_pred`` key in the
    file means v-prediction (as Forge/reForge read it). Raises :class:`UnknownArchitectureError` naming what was
    found when nothing matches or the UNet weights are damaged.
    """
    shapes = _as_shapes(shapes)
    if not any(k.startswith(UNET_PREFIX) for k in shapes):
        for key, what in _UNSUPPORTED[:2]:
            if key in shapes:
                raise UnknownArchitectureError(f"{what} is not supported (found {key})")
        raise UnknownArchitectureError(_no_unet_message(shapes))
    for key, what in _UNSUPPORTED:
        if key in shapes:
            raise UnknownArchitectureError(f"{what} is not supported (found {key})")
    conv_in = shapes.get(UNET_PREFIX + "input_blocks.0.0.weight")
    if conv_in is None or len(conv_in) != 4:
        raise UnknownArchitectureError(
            f"damaged UNet weights: {UNET_PREFIX}input_blocks.0.0.weight is missing or not a conv "
            f"(found {summarize_keys(_sub(shapes, UNET_PREFIX))})")
    unet_in = conv_in[1]
    context = next((s[1] for k, s in shapes.items() if k.startswith(UNET_PREFIX) and k.endswith("attn2.to_k.weight")),
                   None)
    has_adm = UNET_PREFIX + "label_emb.0.0.weight" in shapes
    all_markers = {m for a in ARCHITECTURES for m in a.markers}
    bare = not any(m in shapes for m in all_markers)
    arch = next((a for a in ARCHITECTURES if a.matches(shapes, unet_in, context, has_adm, bare)), None)
    if arch is None:
        encoders = sorted({m.split(".")[0] + "." + m.split(".")[1] for m in all_markers if m in shapes})
        raise UnknownArchitectureError(
            f"no known family has a UNet with {unet_in} input channels, context width {context}, "
            f"{'with' if has_adm else 'without'} SDXL vector conditioning and text encoders "
            f"{encoders or 'none'} (found {summarize_keys(shapes)})")
    match = arch.describe(shapes, bare)
    if prediction_type is not None:
        return with_prediction(match, prediction_type, "override")
    if "v_pred" in shapes:
        return with_prediction(match, "v", "v_pred key")
    return match


@torch.no_grad()
def is_v_prediction_sd2(unet: UNetModel) -> bool:
    """A1111's ``is_using_v_parameterization_for_sd2``: run the UNet on x = 0.5 (1x4x8x8), t = 999 and a context of
    0.5 (1x2xcontext_dim); an epsilon model's output stays near x, a v model's mean(out - x) falls below -1."""
    param = next(unet.parameters())
    x = torch.full((1, unet.config.in_channels, 8, 8), 0.5, device=param.device, dtype=param.dtype)
    context = torch.full((1, 2, unet.config.context_dim), 0.5, device=param.device, dtype=param.dtype)
    t = torch.tensor([999], device=param.device)
    out = unet(x, t, context)[:, :4] - x[:, :4]
    return bool(out.float().mean().item() < -1)


def resolve_prediction_type(
    match: ArchitectureMatch, unet: UNetModel | None = None, override: str | None = None
) -> ArchitectureMatch:
    """Settle eps vs v: ``override`` (sidecar / user) wins; otherwise SD2 matches that still need it are probed
    with :func:`is_v_prediction_sd2` on the built ``unet``. Other matches are returned unchanged."""
    if override is not None:
        return with_prediction(match, override, "override")
    if not match.needs_prediction_probe:
        return match
    if unet is None:
        raise ValueError(f"{match.family}: deciding eps vs v-prediction needs the built UNet")
    return with_prediction(match, "v" if is_v_prediction_sd2(unet) else "eps", "unet probe")
