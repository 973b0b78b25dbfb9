"""Settings a user changes over HTTP act on what the app produces (A1111 behaviour of each option).

One app for the module; every test sets what it needs per request (`override_settings`) or through
`POST /sdapi/v1/options` and puts it back, so the tests do not depend on their order.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.acceptance.conftest import RunningApp, WebUIFactory, decode_png
from tests.acceptance.test_models_wiring import _write_vae as write_vae
from tests.integration.test_extra_networks_pipeline import write_embedding, write_hypernetwork, write_lora


@pytest.fixture(scope="module")
def app(webui_app: WebUIFactory) -> Iterator[RunningApp]:
    def prepare(data: Path) -> None:
        write_vae(data / "models" / "Stable-diffusion" / "sd1.safetensors", data / "models" / "VAE" / "own.safetensors",
                  1.0)
        (data / "models" / "Lora").mkdir(parents=True, exist_ok=True)
        write_lora(data / "models" / "Lora" / "tinylora.safetensors")
        (data / "embeddings").mkdir(parents=True, exist_ok=True)
        write_embedding(data / "embeddings" / "tinyemb.pt")
        (data / "models" / "hypernetworks").mkdir(parents=True, exist_ok=True)
        write_hypernetwork(data / "models" / "hypernetworks" / "tinyhn.pt")

    yield webui_app(["--api"], prepare=prepare)


def generate(app: RunningApp, **payload: Any) -> tuple[np.ndarray, str]:
    """(pixels of the first image, its infotext)."""
    data = app.txt2img(**payload)
    pixels = np.asarray(decode_png(data["images"][0]).convert("RGB"), dtype=np.int16)
    return pixels, json.loads(data["info"])["infotexts"][0]


def test_sampler_parameter_settings_change_the_image_and_the_infotext(app: RunningApp) -> None:
    base, base_info = generate(app, steps=4)
    assert "Skip Early CFG" not in base_info and "Noise Schedule" not in base_info
    early, info = generate(app, steps=4, override_settings={"skip_early_cond": 0.5})
    assert "Skip Early CFG: 0.5" in info and not np.array_equal(early, base)
    ztsnr, info = generate(app, steps=4, override_settings={"sd_noise_schedule": "Zero Terminal SNR"})
    assert "Noise Schedule: Zero Terminal SNR" in info and not np.array_equal(ztsnr, base)
    unipc, _ = generate(app, steps=4, sampler_name="UniPC")
    vary, _ = generate(app, steps=4, sampler_name="UniPC", override_settings={"uni_pc_variant": "vary_coeff"})
    assert not np.array_equal(unipc, vary)


def png_b64(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def new_files(app: RunningApp, before: set[Path], folder: str) -> list[Path]:
    root = app.data_dir / folder
    return sorted(p for p in root.rglob("*") if p.is_file() and p not in before) if root.exists() else []


def all_files(app: RunningApp) -> set[Path]:
    return {p for p in (app.data_dir / "outputs").rglob("*") if p.is_file()} if (app.data_dir / "outputs").exists() \
        else set()


def img2img(app: RunningApp, **payload: Any) -> dict[str, Any]:
    body = {"prompt": "a cat", "width": 64, "height": 64, "steps": 2, "seed": 1, "sampler_name": "Euler",
            "denoising_strength": 0.5, **payload}
    response = app.client.post("/sdapi/v1/img2img", json=body)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


def test_jpg_format_and_filename_pattern_name_the_saved_file(app: RunningApp) -> None:
    before = all_files(app)
    app.txt2img(save_images=True, seed=1234, override_settings={
        "samples_format": "jpg", "samples_filename_pattern": "[seed]-[steps]", "save_to_dirs": False})
    [saved] = new_files(app, before, "outputs/txt2img-images")
    assert saved.suffix == ".jpg" and saved.name.endswith("-1234-2.jpg")
    assert Image.open(saved).format == "JPEG"


def test_init_image_is_saved_by_its_hash_and_named_in_the_infotext(app: RunningApp) -> None:
    init = Image.new("RGB", (64, 64), (200, 40, 40))
    before = all_files(app)
    data = img2img(app, init_images=[png_b64(init)], override_settings={"save_init_img": True})
    digest = hashlib.md5(init.tobytes()).hexdigest()
    [saved] = new_files(app, before, "outputs/init-images")
    assert saved.stem == digest
    assert f"Init image hash: {digest}" in json.loads(data["info"])["infotexts"][0]


def test_color_correction_pulls_the_colours_towards_the_init_image(app: RunningApp) -> None:
    init = Image.new("RGB", (64, 64), (220, 30, 30))
    plain = img2img(app, init_images=[png_b64(init)], denoising_strength=0.9)
    before = all_files(app)
    corrected = img2img(app, init_images=[png_b64(init)], denoising_strength=0.9, save_images=True,
                        override_settings={"img2img_color_correction": True,
                                           "save_images_before_color_correction": True, "save_to_dirs": False})
    names = [p.name for p in new_files(app, before, "outputs/img2img-images")]
    assert len(names) == 2 and sum(name.endswith("-before-color-correction.png") for name in names) == 1
    red_share = [np.asarray(decode_png(d["images"][0]).convert("RGB"), dtype=np.float64).mean(axis=(0, 1))
                 for d in (plain, corrected)]
    assert red_share[1][0] - red_share[1][1] > red_share[0][0] - red_share[0][1]


def test_image_before_hires_fix_is_saved_as_a_copy(app: RunningApp) -> None:
    before = all_files(app)
    app.txt2img(save_images=True, enable_hr=True, hr_scale=1.5, hr_upscaler="Latent", denoising_strength=0.5,
                override_settings={"save_images_before_highres_fix": True, "save_to_dirs": False})
    names = sorted(p.name for p in new_files(app, before, "outputs/txt2img-images"))
    assert len(names) == 2 and sum(name.endswith("-before-highres-fix.png") for name in names) == 1


def test_infotext_options_leave_their_fields_out(app: RunningApp) -> None:
    vae = app.data_dir / "models" / "VAE" / "own.safetensors"
    vae_hash = hashlib.sha256(vae.read_bytes()).hexdigest()[:10]
    _, info = generate(app, override_settings={"sd_vae": "own.safetensors"})
    assert f"VAE hash: {vae_hash}, VAE: own.safetensors" in info
    assert "Model hash: " in info and "Model: sd1" in info and "Version: " in info
    _, info = generate(app, override_settings={
        "sd_vae": "own.safetensors", "add_model_name_to_info": False, "add_model_hash_to_info": False,
        "add_vae_name_to_info": False, "add_vae_hash_to_info": False, "add_version_to_infotext": False})
    assert not any(field in info for field in ("Model hash:", "Model:", "VAE hash:", "VAE:", "Version:"))
    assert "Steps: 2" in info


def test_network_hash_options_and_not_found_warning(app: RunningApp) -> None:
    _, info = generate(app, prompt="a tinyemb cat <lora:tinylora:1>")
    assert "Textual inversion embeddings loaded" not in app.console
    generate(app, override_settings={"textual_inversion_print_at_load": True})
    assert "Textual inversion embeddings loaded(1): tinyemb" in app.console
    assert "Lora hashes: " in info and "TI hashes: " in info
    _, info = generate(app, prompt="a tinyemb cat <lora:tinylora:1>", override_settings={
        "lora_add_hashes_to_infotext": False, "textual_inversion_add_hashes_to_infotext": False})
    assert "Lora hashes" not in info and "TI hashes" not in info
    generate(app, prompt="a cat <hypernet:tinyhn:1>")
    assert "Layer structure:" not in app.console
    generate(app, prompt="a cat <hypernet:tinyhn:1>", override_settings={"print_hypernet_extra": True})
    assert "Hypernetwork tinyhn:" in app.console and "Layer structure: [1.0, 2.0, 1.0]" in app.console
    generate(app, prompt="a cat <lora:nosuchlora:1>")
    assert "Networks not found: nosuchlora" not in app.console
    generate(app, prompt="a cat <lora:nosuchlora2:1>", override_settings={"lora_not_found_warning_console": True})
    assert "Networks not found: nosuchlora2" in app.console


def test_infotext_request_field_follows_the_pasting_settings(app: RunningApp) -> None:
    old = "a dog\nSteps: 3, Sampler: Euler, CFG scale: 5, Seed: 77, Size: 64x64, Model hash: deadbeef00, Version: v1.5.0"

    def post(**extra: Any) -> Any:
        return app.client.post("/sdapi/v1/txt2img", json={"infotext": old, **extra})

    info = json.loads(post().json()["info"])
    assert info["seed"] == 77 and info["steps"] == 3 and info["prompt"] == "a dog"
    assert "Downcast alphas_cumprod: True" in info["infotexts"][0]  # Version < 1.7.0-225 (auto_backcompat)
    # the parse reads the app's settings (A1111 `shared.opts`), not the request's override_settings
    changed = {"infotext_skip_pasting": ["Seed"], "auto_backcompat": False, "disable_weights_auto_swap": False}
    assert app.client.post("/sdapi/v1/options", json=changed).status_code == 200
    try:
        swapped = post()
        changed["disable_weights_auto_swap"] = True
        app.client.post("/sdapi/v1/options", json=changed)
        skipped = json.loads(post().json()["info"])
    finally:
        app.client.post("/sdapi/v1/options", json={"infotext_skip_pasting": [], "auto_backcompat": True,
                                                   "disable_weights_auto_swap": True})
    assert swapped.status_code >= 400 and "deadbeef00" in swapped.text
    assert skipped["seed"] != 77 and skipped["steps"] == 3 and "Downcast alphas_cumprod" not in skipped["infotexts"][0]


def test_refiner_switch_by_steps_and_img2img_background_colour(app: RunningApp) -> None:
    _, info = generate(app, steps=4, refiner_checkpoint="sd1", refiner_switch_at=0.5,
                       override_settings={"refiner_switch_by_sample_steps": True})
    assert "Refiner switch by sampling steps: True" in info
    _, info = generate(app, steps=4, refiner_checkpoint="sd1", refiner_switch_at=0.5)
    assert "Refiner switch by sampling steps" not in info
    clear = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    white = img2img(app, init_images=[png_b64(clear)], denoising_strength=0.3)
    black = img2img(app, init_images=[png_b64(clear)], denoising_strength=0.3,
                    override_settings={"img2img_background_color": "#000000"})
    on_black = img2img(app, init_images=[png_b64(Image.new("RGB", (64, 64), (0, 0, 0)))], denoising_strength=0.3)
    pixels = [np.asarray(decode_png(d["images"][0]).convert("RGB")) for d in (white, black, on_black)]
    assert not np.array_equal(pixels[0], pixels[1]) and np.array_equal(pixels[1], pixels[2])


def last_preview(app: RunningApp, **settings: Any) -> Image.Image:
    """A live preview of a running job, as the browser polls it (GET /sdapi/v1/progress while it samples)."""
    result: dict[str, Any] = {}
    job = threading.Thread(target=lambda: result.update(app.txt2img(
        batch_size=2, steps=12, override_settings={"show_progress_every_n_steps": 1, **settings})))
    job.start()
    image = None
    try:
        while image is None and job.is_alive():
            body = app.client.get("/sdapi/v1/progress").json()
            if body["current_image"] and body["state"]["sampling_step"] >= 2:
                image = Image.open(io.BytesIO(base64.b64decode(body["current_image"])))
            time.sleep(0.05)
    finally:
        job.join()
    assert image is not None and result, "no live preview while the job ran"
    return image


def test_live_preview_settings_shape_the_preview(app: RunningApp) -> None:
    single = last_preview(app, show_progress_grid=False).size  # "Approx cheap": one pixel per latent pixel
    assert single[0] < 64
    assert last_preview(app).size == (2 * single[0], single[1])  # A1111 default: a grid of the batch
    assert last_preview(app, show_progress_type="Full", show_progress_grid=False).size == (64, 64)
    prompt = np.asarray(last_preview(app, show_progress_grid=False))
    negative = np.asarray(last_preview(app, show_progress_grid=False, live_preview_content="Negative prompt"))
    assert not np.array_equal(prompt, negative)


def test_inpainting_masks_are_saved_beside_the_result(app: RunningApp) -> None:
    init = Image.new("RGB", (64, 64), (30, 120, 200))
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (16, 16, 48, 48))
    before = all_files(app)
    img2img(app, init_images=[png_b64(init)], mask=png_b64(mask), mask_blur=0,
            override_settings={"save_mask": True, "save_mask_composite": True, "save_to_dirs": False})
    saved = {p.name.rsplit("-1-a cat-", 1)[-1]: p for p in new_files(app, before, "outputs/img2img-images")}
    assert set(saved) == {"mask.png", "mask-composite.png"}  # saved although the request saves no images
    assert Image.open(saved["mask.png"]).convert("L").getpixel((32, 32)) == 255
    cut = Image.open(saved["mask-composite.png"])
    assert cut.mode == "RGBA" and cut.getpixel((2, 2))[3] == 0 and cut.getpixel((32, 32))[3] == 255


def test_upscaler_for_img2img_scales_small_init_images(app: RunningApp) -> None:
    board = Image.new("RGB", (16, 16))
    board.putdata([(255, 255, 255) if (x // 2 + y // 2) % 2 else (0, 0, 0) for y in range(16) for x in range(16)])
    outputs = [np.asarray(decode_png(img2img(app, init_images=[png_b64(board)], denoising_strength=0.2,
                                             override_settings=settings)["images"][0]))
               for settings in ({}, {"upscaler_for_img2img": "Nearest"}, {"upscaler_for_img2img": "None"})]
    assert not np.array_equal(outputs[0], outputs[1]) and np.array_equal(outputs[0], outputs[2])
