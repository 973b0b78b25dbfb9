"""Hires. fix target sizes and latent upscaling follow A1111's rules."""

import pytest
import torch
from PIL import Image

from modules.processing.hires import LATENT_UPSCALE_MODES, hires_target, upscale_latent
from modules.processing.preview import cheap_preview


def test_scale_by() -> None:
    t = hires_target(512, 768, 1.5, 0, 0)
    assert (t.upscale_width, t.upscale_height, t.final_size) == (768, 1152, (768, 1152))
    assert t.infotext == {"Hires upscale": 1.5}


def test_one_resize_field_keeps_aspect() -> None:
    assert hires_target(512, 768, 2, 1024, 0).final_size == (1024, 1536)
    assert hires_target(512, 768, 2, 0, 1536).final_size == (1024, 1536)


def test_both_resize_fields_cover_then_crop() -> None:
    t = hires_target(512, 512, 2, 1024, 768)
    assert (t.upscale_width, t.upscale_height) == (1024, 1024)
    assert (t.truncate_x, t.truncate_y) == (0, 32) and t.final_size == (1024, 768)
    assert t.infotext == {"Hires resize": "1024x768"}


@pytest.mark.parametrize("mode", list(LATENT_UPSCALE_MODES))
def test_every_latent_mode_reaches_the_final_size(mode: str) -> None:
    t = hires_target(64, 64, 1, 160, 96)  # cover 160x160, crop to 160x96
    out = upscale_latent(torch.randn(2, 4, 8, 8), mode, t)
    assert out.shape == (2, 4, 12, 20)


def test_crop_is_centred() -> None:
    t = hires_target(64, 64, 1, 64, 40)  # no upscale, crop 3 latent rows: 1 top, 2 bottom
    latent = torch.arange(64.0).view(1, 1, 8, 8).expand(1, 4, 8, 8)
    out = upscale_latent(latent, "Latent (nearest)", t)
    assert out.shape[-2:] == (5, 8) and out[0, 0, 0, 0] == 8.0


def test_unknown_mode_names_choices() -> None:
    with pytest.raises(ValueError, match="Latent \\(bicubic\\)"):
        upscale_latent(torch.zeros(1, 4, 8, 8), "Latent (foo)", hires_target(64, 64, 2, 0, 0))


def test_cheap_preview_shape_and_colour_direction() -> None:
    latent = torch.zeros(1, 4, 6, 10)
    latent[0, 3] = -2.0  # channel 3 carries negative weights: strongly negative values brighten the image
    img = cheap_preview(latent)
    assert img.size == (10, 6) and min(img.getpixel((0, 0))) > 127
    # 255 * 0.5 = 127.5 truncates to 127 (A1111 `single_sample_to_image`)
    assert cheap_preview(torch.zeros(1, 4, 2, 2), sdxl=True).getpixel((0, 0)) == (127, 127, 127)


def test_full_live_preview_falls_back_under_medvram_unless_allowed() -> None:
    """A1111 1.10 `live_preview_allow_lowvram_full`: with --medvram/--lowvram a "Full" preview would shuttle the VAE
    to the device at every preview, so "Approx cheap" is used unless the setting allows Full."""
    from modules.processing.preview import live_preview

    calls: list[int] = []

    def decode(latents: torch.Tensor) -> list[Image.Image]:
        calls.append(1)
        return [Image.new("RGB", (8, 8), "red")]

    latents = torch.zeros(1, 4, 4, 4)
    settings = {"show_progress_type": "Full", "show_progress_grid": True}
    live_preview(latents, settings, decode=decode)
    assert calls == [1]
    live_preview(latents, settings, decode=decode, low_memory=True)
    assert calls == [1]
    live_preview(latents, {**settings, "live_preview_allow_lowvram_full": True}, decode=decode, low_memory=True)
    assert calls == [1, 1]
