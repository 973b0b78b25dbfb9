"""Extra networks through the real pipeline on the tiny SD1 checkpoint: LoRA, textual inversion, hypernetworks.

Network files are written here in the layouts A1111 reads (kohya LoRA safetensors, A1111 TI ``.pt``, A1111
hypernetwork ``.pt``) with the tiny model's widths (text 128, UNet 64/128).
"""

from __future__ import annotations

import types
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from modules.images import parse_infotext
from modules.models.hashes import addnet_hash_safetensors, sha256_file
from modules.models.networks.hashes import parse_hashes
from modules.processing.conditioning import PromptEncoder
from modules.processing.context import AppContext
from modules.processing.extra_networks import activate_networks, rewrite_pasted_fields
from modules.processing.params import Txt2ImgParams
from modules.processing.run import run_txt2img
from modules.prompts import get_tokenizer
from modules.runtime.job_state import JobState
from tests.fixtures.app_context import context_for

RANK = 4
LORA_MODULES = {
    "lora_unet_input_blocks_1_1_transformer_blocks_0_attn2_to_k": (64, 128, False),
    "lora_unet_middle_block_1_proj_in": (128, 128, True),
    "lora_unet_output_blocks_2_1_transformer_blocks_0_attn1_to_q": (64, 64, False),
    "lora_te_text_model_encoder_layers_0_self_attn_q_proj": (128, 128, False),
    "lora_te_text_model_encoder_layers_1_mlp_fc1": (None, 128, False),
}


def write_lora(path: Path, seed: int = 1, scale: float = 0.5) -> Path:
    gen = torch.Generator().manual_seed(seed)
    tensors: dict[str, torch.Tensor] = {}
    for name, (out_dim, in_dim, conv) in LORA_MODULES.items():
        out_dim = out_dim or 256
        down = torch.randn(RANK, in_dim, generator=gen) * scale
        up = torch.randn(out_dim, RANK, generator=gen) * scale
        if conv:
            down, up = down[..., None, None], up[..., None, None]
        tensors[f"{name}.lora_down.weight"] = down
        tensors[f"{name}.lora_up.weight"] = up
        tensors[f"{name}.alpha"] = torch.tensor(float(RANK))
    save_file(tensors, str(path), metadata={"ss_output_name": path.stem, "ss_network_dim": str(RANK)})
    return path


def write_embedding(path: Path, vectors: int = 2, dim: int = 128, seed: int = 3) -> torch.Tensor:
    vec = torch.randn(vectors, dim, generator=torch.Generator().manual_seed(seed))
    torch.save({"string_to_token": {"*": 265}, "string_to_param": {"*": vec}, "name": path.stem, "step": 500,
                "sd_checkpoint": "abcdef12", "sd_checkpoint_name": "tiny"}, path)
    return vec


def write_hypernetwork(path: Path, width: int = 128) -> None:
    gen = torch.Generator().manual_seed(5)

    def mlp() -> dict[str, torch.Tensor]:
        return {"linear.0.weight": torch.randn(2 * width, width, generator=gen) * 0.3,
                "linear.0.bias": torch.zeros(2 * width),
                "linear.2.weight": torch.randn(width, 2 * width, generator=gen) * 0.3,
                "linear.2.bias": torch.zeros(width)}

    torch.save({width: [mlp(), mlp()], "layer_structure": [1, 2, 1], "activation_func": "relu",
                "is_layer_norm": False, "name": path.stem, "step": 10}, path)


@pytest.fixture(scope="module")
def ctx(tiny_checkpoint, tmp_path_factory: pytest.TempPathFactory) -> AppContext:
    root = tmp_path_factory.mktemp("extra-networks")
    paths = types.SimpleNamespace(lora_dir=root / "models" / "Lora", embeddings_dir=root / "embeddings",
                                  hypernetwork_dir=root / "models" / "hypernetworks")
    for folder in (paths.lora_dir, paths.embeddings_dir, paths.hypernetwork_dir):
        folder.mkdir(parents=True)
    write_lora(paths.lora_dir / "tinylora.safetensors")
    (paths.lora_dir / "broken.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not a safetensors file")
    write_embedding(paths.embeddings_dir / "tinyemb.pt")
    write_embedding(paths.embeddings_dir / "wrongwidth.pt", dim=64)
    write_hypernetwork(paths.hypernetwork_dir / "tinyhn.pt")
    return context_for(root, {"sd1": tiny_checkpoint("sd1")})


def new_job() -> types.SimpleNamespace:
    state = JobState("test")
    state.begin()
    return types.SimpleNamespace(state=state)


def t2i(prompt: str, **kw: object) -> Txt2ImgParams:
    base: dict[str, object] = dict(prompt=prompt, negative_prompt="blurry", width=32, height=32, steps=2, seed=11,
                                   sampler_name="Euler", do_not_save_samples=True,
                                   override_settings={"sd_model_checkpoint": "sd1"})
    base.update(kw)
    return Txt2ImgParams(**base)  # type: ignore[arg-type]


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def weights(ctx: AppContext) -> dict[str, torch.Tensor]:
    model = ctx.models.load("sd1")
    out = {f"unet.{k}": v.detach().clone() for k, v in model.unet.state_dict().items()}
    out.update({f"te.{k}": v.detach().clone() for k, v in model.text_encoder_module.state_dict().items()})
    return out


def assert_weights_equal(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> None:
    assert before.keys() == after.keys()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert not changed, f"weights not restored: {changed[:5]}"


def test_lora_changes_image_and_weights_are_restored(ctx: AppContext) -> None:
    plain = run_txt2img(ctx, t2i("a cat"), new_job())
    before = weights(ctx)
    with_lora = run_txt2img(ctx, t2i("a cat <lora:tinylora:1>"), new_job())
    assert_weights_equal(before, weights(ctx))
    assert not np.array_equal(pixels(plain.images[0]), pixels(with_lora.images[0]))
    again = run_txt2img(ctx, t2i("a cat"), new_job())
    assert np.array_equal(pixels(plain.images[0]), pixels(again.images[0]))
    assert not with_lora.notices

    fields = parse_infotext(with_lora.infotexts[0])
    lora_file = Path(ctx.paths.lora_dir) / "tinylora.safetensors"
    assert parse_hashes(fields["Lora hashes"]) == {"tinylora": addnet_hash_safetensors(lora_file)[:12]}
    assert f'Lora hashes: "tinylora: {addnet_hash_safetensors(lora_file)[:12]}"' in with_lora.infotexts[0]
    assert fields["Prompt"] == "a cat <lora:tinylora:1>"


def test_text_encoder_only_and_unet_only_multipliers_differ(ctx: AppContext) -> None:
    te_only = run_txt2img(ctx, t2i("a cat <lora:tinylora:1:0>"), new_job())
    unet_only = run_txt2img(ctx, t2i("a cat <lora:tinylora:te=0:unet=1>"), new_job())
    both = run_txt2img(ctx, t2i("a cat <lora:tinylora:1>"), new_job())
    images = [pixels(r.images[0]) for r in (te_only, unet_only, both)]
    assert not np.array_equal(images[0], images[1]) and not np.array_equal(images[1], images[2])


def test_lora_multiplier_zero_equals_no_lora(ctx: AppContext) -> None:
    plain = run_txt2img(ctx, t2i("a cat"), new_job())
    zero = run_txt2img(ctx, t2i("a cat <lora:tinylora:0>"), new_job())
    assert np.array_equal(pixels(plain.images[0]), pixels(zero.images[0]))


def test_pasted_lora_hashes_rewrite_to_local_alias(ctx: AppContext) -> None:
    result = run_txt2img(ctx, t2i("a cat <lora:tinylora:0.5>"), new_job())
    fields = parse_infotext(result.infotexts[0])
    fields["Prompt"] = fields["Prompt"].replace("tinylora", "renamed_on_other_pc")
    fields["Lora hashes"] = fields["Lora hashes"].replace("tinylora", "renamed_on_other_pc")
    rewrite_pasted_fields(ctx.networks, fields)
    assert fields["Prompt"] == "a cat <lora:tinylora:0.5>"


def _renamed_infotext(ctx: AppContext) -> str:
    """An infotext as another PC with the same LoRA file named `renamed_on_other_pc` would write it."""
    text = run_txt2img(ctx, t2i("a cat <lora:tinylora:0.5>"), new_job()).infotexts[0]
    assert "Lora hashes: " in text
    return text.replace("tinylora", "renamed_on_other_pc")


def test_ui_paste_rewrites_lora_alias_by_hash(ctx: AppContext) -> None:
    import gradio as gr

    from modules.ui.paste import updates_from_infotext

    prompt_box = gr.Textbox()
    updates = updates_from_infotext(ctx, _renamed_infotext(ctx), {"prompt": prompt_box})
    assert updates[prompt_box]["value"] == "a cat <lora:tinylora:0.5>"


def test_api_infotext_field_rewrites_lora_alias_by_hash(ctx: AppContext) -> None:
    from modules.api.routes_generation import apply_infotext

    data: dict = {"prompt": "", "override_settings": {}}
    apply_infotext(data, set(), _renamed_infotext(ctx), ctx.networks)
    assert data["prompt"] == "a cat <lora:tinylora:0.5>"
    apply_infotext(data, set(), _renamed_infotext(ctx))
    assert data["prompt"] == "a cat <lora:renamed_on_other_pc:0.5>"


def test_corrupt_and_missing_networks_are_reported_and_image_comes_out(ctx: AppContext) -> None:
    before = weights(ctx)
    result = run_txt2img(ctx, t2i("a cat <lora:broken:1> <lora:nosuchlora:1> <lora:tinylora:1>"), new_job())
    assert len(result.images) == 1 and pixels(result.images[0]).std() > 0
    assert any(n.startswith("Network broken could not be loaded") for n in result.notices)
    assert "Networks not found: nosuchlora" in result.notices
    assert "tinylora" in parse_hashes(parse_infotext(result.infotexts[0])["Lora hashes"])
    assert_weights_equal(before, weights(ctx))


def test_weights_restored_after_a_failure_mid_job(ctx: AppContext) -> None:
    before = weights(ctx)
    job = new_job()
    calls = {"n": 0}
    real_check = job.state.check

    def failing_check() -> None:
        calls["n"] += 1
        raise RuntimeError("boom")

    job.state.check = failing_check  # the sampler's per-step check raises mid-sampling
    with pytest.raises(RuntimeError, match="boom"):
        run_txt2img(ctx, t2i("a cat <lora:tinylora:1> <hypernet:tinyhn:1>"), job)
    job.state.check = real_check
    assert calls["n"] >= 1
    assert_weights_equal(before, weights(ctx))
    model = ctx.models.load("sd1")
    assert not any(m._forward_pre_hooks for m in model.unet.modules())


def test_textual_inversion_splices_vectors_at_its_tokens(ctx: AppContext) -> None:
    model = ctx.models.load("sd1")
    vec = torch.load(Path(ctx.paths.embeddings_dir) / "tinyemb.pt")["string_to_param"]["*"]
    token_embedding = model.text_encoders.clip_l._text.embeddings.token_embedding
    captured: list[torch.Tensor] = []
    handle = token_embedding.register_forward_hook(lambda _m, _a, out: captured.append(out.detach().clone()))
    run = types.SimpleNamespace(ctx=ctx, params=t2i("a tinyemb cat"), model=model, settings=ctx.settings.snapshot({}),
                                prompts=["a tinyemb cat"], extra_fields={}, notices=[])
    try:
        with activate_networks(run):
            with_ti = PromptEncoder(model, run.settings, 32, 32).encode(["a tinyemb cat"])[0]["crossattn"]
        plain = PromptEncoder(model, run.settings, 32, 32).encode(["a tinyemb cat"])[0]["crossattn"]
    finally:
        handle.remove()
    spliced, normal = captured[0][0], captured[1][0]
    ids = token_embedding.weight
    # BOS, "a", 2 embedding vectors, "cat", EOS...: vectors exactly at positions 2 and 3, the rest unchanged.
    assert torch.equal(spliced[2:4], vec.to(spliced.dtype))
    assert torch.equal(spliced[:2], normal[:2])
    assert torch.equal(spliced[4], ids[get_tokenizer("clip").encode("cat")[0]])
    assert torch.equal(with_ti[:2], plain[:2])  # causal text model: tokens before the embedding are unaffected
    assert not torch.allclose(with_ti[2:4], plain[2:4])
    assert run.extra_fields["TI hashes"] == f"tinyemb: {sha256_file(Path(ctx.paths.embeddings_dir) / 'tinyemb.pt')[:12]}"


def test_textual_inversion_in_a_job_writes_ti_hashes_and_skips_wrong_width(ctx: AppContext) -> None:
    plain = run_txt2img(ctx, t2i("a tinyemb cat"), new_job())
    fields = parse_infotext(plain.infotexts[0])
    digest = sha256_file(Path(ctx.paths.embeddings_dir) / "tinyemb.pt")[:12]
    assert fields["TI hashes"] == f"tinyemb: {digest}"
    assert f'TI hashes: "tinyemb: {digest}"' in plain.infotexts[0]
    skipped = run_txt2img(ctx, t2i("a wrongwidth cat"), new_job())
    assert "TI hashes" not in skipped.infotexts[0]
    assert any("wrongwidth was skipped" in n and "size 64" in n for n in skipped.notices)
    db = ctx.networks.embeddings
    assert set(db.word_embeddings) == {"tinyemb"} and set(db.skipped) == {"wrongwidth"}


def test_hypernetwork_tag_and_setting(ctx: AppContext) -> None:
    plain = run_txt2img(ctx, t2i("a cat"), new_job())
    tagged = run_txt2img(ctx, t2i("a cat <hypernet:tinyhn:1>"), new_job())
    assert not np.array_equal(pixels(plain.images[0]), pixels(tagged.images[0]))
    by_setting = run_txt2img(ctx, t2i("a cat", override_settings={"sd_model_checkpoint": "sd1",
                                                                  "sd_hypernetwork": "tinyhn"}), new_job())
    assert np.array_equal(pixels(tagged.images[0]), pixels(by_setting.images[0]))
    assert parse_infotext(by_setting.infotexts[0])["Prompt"] == "a cat<hypernet:tinyhn:1>"
    after = run_txt2img(ctx, t2i("a cat"), new_job())
    assert np.array_equal(pixels(plain.images[0]), pixels(after.images[0]))
    missing = run_txt2img(ctx, t2i("a cat <hypernet:nohn:1>"), new_job())
    assert "Hypernetwork not found: nohn" in missing.notices


def test_hires_pass_uses_the_hires_prompt_networks(ctx: AppContext) -> None:
    hires = dict(enable_hr=True, hr_scale=1.5, hr_upscaler="Latent", hr_second_pass_steps=2, denoising_strength=0.5)
    base = run_txt2img(ctx, t2i("a cat", **hires), new_job())
    same_prompt = run_txt2img(ctx, t2i("a cat", hr_prompt="a cat", **hires), new_job())
    lora_in_hires = run_txt2img(ctx, t2i("a cat", hr_prompt="a cat <lora:tinylora:1>", **hires), new_job())
    assert np.array_equal(pixels(base.images[0]), pixels(same_prompt.images[0]))
    assert not np.array_equal(pixels(base.images[0]), pixels(lora_in_hires.images[0]))
    assert "Lora hashes" in parse_infotext(lora_in_hires.infotexts[0])
