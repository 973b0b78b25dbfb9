"""The diffusion UNet of SD1, SD2 and SDXL: LDM ``openaimodel.UNetModel`` with its parameter names.

``UNetModel(config).state_dict()`` keys equal the single-file checkpoint keys minus ``model.diffusion_model.``:
``time_embed.{0,2}``, ``label_emb.0.{0,2}`` (SDXL), ``input_blocks.N.M``, ``middle_block.{0,1,2}``,
``output_blocks.N.M``, ``out.{0,2}``. Block order and channel bookkeeping follow CompVis latent-diffusion /
Stability generative-models ``openaimodel.py``: each level has ``num_res_blocks`` ResBlocks (each optionally
followed by a SpatialTransformer), then a Downsample except at the last level; the decoder mirrors it with one
extra ResBlock per level fed by the skip connections, and an Upsample ending every level but the first.

Full-size models are built on the ``meta`` device and filled with ``load_state_dict(assign=True)``
(:func:`build_unet`), never random-initialised.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .blocks import Downsample, ResBlock, Upsample, timestep_embedding
from .cpu_fast import FastConv2d
from .transformer import SpatialTransformer

UNET_PREFIX = "model.diffusion_model."


def _per_level(value: int | Sequence[int], levels: int, name: str) -> tuple[int, ...]:
    if isinstance(value, int):
        return (value,) * levels
    values = tuple(int(v) for v in value)
    if len(values) != levels:
        raise ValueError(f"UNet config: {name} has {len(values)} entries but channel_mult has {levels} levels")
    return values


@dataclass(frozen=True)
class UNetConfig:
    """UNet hyper-parameters (LDM names where they exist).

    ``transformer_depth_input`` has one entry per encoder ResBlock and ``transformer_depth_output`` one per decoder
    ResBlock (0 = no SpatialTransformer after it), so per-block variants (SSD-1B style) are expressible;
    :meth:`from_dict` also accepts LDM's per-level ``transformer_depth``. Attention heads: ``num_head_channels``
    (SD2/SDXL: 64 channels per head) wins over ``num_heads`` (SD1: 8 heads), as in LDM with ``legacy=False``.
    """

    in_channels: int = 4
    out_channels: int = 4
    model_channels: int = 320
    channel_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: tuple[int, ...] = (2, 2, 2, 2)
    transformer_depth_input: tuple[int, ...] = (1, 1, 1, 1, 1, 1, 0, 0)
    transformer_depth_output: tuple[int, ...] = (0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1)
    transformer_depth_middle: int = 1
    context_dim: int = 768
    num_heads: int = 8
    num_head_channels: int = -1
    use_linear_in_transformer: bool = False
    adm_in_channels: int | None = None

    def __post_init__(self) -> None:
        levels = len(self.channel_mult)
        if len(self.num_res_blocks) != levels:
            raise ValueError(f"UNet config: num_res_blocks {self.num_res_blocks} does not match {levels} levels")
        if len(self.transformer_depth_input) != sum(self.num_res_blocks):
            raise ValueError("UNet config: transformer_depth_input needs one entry per encoder ResBlock "
                             f"({sum(self.num_res_blocks)}), got {len(self.transformer_depth_input)}")
        if len(self.transformer_depth_output) != sum(n + 1 for n in self.num_res_blocks):
            raise ValueError("UNet config: transformer_depth_output needs one entry per decoder ResBlock "
                             f"({sum(n + 1 for n in self.num_res_blocks)}), got {len(self.transformer_depth_output)}")
        if self.num_head_channels <= 0 and self.num_heads <= 0:
            raise ValueError("UNet config: set num_heads or num_head_channels")

    @property
    def time_embed_dim(self) -> int:
        return self.model_channels * 4

    def heads_for(self, channels: int) -> tuple[int, int]:
        """(heads, channels per head) of a SpatialTransformer with ``channels`` channels."""
        if self.num_head_channels > 0:
            return channels // self.num_head_channels, self.num_head_channels
        return self.num_heads, channels // self.num_heads

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> UNetConfig:
        """Build from a preset/derived mapping. ``num_res_blocks`` may be an int; ``transformer_depth`` (per level,
        LDM style, 0 = no attention at that level) expands to the per-block lists unless they are given."""
        d = dict(data)
        mult = tuple(int(m) for m in d.pop("channel_mult", cls.channel_mult))
        levels = len(mult)
        nrb = _per_level(d.pop("num_res_blocks", 2), levels, "num_res_blocks")
        per_level = d.pop("transformer_depth", None)
        if per_level is not None:
            depth = _per_level(per_level, levels, "transformer_depth")
            d.setdefault("transformer_depth_input", [depth[lv] for lv in range(levels) for _ in range(nrb[lv])])
            d.setdefault("transformer_depth_output",
                         [depth[lv] for lv in reversed(range(levels)) for _ in range(nrb[lv] + 1)])
            d.setdefault("transformer_depth_middle", depth[-1] if depth[-1] > 0 else max(depth))
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"UNet config: unknown field(s) {sorted(unknown)}")
        for key in ("transformer_depth_input", "transformer_depth_output"):
            if key in d:
                d[key] = tuple(int(v) for v in d[key])
        return cls(channel_mult=mult, num_res_blocks=nrb, **d)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class TimestepEmbedSequential(nn.Sequential):
    """A block of the UNet: passes the time embedding to ResBlocks and the context to SpatialTransformers (LDM
    ``TimestepEmbedSequential``)."""

    def forward(self, x: Tensor, emb: Tensor, context: Tensor) -> Tensor:  # type: ignore[override]
        for layer in self:
            if isinstance(layer, ResBlock):
                x = layer(x, emb)
            elif isinstance(layer, SpatialTransformer):
                x = layer(x, context)
            else:
                x = layer(x)
        return x


def join_skip(h: Tensor, skip: Tensor) -> Tensor:
    """Concatenate the decoder state with its skip connection on the channel axis.

    When the sizes differ (after a x2 ``Upsample`` of an odd-sized level), ``h`` is first resized to the skip's size
    by nearest interpolation — A1111 ``sd_hijack_unet.TorchHijackForUnet.cat``, which makes sizes that are
    multiples of 8 but not of 64 work (the resize comes after the Upsample's conv, at the concatenation)."""
    if h.shape[-2:] != skip.shape[-2:]:
        h = F.interpolate(h, size=tuple(skip.shape[-2:]), mode="nearest")
    return torch.cat([h, skip], dim=1)


class UNetModel(nn.Module):
    """``forward(x, timesteps, context, y=None)`` predicts noise (or v) for latents ``x`` at ``timesteps`` with
    cross-attention ``context``; ``y`` is SDXL's vector conditioning (pooled text + size embeddings)."""

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        self.config = config
        mc, ted = config.model_channels, config.time_embed_dim
        self.time_embed = nn.Sequential(nn.Linear(mc, ted), nn.SiLU(), nn.Linear(ted, ted))
        self.label_emb: nn.Sequential | None = None
        if config.adm_in_channels:
            self.label_emb = nn.Sequential(
                nn.Sequential(nn.Linear(config.adm_in_channels, ted), nn.SiLU(), nn.Linear(ted, ted))
            )

        self.input_blocks = nn.ModuleList([TimestepEmbedSequential(FastConv2d(config.in_channels, mc, 3, padding=1))])
        skip_channels = [mc]
        ch = mc
        depths_in = iter(config.transformer_depth_input)
        last = len(config.channel_mult) - 1
        for level, mult in enumerate(config.channel_mult):
            for _ in range(config.num_res_blocks[level]):
                layers: list[nn.Module] = [ResBlock(ch, ted, mult * mc)]
                ch = mult * mc
                depth = next(depths_in)
                if depth > 0:
                    layers.append(self._transformer(ch, depth))
                self.input_blocks.append(TimestepEmbedSequential(*layers))
                skip_channels.append(ch)
            if level != last:
                self.input_blocks.append(TimestepEmbedSequential(Downsample(ch)))
                skip_channels.append(ch)

        middle: list[nn.Module] = [ResBlock(ch, ted)]
        if config.transformer_depth_middle > 0:
            middle.append(self._transformer(ch, config.transformer_depth_middle))
        middle.append(ResBlock(ch, ted))
        self.middle_block = TimestepEmbedSequential(*middle)

        self.output_blocks = nn.ModuleList()
        depths_out = iter(config.transformer_depth_output)
        for level, mult in reversed(list(enumerate(config.channel_mult))):
            for i in range(config.num_res_blocks[level] + 1):
                layers = [ResBlock(ch + skip_channels.pop(), ted, mc * mult)]
                ch = mc * mult
                depth = next(depths_out)
                if depth > 0:
                    layers.append(self._transformer(ch, depth))
                if level and i == config.num_res_blocks[level]:
                    layers.append(Upsample(ch))
                self.output_blocks.append(TimestepEmbedSequential(*layers))

        self.out = nn.Sequential(nn.GroupNorm(32, ch), nn.SiLU(), FastConv2d(mc, config.out_channels, 3, padding=1))

    def _transformer(self, channels: int, depth: int) -> SpatialTransformer:
        heads, dim_head = self.config.heads_for(channels)
        return SpatialTransformer(channels, heads, dim_head, depth, self.config.context_dim,
                                  self.config.use_linear_in_transformer)

    def forward(self, x: Tensor, timesteps: Tensor, context: Tensor, y: Tensor | None = None) -> Tensor:
        batch = x.shape[0]
        timesteps = torch.as_tensor(timesteps, device=x.device).reshape(-1)
        if timesteps.shape[0] != batch:
            timesteps = timesteps.expand(batch)
        emb = self.time_embed(timestep_embedding(timesteps, self.config.model_channels).to(x.dtype))
        if self.label_emb is not None:
            if y is None:
                raise ValueError("this UNet (SDXL) needs the vector conditioning y "
                                 f"(batch, {self.config.adm_in_channels}) and none was given")
            emb = emb + self.label_emb(y.to(x.dtype))
        context = context.to(x.dtype)

        h = x
        skips: list[Tensor] = []
        for block in self.input_blocks:
            h = block(h, emb, context)
            skips.append(h)
        h = self.middle_block(h, emb, context)
        for block in self.output_blocks:
            h = block(join_skip(h, skips.pop()), emb, context)
        return self.out(h)


def strip_prefix(state_dict: Mapping[str, Tensor], prefix: str) -> dict[str, Tensor]:
    """The entries under ``prefix`` with it removed; the mapping unchanged if no key carries the prefix."""
    if not any(k.startswith(prefix) for k in state_dict):
        return dict(state_dict)
    return {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}


def load_into_meta_module(
    module: nn.Module, state_dict: Mapping[str, Tensor], *, dtype: torch.dtype | None, device: torch.device | str,
    what: str,
) -> None:
    """Fill a module built on ``meta`` from ``state_dict`` (``assign=True``: tensors already of the target
    dtype/device are used as-is, so safetensors' mmap is not copied). Missing or unexpected keys and shape
    mismatches raise ValueError naming the first few offenders."""
    expected = module.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    wrong = [f"{k}: file {tuple(state_dict[k].shape)} vs model {tuple(expected[k].shape)}"
             for k in expected if k in state_dict and tuple(state_dict[k].shape) != tuple(expected[k].shape)]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing key(s) (e.g. {', '.join(missing[:5])})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected key(s) (e.g. {', '.join(unexpected[:5])})")
    if wrong:
        problems.append(f"{len(wrong)} shape mismatch(es) (e.g. {'; '.join(wrong[:3])})")
    if problems:
        raise ValueError(f"{what} weights do not match the detected architecture: " + "; ".join(problems))
    converted = {}
    for key, ref in expected.items():
        tensor = state_dict[key]
        target_dtype = dtype if (dtype is not None and tensor.is_floating_point()) else tensor.dtype
        converted[key] = tensor.to(device=device, dtype=target_dtype if ref.is_floating_point() else ref.dtype)
    module.load_state_dict(converted, strict=True, assign=True)


def build_unet(
    config: UNetConfig,
    state_dict: Mapping[str, Tensor],
    dtype: torch.dtype | None = None,
    device: torch.device | str = "cpu",
) -> UNetModel:
    """Build a :class:`UNetModel` on ``meta`` and fill it from ``state_dict`` (keys with or without the
    ``model.diffusion_model.`` prefix; other prefixes are ignored when it is present). Returns it in eval mode."""
    with torch.device("meta"):
        model = UNetModel(config)
    load_into_meta_module(model, strip_prefix(state_dict, UNET_PREFIX), dtype=dtype, device=device, what="UNet")
    return model.eval()


def apply_channels_last(model: nn.Module) -> nn.Module:
    """Convert 4-D weights to ``torch.channels_last`` (A1111 ``--opt-channelslast``); callers feed
    channels_last inputs for the full benefit. Returns the same module."""
    return model.to(memory_format=torch.channels_last)
