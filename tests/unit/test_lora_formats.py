"""LyCORIS math against hand computations: LoHa (plain and CP), LoKr, (IA)³, full diff, norm, LoRA CP/dyn; key
spellings; the diffusers -> LDM name mapping table."""

from __future__ import annotations

import itertools

import pytest
import torch

from modules.models.networks.lora_formats import (
    FullModule,
    Ia3Module,
    LohaModule,
    LokrModule,
    LoraFormatError,
    LoraModule,
    ModuleWeights,
    NormModule,
    fit_delta,
    group_keys,
    parse_module,
    split_key,
)
from modules.models.networks.names import ModuleNameIndex, diffusers_unet_to_ldm, hf_clip_to_openclip


def mw(**parts: torch.Tensor) -> ModuleWeights:
    return ModuleWeights("lora_unet_x", dict(parts))


def test_loha_is_hadamard_product_of_two_low_rank_products_times_alpha_over_rank() -> None:
    w1a = torch.tensor([[1.0, 0.0], [0.0, 2.0]])      # [out=2, r=2]
    w1b = torch.tensor([[1.0, 1.0, 0.0], [0.0, 1.0, 1.0]])  # [r=2, in=3]
    w2a = torch.tensor([[2.0, 1.0], [1.0, 0.0]])
    w2b = torch.tensor([[1.0, 0.0, 1.0], [1.0, 1.0, 0.0]])
    # w1a@w1b = [[1,1,0],[0,2,2]]; w2a@w2b = [[3,1,2],[1,0,1]]; product = [[3,1,0],[0,0,2]]
    module = parse_module(mw(hada_w1_a=w1a, hada_w1_b=w1b, hada_w2_a=w2a, hada_w2_b=w2b, alpha=torch.tensor(1.0)))
    assert isinstance(module, LohaModule) and module.dim == 2
    expected = torch.tensor([[3.0, 1.0, 0.0], [0.0, 0.0, 2.0]]) * 0.5
    assert torch.equal(module.weight_delta(torch.zeros(2, 3)), expected)


def test_loha_cp_cores_match_an_explicit_sum() -> None:
    torch.manual_seed(0)
    r, out_c, in_c, k = 2, 3, 2, 3
    t1, t2 = torch.randn(r, r, k, k), torch.randn(r, r, k, k)
    w1a, w1b, w2a, w2b = torch.randn(r, out_c), torch.randn(r, in_c), torch.randn(r, out_c), torch.randn(r, in_c)
    module = parse_module(mw(hada_w1_a=w1a, hada_w1_b=w1b, hada_w2_a=w2a, hada_w2_b=w2b, hada_t1=t1, hada_t2=t2))

    def rebuild(t: torch.Tensor, wa: torch.Tensor, wb: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(out_c, in_c, k, k)
        for p, q, i, j, y, x in itertools.product(range(out_c), range(in_c), range(r), range(r), range(k), range(k)):
            out[p, q, y, x] += t[i, j, y, x] * wa[i, p] * wb[j, q]
        return out

    expected = rebuild(t1, w1a, w1b) * rebuild(t2, w2a, w2b)
    assert module.delta_shape(torch.Size([out_c, in_c, k, k])) == (out_c, in_c, k, k)
    assert torch.allclose(module.weight_delta(torch.zeros(out_c, in_c, k, k)), expected, atol=1e-5)


def test_lokr_kronecker_product_by_hand_and_factorised_w2_scale() -> None:
    w1 = torch.tensor([[1.0, 2.0], [0.0, -1.0]])
    w2a = torch.tensor([[1.0], [2.0]])  # [2, r=1]
    w2b = torch.tensor([[3.0, 1.0]])     # [r=1, 2]  -> w2 = [[3,1],[6,2]]
    module = parse_module(mw(lokr_w1=w1, lokr_w2_a=w2a, lokr_w2_b=w2b, alpha=torch.tensor(0.5)))
    assert isinstance(module, LokrModule) and module.dim == 1
    expected = torch.tensor([
        [3.0, 1.0, 6.0, 2.0],
        [6.0, 2.0, 12.0, 4.0],
        [0.0, 0.0, -3.0, -1.0],
        [0.0, 0.0, -6.0, -2.0],
    ]) * 0.5
    assert torch.equal(module.weight_delta(torch.zeros(4, 4)), expected)


def test_lokr_conv_unsqueezes_w1_and_unfactorised_scale_is_one() -> None:
    w1 = torch.tensor([[2.0]])
    w2 = torch.randn(3, 2, 3, 3)
    module = parse_module(mw(lokr_w1=w1, lokr_w2=w2, alpha=torch.tensor(7.0)))
    assert module.scale == 1.0  # no factorised matrix -> no dim -> A1111 scale 1
    assert torch.equal(module.weight_delta(torch.zeros(3, 2, 3, 3)), 2.0 * w2)


@pytest.mark.parametrize("on_input", [False, True])
def test_ia3_scales_rows_or_columns(on_input: bool) -> None:
    base = torch.arange(6.0).reshape(2, 3) + 1
    w = torch.tensor([0.5, -1.0, 2.0]) if on_input else torch.tensor([0.5, -1.0])
    module = parse_module(mw(weight=w, on_input=torch.tensor(on_input)))
    assert isinstance(module, Ia3Module)
    expected = base.clone()
    for row, col in itertools.product(range(2), range(3)):
        expected[row, col] = base[row, col] * (w[col] if on_input else w[row])
    assert torch.equal(module.weight_delta(base), expected)
    with pytest.raises(LoraFormatError, match="does not fit"):
        module.delta_shape(torch.Size([5, 7]))


def test_full_diff_and_norm_give_weight_and_bias_deltas() -> None:
    diff, diff_b = torch.randn(4, 3), torch.randn(4)
    full = parse_module(mw(diff=diff, diff_b=diff_b))
    assert isinstance(full, FullModule)
    assert torch.equal(full.weight_delta(torch.zeros(4, 3)), diff)
    assert torch.equal(full.bias_delta(), diff_b)
    w_norm, b_norm = torch.randn(8), torch.randn(8)
    norm = parse_module(mw(w_norm=w_norm, b_norm=b_norm))
    assert isinstance(norm, NormModule)
    assert torch.equal(norm.weight_delta(torch.ones(8)), w_norm)
    assert torch.equal(norm.bias_delta(), b_norm)


def test_lora_cp_mid_and_dyn_truncation() -> None:
    torch.manual_seed(1)
    up, down, mid = torch.randn(3, 2, 1, 1), torch.randn(2, 4, 1, 1), torch.randn(2, 2, 3, 3)
    module = parse_module(mw(**{"lora_up.weight": up, "lora_down.weight": down, "lora_mid.weight": mid}))
    expected = torch.zeros(3, 4, 3, 3)
    for i, j, n, m, y, x in itertools.product(range(3), range(4), range(2), range(2), range(3), range(3)):
        expected[i, j, y, x] += mid[n, m, y, x] * up[i, n, 0, 0] * down[m, j, 0, 0]
    assert torch.allclose(module.weight_delta(torch.zeros(3, 4, 3, 3)), expected, atol=1e-5)
    up2, down2 = torch.randn(5, 4), torch.randn(4, 6)
    dyn = LoraModule(mw(**{"lora_up.weight": up2, "lora_down.weight": down2, "alpha": torch.tensor(4.0)}), dyn_dim=2)
    assert dyn.scale == 1.0  # alpha / full rank, as A1111
    assert torch.allclose(dyn.weight_delta(torch.zeros(5, 6)), up2[:, :2] @ down2[:2], atol=1e-6)


def test_stored_scale_wins_over_alpha() -> None:
    module = parse_module(mw(**{"lora_up.weight": torch.ones(2, 1), "lora_down.weight": torch.ones(1, 2),
                                "alpha": torch.tensor(8.0), "scale": torch.tensor(0.25)}))
    assert torch.equal(module.weight_delta(torch.zeros(2, 2)), torch.full((2, 2), 0.25))


def test_unknown_modules_are_named() -> None:
    with pytest.raises(LoraFormatError, match=r"lora_unet_x: unrecognised .*\['mystery'\]"):
        parse_module(mw(mystery=torch.ones(1)))


@pytest.mark.parametrize(("key", "expected"), [
    ("lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight",
     ("lora_unet_down_blocks_0_attentions_0_proj_in", "lora_down.weight")),
    ("lora_te1_text_model_encoder_layers_0_mlp_fc1.alpha", ("lora_te1_text_model_encoder_layers_0_mlp_fc1", "alpha")),
    ("lora_unet_x.hada_w1_a", ("lora_unet_x", "hada_w1_a")),
    ("unet.mid_block.attentions.0.proj_in.lora_A.weight", ("lora_unet_mid_block_attentions_0_proj_in", "lora_down.weight")),
    ("text_encoder_2.text_model.encoder.layers.3.self_attn.v_proj.lora_B.weight",
     ("lora_te2_text_model_encoder_layers_3_self_attn_v_proj", "lora_up.weight")),
    ("unet.down_blocks.1.attentions.0.transformer_blocks.0.attn1.processor.to_out_lora.up.weight",
     ("lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn1_to_out_0", "lora_up.weight")),
    ("base_model.model.unet.up_blocks.1.attentions.2.proj_out.lora_B.default.weight",
     ("lora_unet_up_blocks_1_attentions_2_proj_out", "lora_up.weight")),
])
def test_key_spellings(key: str, expected: tuple[str, str]) -> None:
    assert split_key(key) == expected


def test_bundled_embeddings_are_separated() -> None:
    groups, bundled = group_keys({
        "bundle_emb.mytoken.string_to_param.*": torch.ones(2, 8),
        "bundle_emb.xl.clip_l": torch.ones(1, 8),
        "lora_unet_a.lora_up.weight": torch.ones(1),
    })
    assert set(groups) == {"lora_unet_a"}
    assert set(bundled) == {"mytoken", "xl"} and set(bundled["mytoken"]) == {"*"} and set(bundled["xl"]) == {"clip_l"}


@pytest.mark.parametrize(("diffusers", "ldm"), [
    ("conv_in", ["input_blocks_0_0"]),
    ("conv_out", ["out_2"]),
    ("conv_norm_out", ["out_0"]),
    ("time_embedding_linear_2", ["time_embed_2"]),
    ("add_embedding_linear_1", ["label_emb_0_0"]),
    ("down_blocks_1_attentions_1_transformer_blocks_0_attn2_to_k", ["input_blocks_5_1_transformer_blocks_0_attn2_to_k"]),
    ("down_blocks_2_resnets_0_conv_shortcut", ["input_blocks_7_0_skip_connection"]),
    ("down_blocks_0_resnets_1_norm2", ["input_blocks_2_0_out_layers_0"]),
    ("down_blocks_1_downsamplers_0_conv", ["input_blocks_6_0_op"]),
    ("mid_block_resnets_0_conv1", ["middle_block_0_in_layers_2"]),
    ("mid_block_attentions_0_proj_in", ["middle_block_1_proj_in"]),
    ("up_blocks_3_attentions_2_proj_out", ["output_blocks_11_1_proj_out"]),
    ("up_blocks_1_resnets_2_time_emb_proj", ["output_blocks_5_0_emb_layers_1"]),
    ("up_blocks_1_upsamplers_0_conv", ["output_blocks_5_1_conv", "output_blocks_5_2_conv"]),
    ("input_blocks_1_1_proj_in", []),
])
def test_diffusers_to_ldm_unet_names(diffusers: str, ldm: list[str]) -> None:
    assert diffusers_unet_to_ldm(diffusers) == ldm


def test_openclip_names_and_upsampler_choice_by_existing_module() -> None:
    assert hf_clip_to_openclip("text_model_encoder_layers_4_self_attn_k_proj") == ("transformer_resblocks_4_attn", 1)
    assert hf_clip_to_openclip("text_model_encoder_layers_4_mlp_fc2") == ("transformer_resblocks_4_mlp_c_proj", None)
    assert hf_clip_to_openclip("text_model_encoder_layers_0_layer_norm1") == ("transformer_resblocks_0_ln_1", None)
    assert hf_clip_to_openclip("text_model_embeddings_token_embedding") is None
    sdxl = ModuleNameIndex(["model.diffusion_model.output_blocks.2.1.proj_in", "model.diffusion_model.output_blocks.2.2.conv"])
    assert sdxl.resolve("lora_unet_up_blocks_0_upsamplers_0_conv").module_key == "model.diffusion_model.output_blocks.2.2.conv"
    assert sdxl.resolve("lora_unet_nothing") is None
    assert sdxl.resolve("something_else") is None


def test_fit_delta_rules() -> None:
    assert fit_delta((8, 72), (8, 8, 3, 3)) == "reshape"
    assert fit_delta((320, 4, 3, 3), (320, 9, 3, 3)) == "pad"
    assert fit_delta((320, 4, 3, 3), (320, 8, 3, 3)) == "pad"
    assert fit_delta((640, 640), (320, 320)) is None
