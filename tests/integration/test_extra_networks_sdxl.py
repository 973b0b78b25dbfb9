"""Extra networks on the tiny SDXL checkpoint: te1/te2 LoRA keys (te2 q onto bigG's fused in_proj rows), SDXL
``{clip_l, clip_g}`` embeddings loaded and SD1-width ones skipped (A1111 expected_shape = 768 + 1280 on real SDXL;
the tiny encoders are 128 + 128)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from modules.images import parse_infotext
from modules.processing.context import AppContext
from modules.processing.extra_networks import NetworkLibrary
from modules.processing.run import run_txt2img
from tests.fixtures.app_context import context_for
from tests.integration.test_extra_networks_pipeline import new_job, pixels, t2i, write_embedding

SDXL_LORA = {
    "lora_te1_text_model_encoder_layers_0_self_attn_q_proj": (128, 128),
    "lora_te2_text_model_encoder_layers_0_self_attn_q_proj": (128, 128),
    "lora_te2_text_model_encoder_layers_0_mlp_fc1": (None, 128),
}


@pytest.fixture(scope="module")
def ctx(tiny_checkpoint, tmp_path_factory: pytest.TempPathFactory) -> AppContext:
    root = tmp_path_factory.mktemp("extra-networks-sdxl")
    context = context_for(root, {"sdxl": tiny_checkpoint("sdxl")})
    paths = context.paths
    for folder in (paths.lora_dir, paths.embeddings_dir):
        folder.mkdir(parents=True, exist_ok=True)
    model = context.models.load("sdxl")
    gen = torch.Generator().manual_seed(2)
    tensors: dict[str, torch.Tensor] = {}
    unet_module = next(n for n, _ in model.unet.named_modules() if n.endswith("attn2.to_k"))
    modules = {**SDXL_LORA, "lora_unet_" + unet_module.replace(".", "_"): (None, None)}
    for name, (out_dim, in_dim) in modules.items():
        if out_dim is None:
            key = _weight_key(name) if name in SDXL_LORA else f"unet.{unet_module}.weight"
            out_dim = int(_param(model, key).shape[0])
            in_dim = int(_param(model, key).shape[1])
        tensors[f"{name}.lora_down.weight"] = torch.randn(4, in_dim, generator=gen) * 0.5
        tensors[f"{name}.lora_up.weight"] = torch.randn(out_dim, 4, generator=gen) * 0.5
        tensors[f"{name}.alpha"] = torch.tensor(4.0)
    save_file(tensors, str(paths.lora_dir / "xllora.safetensors"),
              metadata={"ss_base_model_version": "sdxl_base_v1-0"})
    vec = torch.randn(2, 128, generator=gen)
    torch.save({"clip_l": vec, "clip_g": -vec}, paths.embeddings_dir / "xlemb.pt")
    write_embedding(paths.embeddings_dir / "sd1emb.pt")
    return dataclasses.replace(context, networks=NetworkLibrary.from_paths(paths))


def _weight_key(name: str) -> str:
    return {"lora_te2_text_model_encoder_layers_0_mlp_fc1": "te2.transformer.resblocks.0.mlp.c_fc.weight"}[name]


def _param(model: object, key: str) -> torch.Tensor:
    part, rest = key.split(".", 1)
    module = model.unet if part == "unet" else model.text_encoders.open_clip.model  # type: ignore[attr-defined]
    return module.get_parameter(rest)


def snapshot(ctx: AppContext) -> dict[str, torch.Tensor]:
    model = ctx.models.load("sdxl")
    out = {f"u.{k}": v.clone() for k, v in model.unet.state_dict().items()}
    out.update({f"t.{k}": v.clone() for k, v in model.text_encoder_module.state_dict().items()})
    return out


def test_sdxl_lora_te1_te2_unet(ctx: AppContext) -> None:
    params = {"override_settings": {"sd_model_checkpoint": "sdxl"}}
    before = snapshot(ctx)
    plain = run_txt2img(ctx, t2i("a cat", **params), new_job())
    lora = run_txt2img(ctx, t2i("a cat <lora:xllora:1>", **params), new_job())
    assert not lora.notices, lora.notices  # every module matched: te1, te2 (fused q rows, mlp) and the UNet
    assert not np.array_equal(pixels(plain.images[0]), pixels(lora.images[0]))
    after = snapshot(ctx)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert "xllora" in parse_infotext(lora.infotexts[0])["Lora hashes"]


def test_sdxl_embeddings_loaded_and_skipped(ctx: AppContext) -> None:
    params = {"override_settings": {"sd_model_checkpoint": "sdxl"}}
    plain = run_txt2img(ctx, t2i("a xlemb cat", **params), new_job())
    db = ctx.networks.embeddings
    assert set(db.word_embeddings) == {"xlemb"} and set(db.skipped) == {"sd1emb"}
    assert db.expected_shape == 256
    assert parse_infotext(plain.infotexts[0])["TI hashes"].startswith("xlemb: ")
    skipped = run_txt2img(ctx, t2i("a sd1emb cat", **params), new_job())
    assert any("sd1emb was skipped" in n for n in skipped.notices)
    assert Path(db.word_embeddings["xlemb"].path).name == "xlemb.pt"
