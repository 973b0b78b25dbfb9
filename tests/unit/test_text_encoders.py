"""Text-encoder wrappers on tiny random encoders: parity with transformers / open_clip called directly.

Tiny encoders match the fixture spec (width 128, 2 heads, 2 layers, 49408 tokens, 77 positions) and are put in the
original checkpoint key layouts. Layer rules: A1111 sd_hijack_clip / sd_hijack_open_clip and SGM's embedders
(`a1111-features.md` §5); emphasis expectations are computed by hand from the reference output.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
import torch
from open_clip.transformer import TextTransformer
from transformers import CLIPTextConfig, CLIPTextModel

from modules.models.nn.conditioner import SDXLConditioner, embed_numbers, infer_size_embed_dim, timestep_embedding
from modules.models.nn.text_encoders import (
    ClipTextEncoder,
    OpenClipTextEncoder,
    TextEncoderLoadError,
    apply_emphasis,
    encode_prompts,
    load_text_encoders,
)
from modules.prompts import TriggerIndex, get_tokenizer, pad_after_first_eos, tokenize_prompt

TOL = 1e-5
TK = get_tokenizer("clip")


def tiny_clip(seed: int = 0) -> CLIPTextModel:
    torch.manual_seed(seed)
    config = CLIPTextConfig(
        hidden_size=128, num_hidden_layers=2, num_attention_heads=2, intermediate_size=256,
        vocab_size=49408, max_position_embeddings=77,
    )
    return CLIPTextModel(config).eval()


def tiny_open_clip(seed: int = 1) -> TextTransformer:
    torch.manual_seed(seed)
    return TextTransformer(context_length=77, vocab_size=49408, width=128, heads=2, layers=2, output_dim=96).eval()


def clip_weights(model: CLIPTextModel, prefix: str) -> dict[str, torch.Tensor]:
    return {prefix + "text_model." + k: v.clone() for k, v in model.state_dict().items()}


def open_clip_weights(model: TextTransformer, prefix: str) -> dict[str, torch.Tensor]:
    weights = {prefix + k: v.clone() for k, v in model.state_dict().items()}
    weights[prefix + "logit_scale"] = torch.tensor(4.6)
    return weights


@pytest.fixture(scope="module")
def refs():
    return {"clip": tiny_clip(), "open_clip": tiny_open_clip()}


@pytest.fixture(scope="module")
def sd1(refs):
    return load_text_encoders(clip_weights(refs["clip"], "cond_stage_model.transformer.")).clip_l


@pytest.fixture(scope="module")
def sd2(refs):
    return load_text_encoders(open_clip_weights(refs["open_clip"], "cond_stage_model.model.")).open_clip


@pytest.fixture(scope="module")
def sdxl(refs):
    weights = clip_weights(refs["clip"], "conditioner.embedders.0.transformer.")
    weights.update(open_clip_weights(refs["open_clip"], "conditioner.embedders.1.model."))
    return load_text_encoders(weights)


def chunk_ids(prompt: str, pad: int = 49407) -> torch.Tensor:
    chunks, _ = tokenize_prompt(prompt, TK)
    return torch.tensor([pad_after_first_eos(c.tokens, 49407, pad) for c in chunks])


def bigg_reference(model: TextTransformer, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        penultimate = model.forward_intermediates(ids, indices=[0], output_fmt="NLC")["text_intermediates"][0]
        return penultimate, model(ids)


def close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and (a - b).abs().max().item() <= TOL


def test_layouts_are_detected_and_sized_from_shapes(refs, sd1, sd2, sdxl):
    assert sd1.mode == "sd1" and sd1.num_layers == 2
    assert sd1.model.config.num_attention_heads == 2 and sd1.model.config.intermediate_size == 256
    assert sd2.mode == "sd2" and sd2.num_layers == 2 and sd2.model.heads == 2
    assert sdxl.kind == "sdxl" and sdxl.clip_l.mode == "sdxl" and sdxl.open_clip.mode == "sdxl"
    refiner = load_text_encoders(open_clip_weights(refs["open_clip"], "conditioner.embedders.0.model."))
    assert refiner.kind == "sdxl-refiner" and refiner.clip_l is None


def test_sd1_last_layer_matches_transformers(refs, sd1):
    ids = chunk_ids("a photo of a cat")
    with torch.no_grad():
        expected = refs["clip"](input_ids=ids).last_hidden_state
    assert close(sd1.encode_tokens(ids).z, expected)
    assert close(encode_prompts(sd1, ["a photo of a cat"]).cond, expected)


def test_sd1_clip_skip_uses_earlier_layer_then_final_norm(refs, sd1):
    ids = chunk_ids("a photo of a cat")
    with torch.no_grad():
        out = refs["clip"](input_ids=ids, output_hidden_states=True)
        expected = refs["clip"].final_layer_norm(out.hidden_states[-2])
    skipped = sd1.encode_tokens(ids, clip_skip=2).z
    assert close(skipped, expected)
    assert (skipped - sd1.encode_tokens(ids).z).abs().max() > 1e-2
    assert close(sd1.encode_tokens(ids, clip_skip=12).z, refs["clip"].final_layer_norm(out.hidden_states[0]))
    with pytest.raises(ValueError, match="clip skip must be at least 1"):
        sd1.encode_tokens(ids, clip_skip=0)


def test_sd2_penultimate_layer_with_ln_final_and_zero_padding(refs, sd2):
    ids = chunk_ids("a photo of a cat", pad=0)
    assert ids[0, 7:].eq(0).all()  # BOS + 5 tokens + EOS, then zeros
    penultimate, _pooled = bigg_reference(refs["open_clip"], ids)
    with torch.no_grad():
        expected = refs["open_clip"].ln_final(penultimate)
    result = encode_prompts(sd2, ["a photo of a cat"], clip_skip=2)  # clip skip does not apply to SD2
    assert close(result.cond, expected) and result.pooled is None


def test_sdxl_bigg_penultimate_and_pooled(refs, sdxl):
    ids = chunk_ids("a photo of a cat", pad=0)
    penultimate, pooled = bigg_reference(refs["open_clip"], ids)
    result = sdxl.open_clip.encode_tokens(ids)
    assert close(result.z, penultimate) and close(result.pooled, pooled)


def test_sdxl_clip_l_penultimate_hidden_state_without_norm(refs, sdxl):
    ids = chunk_ids("a photo of a cat")
    with torch.no_grad():
        hidden = refs["clip"](input_ids=ids, output_hidden_states=True).hidden_states
    assert close(sdxl.clip_l.encode_tokens(ids).z, hidden[-2])
    assert close(sdxl.clip_l.encode_tokens(ids, sdxl_clip_l_skip=True).z, hidden[-1])


def test_emphasis_modes_by_hand(refs, sd1):
    ids = chunk_ids("a cat dog")
    with torch.no_grad():
        plain = refs["clip"](input_ids=ids).last_hidden_state
    weights = torch.ones(1, 77)
    weights[0, 2] = 1.5
    weighted = plain * weights[..., None]
    original = encode_prompts(sd1, ["a (cat:1.5) dog"]).cond
    assert close(original, weighted * (plain.mean() / weighted.mean()))
    assert abs(original.mean() - plain.mean()) < 1e-6
    assert close(encode_prompts(sd1, ["a (cat:1.5) dog"], emphasis="No norm").cond, weighted)
    assert close(encode_prompts(sd1, ["a (cat:1.5) dog"], emphasis="Ignore").cond, plain)
    with torch.no_grad():
        literal = refs["clip"](input_ids=chunk_ids("a \\(cat:1.5\\) dog")).last_hidden_state
    assert close(encode_prompts(sd1, ["a (cat:1.5) dog"], emphasis="None").cond, literal)
    with pytest.raises(ValueError, match="unknown emphasis mode"):
        apply_emphasis(plain, weights, "Loud")


def test_original_emphasis_of_zero_mean_outputs_stays_finite():
    """A final LayerNorm without bias (random-weight checkpoints) gives tokens of mean exactly 0: A1111's
    original_mean / new_mean is then 0 / 0. Unweighted prompts keep their values, weighted ones are not rescaled."""
    z = torch.tensor([[[1.0, -1.0], [2.0, -2.0], [0.5, -0.5]]])
    assert z.mean() == 0
    ones = torch.ones(1, 3)
    assert torch.equal(apply_emphasis(z, ones, "Original"), z)
    weights = torch.tensor([[1.0, 1.5, 1.0]])
    out = apply_emphasis(z, weights, "Original")
    assert torch.isfinite(out).all() and torch.equal(out, z * weights[..., None])
    shifted = z + 1.0  # an ordinary mean: A1111's rescale, unchanged
    out = apply_emphasis(shifted, weights, "Original")
    weighted = shifted * weights[..., None]
    assert torch.allclose(out, weighted * (shifted.mean() / weighted.mean()))


def test_original_emphasis_restores_the_mean_over_the_whole_batch(sd1):
    both = encode_prompts(sd1, ["a (cat:1.5) dog", "a cat dog"]).cond
    alone = encode_prompts(sd1, ["a cat dog"]).cond
    assert not close(both[1:], alone)  # A1111 rescales the batch tensor as a whole


def test_long_prompts_are_encoded_per_chunk_and_concatenated(refs, sd1, sdxl):
    prompt = "cat " * 80
    ids = chunk_ids(prompt)
    with torch.no_grad():
        per_chunk = refs["clip"](input_ids=ids).last_hidden_state
    result = encode_prompts(sd1, [prompt]).cond
    assert result.shape == (1, 154, 128)
    assert close(result[0, :77], per_chunk[0]) and close(result[0, 77:], per_chunk[1])
    big = encode_prompts(sdxl.open_clip, [prompt])
    _, pooled_first = bigg_reference(refs["open_clip"], chunk_ids(prompt, pad=0)[:1])
    assert big.cond.shape == (1, 154, 128) and close(big.pooled, pooled_first)


def test_batch_with_uneven_chunk_counts_pads_with_empty_chunks(refs, sd1):
    result = encode_prompts(sd1, ["cat", "cat " * 80]).cond
    assert result.shape == (2, 154, 128)
    with torch.no_grad():
        empty = refs["clip"](input_ids=chunk_ids("")).last_hidden_state
        short = refs["clip"](input_ids=chunk_ids("cat")).last_hidden_state
    assert close(result[0:1], torch.cat([short, empty], dim=1))


@dataclass
class Embedding:
    name: str
    vector_count: int
    vec: Any


def with_token_rows(model: torch.nn.Module, embedding: torch.nn.Embedding, rows: dict[int, torch.Tensor]):
    with torch.no_grad():
        for row, vector in rows.items():
            embedding.weight[row] = vector
    return model


def test_textual_inversion_vectors_replace_token_embeddings(sd1):
    vectors = torch.randn(2, 128, generator=torch.Generator().manual_seed(5))
    style = Embedding("style", 2, vectors)
    lookup = TriggerIndex([(TK.encode("mystyle"), style)])
    result = encode_prompts(sd1, ["a (mystyle:1.2) cat"], embedding_lookup=lookup, emphasis="Ignore")
    assert result.used_embeddings == {"style": style}
    reference = tiny_clip()
    with_token_rows(reference, reference.embeddings.token_embedding, {1000: vectors[0], 1001: vectors[1]})
    ids = torch.tensor([[49406, 320, 1000, 1001, TK.encode("cat")[0]] + [49407] * 72])
    with torch.no_grad():
        assert close(result.cond, reference(input_ids=ids).last_hidden_state)


def test_textual_inversion_for_sdxl_uses_the_right_vectors(refs, sdxl):
    vectors = {"clip_l": torch.randn(1, 128), "clip_g": torch.randn(1, 128) * 0.02}
    lookup = TriggerIndex([(TK.encode("mystyle"), Embedding("style", 1, vectors))])
    result = encode_prompts(sdxl.open_clip, ["mystyle"], embedding_lookup=lookup)
    reference = tiny_open_clip()
    with_token_rows(reference, reference.token_embedding, {1000: vectors["clip_g"][0]})
    ids = torch.tensor([[49406, 1000, 49407] + [0] * 74])
    penultimate, pooled = bigg_reference(reference, ids)
    assert close(result.cond, penultimate) and close(result.pooled, pooled)


def test_textual_inversion_errors_are_clear(sd1, sdxl):
    wrong_size = TriggerIndex([(TK.encode("mystyle"), Embedding("big", 1, torch.zeros(1, 768)))])
    with pytest.raises(ValueError, match="'big' has vectors of size 768, this text encoder uses 128"):
        encode_prompts(sd1, ["mystyle"], embedding_lookup=wrong_size)
    only_l = TriggerIndex([(TK.encode("mystyle"), Embedding("xl", 1, {"clip_l": torch.zeros(1, 128)}))])
    with pytest.raises(ValueError, match="needs 'clip_g'"):
        encode_prompts(sdxl.open_clip, ["mystyle"], embedding_lookup=only_l)


def test_bad_weights_give_clear_errors(refs):
    weights = clip_weights(refs["clip"], "")
    del weights["text_model.encoder.layers.1.mlp.fc2.weight"]
    with pytest.raises(TextEncoderLoadError, match=r"CLIP-L weights do not match.*fc2"):
        ClipTextEncoder.from_state_dict(weights)
    with pytest.raises(TextEncoderLoadError, match=r"missing weight 'token_embedding\.weight'"):
        OpenClipTextEncoder.from_state_dict({})
    with pytest.raises(TextEncoderLoadError, match="no text encoder weights found"):
        load_text_encoders({"model.diffusion_model.x": torch.zeros(1)})


def test_size_embedding_matches_diffusers_timestep_projection():
    from diffusers.models.embeddings import get_timestep_embedding

    values = torch.tensor([1024.0, 768.0])
    expected = get_timestep_embedding(values, 256, flip_sin_to_cos=True, downscale_freq_shift=0)
    assert close(timestep_embedding(values, 256), expected)
    assert close(embed_numbers(values[None], 256), expected.reshape(1, 512))
    assert timestep_embedding(values, 7)[:, -1].eq(0).all()


def test_sdxl_base_conditioning(refs, sdxl):
    conditioner = SDXLConditioner(sdxl.open_clip, sdxl.clip_l, size_embed_dim=32)
    result = conditioner(["a photo of a cat"], width=832, height=1216, crop_top=8, crop_left=16)
    l_ids, g_ids = chunk_ids("a photo of a cat"), chunk_ids("a photo of a cat", pad=0)
    penultimate, pooled = bigg_reference(refs["open_clip"], g_ids)
    with torch.no_grad():
        clip_hidden = refs["clip"](input_ids=l_ids, output_hidden_states=True).hidden_states[-2]
    assert close(result.crossattn, torch.cat([clip_hidden, penultimate], dim=2))
    sizes = [timestep_embedding(torch.tensor(v, dtype=torch.float32), 32).reshape(1, -1)
             for v in ([1216.0, 832.0], [8.0, 16.0], [1216.0, 832.0])]
    assert close(result.vector, torch.cat([pooled, *sizes], dim=1))
    assert result.vector.shape == (1, 96 + 6 * 32)


def test_sdxl_refiner_conditioning_and_aesthetic_score(refs):
    refiner = load_text_encoders(open_clip_weights(refs["open_clip"], "conditioner.embedders.0.model."))
    conditioner = SDXLConditioner(refiner.open_clip)
    positive = conditioner(["a cat"], width=1024, height=1024)
    negative = conditioner(["ugly"], width=1024, height=1024, is_negative_prompt=True)
    assert positive.crossattn.shape == (1, 77, 128) and positive.vector.shape == (1, 96 + 5 * 256)
    score = lambda s: timestep_embedding(torch.tensor([s]), 256)  # noqa: E731
    assert close(positive.vector[:, -256:], score(6.0)) and close(negative.vector[:, -256:], score(2.5))


def test_sdxl_empty_negative_prompt_is_zeroed(sdxl):
    conditioner = SDXLConditioner(sdxl.open_clip, sdxl.clip_l)
    zeroed = conditioner(["", ""], width=1024, height=1024, is_negative_prompt=True)
    assert zeroed.crossattn.eq(0).all() and zeroed.vector[:, :96].eq(0).all()
    assert zeroed.vector[:, 96:].abs().sum() > 0  # size embeddings stay
    kept = conditioner([""], width=1024, height=1024)
    assert kept.crossattn.abs().sum() > 0


def test_infer_size_embed_dim():
    assert infer_size_embed_dim(2816, 1280, refiner=False) == 256
    assert infer_size_embed_dim(2560, 1280, refiner=True) == 256
    with pytest.raises(ValueError, match="not 6 equal embeddings"):
        infer_size_embed_dim(2817, 1280, refiner=False)
