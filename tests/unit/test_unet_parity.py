"""Our UNet equals diffusers' ``UNet2DConditionModel`` on the same tiny single-file weights (fp32, CPU).

diffusers is the independent reference: its own LDM->diffusers key conversion
(``diffusers.loaders.single_file_utils.convert_ldm_unet_checkpoint``) reads the checkpoint, with a diffusers config
written here by hand for each tiny family (no network). Every family's UNet is checked, SDXL with its vector
conditioning ``y`` built the way diffusers builds it from pooled text and size ids.
"""

from __future__ import annotations

from typing import Any

import diffusers
import pytest
import torch
from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint
from diffusers.models.embeddings import Timesteps
from safetensors.torch import load_file

from modules.memory.attention import set_attention_backend
from modules.models.architectures import detect_architecture
from modules.models.nn.unet import build_unet
from tests.fixtures.tiny_checkpoints import FAMILIES

MAX_REL_ERROR = 1e-5


def diffusers_unet_config(family: str) -> dict[str, Any]:
    """The diffusers spelling of each tiny UNet (see tests/fixtures/tiny_checkpoints.py)."""
    in_channels = {"sd1-inpaint": 9, "sd2-inpaint": 9, "sdxl-inpaint": 9, "ip2p": 8}.get(family, 4)
    common: dict[str, Any] = {"sample_size": 16, "in_channels": in_channels, "out_channels": 4,
                              "layers_per_block": 1, "norm_num_groups": 32}
    if family in ("sd1", "sd1-inpaint", "ip2p"):
        return {**common, "block_out_channels": (64, 128),
                "down_block_types": ("CrossAttnDownBlock2D", "DownBlock2D"),
                "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D"),
                "cross_attention_dim": 128, "attention_head_dim": 8, "use_linear_projection": False}
    if family.startswith("sd2"):
        return {**common, "block_out_channels": (64, 128),
                "down_block_types": ("CrossAttnDownBlock2D", "DownBlock2D"),
                "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D"),
                "cross_attention_dim": 128, "attention_head_dim": (1, 2), "use_linear_projection": True}
    if family in ("sdxl", "sdxl-inpaint"):
        return {**common, "block_out_channels": (64, 128),
                "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D"),
                "up_block_types": ("CrossAttnUpBlock2D", "UpBlock2D"),
                "transformer_layers_per_block": (1, 2), "cross_attention_dim": 256, "attention_head_dim": (1, 2),
                "use_linear_projection": True, "addition_embed_type": "text_time", "addition_time_embed_dim": 256,
                "projection_class_embeddings_input_dim": 128 + 6 * 256}
    assert family == "sdxl-refiner"
    return {**common, "block_out_channels": (64, 128, 128),
            "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
            "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
            "transformer_layers_per_block": 1, "cross_attention_dim": 128, "attention_head_dim": (1, 2, 2),
            "use_linear_projection": True, "addition_embed_type": "text_time", "addition_time_embed_dim": 256,
            "projection_class_embeddings_input_dim": 128 + 5 * 256}


def reference_unet(family: str, checkpoint: dict[str, torch.Tensor]) -> torch.nn.Module:
    config = diffusers_unet_config(family)
    converted = convert_ldm_unet_checkpoint(checkpoint, config)
    model = diffusers.UNet2DConditionModel(**config)
    missing, unexpected = model.load_state_dict(converted, strict=True)
    assert not missing and not unexpected
    return model.eval()


def rel_error(ours: torch.Tensor, ref: torch.Tensor) -> float:
    return ((ours - ref).abs().max() / ref.abs().max()).item()


def make_inputs(family: str, in_channels: int, context_dim: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(1234)
    return {
        "x": torch.randn(2, in_channels, 8, 12, generator=gen),
        "t": torch.tensor([10.0, 731.0]),
        "context": torch.randn(2, 77, context_dim, generator=gen),
        "text_embeds": torch.randn(2, 128, generator=gen),
        "time_ids": torch.tensor([[1024.0, 768.0, 0.0, 16.0, 1024.0, 1024.0],
                                  [512.0, 512.0, 8.0, 0.0, 768.0, 896.0]])[:, : (5 if "refiner" in family else 6)],
    }


def diffusers_vector_cond(text_embeds: torch.Tensor, time_ids: torch.Tensor) -> torch.Tensor:
    """SDXL's ``y`` as diffusers' ``text_time`` embedding assembles it: pooled text, then a 256-wide sinusoidal
    embedding of every size/crop/aesthetic number."""
    proj = Timesteps(256, flip_sin_to_cos=True, downscale_freq_shift=0)
    size_emb = proj(time_ids.flatten()).reshape(time_ids.shape[0], -1)
    return torch.cat([text_embeds, size_emb], dim=-1)


@pytest.fixture(scope="module")
def loaded(tiny_checkpoint):
    cache: dict[str, tuple[torch.nn.Module, torch.nn.Module, Any]] = {}

    def get(family: str):
        if family not in cache:
            checkpoint = load_file(str(tiny_checkpoint(family)))
            match = detect_architecture({k: tuple(v.shape) for k, v in checkpoint.items()})
            ours = build_unet(match.unet, checkpoint, dtype=torch.float32)
            cache[family] = (ours, reference_unet(family, checkpoint), match)
        return cache[family]

    return get


@torch.no_grad()
@pytest.mark.parametrize("family", FAMILIES)
def test_unet_matches_diffusers(family, loaded):
    ours, ref, match = loaded(family)
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in ref.parameters())
    inputs = make_inputs(family, match.unet.in_channels, match.unet.context_dim)
    kwargs = {}
    y = None
    if match.unet.adm_in_channels:
        kwargs["added_cond_kwargs"] = {"text_embeds": inputs["text_embeds"], "time_ids": inputs["time_ids"]}
        y = diffusers_vector_cond(inputs["text_embeds"], inputs["time_ids"])
        assert y.shape[1] == match.unet.adm_in_channels
    expected = ref(inputs["x"], inputs["t"], encoder_hidden_states=inputs["context"], **kwargs).sample
    got = ours(inputs["x"], inputs["t"], inputs["context"], y=y)
    assert got.shape == expected.shape
    assert rel_error(got, expected) <= MAX_REL_ERROR


@torch.no_grad()
def test_scalar_timestep_broadcasts(loaded):
    ours, ref, _ = loaded("sd1")
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(2, 4, 8, 6, generator=gen)
    context = torch.randn(2, 7, 128, generator=gen)
    expected = ref(x, torch.tensor(500.0), encoder_hidden_states=context).sample
    got = ours(x, torch.tensor(500.0), context)
    assert rel_error(got, expected) <= MAX_REL_ERROR


def a1111_order_unet(unet: torch.nn.Module, x: torch.Tensor, t: torch.Tensor, context: torch.Tensor,
                     y: torch.Tensor | None) -> torch.Tensor:
    """The LDM UNet forward written out with plain torch ops in A1111's order for odd latent sizes: every Upsample
    is nearest x2 then its conv; at each concatenation a decoder state whose size differs from the skip is resized
    to the skip's size with `F.interpolate(h, skip.shape[-2:], mode="nearest")` (A1111 `TorchHijackForUnet.cat`)."""
    import torch.nn.functional as F

    from modules.models.nn.blocks import ResBlock, Upsample, timestep_embedding
    from modules.models.nn.transformer import SpatialTransformer

    def run(layers: Any, h: torch.Tensor) -> torch.Tensor:
        for layer in layers:
            if isinstance(layer, ResBlock):
                h = layer(h, emb)
            elif isinstance(layer, SpatialTransformer):
                h = layer(h, context)
            elif isinstance(layer, Upsample):
                h = layer.conv(F.interpolate(h, scale_factor=2, mode="nearest"))
            else:
                h = layer(h)
        return h

    emb = unet.time_embed(timestep_embedding(t.expand(x.shape[0]), unet.config.model_channels))
    if y is not None:
        emb = emb + unet.label_emb(y)
    h, skips = x, []
    for block in unet.input_blocks:
        h = run(block, h)
        skips.append(h)
    h = run(unet.middle_block, h)
    for block in unet.output_blocks:
        skip = skips.pop()
        if h.shape[-2:] != skip.shape[-2:]:
            h = F.interpolate(h, skip.shape[-2:], mode="nearest")
        h = run(block, torch.cat([h, skip], dim=1))
    return unet.out(h)


@torch.no_grad()
@pytest.mark.parametrize("family", ["sd1", "sdxl-refiner"])
def test_latent_sizes_not_multiple_of_the_unet_depth_follow_a1111(family, loaded):
    """512x520 images (multiples of 8, not of 64) give odd latent sizes: the output must be A1111's (x2 upsample
    and conv, then a nearest resize to the skip size), which differs from diffusers' (resize to the skip size
    before the conv)."""
    ours, ref, match = loaded(family)
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(2, 4, 8, 9, generator=gen)  # levels 9 -> 5 (-> 3 for the 3-level refiner)
    context = torch.randn(2, 7, match.unet.context_dim, generator=gen)
    t = torch.tensor([500.0])
    y, kwargs = None, {}
    if match.unet.adm_in_channels:
        text_embeds = torch.randn(2, 128, generator=gen)
        time_ids = torch.tensor([[520.0, 512.0, 0.0, 0.0, 6.0]] * 2)
        y = diffusers_vector_cond(text_embeds, time_ids)
        kwargs["added_cond_kwargs"] = {"text_embeds": text_embeds, "time_ids": time_ids}
    got = ours(x, t, context, y=y)
    expected = a1111_order_unet(ours, x, t, context, y)
    assert got.shape == x.shape
    assert rel_error(got, expected) <= MAX_REL_ERROR
    diffusers_order = ref(x, t, encoder_hidden_states=context, **kwargs).sample
    assert rel_error(got, diffusers_order) > 1e-3  # the order of operations is visible in the output


@torch.no_grad()
@pytest.mark.parametrize("backend", ["sub-quadratic", "Doggettx", "V1", "None", "sdp-no-mem"])
def test_every_attention_backend_gives_the_same_unet_output(backend, loaded):
    ours, _, match = loaded("sdxl")
    inputs = make_inputs("sdxl", 4, match.unet.context_dim)
    y = diffusers_vector_cond(inputs["text_embeds"], inputs["time_ids"])
    reference = ours(inputs["x"], inputs["t"], inputs["context"], y=y)
    try:
        set_attention_backend(ours, backend)
        got = ours(inputs["x"], inputs["t"], inputs["context"], y=y)
    finally:
        set_attention_backend(ours, "sdp")
    assert rel_error(got, reference) <= MAX_REL_ERROR


@torch.no_grad()
def test_channels_last_gives_the_same_output(tiny_checkpoint):
    from modules.models.nn.unet import apply_channels_last

    checkpoint = load_file(str(tiny_checkpoint("sd1")))
    match = detect_architecture({k: tuple(v.shape) for k, v in checkpoint.items()})
    unet = build_unet(match.unet, checkpoint)
    inputs = make_inputs("sd1", 4, 128)
    reference = unet(inputs["x"], inputs["t"], inputs["context"])
    apply_channels_last(unet)
    assert unet.input_blocks[0][0].weight.is_contiguous(memory_format=torch.channels_last)
    got = unet(inputs["x"].contiguous(memory_format=torch.channels_last), inputs["t"], inputs["context"])
    assert rel_error(got, reference) <= MAX_REL_ERROR


def test_sdxl_unet_without_vector_conditioning_says_so(loaded):
    ours, _, _ = loaded("sdxl")
    with pytest.raises(ValueError, match="vector conditioning y"):
        ours(torch.zeros(1, 4, 8, 8), torch.tensor([1.0]), torch.zeros(1, 77, 256))


def test_build_unet_reports_missing_and_mismatched_keys(tiny_checkpoint):
    checkpoint = load_file(str(tiny_checkpoint("sd1")))
    match = detect_architecture({k: tuple(v.shape) for k, v in checkpoint.items()})
    broken = dict(checkpoint)
    del broken["model.diffusion_model.out.2.weight"]
    broken["model.diffusion_model.time_embed.0.bias"] = torch.zeros(3)
    with pytest.raises(ValueError, match=r"1 missing key\(s\) \(e\.g\. out\.2\.weight\).*time_embed\.0\.bias"):
        build_unet(match.unet, broken)


def test_build_unet_keeps_weights_without_copy_when_dtype_matches(tiny_checkpoint):
    checkpoint = load_file(str(tiny_checkpoint("sd2")))
    match = detect_architecture({k: tuple(v.shape) for k, v in checkpoint.items()})
    unet = build_unet(match.unet, checkpoint)
    assert unet.out[2].weight.data_ptr() == checkpoint["model.diffusion_model.out.2.weight"].data_ptr()
    half = build_unet(match.unet, checkpoint, dtype=torch.float16)
    assert half.out[2].weight.dtype == torch.float16
    assert not any(p.is_meta for p in half.parameters())
