"""Architecture detection: every family is recognised from keys and shapes alone, hyper-parameters are derived from
the shapes (tiny fixtures and full-size layouts built on ``meta``), SD2 eps/v is settled like A1111, and anything
else fails with a message that says what was found."""

from __future__ import annotations

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from modules.models.architectures import (
    ARCHITECTURES,
    UnknownArchitectureError,
    detect_architecture,
    load_preset,
    resolve_prediction_type,
)
from modules.models.nn.unet import UNetConfig, UNetModel, build_unet
from modules.models.nn.vae import AutoencoderKL, VAEConfig
from tests.fixtures.tiny_checkpoints import FAMILIES, TINY_VAE, tiny_unet_config

EXPECTED = {
    # family: (text encoder kinds, prediction type before any probe, conditioning)
    "sd1": (("clip-l",), "eps", "crossattn"),
    "sd1-inpaint": (("clip-l",), "eps", "hybrid"),
    "ip2p": (("clip-l",), "eps", "hybrid"),
    "sd2": (("openclip-h",), "eps", "crossattn"),
    "sd2-v": (("openclip-h",), "eps", "crossattn"),
    "sd2-inpaint": (("openclip-h",), "eps", "hybrid"),
    "sdxl": (("clip-l", "openclip-bigg"), "eps", "crossattn"),
    "sdxl-inpaint": (("clip-l", "openclip-bigg"), "eps", "hybrid"),
    "sdxl-refiner": (("openclip-bigg",), "eps", "crossattn"),
}


def file_shapes(path) -> dict[str, tuple[int, ...]]:
    with safe_open(str(path), "pt") as f:
        return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118 (safe_open is not a dict)


@pytest.mark.parametrize("family", FAMILIES)
def test_tiny_fixture_family_and_hyper_parameters(family, tiny_checkpoint):
    match = detect_architecture(file_shapes(tiny_checkpoint(family)))
    kinds, prediction, conditioning = EXPECTED[family]
    assert match.family == ("sd2" if family == "sd2-v" else family)  # v needs the probe, see below
    assert match.text_encoder_kinds == kinds
    assert match.prediction_type == prediction
    assert match.conditioning == conditioning
    assert match.unet == tiny_unet_config(family)
    assert match.vae == TINY_VAE and match.has_vae
    assert match.latent_scale_factor == (0.13025 if family.startswith("sdxl") else 0.18215)
    assert match.needs_prediction_probe == (family in ("sd2", "sd2-v"))


@pytest.mark.parametrize("family", ["sd2", "sd2-v"])
def test_sd2_prediction_type_from_the_unet_probe(family, tiny_checkpoint):
    state = load_file(str(tiny_checkpoint(family)))
    match = detect_architecture({k: tuple(v.shape) for k, v in state.items()})
    resolved = resolve_prediction_type(match, build_unet(match.unet, state))
    assert resolved.family == family
    assert resolved.prediction_type == ("v" if family == "sd2-v" else "eps")
    assert resolved.prediction_source == "unet probe"
    assert not resolved.needs_prediction_probe
    assert resolved.default_image_size == (768 if family == "sd2-v" else 512)


def test_prediction_override_and_v_pred_key(tiny_checkpoint):
    shapes = file_shapes(tiny_checkpoint("sd2"))
    forced = detect_architecture(shapes, prediction_type="v")
    assert (forced.family, forced.prediction_type, forced.prediction_source) == ("sd2-v", "v", "override")
    match = detect_architecture(shapes)
    assert resolve_prediction_type(match, override="epsilon").family == "sd2"
    with pytest.raises(ValueError, match="needs the built UNet"):
        resolve_prediction_type(match)
    xl = detect_architecture({**file_shapes(tiny_checkpoint("sdxl")), "v_pred": (), "ztsnr": ()})
    assert (xl.family, xl.prediction_type, xl.prediction_source) == ("sdxl", "v", "v_pred key")
    assert xl.zero_terminal_snr
    sd1 = detect_architecture(file_shapes(tiny_checkpoint("sd1")))
    assert resolve_prediction_type(sd1) is sd1
    with pytest.raises(ValueError, match="unknown prediction type"):
        detect_architecture(shapes, prediction_type="x0")


def full_size_shapes(family: str, *, with_text_markers: bool = True) -> dict[str, tuple[int, ...]]:
    """Keys and shapes of a full-size checkpoint, from the preset built on ``meta`` (no weights)."""
    preset = load_preset(family)
    with torch.device("meta"):
        unet = UNetModel(UNetConfig.from_dict(preset["unet"]))
        vae = AutoencoderKL(VAEConfig.from_dict(preset["vae"]))
    shapes = {"model.diffusion_model." + k: tuple(v.shape) for k, v in unet.state_dict().items()}
    shapes.update({"first_stage_model." + k: tuple(v.shape) for k, v in vae.state_dict().items()})
    if with_text_markers:
        for enc in preset["text_encoders"]:
            if enc["kind"] == "clip-l":
                shapes[enc["prefix"] + "text_model.embeddings.token_embedding.weight"] = (49408, 768)
            else:
                width = 1024 if enc["kind"] == "openclip-h" else 1280
                shapes[enc["prefix"] + "ln_final.weight"] = (width,)
    return shapes


@pytest.mark.parametrize("family", FAMILIES)
def test_full_size_layouts_round_trip_to_their_presets(family):
    match = detect_architecture(full_size_shapes(family), prediction_type="v" if family == "sd2-v" else None)
    assert match.family == family
    assert match.unet == UNetConfig.from_dict(load_preset(family)["unet"])
    assert match.vae == VAEConfig.from_dict(load_preset(family)["vae"])


def test_full_size_reference_numbers():
    sdxl = detect_architecture(full_size_shapes("sdxl")).unet
    assert (sdxl.model_channels, sdxl.channel_mult, sdxl.context_dim, sdxl.adm_in_channels) == (320, (1, 2, 4), 2048,
                                                                                                 2816)
    assert sdxl.transformer_depth_input == (0, 0, 2, 2, 10, 10) and sdxl.transformer_depth_middle == 10
    refiner = detect_architecture(full_size_shapes("sdxl-refiner")).unet
    assert (refiner.model_channels, refiner.context_dim, refiner.adm_in_channels) == (384, 1280, 2560)
    assert refiner.transformer_depth_input == (0, 0, 4, 4, 4, 4, 0, 0)
    sd1 = detect_architecture(full_size_shapes("sd1")).unet
    assert not sd1.use_linear_in_transformer and sd1.num_heads == 8 and sd1.context_dim == 768
    sd2 = detect_architecture(full_size_shapes("sd2")).unet
    assert sd2.use_linear_in_transformer and sd2.num_head_channels == 64 and sd2.context_dim == 1024


@pytest.mark.parametrize("family", ["sd1", "sd2", "sd2-inpaint", "ip2p", "sdxl", "sdxl-refiner", "sdxl-inpaint"])
def test_unet_only_files_fall_back_to_context_width(family):
    shapes = {k: v for k, v in full_size_shapes(family, with_text_markers=False).items()
              if k.startswith("model.diffusion_model.")}
    match = detect_architecture(shapes)
    assert match.family == family
    assert match.text_encoders == () and not match.has_vae


def test_registry_is_ordered_specific_first():
    names = [a.family for a in ARCHITECTURES]
    assert names.index("sdxl-inpaint") < names.index("sdxl")
    assert names.index("sd1-inpaint") < names.index("sd1") and names.index("ip2p") < names.index("sd1")


@pytest.mark.parametrize(
    ("shapes", "message"),
    [
        ({}, r"no model\.diffusion_model\.\* keys; found no keys at all"),
        ({"encoder.conv_in.weight": (128, 3, 3, 3), "decoder.conv_out.weight": (3, 128, 3, 3),
          "quant_conv.weight": (8, 8, 1, 1)},
         r"found 3 keys with prefixes encoder\.conv_in\.\* \(1\).*standalone VAE"),
        ({"lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": (4, 320)}, "LoRA"),
        ({"down_blocks.0.resnets.0.conv1.weight": (320, 320, 3, 3)}, "diffusers-format"),
        ({"model.diffusion_model.x_embedder.proj.weight": (1536, 16, 2, 2),
          "model.diffusion_model.joint_blocks.0.x_block.attn.qkv.weight": (4608, 1536)}, "SD3-style MMDiT"),
        ({"model.diffusion_model.time_embed.0.weight": (1280, 320)}, r"input_blocks\.0\.0\.weight is missing"),
    ],
)
def test_unknown_or_damaged_weights_say_what_was_found(shapes, message):
    with pytest.raises(UnknownArchitectureError, match=message):
        detect_architecture(shapes)


def test_unknown_input_channels_and_damaged_blocks(tiny_checkpoint):
    shapes = file_shapes(tiny_checkpoint("sd1"))
    odd = {**shapes, "model.diffusion_model.input_blocks.0.0.weight": (64, 5, 3, 3)}
    with pytest.raises(UnknownArchitectureError, match=r"5 input channels.*cond_stage_model\.transformer"):
        detect_architecture(odd)
    truncated = {k: v for k, v in shapes.items() if not k.startswith("model.diffusion_model.output_blocks.3.")}
    with pytest.raises(UnknownArchitectureError, match="3 output blocks"):
        detect_architecture(truncated)
    no_time = {k: v for k, v in shapes.items() if "time_embed.0.weight" not in k}
    with pytest.raises(UnknownArchitectureError, match=r"time_embed\.0\.weight' is missing"):
        detect_architecture(no_time)
    broken_vae = {k: v for k, v in shapes.items() if k != "first_stage_model.decoder.conv_in.weight"}
    with pytest.raises(UnknownArchitectureError, match="damaged VAE weights"):
        detect_architecture(broken_vae)


def test_a_state_dict_of_tensors_works_like_its_shapes(tiny_checkpoint):
    state = load_file(str(tiny_checkpoint("sdxl-refiner")))
    assert detect_architecture(state) == detect_architecture({k: tuple(v.shape) for k, v in state.items()})


def test_ckpt_variant_holds_the_same_weights(tiny_checkpoint):
    ckpt = torch.load(tiny_checkpoint("sdxl-refiner", fmt="ckpt"), weights_only=True)
    safetensors_state = load_file(str(tiny_checkpoint("sdxl-refiner")))
    assert set(ckpt) >= {"state_dict", "global_step"}
    assert ckpt["state_dict"].keys() == safetensors_state.keys()
    assert all(torch.equal(ckpt["state_dict"][k], v) for k, v in safetensors_state.items())


def test_fixture_layout_has_the_original_prefixes(tiny_checkpoint):
    sd1 = file_shapes(tiny_checkpoint("sd1"))
    assert "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight" in sd1
    assert sd1["cond_stage_model.transformer.text_model.embeddings.position_embedding.weight"] == (77, 128)
    assert "alphas_cumprod" in sd1 and sd1["alphas_cumprod"] == (1000,)
    xl = file_shapes(tiny_checkpoint("sdxl"))
    assert xl["conditioner.embedders.1.model.token_embedding.weight"] == (49408, 128)
    assert xl["conditioner.embedders.1.model.text_projection"] == (128, 128)
    assert "conditioner.embedders.0.transformer.text_model.final_layer_norm.weight" in xl
    assert not any(k.startswith(("conditioner.embedders.1.model.visual", "alphas")) for k in xl)
    half = load_file(str(tiny_checkpoint("sd1", dtype=torch.float16)))
    assert half["model.diffusion_model.out.2.weight"].dtype == torch.float16
