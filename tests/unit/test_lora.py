"""LoRA files applied through the patcher: known deltas land on the right weights (linear, conv, fused in_proj
slices), multipliers, several networks, unknown keys and wrong shapes, restore, syntax and registry."""

from __future__ import annotations

import re
from pathlib import Path

import open_clip
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn
from transformers import CLIPTextConfig, CLIPTextModel

from modules.models.networks.lora import LoraRegistry, LoraRequest, add_loras, bundled_embeddings, load_lora
from modules.models.patcher import ModelPatcher

UNET = "model.diffusion_model."
SD1_TE = "cond_stage_model.transformer.text_model."
SD2_TE = "cond_stage_model.model."
XL_TE1 = "conditioner.embedders.0.transformer.text_model."
XL_TE2 = "conditioner.embedders.1.model."


def _tree(spec: dict[str, nn.Module]) -> nn.Module:
    root = nn.Module()
    for path, module in spec.items():
        node = root
        *parents, leaf = path.split(".")
        for part in parents:
            if part not in node._modules:
                node.add_module(part, nn.Module())
            node = node._modules[part]
        node.add_module(leaf, module)
    return root


def tiny_unet(in_channels: int = 4) -> nn.Module:
    """UNet-shaped module tree with LDM names (SD1 layout: level 0 up block without attention)."""
    torch.manual_seed(1)
    return _tree({
        "input_blocks.0.0": nn.Conv2d(in_channels, 8, 3, padding=1),
        "input_blocks.1.0.in_layers.2": nn.Conv2d(8, 8, 3, padding=1),
        "input_blocks.1.0.emb_layers.1": nn.Linear(16, 8),
        "input_blocks.1.1.norm": nn.GroupNorm(2, 8),
        "input_blocks.1.1.proj_in": nn.Conv2d(8, 8, 1),
        "input_blocks.1.1.transformer_blocks.0.attn1.to_q": nn.Linear(8, 8, bias=False),
        "input_blocks.1.1.transformer_blocks.0.attn2.to_k": nn.Linear(16, 8, bias=False),
        "input_blocks.1.1.transformer_blocks.0.attn2.to_out.0": nn.Linear(8, 8),
        "input_blocks.3.0.op": nn.Conv2d(8, 8, 3, stride=2, padding=1),
        "middle_block.1.proj_out": nn.Conv2d(8, 8, 1),
        "middle_block.2.out_layers.3": nn.Conv2d(8, 8, 3, padding=1),
        "output_blocks.2.1.conv": nn.Conv2d(8, 8, 3, padding=1),
        "output_blocks.4.1.proj_in": nn.Conv2d(8, 8, 1),
        "time_embed.0": nn.Linear(8, 16),
    })


def tiny_clip() -> CLIPTextModel:
    torch.manual_seed(2)
    config = CLIPTextConfig(vocab_size=100, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                            num_attention_heads=2, max_position_embeddings=8, bos_token_id=0, eos_token_id=1,
                            pad_token_id=1)
    return CLIPTextModel(config)


def tiny_openclip() -> nn.Module:
    torch.manual_seed(3)
    return open_clip.transformer.TextTransformer(context_length=8, vocab_size=100, width=16, heads=2, layers=1,
                                                 output_dim=16)


def lora_pair(out_f: int, in_f: int, rank: int, kernel: tuple[int, int] | None = None) -> tuple[torch.Tensor, ...]:
    down = torch.randn(rank, in_f, *(kernel or ()))
    up = torch.randn(out_f, rank, *((1, 1) if kernel else ()))
    return up, down


def kohya(name: str, up: torch.Tensor, down: torch.Tensor, alpha: float | None) -> dict[str, torch.Tensor]:
    sd = {f"{name}.lora_up.weight": up, f"{name}.lora_down.weight": down}
    if alpha is not None:
        sd[f"{name}.alpha"] = torch.tensor(alpha)
    return sd


def write(path: Path, sd: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".safetensors":
        save_file({k: v.contiguous() for k, v in sd.items()}, str(path), metadata=metadata)
    else:
        torch.save(sd, path)
    return path


def snapshot(*modules: nn.Module) -> list[dict[str, torch.Tensor]]:
    return [{k: v.clone() for k, v in m.state_dict().items()} for m in modules]


def assert_restored(before: list[dict[str, torch.Tensor]], *modules: nn.Module) -> None:
    for saved, module in zip(before, modules, strict=True):
        for key, value in module.state_dict().items():
            assert torch.equal(value, saved[key]), key


def test_linear_and_conv_lora_with_diffusers_names_patch_base_plus_scale_delta(tmp_path: Path) -> None:
    unet = tiny_unet()
    before = snapshot(unet)
    up_q, down_q = lora_pair(8, 8, 4)
    up_c, down_c = lora_pair(8, 8, 2, kernel=(3, 3))
    sd = kohya("lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q", up_q, down_q, 2.0)
    sd |= kohya("lora_unet_down_blocks_0_resnets_0_conv1", up_c, down_c, 1.0)
    lora = load_lora(write(tmp_path / "Lora" / "detail.safetensors", sd))
    patcher = ModelPatcher({UNET: unet})
    report = add_loras(patcher, [(lora, LoraRequest("detail", 1.0, 0.75))])
    assert report.applied == ["detail"] and not report.messages
    q = unet.get_submodule("input_blocks.1.1.transformer_blocks.0.attn1.to_q")
    conv = unet.get_submodule("input_blocks.1.0.in_layers.2")
    with patcher:
        expected_q = before[0]["input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight"] + 0.75 * (2.0 / 4) * (up_q @ down_q)
        assert torch.allclose(q.weight, expected_q, atol=1e-6)
        # Conv: independent check through two convolutions (down: 3x3 conv to rank 2, up: 1x1 conv).
        x = torch.randn(1, 8, 5, 5)
        base_out = F.conv2d(x, before[0]["input_blocks.1.0.in_layers.2.weight"],
                            before[0]["input_blocks.1.0.in_layers.2.bias"], padding=1)
        lora_out = F.conv2d(F.conv2d(x, down_c, padding=1), up_c)
        assert torch.allclose(conv(x), base_out + 0.75 * (1.0 / 2) * lora_out, atol=1e-5)
    assert_restored(before, unet)


def test_ldm_style_kohya_names_and_diffusers_block_mapping(tmp_path: Path) -> None:
    unet = tiny_unet()
    names = {
        "lora_unet_input_blocks_1_1_proj_in": "input_blocks.1.1.proj_in",  # SDXL kohya spelling
        "lora_unet_down_blocks_0_downsamplers_0_conv": "input_blocks.3.0.op",
        "lora_unet_mid_block_attentions_0_proj_out": "middle_block.1.proj_out",
        "lora_unet_mid_block_resnets_1_conv2": "middle_block.2.out_layers.3",
        "lora_unet_up_blocks_0_upsamplers_0_conv": "output_blocks.2.1.conv",
        "lora_unet_up_blocks_1_attentions_1_proj_in": "output_blocks.4.1.proj_in",
        "lora_unet_down_blocks_0_resnets_0_time_emb_proj": "input_blocks.1.0.emb_layers.1",
        "lora_unet_time_embedding_linear_1": "time_embed.0",
        "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_out_0": "input_blocks.1.1.transformer_blocks.0.attn2.to_out.0",
    }
    sd: dict[str, torch.Tensor] = {}
    deltas = {}
    for lora_name, module_name in names.items():
        weight = unet.get_submodule(module_name).weight
        kernel = tuple(weight.shape[2:]) if weight.dim() == 4 else None
        up, down = lora_pair(weight.shape[0], weight.shape[1], 1, kernel)
        sd |= kohya(lora_name, up, down, None)
        deltas[module_name] = (up.flatten(1) @ down.flatten(1)).reshape(weight.shape)
    before = snapshot(unet)
    patcher = ModelPatcher({UNET: unet})
    report = add_loras(patcher, [(load_lora(write(tmp_path / "m.safetensors", sd)), LoraRequest("m"))])
    assert not report.messages
    with patcher:
        for module_name, delta in deltas.items():
            assert torch.allclose(unet.get_submodule(module_name).weight, before[0][module_name + ".weight"] + delta,
                                  atol=1e-6), module_name
    assert_restored(before, unet)


def test_sd1_text_encoder_gets_te_multiplier_and_unet_gets_unet_multiplier(tmp_path: Path) -> None:
    unet, clip = tiny_unet(), tiny_clip()
    before = snapshot(unet, clip)
    up_t, down_t = lora_pair(16, 16, 4)
    up_u, down_u = lora_pair(8, 16, 4)
    sd = kohya("lora_te_text_model_encoder_layers_0_mlp_fc1", *lora_pair(32, 16, 2), 2.0)
    sd |= kohya("lora_te_text_model_encoder_layers_0_self_attn_q_proj", up_t, down_t, 4.0)
    sd |= kohya("lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k", up_u, down_u, 4.0)
    lora = load_lora(write(tmp_path / "x.pt", sd))
    patcher = ModelPatcher({UNET: unet, SD1_TE: clip})
    add_loras(patcher, [(lora, LoraRequest.from_args("x:0.5:2"))])
    with patcher:
        q = clip.get_submodule("encoder.layers.0.self_attn.q_proj").weight
        assert torch.allclose(q, before[1]["encoder.layers.0.self_attn.q_proj.weight"] + 0.5 * up_t @ down_t, atol=1e-6)
        k = unet.get_submodule("input_blocks.1.1.transformer_blocks.0.attn2.to_k").weight
        key = "input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"
        assert torch.allclose(k, before[0][key] + 2.0 * up_u @ down_u, atol=1e-6)
    assert_restored(before, unet, clip)


@pytest.mark.parametrize(("prefix", "te_prefix", "components"), [
    ("lora_te_", SD2_TE, "sd2"), ("lora_te2_", XL_TE2, "sdxl"),
])
def test_openclip_qkv_lora_lands_in_fused_in_proj_slices(tmp_path: Path, prefix: str, te_prefix: str,
                                                         components: str) -> None:
    tower = tiny_openclip()
    comps: dict[str, nn.Module] = {te_prefix: tower}
    if components == "sdxl":
        comps[XL_TE1] = tiny_clip()
    before = snapshot(tower)
    pairs = {p: lora_pair(16, 16, 2) for p in "qv"}  # k deliberately absent: its slice stays unchanged
    sd: dict[str, torch.Tensor] = {}
    for p, (up, down) in pairs.items():
        sd |= kohya(f"{prefix}text_model_encoder_layers_0_self_attn_{p}_proj", up, down, 1.0)
    out_up, out_down = lora_pair(16, 16, 2)
    sd |= kohya(f"{prefix}text_model_encoder_layers_0_self_attn_out_proj", out_up, out_down, 2.0)
    fc_up, fc_down = lora_pair(64, 16, 2)
    sd |= kohya(f"{prefix}text_model_encoder_layers_0_mlp_fc1", fc_up, fc_down, 2.0)
    patcher = ModelPatcher(comps)
    report = add_loras(patcher, [(load_lora(write(tmp_path / "t.safetensors", sd)), LoraRequest("t", 1.5))])
    assert not report.messages
    with patcher:
        fused = tower.get_parameter("transformer.resblocks.0.attn.in_proj_weight")
        base = before[0]["transformer.resblocks.0.attn.in_proj_weight"]
        q_up, q_down = pairs["q"]
        v_up, v_down = pairs["v"]
        assert torch.allclose(fused[0:16], base[0:16] + 1.5 * 0.5 * q_up @ q_down, atol=1e-6)
        assert torch.equal(fused[16:32], base[16:32])
        assert torch.allclose(fused[32:48], base[32:48] + 1.5 * 0.5 * v_up @ v_down, atol=1e-6)
        out = tower.get_parameter("transformer.resblocks.0.attn.out_proj.weight")
        assert torch.allclose(out, before[0]["transformer.resblocks.0.attn.out_proj.weight"] + 1.5 * out_up @ out_down,
                              atol=1e-6)
        c_fc = tower.get_parameter("transformer.resblocks.0.mlp.c_fc.weight")
        assert torch.allclose(c_fc, before[0]["transformer.resblocks.0.mlp.c_fc.weight"] + 1.5 * fc_up @ fc_down,
                              atol=1e-6)
    assert_restored(before, tower)


def test_sdxl_te1_and_peft_diffusers_keys(tmp_path: Path) -> None:
    clip, unet = tiny_clip(), tiny_unet()
    before = snapshot(clip, unet)
    a = torch.randn(2, 16)
    b = torch.randn(16, 2)
    ua, ub = torch.randn(3, 8), torch.randn(8, 3)
    sd = {
        "text_encoder.text_model.encoder.layers.0.self_attn.k_proj.lora_A.weight": a,
        "text_encoder.text_model.encoder.layers.0.self_attn.k_proj.lora_B.weight": b,
        "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora.down.weight": ua,
        "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora.up.weight": ub,
    }
    patcher = ModelPatcher({XL_TE1: clip, UNET: unet, XL_TE2: tiny_openclip()})
    report = add_loras(patcher, [(load_lora(write(tmp_path / "p.safetensors", sd)), LoraRequest("p"))])
    assert not report.messages
    with patcher:
        k = clip.get_parameter("encoder.layers.0.self_attn.k_proj.weight")
        assert torch.allclose(k, before[0]["encoder.layers.0.self_attn.k_proj.weight"] + b @ a, atol=1e-6)
        q = unet.get_parameter("input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight")
        assert torch.allclose(q, before[1]["input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight"] + ub @ ua, atol=1e-6)
    assert_restored(before, clip, unet)


def test_several_networks_add_and_zero_multiplier_adds_nothing(tmp_path: Path) -> None:
    unet = tiny_unet()
    before = snapshot(unet)
    name = "lora_unet_input_blocks_1_1_transformer_blocks_0_attn1_to_q"
    first, second = lora_pair(8, 8, 2), lora_pair(8, 8, 2)
    one = load_lora(write(tmp_path / "one.safetensors", kohya(name, *first, None)))
    two = load_lora(write(tmp_path / "two.safetensors", kohya(name, *second, None)))
    three = load_lora(write(tmp_path / "three.safetensors", kohya(name, *lora_pair(8, 8, 2), None)))
    patcher = ModelPatcher({UNET: unet})
    add_loras(patcher, [(one, LoraRequest("one", 1, 0.5)), (two, LoraRequest("two", 1, -1)),
                        (three, LoraRequest("three", 1, 0))])
    with patcher:
        expected = before[0]["input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight"]
        expected = expected + 0.5 * first[0] @ first[1] - second[0] @ second[1]
        assert torch.allclose(unet.get_parameter("input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight"), expected,
                              atol=1e-6)
    assert_restored(before, unet)


def test_unknown_keys_are_reported_and_wrong_shapes_skip_the_whole_network(tmp_path: Path) -> None:
    unet = tiny_unet()
    before = snapshot(unet)
    good_name = "lora_unet_input_blocks_1_1_transformer_blocks_0_attn1_to_q"
    good = kohya(good_name, *lora_pair(8, 8, 2), None) | kohya("lora_unet_not_a_module", *lora_pair(8, 8, 2), None)
    bad = kohya(good_name, *lora_pair(8, 8, 2), None) | kohya("lora_unet_input_blocks_1_1_proj_in",
                                                              *lora_pair(320, 320, 2, (1, 1)), None)
    good_lora = load_lora(write(tmp_path / "good.safetensors", good))
    bad_lora = load_lora(write(tmp_path / "sub" / "bad_sdxl.safetensors", bad))
    patcher = ModelPatcher({UNET: unet})
    report = add_loras(patcher, [(bad_lora, LoraRequest("bad_sdxl")), (good_lora, LoraRequest("good"))])
    assert report.applied == ["good"]
    assert report.unmatched == {"good": ["lora_unet_not_a_module"]}
    assert "bad_sdxl.safetensors" in report.skipped["bad_sdxl"]
    assert "input_blocks.1.1.proj_in.weight" in report.skipped["bad_sdxl"]
    assert any("didn't match keys: lora_unet_not_a_module" in m for m in report.messages)
    assert {p.source for ps in patcher.weight_patches.values() for p in ps} == {"good"}
    with patcher:
        pass
    assert_restored(before, unet)


def test_inpainting_unet_input_conv_delta_is_zero_padded(tmp_path: Path) -> None:
    unet = tiny_unet(in_channels=9)
    before = snapshot(unet)
    up, down = lora_pair(8, 4, 2, (3, 3))
    lora = load_lora(write(tmp_path / "c.safetensors", kohya("lora_unet_conv_in", up, down, None)))
    patcher = ModelPatcher({UNET: unet})
    assert not add_loras(patcher, [(lora, LoraRequest("c"))]).messages
    with patcher:
        weight = unet.get_parameter("input_blocks.0.0.weight")
        delta = (up.flatten(1) @ down.flatten(1)).reshape(8, 4, 3, 3)
        assert torch.allclose(weight[:, :4], before[0]["input_blocks.0.0.weight"][:, :4] + delta, atol=1e-6)
        assert torch.equal(weight[:, 4:], before[0]["input_blocks.0.0.weight"][:, 4:])
    assert_restored(before, unet)


@pytest.mark.parametrize(("args", "expected"), [
    ("name", LoraRequest("name", 1.0, 1.0)),
    ("name:1", LoraRequest("name", 1.0, 1.0)),
    ("name:0.8:0.5", LoraRequest("name", 0.8, 0.5)),
    ("name:0.8", LoraRequest("name", 0.8, 0.8)),
    ("name:te=0.3:unet=0.7", LoraRequest("name", 0.3, 0.7)),
    ("name:unet=0.25", LoraRequest("name", 1.0, 0.25)),
    ("name:1:0.5:16", LoraRequest("name", 1.0, 0.5, 16)),
    ("name:1:dyn=8", LoraRequest("name", 1.0, 1.0, 8)),
])
def test_lora_prompt_arguments(args: str, expected: LoraRequest) -> None:
    assert LoraRequest.from_args(args) == expected


def test_lora_prompt_argument_errors_name_the_tag() -> None:
    with pytest.raises(ValueError, match=re.escape("<lora:name:abc>")):
        LoraRequest.from_args("name:abc")
    with pytest.raises(ValueError, match="name is missing"):
        LoraRequest.from_args(":1")


def test_registry_lists_subfolders_aliases_versions_and_caches_loads(tmp_path: Path) -> None:
    lora_dir = tmp_path / "Lora"
    sd = kohya("lora_unet_input_blocks_1_1_proj_in", *lora_pair(8, 8, 1, (1, 1)), None)
    write(lora_dir / "a" / "styleA.safetensors", sd, {"ss_output_name": "Fancy", "ss_base_model_version": "sdxl_base_v1-0"})
    write(lora_dir / "b" / "styleB.safetensors", sd, {"ss_output_name": "Fancy", "ss_v2": "True"})
    write(lora_dir / "plain.pt", sd)
    write(lora_dir / "notes.txt", {})  # torch.save of an empty dict: wrong extension, never listed
    registry = LoraRegistry([lora_dir, tmp_path / "missing"])
    registry.refresh()
    assert set(registry.available) == {"styleA", "styleB", "plain"}
    assert registry.available["styleA"].sd_version == "SDXL"
    assert registry.available["styleB"].sd_version == "SD2"
    assert registry.available["plain"].sd_version == "Unknown"
    assert "fancy" in registry.forbidden_aliases  # shared alias -> only file names work
    assert registry.find("Fancy") is None
    assert registry.display_name(registry.available["styleA"]) == "styleA"
    assert registry.find("plain") is registry.available["plain"]
    entry = registry.available["plain"]
    assert registry.load(entry) is registry.load(entry)
    assert registry.find_by_shorthash(entry.read_hash()[:12]) is entry


def test_full_diff_norm_and_ia3_files_patch_weights_and_biases(tmp_path: Path) -> None:
    unet = tiny_unet()
    before = snapshot(unet)
    out0 = "input_blocks.1.1.transformer_blocks.0.attn2.to_out.0"
    diff, diff_b = torch.randn(8, 8), torch.randn(8)
    w_norm, b_norm = torch.randn(8), torch.randn(8)
    ia3 = torch.randn(8)
    sd = {
        "lora_unet_input_blocks_1_1_transformer_blocks_0_attn2_to_out_0.diff": diff,
        "lora_unet_input_blocks_1_1_transformer_blocks_0_attn2_to_out_0.diff_b": diff_b,
        "lora_unet_input_blocks_1_1_norm.w_norm": w_norm,
        "lora_unet_input_blocks_1_1_norm.b_norm": b_norm,
        "lora_unet_input_blocks_1_1_transformer_blocks_0_attn1_to_q.weight": ia3,
        "lora_unet_input_blocks_1_1_transformer_blocks_0_attn1_to_q.on_input": torch.tensor(False),
        # a bias difference for a bias-free layer is ignored with a notice
        "lora_unet_input_blocks_1_1_transformer_blocks_0_attn2_to_k.diff": torch.zeros(8, 16),
        "lora_unet_input_blocks_1_1_transformer_blocks_0_attn2_to_k.diff_b": torch.ones(8),
    }
    patcher = ModelPatcher({UNET: unet})
    report = add_loras(patcher, [(load_lora(write(tmp_path / "lyco.safetensors", sd)), LoraRequest("lyco", 1, 0.5))])
    assert report.notices == ["Network lyco: model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k "
                              "has no bias; bias part ignored"]
    with patcher:
        b = before[0]
        assert torch.allclose(unet.get_parameter(out0 + ".weight"), b[out0 + ".weight"] + 0.5 * diff)
        assert torch.allclose(unet.get_parameter(out0 + ".bias"), b[out0 + ".bias"] + 0.5 * diff_b)
        assert torch.allclose(unet.get_parameter("input_blocks.1.1.norm.weight"), b["input_blocks.1.1.norm.weight"] + 0.5 * w_norm)
        assert torch.allclose(unet.get_parameter("input_blocks.1.1.norm.bias"), b["input_blocks.1.1.norm.bias"] + 0.5 * b_norm)
        q = "input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight"
        assert torch.allclose(unet.get_parameter(q), b[q] * (1 + 0.5 * ia3[:, None]), atol=1e-6)
    assert_restored(before, unet)


def test_bundled_embeddings_become_embedding_objects(tmp_path: Path) -> None:
    sd = kohya("lora_unet_input_blocks_1_1_proj_in", *lora_pair(8, 8, 1, (1, 1)), None)
    sd["bundle_emb.charname.string_to_param.*"] = torch.randn(2, 768)
    sd["bundle_emb.xlchar.clip_l"] = torch.randn(1, 768)
    sd["bundle_emb.xlchar.clip_g"] = torch.randn(1, 1280)
    sd["bundle_emb.broken.a"] = torch.randn(1, 4)
    sd["bundle_emb.broken.b"] = torch.randn(1, 4)
    lora = load_lora(write(tmp_path / "char.safetensors", sd))
    assert set(lora.modules) == {"lora_unet_input_blocks_1_1_proj_in"}
    embeddings, errors = bundled_embeddings(lora)
    assert {(e.name, e.vectors, e.shape) for e in embeddings} == {("charname", 2, 768), ("xlchar", 1, 2048)}
    assert len(errors) == 1 and "broken" in errors[0] and "multiple terms" in errors[0]
