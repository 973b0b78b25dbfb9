"""LoRA / LyCORIS module formats: key grouping, type detection and the weight-delta math of each type.

Formats and math as A1111's built-in Lora extension reads them (``network_lora.py``, ``network_hada.py``,
``network_lokr.py``, ``network_ia3.py``, ``network_full.py``, ``network_norm.py``, ``lyco_helpers.py``; LyCORIS
``docs/Algo-List.md``). Every type yields ``updown`` for the module weight and optionally ``ex_bias`` for its bias;
A1111's ``finalize_updown`` then returns ``updown * scale * multiplier`` and ``ex_bias * multiplier`` where
``scale`` is the stored ``scale`` tensor if any, else ``alpha / dim`` when both exist, else 1:

* **LoRA / LoCon** (``lora_up.weight``, ``lora_down.weight``, optional ``lora_mid.weight``, ``alpha``):
  ``up @ down`` (conv: flattened to 2-D, reshaped to ``[out, in, kh, kw]``); with ``lora_mid`` (CP/Tucker)
  ``einsum('n m k l, i n, m j -> i j k l', mid, up, down)``; ``dim = down.shape[0]``; ``dyn`` keeps the first ``dyn``
  ranks (DyLoRA).
* **LoHa** (``hada_w1_a``, ``hada_w1_b``, ``hada_w2_a``, ``hada_w2_b``, optional ``hada_t1``/``hada_t2``):
  ``(w1a @ w1b) * (w2a @ w2b)`` (Hadamard product, FedPara); with CP cores ``t`` each factor is
  ``einsum('i j k l, j r, i p -> p r k l', t, wb, wa)``; ``dim = hada_w1_b.shape[0]``.
* **LoKr** (``lokr_w1`` | ``lokr_w1_a``+``lokr_w1_b``, ``lokr_w2`` | ``lokr_w2_a``+``lokr_w2_b``, optional
  ``lokr_t2``): ``kron(w1, w2)`` (conv: ``w1`` gets two trailing unit dims); ``dim`` from ``lokr_w2_b`` or
  ``lokr_w1_b`` when factorised.
* **(IA)³** (``weight``, ``on_input``): ``updown = W * w`` with ``w`` scaling output rows (or input columns when
  ``on_input``), i.e. the patched weight is ``W * (1 + m·w)``.
* **Full diff** (``diff``, optional ``diff_b``): ``updown = diff``, ``ex_bias = diff_b``.
* **Norm** (``w_norm``, ``b_norm``): ``updown = w_norm``, ``ex_bias = b_norm`` (LayerNorm/GroupNorm affine params).
* **GLoRA** (``a1.weight``, ``a2.weight``, ``b1.weight``, ``b2.weight``; ``network_glora.py``):
  ``updown = b2 @ b1 + (W @ a2) @ a1`` with ``W`` the original weight; ``dim`` is never set, so the scale is the
  stored ``scale`` or 1.
* **OFT / BOFT** (kohya ``oft_blocks`` + ``alpha``, LyCORIS ``oft_diag``, LyCORIS BOFT ``oft_blocks`` of rank 4,
  optional ``rescale``; ``network_oft.py``): see :mod:`.lora_oft`; ``updown = R·W − W``, scale 1.
* **DoRA** (``dora_scale`` next to any of the above; ``network.py`` ``apply_weight_decompose``): after the scale,
  ``updown' = m · (W + updown) / ‖W + updown‖ − W`` where the norm is taken per input column (over the output and
  kernel axes) and ``m = dora_scale``; the multiplier is applied last, as in A1111's ``finalize_updown``.

diffusers/PEFT spellings (``lora_A``/``lora_B``, ``.lora.down``/``.lora.up``, ``processor.to_q_lora``) and dotted
``unet.`` / ``text_encoder.`` / ``text_encoder_2.`` names are rewritten to the kohya form by :func:`group_keys`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import Tensor

from modules.models.networks.lora_oft import oft_layout, oft_merge

# Longest first so ".lora.down.weight" is not taken for ".down.weight" of something else.
_SUFFIX_ALIASES: tuple[tuple[str, str], ...] = (
    (".lora_A.default.weight", "lora_down.weight"),
    (".lora_B.default.weight", "lora_up.weight"),
    (".lora_down.weight", "lora_down.weight"),
    (".lora_up.weight", "lora_up.weight"),
    (".lora_mid.weight", "lora_mid.weight"),
    (".lora.down.weight", "lora_down.weight"),
    (".lora.up.weight", "lora_up.weight"),
    (".lora_A.weight", "lora_down.weight"),
    (".lora_B.weight", "lora_up.weight"),
    (".lora_B.bias", "lora_up.bias"),
    (".down.weight", "lora_down.weight"),
    (".up.weight", "lora_up.weight"),
)
KNOWN_PARTS = frozenset({
    "lora_up.weight", "lora_down.weight", "lora_mid.weight", "alpha", "scale",
    "hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b", "hada_t1", "hada_t2",
    "lokr_w1", "lokr_w1_a", "lokr_w1_b", "lokr_w2", "lokr_w2_a", "lokr_w2_b", "lokr_t2",
    "weight", "on_input", "diff", "diff_b", "w_norm", "b_norm",
    "a1.weight", "a2.weight", "b1.weight", "b2.weight", "oft_blocks", "oft_diag", "rescale", "dora_scale",
})
_DOTTED_PREFIXES = (
    ("base_model.model.", ""), ("unet.", "lora_unet_"), ("text_encoder_2.", "lora_te2_"),
    ("text_encoder.", "lora_te_"), ("lora_unet.", "lora_unet_"), ("lora_te.", "lora_te_"),
)


class LoraFormatError(ValueError):
    """A network module's tensors do not form a known type (or form an unsupported one)."""


@dataclass
class ModuleWeights:
    """All tensors of one network module (kohya name such as ``lora_unet_…_to_q``), keyed by weight part."""

    name: str
    parts: dict[str, Tensor] = field(default_factory=dict)
    source_keys: list[str] = field(default_factory=list)


def _kohya_name(module: str) -> str:
    """Dotted diffusers/PEFT module path -> kohya underscore name (``unet.down_blocks.0…`` -> ``lora_unet_down…``)."""
    for old, new in _DOTTED_PREFIXES:
        if module.startswith(old):
            module = new + module[len(old):]
    module = module.replace(".processor.", ".")
    for proc in ("to_q", "to_k", "to_v"):
        module = module.replace(f"{proc}_lora", proc)
    module = module.replace("to_out_lora", "to_out.0")
    return module.replace(".", "_")


def split_key(key: str) -> tuple[str, str]:
    """``(module name, weight part)`` of one file key in any supported spelling (kohya OFT's ``oft_unet_`` prefix
    names the same modules as ``lora_unet_``, A1111 ``networks.load_network``)."""
    if key.startswith("oft_unet_"):
        key = "lora_unet_" + key[len("oft_unet_"):]
    for suffix, part in _SUFFIX_ALIASES:
        if suffix in (".down.weight", ".up.weight") and "_lora." not in key:
            continue  # only the old diffusers attention-processor spelling "to_q_lora.down.weight"
        if key.endswith(suffix):
            return _kohya_name(key[: -len(suffix)]), part
    if key.startswith("lora_") and "." in key:  # kohya: "<name>.<part>", the name has no dots
        name, part = key.split(".", 1)
        return name, part
    module, _, part = key.rpartition(".")
    return _kohya_name(module), part


def group_keys(state_dict: Mapping[str, Tensor]) -> tuple[dict[str, ModuleWeights], dict[str, dict[str, Tensor]]]:
    """Group a network file's tensors by module; bundled embeddings (``bundle_emb.<name>.…``) come back separately.

    Bundled embeddings (A1111 1.7): ``bundle_emb.<name>.string_to_param.*`` or ``bundle_emb.<name>.<clip_l|clip_g>``.
    """
    groups: dict[str, ModuleWeights] = {}
    bundled: dict[str, dict[str, Tensor]] = {}
    for key, tensor in state_dict.items():
        if key.startswith("bundle_emb."):
            _, emb_name, rest = key.split(".", 2)
            bundled.setdefault(emb_name, {})[rest.removeprefix("string_to_param.")] = tensor
            continue
        name, part = split_key(key)
        group = groups.setdefault(name, ModuleWeights(name))
        group.parts[part] = tensor
        group.source_keys.append(key)
    return groups, bundled


def _f32(tensor: Tensor, device: torch.device) -> Tensor:
    return tensor.to(device=device, dtype=torch.float32)


def _cp_factor(core: Tensor, wa: Tensor, wb: Tensor) -> Tensor:
    """LyCORIS CP/Tucker rebuild: ``einsum('i j k l, j r, i p -> p r k l', core, wb, wa)`` -> [out, in, kh, kw]."""
    return torch.einsum("ijkl,jr,ip->prkl", core, wb, wa)


class NetworkModule:
    """One parsed network module: its type, predicted delta shape and delta math (unscaled by the multiplier)."""

    kind = "?"

    def __init__(self, weights: ModuleWeights) -> None:
        self.name = weights.name
        self.parts = weights.parts
        alpha = weights.parts.get("alpha")
        scale = weights.parts.get("scale")
        self.alpha = float(alpha.float().item()) if alpha is not None else None
        self.stored_scale = float(scale.float().item()) if scale is not None else None
        self.dim: int | None = None
        self.dora_scale = weights.parts.get("dora_scale")

    @property
    def scale(self) -> float:
        """A1111 ``calc_scale``: stored ``scale``, else ``alpha / dim``, else 1."""
        if self.stored_scale is not None:
            return self.stored_scale
        if self.alpha is not None and self.dim:
            return self.alpha / self.dim
        return 1.0

    def delta_shape(self, base_shape: torch.Size) -> tuple[int, ...]:
        """Shape of the raw ``updown`` before reshaping onto the weight (used to reject mismatched files)."""
        raise NotImplementedError

    def updown(self, base: Tensor) -> Tensor:
        """The raw weight delta in fp32 on ``base``'s device, not yet scaled."""
        raise NotImplementedError

    def weight_delta(self, base: Tensor) -> Tensor:
        """``updown * scale``, weight-decomposed when the module has ``dora_scale`` (the caller multiplies by the
        te/unet multiplier)."""
        delta = self.updown(base) * self.scale
        if self.dora_scale is None:
            return delta
        return weight_decompose(delta, base, _f32(self.dora_scale, base.device), self.name)

    def bias_delta(self) -> Tensor | None:
        """``ex_bias`` (not scaled, only multiplied; A1111 ``finalize_updown``), or None."""
        return None


class LoraModule(NetworkModule):
    """Conventional LoRA / LoCon, optionally CP-decomposed (``lora_mid``), with DyLoRA ``dyn`` truncation."""

    kind = "lora"

    def __init__(self, weights: ModuleWeights, dyn_dim: int | None = None) -> None:
        super().__init__(weights)
        self.up = weights.parts["lora_up.weight"]
        self.down = weights.parts["lora_down.weight"]
        self.mid = weights.parts.get("lora_mid.weight")
        self.up_bias = weights.parts.get("lora_up.bias")
        self.dim = int(self.down.shape[0])
        self.dyn_dim = dyn_dim if dyn_dim and dyn_dim > 0 else None

    def delta_shape(self, base_shape: torch.Size) -> tuple[int, ...]:
        if self.up.shape[1] != self.down.shape[0] and self.mid is None:
            raise LoraFormatError(f"{self.name}: lora_up {tuple(self.up.shape)} and lora_down "
                                  f"{tuple(self.down.shape)} ranks differ")
        shape = (int(self.up.shape[0]), int(self.down.shape[1]))
        if self.mid is not None:
            return (*shape, *self.mid.shape[2:])
        return (*shape, *self.down.shape[2:]) if self.down.dim() == 4 else shape

    def updown(self, base: Tensor) -> Tensor:
        up = _f32(self.up, base.device).flatten(1)
        down = _f32(self.down, base.device).flatten(1)
        if self.mid is not None:
            return torch.einsum("nmkl,in,mj->ijkl", _f32(self.mid, base.device), up, down)
        if self.dyn_dim is not None:
            up, down = up[:, : self.dyn_dim], down[: self.dyn_dim]
        return (up @ down).reshape(self.delta_shape(base.shape))

    def bias_delta(self) -> Tensor | None:
        return self.up_bias * self.scale if self.up_bias is not None else None


class LohaModule(NetworkModule):
    """LyCORIS LoHa: Hadamard product of two low-rank products, optionally with CP cores."""

    kind = "loha"

    def __init__(self, weights: ModuleWeights) -> None:
        super().__init__(weights)
        p = weights.parts
        self.w1a, self.w1b, self.w2a, self.w2b = p["hada_w1_a"], p["hada_w1_b"], p["hada_w2_a"], p["hada_w2_b"]
        self.t1, self.t2 = p.get("hada_t1"), p.get("hada_t2")
        self.dim = int(self.w1b.shape[0])

    def delta_shape(self, base_shape: torch.Size) -> tuple[int, ...]:
        if self.t1 is not None:
            return (int(self.w1a.shape[1]), int(self.w1b.shape[1]), *self.t1.shape[2:])
        return (int(self.w1a.shape[0]), int(self.w1b.shape[1]), *self.w1b.shape[2:])

    def updown(self, base: Tensor) -> Tensor:
        d = base.device
        shape = self.delta_shape(base.shape)
        if self.t1 is not None:
            first = _cp_factor(_f32(self.t1, d), _f32(self.w1a, d), _f32(self.w1b, d))
        else:
            first = (_f32(self.w1a, d).flatten(1) @ _f32(self.w1b, d).flatten(1)).reshape(shape)
        if self.t2 is not None:
            second = _cp_factor(_f32(self.t2, d), _f32(self.w2a, d), _f32(self.w2b, d))
        else:
            second = (_f32(self.w2a, d).flatten(1) @ _f32(self.w2b, d).flatten(1)).reshape(shape)
        return first * second


class LokrModule(NetworkModule):
    """LyCORIS LoKr: Kronecker product of two (optionally low-rank) factors."""

    kind = "lokr"

    def __init__(self, weights: ModuleWeights) -> None:
        super().__init__(weights)
        p = weights.parts
        self.w1, self.w1a, self.w1b = p.get("lokr_w1"), p.get("lokr_w1_a"), p.get("lokr_w1_b")
        self.w2, self.w2a, self.w2b = p.get("lokr_w2"), p.get("lokr_w2_a"), p.get("lokr_w2_b")
        self.t2 = p.get("lokr_t2")
        if self.w2b is not None:
            self.dim = int(self.w2b.shape[0])
        elif self.w1b is not None:
            self.dim = int(self.w1b.shape[0])

    def _w1_shape(self) -> tuple[int, int]:
        if self.w1 is not None:
            return int(self.w1.shape[0]), int(self.w1.shape[1])
        assert self.w1a is not None and self.w1b is not None
        return int(self.w1a.shape[0]), int(self.w1b.shape[1])

    def _w2_shape(self) -> tuple[int, ...]:
        if self.w2 is not None:
            return tuple(int(s) for s in self.w2.shape)
        assert self.w2a is not None and self.w2b is not None
        if self.t2 is not None:
            return (int(self.w2a.shape[1]), int(self.w2b.shape[1]), *self.t2.shape[2:])
        return int(self.w2a.shape[0]), int(self.w2b.shape[1])

    def delta_shape(self, base_shape: torch.Size) -> tuple[int, ...]:
        (a, b), w2 = self._w1_shape(), self._w2_shape()
        return (a * w2[0], b * w2[1], *w2[2:])

    def updown(self, base: Tensor) -> Tensor:
        d = base.device
        if self.w1 is not None:
            w1 = _f32(self.w1, d)
        else:
            assert self.w1a is not None and self.w1b is not None
            w1 = _f32(self.w1a, d) @ _f32(self.w1b, d)
        if self.w2 is not None:
            w2 = _f32(self.w2, d)
        else:
            assert self.w2a is not None and self.w2b is not None
            if self.t2 is not None:
                w2 = _cp_factor(_f32(self.t2, d), _f32(self.w2a, d), _f32(self.w2b, d))
            else:
                w2 = _f32(self.w2a, d) @ _f32(self.w2b, d)
        if w2.dim() == 4:
            w1 = w1[:, :, None, None]
        return torch.kron(w1, w2.contiguous())


class Ia3Module(NetworkModule):
    """(IA)³: learned per-channel scaling, applied as ``updown = W * w`` (rows, or columns with ``on_input``)."""

    kind = "ia3"

    def __init__(self, weights: ModuleWeights) -> None:
        super().__init__(weights)
        self.w = weights.parts["weight"]
        on_input = weights.parts.get("on_input")
        self.on_input = bool(on_input.item()) if on_input is not None else False

    def delta_shape(self, base_shape: torch.Size) -> tuple[int, ...]:
        axis = 1 if self.on_input else 0
        if len(base_shape) < 2 or self.w.numel() != base_shape[axis]:
            raise LoraFormatError(f"{self.name}: IA3 vector of {self.w.numel()} values does not fit weight "
                                  f"{tuple(base_shape)} ({'input' if self.on_input else 'output'} channels)")
        return tuple(int(s) for s in base_shape)

    def updown(self, base: Tensor) -> Tensor:
        w = _f32(self.w, base.device).flatten()
        view = [1] * base.dim()
        view[1 if self.on_input else 0] = -1
        return base * w.reshape(view)


class FullModule(NetworkModule):
    """Full weight difference (``diff``) with an optional bias difference (``diff_b``)."""

    kind = "full"

    def delta_shape(self, base_shape: torch.Size) -> tuple[int, ...]:
        return tuple(int(s) for s in self.parts["diff"].shape)

    def updown(self, base: Tensor) -> Tensor:
        return _f32(self.parts["diff"], base.device)

    def bias_delta(self) -> Tensor | None:
        return self.parts.get("diff_b")


class NormModule(NetworkModule):
    """Norm-layer differences: ``w_norm`` for the weight, ``b_norm`` for the bias."""

    kind = "norm"

    def delta_shape(self, base_shape: torch.Size) -> tuple[int, ...]:
        return tuple(int(s) for s in self.parts["w_norm"].shape)

    def updown(self, base: Tensor) -> Tensor:
        return _f32(self.parts["w_norm"], base.device)

    def bias_delta(self) -> Tensor | None:
        return self.parts.get("b_norm")


def weight_decompose(delta: Tensor, base: Tensor, magnitude: Tensor, name: str = "") -> Tensor:
    """DoRA (Liu et al. 2024; A1111 ``NetworkModule.apply_weight_decompose``): ``m · (W+Δ)/‖W+Δ‖ − W``.

    A1111 takes the norm of every input column (``transpose(0, 1)`` then the norm over all other axes) and kohya /
    LyCORIS store ``dora_scale`` as ``[1, in, 1…]``. A LyCORIS ``wd_on_output`` file stores ``[out, 1, 1…]``
    magnitudes instead; those are matched against per-output-row norms (A1111 would broadcast them wrongly).
    """
    if delta.numel() != base.numel():
        raise LoraFormatError(f"{name}: DoRA needs a delta of the weight's size {tuple(base.shape)}")
    merged = base + delta.reshape(base.shape)
    out_dim, in_dim = int(base.shape[0]), int(base.shape[1]) if base.dim() > 1 else 1
    ones = [1] * (base.dim() - 2)
    per_row = magnitude.dim() > 1 and magnitude.shape[0] == out_dim and magnitude.shape[1] == 1 and out_dim > 1
    if per_row:
        norm = merged.reshape(out_dim, -1).norm(dim=1).reshape(out_dim, 1, *ones)
        scale = magnitude.reshape(out_dim, 1, *ones)
    elif magnitude.numel() == in_dim and base.dim() > 1:
        norm = merged.transpose(0, 1).reshape(in_dim, -1).norm(dim=1).reshape(1, in_dim, *ones)
        scale = magnitude.reshape(1, in_dim, *ones)
    else:
        raise LoraFormatError(f"{name}: dora_scale {tuple(magnitude.shape)} does not fit weight {tuple(base.shape)}")
    return merged * (scale / norm) - base


class GloraModule(NetworkModule):
    """LyCORIS GLoRA: ``b2 @ b1 + (W @ a2) @ a1`` (linear layers; 1×1 convs through their 2-D view)."""

    kind = "glora"

    def __init__(self, weights: ModuleWeights) -> None:
        super().__init__(weights)
        p = weights.parts
        self.a1, self.a2 = p["a1.weight"].flatten(1), p["a2.weight"].flatten(1)
        self.b1, self.b2 = p["b1.weight"].flatten(1), p["b2.weight"].flatten(1)

    def delta_shape(self, base_shape: torch.Size) -> tuple[int, ...]:
        out_dim, in_dim = int(self.b2.shape[0]), int(self.b1.shape[1])
        flat_in = 1
        for s in base_shape[1:]:
            flat_in *= int(s)
        if len(base_shape) < 2 or base_shape[0] != out_dim or flat_in != in_dim or self.a2.shape[0] != in_dim:
            raise LoraFormatError(f"{self.name}: GLoRA factors (out {out_dim}, in {in_dim}) do not fit weight "
                                  f"{tuple(base_shape)}")
        return tuple(int(s) for s in base_shape)

    def updown(self, base: Tensor) -> Tensor:
        d = base.device
        w = base.reshape(base.shape[0], -1)
        delta = _f32(self.b2, d) @ _f32(self.b1, d) + (w @ _f32(self.a2, d)) @ _f32(self.a1, d)
        return delta.reshape(base.shape)


class OftModule(NetworkModule):
    """OFT / BOFT (:mod:`.lora_oft`): ``updown = R·W − W``; A1111 fixes the scale at 1 (``alpha`` is the COFT
    norm constraint, not a LoRA scale)."""

    kind = "oft"

    def __init__(self, weights: ModuleWeights) -> None:
        super().__init__(weights)
        p = weights.parts
        self.is_r = "oft_blocks" not in p
        self.blocks = p["oft_diag"] if self.is_r else p["oft_blocks"]
        self.rescale = p.get("rescale")
        self.stored_scale = 1.0

    def delta_shape(self, base_shape: torch.Size) -> tuple[int, ...]:
        try:
            oft_layout(self.blocks, int(base_shape[0]), is_r=self.is_r)
        except ValueError as error:
            raise LoraFormatError(f"{self.name}: {error} (weight {tuple(base_shape)})") from None
        return tuple(int(s) for s in base_shape)

    def updown(self, base: Tensor) -> Tensor:
        alpha = None if self.is_r else self.alpha
        return oft_merge(self.blocks, base, is_r=self.is_r, alpha=alpha, rescale=self.rescale) - base


def parse_module(weights: ModuleWeights, dyn_dim: int | None = None) -> NetworkModule:
    """Detect the type of one module (A1111's order: LoRA, LoHa, IA3, LoKr, full, norm, GLoRA, OFT) or raise
    :class:`LoraFormatError` naming the module and the parts it has."""
    p = weights.parts
    if "lora_up.weight" in p and "lora_down.weight" in p:
        return LoraModule(weights, dyn_dim)
    if all(k in p for k in ("hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b")):
        return LohaModule(weights)
    if "weight" in p:
        return Ia3Module(weights)
    has_1 = "lokr_w1" in p or ("lokr_w1_a" in p and "lokr_w1_b" in p)
    has_2 = "lokr_w2" in p or ("lokr_w2_a" in p and "lokr_w2_b" in p)
    if has_1 and has_2:
        return LokrModule(weights)
    if "diff" in p:
        return FullModule(weights)
    if "w_norm" in p and "b_norm" in p:
        return NormModule(weights)
    if all(k in p for k in ("a1.weight", "a2.weight", "b1.weight", "b2.weight")):
        return GloraModule(weights)
    if "oft_blocks" in p or "oft_diag" in p:
        return OftModule(weights)
    raise LoraFormatError(f"{weights.name}: unrecognised network module with parts {sorted(p)}")


def fit_delta(delta_shape: tuple[int, ...], weight_shape: tuple[int, ...]) -> str | None:
    """How a delta of ``delta_shape`` lands on a weight: ``"reshape"`` (same element count, A1111 reshapes),
    ``"pad"`` (a 4-channel conv delta on an inpainting/ip2p UNet's 8/9-channel input conv, zero-padded as A1111
    does), or None when it does not fit."""
    numel = 1
    for s in delta_shape:
        numel *= s
    target = 1
    for s in weight_shape:
        target *= s
    if numel == target:
        return "reshape"
    if (
        len(delta_shape) == 4 and len(weight_shape) == 4 and delta_shape[1] == 4 and weight_shape[1] > 4
        and delta_shape[0] == weight_shape[0] and delta_shape[2:] == weight_shape[2:]
    ):
        return "pad"
    return None
