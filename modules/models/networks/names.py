"""Network module names (kohya, diffusers/PEFT, LDM) -> checkpoint-style parameter keys of the loaded model.

kohya's trainers name a LoRA module after the model module it wraps, with dots replaced by ``_`` and a prefix for the
sub-model (A1111 ``extensions-builtin/Lora/networks.py``, key formats in a1111-features.md §11.5):

* ``lora_unet_`` + UNet module. SD1/SD2 LoRAs from kohya use the *diffusers* UNet names
  (``lora_unet_down_blocks_0_attentions_0_proj_in``); SDXL LoRAs use the LDM names
  (``lora_unet_input_blocks_4_1_proj_in``). Both are resolved here.
* ``lora_te_`` (SD1/SD2), ``lora_te1_`` / ``lora_te2_`` (SDXL CLIP-L / OpenCLIP bigG) + the *transformers* CLIP
  text-model names (``text_model_encoder_layers_0_self_attn_q_proj``). For OpenCLIP encoders (SD2, SDXL te2) these
  map to open_clip names, q/k/v onto slices of the fused ``attn.in_proj_weight``.
* diffusers/PEFT files use dotted names with ``unet.`` / ``text_encoder.`` / ``text_encoder_2.`` prefixes; they are
  rewritten to the kohya spelling by :mod:`.lora_formats` before reaching here.

The diffusers -> LDM UNet mapping is a fact of the two layouts (LDM ``openaimodel.UNetModel`` with two res blocks per
down level and three per up level): ``down_blocks.i.attentions.j`` -> ``input_blocks.(3i+j+1).1``, ``resnets.j`` ->
``input_blocks.(3i+j+1).0``, ``downsamplers.0.conv`` -> ``input_blocks.(3(i+1)).0.op``; ``mid_block.resnets.j`` ->
``middle_block.(2j)``, ``mid_block.attentions.0`` -> ``middle_block.1``; ``up_blocks.i.attentions.j`` ->
``output_blocks.(3i+j).1``, ``resnets.j`` -> ``output_blocks.(3i+j).0``, ``upsamplers.0.conv`` ->
``output_blocks.(3i+2).{1|2}.conv`` (index 2 when that level has attention); ``conv_in`` -> ``input_blocks.0.0``,
``conv_norm_out`` / ``conv_out`` -> ``out.0`` / ``out.2``, ``time_embedding.linear_n`` -> ``time_embed.(2n-2)``,
``add_embedding.linear_n`` -> ``label_emb.0.(2n-2)``; inside res blocks ``norm1``/``conv1``/``time_emb_proj``/
``norm2``/``conv2``/``conv_shortcut`` -> ``in_layers.0``/``in_layers.2``/``emb_layers.1``/``out_layers.0``/
``out_layers.3``/``skip_connection``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import torch

UNET_PREFIX = "model.diffusion_model."

RESNET_SUFFIXES = {
    "norm1": "in_layers_0",
    "conv1": "in_layers_2",
    "time_emb_proj": "emb_layers_1",
    "norm2": "out_layers_0",
    "conv2": "out_layers_3",
    "conv_shortcut": "skip_connection",
}

HF_CLIP_ROOTS = ("cond_stage_model_transformer_", "conditioner_embedders_0_transformer_")
"""Underscore roots of transformers CLIP text models: SD1 and SDXL te1 (module names continue ``text_model_…``)."""

OPENCLIP_ROOTS = {
    "te": ("cond_stage_model_model_",),
    "te2": ("conditioner_embedders_1_model_", "conditioner_embedders_0_model_"),
}
"""Underscore roots of open_clip text towers: SD2 (``lora_te_``) and SDXL bigG / refiner bigG (``lora_te2_``)."""

HF_ROOTS = {"te": HF_CLIP_ROOTS, "te1": ("conditioner_embedders_0_transformer_",), "te2": ()}

OPENCLIP_LAYER_SUFFIXES = {
    "self_attn_out_proj": "attn_out_proj",
    "mlp_fc1": "mlp_c_fc",
    "mlp_fc2": "mlp_c_proj",
    "layer_norm1": "ln_1",
    "layer_norm2": "ln_2",
}
QKV_INDEX = {"q": 0, "k": 1, "v": 2}

_RE_DOWN = re.compile(r"down_blocks_(\d+)_(attentions|resnets)_(\d+)_(.+)")
_RE_DOWNSAMPLE = re.compile(r"down_blocks_(\d+)_downsamplers_0_conv")
_RE_MID = re.compile(r"mid_block_(attentions|resnets)_(\d+)_(.+)")
_RE_UP = re.compile(r"up_blocks_(\d+)_(attentions|resnets)_(\d+)_(.+)")
_RE_UPSAMPLE = re.compile(r"up_blocks_(\d+)_upsamplers_0_conv")
_RE_TIME = re.compile(r"time_embedding_linear_(\d+)")
_RE_ADD_EMB = re.compile(r"add_embedding_linear_(\d+)")
_RE_HF_LAYER = re.compile(r"text_model_encoder_layers_(\d+)_(.+)")
_RE_HF_QKV = re.compile(r"self_attn_([qkv])_proj")


@dataclass(frozen=True)
class Target:
    """Where one network module writes: a parameter key, optionally a q/k/v third of a fused ``in_proj``."""

    module_key: str
    weight_key: str
    bias_key: str | None
    qkv_index: int | None = None

    @property
    def is_unet(self) -> bool:
        """UNet modules take the unet multiplier, everything else the text-encoder multiplier (A1111)."""
        return self.module_key.startswith(UNET_PREFIX)


def _suffix(kind: str, suffix: str) -> str:
    return RESNET_SUFFIXES.get(suffix, suffix) if kind == "resnets" else suffix


def diffusers_unet_to_ldm(name: str) -> list[str]:
    """LDM underscore names (without ``model_diffusion_model_``) for a diffusers-style UNet module name.

    Several candidates are returned only for upsamplers, whose index within the output block depends on whether that
    level has attention; the caller takes the one that exists.
    """
    if name.startswith("conv_in"):
        return ["input_blocks_0_0" + name[len("conv_in"):]]
    if name == "conv_out":
        return ["out_2"]
    if name == "conv_norm_out":
        return ["out_0"]
    if m := _RE_TIME.fullmatch(name):
        return [f"time_embed_{int(m[1]) * 2 - 2}"]
    if m := _RE_ADD_EMB.fullmatch(name):
        return [f"label_emb_0_{int(m[1]) * 2 - 2}"]
    if m := _RE_DOWNSAMPLE.fullmatch(name):
        return [f"input_blocks_{3 * (int(m[1]) + 1)}_0_op"]
    if m := _RE_UPSAMPLE.fullmatch(name):
        block = 3 * int(m[1]) + 2
        return [f"output_blocks_{block}_1_conv", f"output_blocks_{block}_2_conv"]
    if m := _RE_DOWN.fullmatch(name):
        block = 3 * int(m[1]) + int(m[3]) + 1
        return [f"input_blocks_{block}_{1 if m[2] == 'attentions' else 0}_{_suffix(m[2], m[4])}"]
    if m := _RE_MID.fullmatch(name):
        index = 1 if m[1] == "attentions" else 2 * int(m[2])
        return [f"middle_block_{index}_{_suffix(m[1], m[3])}"]
    if m := _RE_UP.fullmatch(name):
        block = 3 * int(m[1]) + int(m[3])
        return [f"output_blocks_{block}_{1 if m[2] == 'attentions' else 0}_{_suffix(m[2], m[4])}"]
    return []


def hf_clip_to_openclip(name: str) -> tuple[str, int | None] | None:
    """open_clip underscore name (and q/k/v slice index) for a transformers CLIP text-model module name."""
    if name == "text_model_final_layer_norm":
        return "ln_final", None
    m = _RE_HF_LAYER.fullmatch(name)
    if m is None:
        return None
    layer, rest = m[1], m[2]
    if qkv := _RE_HF_QKV.fullmatch(rest):
        return f"transformer_resblocks_{layer}_attn", QKV_INDEX[qkv[1]]
    mapped = OPENCLIP_LAYER_SUFFIXES.get(rest)
    return (f"transformer_resblocks_{layer}_{mapped}", None) if mapped else None


class ModuleNameIndex:
    """Resolves network module names against the module names of the loaded model.

    Built from checkpoint-style module names (e.g. :meth:`ModelPatcher.iter_modules`); each is also indexed with dots
    replaced by ``_``, the spelling network files use. ``fused`` names modules that hold an ``in_proj_weight``
    (``nn.MultiheadAttention``) and ``biased`` those with a bias parameter.
    """

    def __init__(self, module_names: Iterable[str], *, fused: Iterable[str] = (), biased: Iterable[str] = ()):
        self.by_underscore = {name.replace(".", "_"): name for name in module_names}
        self.fused = set(fused)
        self.biased = set(biased)

    @classmethod
    def from_modules(cls, modules: Iterable[tuple[str, object]]) -> ModuleNameIndex:
        """Index ``(checkpoint name, module)`` pairs, noting fused attention and bias-carrying modules."""
        names: list[str] = []
        fused: list[str] = []
        biased: list[str] = []
        for name, module in modules:
            names.append(name)
            if getattr(module, "in_proj_weight", None) is not None:
                fused.append(name)
                if isinstance(getattr(module, "in_proj_bias", None), torch.Tensor):
                    biased.append(name)
            elif isinstance(getattr(module, "bias", None), torch.Tensor):
                biased.append(name)
        return cls(names, fused=fused, biased=biased)

    def _target(self, underscore: str, qkv_index: int | None = None) -> Target | None:
        name = self.by_underscore.get(underscore)
        if name is None:
            return None
        if qkv_index is not None:
            if name not in self.fused:
                return None
            bias = f"{name}.in_proj_bias" if name in self.biased else None
            return Target(name, f"{name}.in_proj_weight", bias, qkv_index)
        return Target(name, f"{name}.weight", f"{name}.bias" if name in self.biased else None)

    def resolve(self, network_name: str) -> Target | None:
        """The target of a kohya-style network module name (``lora_unet_…``, ``lora_te…_…``), or None."""
        for prefix, part in (("lora_unet_", "unet"), ("lora_te1_", "te1"), ("lora_te2_", "te2"), ("lora_te_", "te")):
            if network_name.startswith(prefix):
                rest = network_name[len(prefix):]
                return self._resolve_unet(rest) if part == "unet" else self._resolve_text(rest, part)
        return None

    def _resolve_unet(self, rest: str) -> Target | None:
        for candidate in [rest, *diffusers_unet_to_ldm(rest)]:
            target = self._target("model_diffusion_model_" + candidate)
            if target is not None:
                return target
        return None

    def _resolve_text(self, rest: str, part: str) -> Target | None:
        for root in HF_ROOTS[part]:
            target = self._target(root + rest)
            if target is not None:
                return target
        converted = hf_clip_to_openclip(rest)
        if converted is not None:
            for root in OPENCLIP_ROOTS.get(part, ()):
                target = self._target(root + converted[0], converted[1])
                if target is not None:
                    return target
        # Names already in the checkpoint's own layout (e.g. SD2 ``model_transformer_resblocks_0_attn_out_proj``).
        roots = {"te": ("cond_stage_model_",), "te1": ("conditioner_embedders_0_",), "te2": ("conditioner_embedders_1_",)}
        for root in roots[part]:
            target = self._target(root + rest)
            if target is not None:
                return target
        return None
