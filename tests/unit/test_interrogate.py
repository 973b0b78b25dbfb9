"""Interrogation maths and model layouts: DeepBooru in the original `n_Conv_*` layout, A1111's tag formatting, and the
CLIP interrogator's preprocessing/tokenising/ranking against transformers' own processors and open_clip's tokenizer
on the same tiny random weights."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import torch
from PIL import Image

from modules.interrogate.clip_interrogator import (
    Category,
    ClipOptions,
    blip_caption,
    blip_pixels,
    clip_pixels,
    interrogate_with_clip,
    load_categories,
    tokenize,
)
from modules.interrogate.deepbooru import TagOptions, format_tags, tag_image
from modules.interrogate.deepbooru_model import DeepDanbooruModel, conv_specs
from modules.models.safe_unpickle import load_torch_file
from modules.processing.image_ops import resize_image
from modules.prompts.tokenizer import ClipTokenizer
from tests.fixtures.tiny_interrogate import BLIP_WORD, make_blip, make_clip, make_deepbooru

CPU = torch.device("cpu")


def test_deepbooru_full_size_layout_matches_the_released_file() -> None:
    """179 convs; facts of `model-resnet_custom_v3.pt`: stem 7×7 3→64, the odd stage-3 projection n_Conv_100
    1024→1024 stride 2, the last projection 2048→4096, a bias-free 4096→9176 classifier, 161 M parameters."""
    with torch.device("meta"):
        model = DeepDanbooruModel()
    state = model.state_dict()
    assert len([k for k in state if k.endswith(".weight")]) == 179 and "n_Conv_178.bias" not in state
    assert tuple(state["n_Conv_0.weight"].shape) == (64, 3, 7, 7)
    assert tuple(state["n_Conv_100.weight"].shape) == (1024, 1024, 1, 1) and model.conv(100).stride == (2, 2)
    assert tuple(state["n_Conv_168.weight"].shape) == (4096, 2048, 1, 1)
    assert tuple(state["n_Conv_178.weight"].shape) == (9176, 4096, 1, 1)
    assert conv_specs()[98] == (256, 256, 3, 2, True) and conv_specs()[13] == (128, 128, 3, 2, True)
    assert sum(p.numel() for p in model.parameters()) == 160_956_544


def test_deepbooru_file_loads_through_the_safe_loader(tmp_path: Path) -> None:
    path = make_deepbooru(tmp_path / "model-resnet_custom_v3.pt")
    model = DeepDanbooruModel.from_state_dict(load_torch_file(path, safe=True))
    assert model.tags[0] == "1girl" and model.conv(0).out_channels == 2
    fill = functools.partial(resize_image, 2)
    assert tag_image(model, Image.new("RGB", (30, 70), (1, 2, 3)), TagOptions(), CPU, fill) == \
        "1girl, hat \\(object\\), smile"
    with pytest.raises(ValueError, match="DeepDanbooru"):
        DeepDanbooruModel.from_state_dict({"x": torch.zeros(1)})


def test_tag_formatting_follows_a1111() -> None:
    tags = ["b_tag", "a_(x)", "rating:safe", "c", "low"]
    scores = [0.9, 0.7, 0.99, 0.6, 0.2]
    assert format_tags(tags, scores, TagOptions()) == "a \\(x\\), b tag, c"
    assert format_tags(tags, scores, TagOptions(sort_alpha=False, use_spaces=False, escape=False)) == \
        "b_tag, a_(x), c"
    assert format_tags(tags, scores, TagOptions(filter_tags="b tag, c", return_ranks=True)) == "(a \\(x\\):0.700)"
    assert format_tags(tags, scores, TagOptions(threshold=0.8)) == "b tag"


def test_categories_topn_skip_and_blank_lines(tmp_path: Path) -> None:
    (tmp_path / "flavors.top3.txt").write_text("a\n\n b \nc\nd\n", encoding="utf-8")
    (tmp_path / "mediums.txt").write_text("x\ny\n", encoding="utf-8")
    assert load_categories(tmp_path) == [Category("flavors.top3", 3, ["a", "b", "c", "d"]),
                                         Category("mediums", 1, ["x", "y"])]
    assert [c.name for c in load_categories(tmp_path, ["mediums"])] == ["flavors.top3"]


def test_clip_ranking_matches_transformers_and_open_clip(tmp_path: Path) -> None:
    """Same tiny CLIP: our pixels = CLIPImageProcessor's, our ids = open_clip.tokenize's, our appended entries =
    the top-N of softmax(100·cos) computed from the reference inputs."""
    import open_clip
    from transformers import CLIPImageProcessor, CLIPModel

    clip = CLIPModel.from_pretrained(make_clip(tmp_path / "clip")).eval()
    image = Image.new("RGB", (50, 37), (10, 120, 200))
    image.putpixel((3, 4), (255, 255, 0))
    processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    reference_pixels = processor(images=image, return_tensors="pt")["pixel_values"]
    assert torch.allclose(clip_pixels(image, 32), reference_pixels, atol=2e-2)

    items = ["a red apple", "a photo of the sea", "blue sky", "oil painting, (framed)", "x" * 400]
    tokenizer = ClipTokenizer("clip")
    assert torch.equal(tokenize(tokenizer, items), open_clip.tokenize(items))

    with torch.no_grad():
        image_features = clip.get_image_features(pixel_values=reference_pixels)
        text_features = clip.get_text_features(input_ids=open_clip.tokenize(items))
    image_features = getattr(image_features, "pooler_output", image_features)
    text_features = getattr(text_features, "pooler_output", text_features)
    image_features = image_features / image_features.norm(dim=-1, keepdim=True)
    text_features = text_features / text_features.norm(dim=-1, keepdim=True)
    probs = (100.0 * image_features @ text_features.T).softmax(dim=-1)[0]
    top = probs.topk(2)
    expected = "cap" + "".join(f", ({items[int(i)]}:{float(p):.3f})" for p, i in zip(top.values, top.indices,
                                                                                       strict=True))
    options = ClipOptions(return_ranks=True)
    # our own pixels differ from the processor's by rounding only; the ranks must agree to the printed digits
    got = interrogate_with_clip(clip, tokenizer, image, "cap", [Category("c.top2", 2, items)], options, CPU,
                                torch.float32)
    assert got == expected
    limited = interrogate_with_clip(clip, tokenizer, image, "cap", [Category("c", 1, items)],
                                    ClipOptions(dict_limit=1), CPU, torch.float32)
    assert limited == f"cap, {items[0]}"


def test_blip_caption_matches_transformers_processor(tmp_path: Path) -> None:
    from transformers import AutoTokenizer, BlipForConditionalGeneration, BlipImageProcessor

    folder = make_blip(tmp_path / "blip")
    model = BlipForConditionalGeneration.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    image = Image.new("RGB", (40, 30), (200, 30, 60))
    processor = BlipImageProcessor(size={"height": 32, "width": 32})
    reference = processor(images=image, return_tensors="pt")["pixel_values"]
    assert torch.allclose(blip_pixels(image, 32), reference, atol=2e-2)
    with torch.no_grad():
        ids = model.generate(pixel_values=reference, num_beams=2, min_length=4, max_length=6)
    expected = tokenizer.decode(ids[0], skip_special_tokens=True)
    got = blip_caption(model, tokenizer, image, ClipOptions(num_beams=2, min_length=4, max_length=6), CPU,
                       torch.float32)
    assert got == expected and got.split() == [BLIP_WORD] * 5
