"""Compatibility settings a user changes over HTTP act on what the app returns (A1111 1.10 behaviour of each):
hires fix conds and refiner passes, incomplete images on interrupt, LoRA-bundled embeddings, the old emphasis
implementation, functional LoRA.

One app for the module; every test sets what it needs per request (`override_settings`) or through
`POST /sdapi/v1/options` and puts it back, so the tests do not depend on their order.
"""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from tests.acceptance.conftest import RunningApp, WebUIFactory, decode_png
from tests.conftest import TinyCheckpointFactory
from tests.integration.test_extra_networks_pipeline import write_lora


@pytest.fixture(scope="module")
def app(webui_app: WebUIFactory, tiny_checkpoint: TinyCheckpointFactory) -> Iterator[RunningApp]:
    def prepare(data: Path) -> None:
        (data / "models" / "Lora").mkdir(parents=True, exist_ok=True)
        write_lora(data / "models" / "Lora" / "tinylora.safetensors")
        bundle = write_lora(data / "models" / "Lora" / "bundlelora.safetensors", seed=2)
        tensors = load_file(str(bundle))  # + an embedding bundled the way A1111 1.7 reads it (`bundle_emb.*`)
        tensors["bundle_emb.xyzemb.string_to_param.*"] = torch.randn(2, 128, generator=torch.Generator().manual_seed(4))
        save_file(tensors, str(bundle), metadata={"ss_output_name": "bundlelora"})
        # a refiner with other weights than sd1, so a pass it takes part in changes the pixels
        shutil.copyfile(tiny_checkpoint("sd1", seed=1), data / "models" / "Stable-diffusion" / "refiner.safetensors")

    yield webui_app(["--api"], checkpoints={"sd1.safetensors": "sd1", "other.safetensors": "sd1"}, prepare=prepare)


def generate(app: RunningApp, **payload: Any) -> tuple[np.ndarray, str]:
    """(pixels of the first image, its infotext)."""
    data = app.txt2img(**payload)
    pixels = np.asarray(decode_png(data["images"][0]).convert("RGB"), dtype=np.int16)
    return pixels, json.loads(data["info"])["infotexts"][0]


HIRES = {"enable_hr": True, "hr_scale": 1.5, "hr_upscaler": "Latent", "hr_second_pass_steps": 2,
         "denoising_strength": 0.6}


def test_hires_pass_can_use_the_first_pass_conds(app: RunningApp) -> None:
    # `<lora:tinylora:1:0>`: text encoder only, so only the conds tell the passes apart
    first = "a cat <lora:tinylora:1:0>"
    own, _ = generate(app, prompt=first, hr_prompt="a cat", **HIRES)
    firstpass, info = generate(app, prompt=first, hr_prompt="a cat", **HIRES,
                               override_settings={"hires_fix_use_firstpass_conds": True})
    with_lora, _ = generate(app, prompt=first, hr_prompt=first, **HIRES)
    assert not np.array_equal(own, firstpass)
    assert np.array_equal(firstpass, with_lora)  # the hires prompt encoded with the first pass's networks
    assert "Hires prompt: a cat" in info


def test_hires_fix_refiner_pass_picks_the_passes_the_refiner_refines(app: RunningApp) -> None:
    request = {**HIRES, "steps": 4, "hr_second_pass_steps": 3, "refiner_checkpoint": "refiner",
               "refiner_switch_at": 0.8}
    base, _ = generate(app, **{**HIRES, "steps": 4, "hr_second_pass_steps": 3})
    results: dict[str, np.ndarray] = {}
    for passes in ("second pass", "first pass", "both passes"):
        results[passes], info = generate(app, **request, override_settings={"hires_fix_refiner_pass": passes})
        assert "Refiner: refiner" in info and "Refiner switch at: 0.8" in info
        # A1111 writes the choice only when it is not the default
        assert ("Hires refiner" in info) == (passes != "second pass")
        if passes != "second pass":
            assert f"Hires refiner: {passes}" in info
    default, _ = generate(app, **request)
    assert np.array_equal(default, results["second pass"])
    pixels = [base, *results.values()]
    assert all(not np.array_equal(a, b) for i, a in enumerate(pixels) for b in pixels[i + 1:])


def interrupted_txt2img(app: RunningApp, **payload: Any) -> dict[str, Any]:
    """A txt2img request interrupted (POST /sdapi/v1/interrupt) once its sampling passed step 3; the answer."""
    result: dict[str, Any] = {}
    job = threading.Thread(target=lambda: result.update(app.txt2img(**payload)))
    job.start()
    try:
        app.wait_for("sampling step 3", lambda: app.client.get("/sdapi/v1/progress").json()["state"][
            "sampling_step"] >= 3)
        assert app.client.post("/sdapi/v1/interrupt").status_code == 200
    finally:
        job.join()
    return result


def saved_samples(app: RunningApp) -> set[Path]:
    folder = app.data_dir / "outputs" / "txt2img-images"
    return {p for p in folder.rglob("*.png")} if folder.exists() else set()


def test_interrupted_images_are_returned_and_saved_only_with_save_incomplete_images(app: RunningApp) -> None:
    before = saved_samples(app)
    request = {"steps": 400, "n_iter": 2, "save_images": True, **HIRES, "hr_scale": 2}
    data = interrupted_txt2img(app, **request)
    # the first batch, decoded from its last prediction at the first-pass size (no hires pass, no second batch)
    assert [decode_png(b).size for b in data["images"]] == [(64, 64)]
    assert "Steps: 400" in json.loads(data["info"])["infotexts"][0]
    assert saved_samples(app) == before  # A1111 default: an incomplete image is not saved
    data = interrupted_txt2img(app, **request, override_settings={"save_incomplete_images": True})
    assert len(data["images"]) == 1
    assert len(saved_samples(app) - before) == 1
    complete = app.txt2img(save_images=True)  # the next job is not interrupted
    assert len(complete["images"]) == 1 and len(saved_samples(app) - before) == 2


def test_embeddings_bundled_in_a_lora_are_used_and_named_in_ti_hashes(app: RunningApp) -> None:
    prompt = "a xyzemb cat <lora:bundlelora:1>"
    with_name, info = generate(app, prompt=prompt)
    assert "xyzemb: bundlelora" in info  # A1111: the network's name stands for the embedding's hash
    without_name, info = generate(app, prompt=prompt, override_settings={"lora_bundled_ti_to_infotext": False})
    assert "TI hashes" not in info and np.array_equal(with_name, without_name)
    _, info = generate(app, prompt="a xyzemb cat")  # only while its network is active
    assert "TI hashes" not in info


def test_old_emphasis_implementation_weights_brackets_the_pre_1_0_way(app: RunningApp) -> None:
    old = {"use_old_emphasis_implementation": True}
    plain, _ = generate(app, prompt="a photo of a cat")
    plain_old, _ = generate(app, prompt="a photo of a cat", override_settings=old)
    assert np.array_equal(plain, plain_old)  # nothing to weight: both tokenize alike
    weighted, _ = generate(app, prompt="a photo of a (cat:1.5)")
    weighted_old, _ = generate(app, prompt="a photo of a (cat:1.5)", override_settings=old)
    # the old way reads `:1.5` as text and weights `cat` by 1.1 (the bracket tokens)
    assert not np.array_equal(weighted, weighted_old)
    bracketed_old, _ = generate(app, prompt="a photo of a (cat)", override_settings=old)
    as_new, _ = generate(app, prompt="a photo of a (cat:1.1)")  # the same weight, written the 1.0+ way
    assert np.abs(bracketed_old - as_new).max() <= 1
