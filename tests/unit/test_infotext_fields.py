"""Params → A1111 infotext fields in A1111's order, and back."""

from PIL import Image

from modules.processing.infotext_fields import VERSION, ImageContext, generation_fields, params_from_fields
from modules.processing.params import Img2ImgParams, Txt2ImgParams


def _ctx(**kw) -> ImageContext:
    base = dict(seed=1234, subseed=99, sampler="DPM++ 2M", schedule_label="Karras", model_name="v1-5-pruned-emaonly",
                model_hash="6ce0161689")
    base.update(kw)
    return ImageContext(**base)


def test_core_order_and_omitted_defaults() -> None:
    p = Txt2ImgParams(prompt="a cat", steps=20, width=512, height=768)
    fields = generation_fields(p, _ctx(), width=512, height=768)
    assert list(fields) == ["Steps", "Sampler", "Schedule type", "CFG scale", "Seed", "Size", "Model hash", "Model",
                            "Version"]
    assert fields["Size"] == "512x768" and fields["Seed"] == 1234 and fields["Version"] == VERSION


def test_optional_fields_appear_when_they_change_the_image() -> None:
    p = Txt2ImgParams(subseed_strength=0.3, seed_resize_from_w=256, seed_resize_from_h=384, enable_hr=True,
                      hr_upscaler="Latent", hr_second_pass_steps=10, denoising_strength=0.7)
    ctx = _ctx(clip_skip=2, eta_noise_seed_delta=31337, sampler_uses_ensd=True, randn_source="CPU",
               extra={"Lora hashes": "add_detail: 7c6bad76eb54", "Schedule type": "Exponential"})
    fields = generation_fields(p, ctx, width=512, height=512, hires_info={"Hires upscale": 2.0})
    assert fields["Variation seed"] == 99 and fields["Variation seed strength"] == 0.3
    assert fields["Seed resize from"] == "256x384" and fields["Clip skip"] == 2 and fields["ENSD"] == 31337
    assert fields["RNG"] == "CPU" and fields["Hires upscale"] == 2.0 and fields["Hires steps"] == 10
    keys = list(fields)
    # an extra key already in the core list keeps its place but takes the extra value
    assert keys.index("Schedule type") == 2 and fields["Schedule type"] == "Exponential"
    assert keys.index("Denoising strength") < keys.index("Clip skip") < keys.index("Hires upscale")
    assert keys[-2:] == ["Lora hashes", "Version"]


def test_ensd_only_when_the_sampler_uses_it() -> None:
    fields = generation_fields(Txt2ImgParams(), _ctx(eta_noise_seed_delta=31337), width=512, height=512)
    assert "ENSD" not in fields


def test_inpaint_fields() -> None:
    p = Img2ImgParams(mask=Image.new("L", (8, 8)), mask_blur=4, inpainting_fill=2, inpaint_full_res=True,
                      inpaint_full_res_padding=32, inpainting_mask_invert=1)
    fields = generation_fields(p, _ctx(), width=512, height=512)
    assert fields["Mask blur"] == 4 and fields["Mask mode"] == "Inpaint not masked"
    assert fields["Masked content"] == "latent noise" and fields["Inpaint area"] == "Only masked"
    assert fields["Masked area padding"] == 32 and fields["Denoising strength"] == 0.75


def test_fields_back_to_params_and_settings() -> None:
    parsed = {"Prompt": "a cat", "Negative prompt": "blurry", "Steps": "20", "Sampler": "DPM++ 2M",
              "Schedule type": "Karras", "CFG scale": "7", "Seed": "1957970079", "Size-1": "512", "Size-2": "768",
              "Clip skip": "2", "ENSD": "31337", "Hires upscale": "2", "Hires sampler": "Use same sampler",
              "Denoising strength": "0.5", "Model hash": "a2e2de4c7a", "Unknown key": "kept elsewhere"}
    params, settings = params_from_fields(parsed)
    assert params == {"prompt": "a cat", "negative_prompt": "blurry", "steps": 20, "sampler_name": "DPM++ 2M",
                      "scheduler": "Karras", "cfg_scale": 7.0, "seed": 1957970079, "width": 512, "height": 768,
                      "hr_scale": 2.0, "denoising_strength": 0.5, "enable_hr": True}
    # A1111's paste rule for the hires checkbox also needs "Denoising strength" (the parser adds "Hires resize-1")
    no_hires, _ = params_from_fields({"Steps": "20", "Hires resize-1": "0", "Hires resize-2": "0"})
    assert "enable_hr" not in no_hires
    assert settings == {"CLIP_stop_at_last_layers": "2", "eta_noise_seed_delta": "31337",
                        "sd_model_checkpoint": "a2e2de4c7a"}
    Txt2ImgParams(**params)  # every name is a real params field
