"""KL autoencoder (the SD "VAE"): LDM ``AutoencoderKL`` with its parameter names.

``AutoencoderKL(config).state_dict()`` keys equal the checkpoint keys minus ``first_stage_model.``:
``encoder.conv_in``, ``encoder.down.L.block.B.{norm1,conv1,norm2,conv2,nin_shortcut}``,
``encoder.down.L.downsample.conv``, ``encoder.mid.{block_1,attn_1,block_2}``, ``encoder.norm_out``,
``encoder.conv_out``, the mirrored ``decoder.up.L.{block,upsample}``, ``quant_conv`` and ``post_quant_conv``
(CompVis latent-diffusion ``modules/diffusionmodules/model.py`` and ``models/autoencoder.py``). The mid-block
attention uses 1x1 convolutions ``q``, ``k``, ``v``, ``proj_out``; files that store them as (C, C) linear weights are
reshaped on load.

Latents are raw (unscaled): multiplying by the family's scale factor (0.18215 SD1/2, 0.13025 SDXL) is the caller's
job, as in LDM's ``LatentDiffusion``. Tiled encode/decode live in :mod:`modules.models.nn.vae_tiling`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from modules.memory.attention import AttentionFn, sdp_attention

from .cpu_fast import FastConv2d
from .spatial_attention import HW, SpatialWrap
from .unet import load_into_meta_module, strip_prefix

VAE_PREFIX = "first_stage_model."


@dataclass(frozen=True)
class VAEConfig:
    """LDM ``ddconfig`` plus ``embed_dim``; ``attn_levels`` lists the levels with attention after each ResBlock
    (``attn_resolutions`` in LDM; empty for every SD VAE)."""

    in_channels: int = 3
    out_ch: int = 3
    ch: int = 128
    ch_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: int = 2
    z_channels: int = 4
    embed_dim: int = 4
    double_z: bool = True
    attn_levels: tuple[int, ...] = ()

    @property
    def downscale(self) -> int:
        """Pixels per latent along each axis (8 for SD)."""
        return 2 ** (len(self.ch_mult) - 1)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> VAEConfig:
        d = dict(data)
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"VAE config: unknown field(s) {sorted(unknown)}")
        for key in ("ch_mult", "attn_levels"):
            if key in d:
                d[key] = tuple(int(v) for v in d[key])
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(32, channels, eps=1e-6)


class ResnetBlock(nn.Module):
    """GN-swish-conv twice with a residual (1x1 ``nin_shortcut`` when channels change); no time embedding."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.norm1 = _norm(in_channels)
        self.conv1 = FastConv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = _norm(out_channels)
        self.conv2 = FastConv2d(out_channels, out_channels, 3, padding=1)
        self.nin_shortcut: nn.Module = (
            nn.Identity() if in_channels == out_channels else FastConv2d(in_channels, out_channels, 1)
        )

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return self.nin_shortcut(x) + h


class AttnBlock(nn.Module):
    """Single-head spatial self-attention with 1x1 conv projections (LDM ``AttnBlock``); the kernel comes from the
    attention backend registry (``attention_fn``)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = _norm(channels)
        self.q = FastConv2d(channels, channels, 1)
        self.k = FastConv2d(channels, channels, 1)
        self.v = FastConv2d(channels, channels, 1)
        self.proj_out = FastConv2d(channels, channels, 1)
        self.attention_fn: AttentionFn = sdp_attention
        self.spatial_wrap: SpatialWrap | None = None
        """Wrap point of :mod:`.spatial_attention` (Hypertile VAE); None = plain attention."""

    def forward(self, x: Tensor) -> Tensor:
        b, c, height, width = x.shape
        h = self.norm(x)

        def tokens(t: Tensor) -> Tensor:
            return t.reshape(b, c, height * width).transpose(1, 2)

        if self.spatial_wrap is not None:
            out = self.spatial_wrap(self._attend_tokens, tokens(h), (height, width))
        else:
            out = self.attention_fn(tokens(self.q(h)), tokens(self.k(h)), tokens(self.v(h)), 1)
        out = out.transpose(1, 2).reshape(b, c, height, width)
        return x + self.proj_out(out)

    def _attend_tokens(self, seq: Tensor, _hw: HW) -> Tensor:
        """The attention over a (B, n, C) token sequence (the 1x1 projections applied as convs on (B, C, n, 1))."""
        grid = seq.transpose(1, 2).unsqueeze(-1)

        def project(conv: nn.Module) -> Tensor:
            return conv(grid).squeeze(-1).transpose(1, 2)

        return self.attention_fn(project(self.q), project(self.k), project(self.v), 1)

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any) -> None:
        for name in ("q", "k", "v", "proj_out"):
            key = f"{prefix}{name}.weight"
            if key in state_dict and state_dict[key].dim() == 2:
                state_dict[key] = state_dict[key][:, :, None, None]
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class Downsample(nn.Module):
    """Pad right/bottom by one, then a stride-2 3x3 conv without padding (LDM encoder ``Downsample``)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = FastConv2d(channels, channels, 3, stride=2, padding=0)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Upsample(nn.Module):
    """Nearest x2, then a 3x3 conv (LDM decoder ``Upsample``)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = FastConv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class _Level(nn.Module):
    """One resolution level: ``block`` (ResnetBlocks), ``attn`` and an optional down/upsample."""

    def __init__(self, blocks: list[ResnetBlock], attn: bool, resample: nn.Module | None, resample_name: str):
        super().__init__()
        self.block = nn.ModuleList(blocks)
        self.attn = nn.ModuleList([AttnBlock(b.conv2.out_channels) for b in blocks] if attn else [])
        self.resample_name = resample_name
        if resample is not None:
            self.add_module(resample_name, resample)

    def forward(self, x: Tensor) -> Tensor:
        for i, block in enumerate(self.block):
            x = block(x)
            if len(self.attn):
                x = self.attn[i](x)
        resample = getattr(self, self.resample_name, None)
        return resample(x) if resample is not None else x


class _Mid(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.block_1 = ResnetBlock(channels, channels)
        self.attn_1 = AttnBlock(channels)
        self.block_2 = ResnetBlock(channels, channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.block_2(self.attn_1(self.block_1(x)))


class Encoder(nn.Module):
    """Image (B, 3, H, W) -> moments (B, 2*z_channels, H/f, W/f)."""

    def __init__(self, cfg: VAEConfig) -> None:
        super().__init__()
        self.conv_in = FastConv2d(cfg.in_channels, cfg.ch, 3, padding=1)
        levels = []
        block_in = cfg.ch
        for level, mult in enumerate(cfg.ch_mult):
            block_out = cfg.ch * mult
            blocks = [ResnetBlock(block_in if i == 0 else block_out, block_out) for i in range(cfg.num_res_blocks)]
            block_in = block_out
            down = Downsample(block_in) if level != len(cfg.ch_mult) - 1 else None
            levels.append(_Level(blocks, level in cfg.attn_levels, down, "downsample"))
        self.down = nn.ModuleList(levels)
        self.mid = _Mid(block_in)
        self.norm_out = _norm(block_in)
        self.conv_out = FastConv2d(block_in, 2 * cfg.z_channels if cfg.double_z else cfg.z_channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv_in(x)
        for level in self.down:
            h = level(h)
        h = self.mid(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class Decoder(nn.Module):
    """Latent (B, z_channels, h, w) -> image (B, 3, h*f, w*f). ``up`` is indexed by level like the encoder."""

    def __init__(self, cfg: VAEConfig) -> None:
        super().__init__()
        block_in = cfg.ch * cfg.ch_mult[-1]
        self.conv_in = FastConv2d(cfg.z_channels, block_in, 3, padding=1)
        self.mid = _Mid(block_in)
        levels: list[_Level] = []
        for level in reversed(range(len(cfg.ch_mult))):
            block_out = cfg.ch * cfg.ch_mult[level]
            blocks = [ResnetBlock(block_in if i == 0 else block_out, block_out) for i in range(cfg.num_res_blocks + 1)]
            block_in = block_out
            up = Upsample(block_in) if level != 0 else None
            levels.insert(0, _Level(blocks, level in cfg.attn_levels, up, "upsample"))
        self.up = nn.ModuleList(levels)
        self.norm_out = _norm(block_in)
        self.conv_out = FastConv2d(block_in, cfg.out_ch, 3, padding=1)

    def forward(self, z: Tensor) -> Tensor:
        h = self.mid(self.conv_in(z))
        for level in reversed(self.up):
            h = level(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class LatentDistribution:
    """Diagonal Gaussian over latents from the encoder moments (LDM ``DiagonalGaussianDistribution``: logvar
    clamped to [-30, 20])."""

    def __init__(self, moments: Tensor) -> None:
        self.mean, logvar = moments.chunk(2, dim=1)
        self.logvar = logvar.clamp(-30.0, 20.0)
        self.std = torch.exp(0.5 * self.logvar)

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        noise = torch.randn(self.mean.shape, generator=generator, device=self.mean.device, dtype=self.mean.dtype)
        return self.mean + self.std * noise

    def mode(self) -> Tensor:
        return self.mean


class AutoencoderKL(nn.Module):
    """``encode(x) -> LatentDistribution`` for images in [-1, 1]; ``decode(z) -> image`` in about [-1, 1]."""

    def __init__(self, config: VAEConfig) -> None:
        super().__init__()
        if not config.double_z:
            raise ValueError("KL autoencoder needs double_z=True (mean and log-variance)")
        self.config = config
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)
        self.quant_conv = FastConv2d(2 * config.z_channels, 2 * config.embed_dim, 1)
        self.post_quant_conv = FastConv2d(config.embed_dim, config.z_channels, 1)

    def encode_moments(self, x: Tensor) -> Tensor:
        """Raw (B, 2*embed_dim, h, w) moments: mean and log-variance stacked on channels."""
        return self.quant_conv(self.encoder(x))

    def encode(self, x: Tensor) -> LatentDistribution:
        return LatentDistribution(self.encode_moments(x))

    def decode(self, z: Tensor) -> Tensor:
        return self.decoder(self.post_quant_conv(z))


def build_vae(
    config: VAEConfig,
    state_dict: Mapping[str, Tensor],
    dtype: torch.dtype | None = None,
    device: torch.device | str = "cpu",
) -> AutoencoderKL:
    """Build an :class:`AutoencoderKL` on ``meta`` and fill it from ``state_dict`` (keys with or without the
    ``first_stage_model.`` prefix). Linear-shaped mid-attention weights are reshaped to 1x1 convs. Eval mode."""
    weights = strip_prefix(state_dict, VAE_PREFIX)
    fixed = {}
    for key, value in weights.items():
        if value.dim() == 2 and ".attn_1." in key and key.endswith("weight"):
            value = value[:, :, None, None]
        fixed[key] = value
    with torch.device("meta"):
        model = AutoencoderKL(config)
    load_into_meta_module(model, fixed, dtype=dtype, device=device, what="VAE")
    return model.eval()
