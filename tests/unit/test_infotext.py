"""Infotext text format: A1111's exact layout, quoting, field order, and the tolerant parser with its defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from modules.images.infotext import (
    assemble_fields,
    build_infotext,
    fields_from_parsed,
    parse_infotext,
    quote,
    split_infotext,
    unquote,
)
from modules.images.infotext_compat import parse_version, prompt_uses_emphasis, split_sampler_scheduler
from modules.prompts.styles import StyleDatabase

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "infotexts"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8").rstrip("\n")


# ---------------------------------------------------------------------------------------------- building

def test_quote_follows_a1111_rules() -> None:
    assert quote("Euler a") == "Euler a"
    assert quote("add_detail: 7c6bad76eb54") == '"add_detail: 7c6bad76eb54"'
    assert quote("a, b") == '"a, b"'
    assert quote("line1\nline2") == '"line1\\nline2"'
    assert quote('say "hi", ok') == '"say \\"hi\\", ok"'
    assert quote("新世界, 模型") == '"新世界, 模型"'  # ensure_ascii off: characters kept as they are
    assert quote('"wrapped"') == '"\\"wrapped\\""'  # would otherwise be read back without its quotes
    assert quote(7.0) == "7" and quote(0.75) == "0.75" and quote(True) == "True"


def test_unquote_is_tolerant() -> None:
    assert unquote('"a: b, c"') == "a: b, c"
    assert unquote('"not json') == '"not json'
    assert unquote('"bad \\q escape"') == '"bad \\q escape"'
    assert unquote("plain") == "plain"


def test_build_matches_the_reference_layout_exactly() -> None:
    core = {
        "Steps": 20, "Sampler": "DPM++ 2M", "Schedule type": "Karras", "CFG scale": 7.0, "Seed": 1234567890,
        "Size": (512, 768), "Model hash": "6ce0161689", "Model": "v1-5-pruned-emaonly", "VAE hash": "735e4c3a44",
        "VAE": "vae-ft-mse-840000-ema-pruned.safetensors", "Clip skip": 2, "Face restoration": None, "RNG": None,
    }
    extra = {
        "Denoising strength": 0.7, "Hires upscale": 2.0, "Hires steps": 10, "Hires upscaler": "Latent",
        "Lora hashes": "add_detail: 7c6bad76eb54", "TI hashes": "EasyNegative: c74b4e810b03",
    }
    fields = assemble_fields(core, extra, version="v1.10.1")
    text = build_infotext("a photo of a cat, (masterpiece:1.2)\nwearing a hat", "blurry,\nlowres", fields)
    assert text == fixture("a1111_1.10.1_full.txt")


def test_build_omits_empty_negative_and_none_values_and_writes_flags() -> None:
    text = build_infotext("cat", "", {"Steps": 20, "Seed": None, "Tiling": "Tiling", "CFG scale": 7.5})
    assert text == "cat\nSteps: 20, Tiling, CFG scale: 7.5"
    assert build_infotext("", None, {"Steps": 5}) == "Steps: 5"  # stripped like A1111


def test_assemble_fields_orders_like_create_infotext() -> None:
    core = {"Seed": 1, "Steps": 20, "Size": "512x512", "Sampler": "Euler", "Schedule type": "Automatic"}
    extra = {"Hires upscale": 2, "Schedule type": "Karras", "Emphasis": "No norm"}
    fields = assemble_fields(core, extra, version="v1.10.1", user="bob")
    assert list(fields) == ["Steps", "Sampler", "Schedule type", "Seed", "Size", "Hires upscale", "Emphasis",
                            "Version", "User"]
    assert fields["Schedule type"] == "Karras"  # extra value, core position


# ---------------------------------------------------------------------------------------------- parsing

def test_real_a1111_1_8_infotext_from_the_notes() -> None:
    res = parse_infotext(fixture("a1111_1.8.0-RC_sdxl.txt"))
    assert res["Prompt"] == "1 girl"
    assert res["Negative prompt"] == ""
    assert res["Steps"] == "20"
    assert res["Sampler"] == "DPM++ 2M" and res["Schedule type"] == "Karras"
    assert res["CFG scale"] == "7" and res["Seed"] == "1957970079"
    assert (res["Size-1"], res["Size-2"]) == ("512", "512")
    assert res["Model hash"] == "a2e2de4c7a" and res["Model"] == "0307_Rocky_sdxl_PrivateImaging_model"
    assert res["Version"] == "1.8.0-RC"
    # defaults A1111 fills for keys the text does not carry
    assert res["Clip skip"] == "1" and res["RNG"] == "GPU"
    assert res["Hires resize-1"] == 0 and res["Hires resize-2"] == 0
    assert res["Hires sampler"] == "Use same sampler" and res["Masked area padding"] == 32
    assert res["FP8 weight"] == "Disable" and res["Refiner switch by sampling steps"] is False
    assert "Downcast alphas_cumprod" not in res  # 1.8.0-RC is newer than v1.7.0-225
    assert "Emphasis" not in res


def test_real_hires_infotext_with_unicode_model_name() -> None:
    res = parse_infotext(fixture("a1111_1.8.0-RC_hires_unicode_model.txt"))
    assert res["Model"] == "LEOSAM_HelloWorld_新世界_SDXL真实感大模型_v3.2_AutoDPO"
    assert res["Denoising strength"] == "0.7" and res["Hires upscale"] == "2" and res["Hires upscaler"] == "Latent"
    assert res["Seed"] == "0"


def test_2022_infotext_with_hypernet_and_placeholders() -> None:
    res = parse_infotext(fixture("a1111_2022_hypernet_xy.txt"))
    assert res["Prompt"] == ("masterpiece, best quality, masterpiece, 1girl, solo, outdoors, flowers, dancing"
                             "<hypernet:[SEE ROW]:1.0>")
    assert res["Negative prompt"].startswith("nsfw, lowres,") and res["Negative prompt"].endswith("artist name")
    assert res["Seed"] == "[SEE COLUMN]" and res["Model hash"] == "925997e9" and res["Sampler"] == "Euler"
    assert res["Schedule type"] == "Automatic"


def test_params_only_infotext_has_an_empty_prompt() -> None:
    res = parse_infotext(fixture("a1111_2022_params_only.txt"))
    assert res["Prompt"] == "" and res["Sampler"] == "Euler a"
    assert (res["Size-1"], res["Size-2"]) == ("1024", "512")


def test_full_infotext_multiline_prompts_and_quoted_values() -> None:
    res = parse_infotext(fixture("a1111_1.10.1_full.txt"))
    assert res["Prompt"] == "a photo of a cat, (masterpiece:1.2)\nwearing a hat"
    assert res["Negative prompt"] == "blurry,\nlowres"
    assert res["Lora hashes"] == "add_detail: 7c6bad76eb54"
    assert res["TI hashes"] == "EasyNegative: c74b4e810b03"
    assert res["Clip skip"] == "2" and res["Emphasis"] == "Original"  # brackets with a weight are used


def test_forge_infotext_keeps_unknown_keys() -> None:
    res = parse_infotext(fixture("forge_flux_shaped.txt"))
    assert res["Distilled CFG Scale"] == "3.5"
    assert res["Diffusion in Low Bits"] == "Automatic (fp16 LoRA)"
    assert res["Module 3"] == "t5xxl_fp16"
    assert res["Schedule type"] == "Simple"
    assert "Downcast alphas_cumprod" not in res  # Forge's version is not an A1111 version


def test_old_first_pass_size_becomes_hires_resize() -> None:
    res = parse_infotext(fixture("a1111_2022_old_hires_first_pass.txt"))
    # 0x0 first pass = automatic: scaled to ~512x512 pixels, rounded up to 64
    assert (res["Size-1"], res["Size-2"]) == (512, 512)
    assert (res["Hires resize-1"], res["Hires resize-2"]) == (1024, 1024)
    assert res["CFG scale"] == "7.5"


def test_last_line_with_fewer_than_three_pairs_is_prompt() -> None:
    res = parse_infotext("a cat\nstyle: watercolor, mood: calm")
    assert res["Prompt"] == "a cat\nstyle: watercolor, mood: calm"
    assert "style" not in res


def test_windows_line_endings_and_outer_whitespace() -> None:
    res = parse_infotext("  cat  \r\nNegative prompt: dog\r\nSteps: 4, Seed: 2, Size: 64x32\r\n")
    assert (res["Prompt"], res["Negative prompt"], res["Seed"], res["Size-2"]) == ("cat", "dog", "2", "32")


@pytest.mark.parametrize(("sampler", "expected"), [
    ("DPM++ 2M Karras", ("DPM++ 2M", "Karras")),
    ("DPM++ 2M SDE Karras", ("DPM++ 2M SDE", "Karras")),
    ("DPM++ 2M SDE Exponential", ("DPM++ 2M SDE", "Exponential")),
    ("DPM++ 2M SDE Heun Karras", ("DPM++ 2M SDE Heun", "Karras")),
    ("DPM2 a Karras", ("DPM2 a", "Karras")),
    ("Euler SGM Uniform", ("Euler", "SGM Uniform")),
    ("Euler a", ("Euler a", None)),
    ("DPM++ 2M SDE Heun", ("DPM++ 2M SDE Heun", None)),
    ("Karras", ("Karras", None)),
])
def test_old_combined_sampler_names_are_split(sampler: str, expected: tuple[str, str | None]) -> None:
    assert split_sampler_scheduler(sampler) == expected


def test_explicit_schedule_type_wins_over_name_suffix() -> None:
    res = parse_infotext("x\nSteps: 1, Sampler: DPM++ 2M Karras, Schedule type: Exponential, Seed: 3")
    assert res["Sampler"] == "DPM++ 2M" and res["Schedule type"] == "Exponential"


def test_version_backcompat_flags() -> None:
    old = parse_infotext("a [b:c:5]\nSteps: 20, Sampler: DDIM, Seed: 1, Version: v1.5.2")
    assert old["Old prompt editing timelines"] is True and old["Pad conds v0"] is True
    assert old["Downcast alphas_cumprod"] is True
    before = parse_infotext("a\nSteps: 20, Sampler: Euler, Seed: 1, Refiner: sdxl_refiner [7440042bbd], Version: 1.7.0")
    assert before["Refiner switch by sampling steps"] is True
    after_tsnr = parse_infotext("a\nSteps: 20, Sampler: Euler, Seed: 1, Version: v1.7.0-225-g6f58a4c1")
    assert "Downcast alphas_cumprod" not in after_tsnr
    no_compat = parse_infotext("a\nSteps: 20, Sampler: DDIM, Seed: 1, Version: v1.5.2", auto_backcompat=False)
    assert "Pad conds v0" not in no_compat


def test_parse_version_ordering() -> None:
    assert parse_version("1.8.0-RC") < parse_version("1.8.0") < parse_version("1.8.0-139") < parse_version("v1.10.1")
    assert parse_version("v1.7.0-224") < parse_version("v1.7.0-225")
    assert parse_version("f2.0.1v1.10.1-previous-313-g8a042934") is None
    assert parse_version(None) is None


@pytest.mark.parametrize(("prompt", "uses"), [
    ("(cat)", True), ("[cat]", True), ("(cat:1.3)", True), ("(cat:1.0)", False), ("\\(cat\\)", False),
    ("plain cat", False), ("a BREAK b", False), ("((cat", True),
])
def test_emphasis_detection(prompt: str, uses: bool) -> None:
    assert prompt_uses_emphasis(prompt) is uses


def test_skip_fields_and_normalize_off() -> None:
    text = "cat\nSteps: 20, Sampler: DPM++ 2M Karras, Seed: 5, Size: 64x64"
    assert "Seed" not in parse_infotext(text, skip_fields=["Seed"])
    raw = parse_infotext(text, normalize=False)
    assert raw == {"Steps": "20", "Sampler": "DPM++ 2M Karras", "Seed": "5", "Size-1": "64", "Size-2": "64",
                   "Prompt": "cat", "Negative prompt": ""}


def test_parse_empty_and_bytes() -> None:
    assert parse_infotext("")["Prompt"] == ""
    assert parse_infotext(None)["Clip skip"] == "1"
    assert parse_infotext(b"cat\nSteps: 1, Seed: 2, CFG scale: 3")["Seed"] == "2"


def test_styles_are_extracted_on_parse(tmp_path: Path) -> None:
    styles_csv = tmp_path / "styles.csv"
    styles_csv.write_text("name,prompt,negative_prompt\nPretty,\"masterpiece, {prompt}\",ugly\n", encoding="utf-8-sig")
    db = StyleDatabase([styles_csv])
    text = build_infotext("masterpiece, a cat", "ugly", {"Steps": 20, "Seed": 1, "CFG scale": 7})
    res = parse_infotext(text, style_extractor=db.extract_styles_from_prompt)
    assert res["Styles array"] == ["Pretty"] and res["Prompt"] == "a cat" and res["Negative prompt"] == ""
    ignored = parse_infotext(text, style_extractor=db.extract_styles_from_prompt, infotext_styles="Ignore")
    assert "Styles array" not in ignored and ignored["Prompt"] == "masterpiece, a cat"
    discarded = parse_infotext(text, style_extractor=db.extract_styles_from_prompt, infotext_styles="Discard")
    assert "Styles array" not in discarded and discarded["Prompt"] == "a cat"


# ---------------------------------------------------------------------------------------------- round trips

ROUND_TRIP_CASES = [
    ("a cat", "", {"Steps": 20, "Sampler": "Euler a", "CFG scale": 7, "Seed": 1, "Size": "512x512"}),
    ("multi\nline, prompt: yes", "neg\nlines", {
        "Steps": 30, "Sampler": "DPM++ 2M", "Schedule type": "Karras", "CFG scale": 4.5, "Seed": 4294967295,
        "Size": "1024x1536", "Model hash": "31e35c80fc", "Model": "sd_xl_base_1.0", "Denoising strength": 0.35,
        "Hires resize": "2048x3072", "Lora hashes": "a: 0123456789ab, b: ba9876543210",
        "Hires prompt": "line1\nline2, \"quoted\"", "Pad conds": "Pad conds", "Version": "v1.10.1",
    }),
    ("日本語のプロンプト", "低品質", {"Steps": 8, "Seed": 7, "Model": "新世界: v3", "Extra": '"wrapped"', "User": "ü"}),
]


@pytest.mark.parametrize(("prompt", "negative", "fields"), ROUND_TRIP_CASES)
def test_build_parse_build_is_identity(prompt: str, negative: str, fields: dict) -> None:
    text = build_infotext(prompt, negative, fields)
    parsed = parse_infotext(text, normalize=False)
    assert parsed["Prompt"] == prompt and parsed["Negative prompt"] == negative
    assert build_infotext(parsed["Prompt"], parsed["Negative prompt"], fields_from_parsed(parsed)) == text
    # with normalisation the written fields are unchanged; only missing keys are added
    normalized = parse_infotext(text)
    for key, value in parsed.items():
        if key != "Prompt":
            assert normalized[key] == value


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("*.txt")))
def test_real_infotexts_rebuild_to_the_same_text(name: str) -> None:
    text = fixture(name)
    prompt, negative, fields = split_infotext(text)
    assert build_infotext(prompt, negative, fields) == text


def test_other_apps_extras_do_not_break_parsing() -> None:
    text = ('a cat\nSteps: 25, Sampler: Euler a, CFG scale: 6, Seed: 9, Size: 832x1216, App: SD.Next, '
            'Civitai resources: [{"type":"checkpoint","modelVersionId":128078}], Version: v1.10.1')
    res = parse_infotext(text)
    assert res["App"] == "SD.Next" and res["Seed"] == "9" and res["Version"] == "v1.10.1"
    assert res["Civitai resources"].startswith("[{")


def test_mutated_infotexts_never_raise() -> None:
    import random

    rng = random.Random(1234)
    base = fixture("a1111_1.10.1_full.txt")
    alphabet = ':,"\\\n x1-[]()'
    for _ in range(300):
        chars = list(base)
        for _ in range(rng.randint(1, 12)):
            chars.insert(rng.randrange(len(chars) + 1), rng.choice(alphabet))
        result = parse_infotext("".join(chars))
        assert isinstance(result["Prompt"], str)
