"""`persistent_cond_cache` (A1111 "Persistent cond cache", default on): a job that repeats the last job's prompts
does not run the text encoder again; with the setting off it does; another model, clip skip, emphasis or a changed
embedding makes the cached conds invalid.

What the text encoder did is read from the job's timing line (`modules.processing.job_timing`), which the app logs at
DEBUG level — what a user sees in the terminal with `--loglevel DEBUG`. `webui.main` applies that flag to the
root logger; the acceptance server (`serve`) does not run `main`, so the module sets the same level on the timing
logger itself. Every request uses its own prompt texts, so the tests do not depend on their order.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from tests.acceptance.conftest import RunningApp, WebUIFactory, decode_png
from tests.integration.test_extra_networks_pipeline import write_embedding

TIMING_LOGGER = "modules.processing.job_timing"


@pytest.fixture(scope="module")
def app(webui_app: WebUIFactory) -> Iterator[RunningApp]:
    logger = logging.getLogger(TIMING_LOGGER)
    before = logger.level
    logger.setLevel(logging.DEBUG)  # `--loglevel DEBUG` (see module docstring)
    yield webui_app(["--api"], checkpoints={"sd1.safetensors": "sd1", "other.safetensors": "sd1"})
    logger.setLevel(before)


@dataclass
class Job:
    encoded: int
    """Texts the text encoder ran on."""
    from_cache: int
    """Texts whose conds came from the persistent cache."""
    pixels: np.ndarray
    infotext: str


def run(app: RunningApp, **payload: Any) -> Job:
    """One txt2img request and what its timing line says about the text encoder."""
    start = len(app.console)
    data = app.txt2img(**payload)
    lines = [line for line in app.console[start:].splitlines() if "Job timings:" in line]
    assert len(lines) == 1, app.console[start:]
    encoded = re.search(r"text encoder [\d.]+s ×(\d+) texts", lines[0])
    hits = re.search(r"(\d+) texts from the persistent cond cache", lines[0])
    assert encoded is not None and hits is not None, lines[0]
    pixels = np.asarray(decode_png(data["images"][0]).convert("RGB"))
    return Job(int(encoded.group(1)), int(hits.group(1)), pixels, json.loads(data["info"])["infotexts"][0])


def test_a_repeated_prompt_does_not_run_the_text_encoder_again(app: RunningApp) -> None:
    request = {"prompt": "a red fox in the snow", "negative_prompt": "blurry"}
    first = run(app, **request)
    assert first.encoded >= 2 and first.from_cache == 0
    second = run(app, **request, seed=2)  # another seed: the conds are the same, the image is not
    assert second.encoded == 0 and second.from_cache >= 2
    again = run(app, **request)
    assert again.encoded == 0
    assert np.array_equal(again.pixels, first.pixels) and again.infotext == first.infotext
    changed = run(app, prompt="a red fox in the rain", negative_prompt="blurry")
    assert changed.encoded == 1  # only the new text; the negative prompt is still cached


def test_with_the_setting_off_every_job_runs_the_text_encoder(app: RunningApp) -> None:
    off = {"override_settings": {"persistent_cond_cache": False}}
    request = {"prompt": "a blue whale", "negative_prompt": "ugly"}
    first = run(app, **request, **off)
    second = run(app, **request, **off)
    assert first.encoded >= 2 and second.encoded == first.encoded and second.from_cache == 0
    assert np.array_equal(first.pixels, second.pixels)
    on = run(app, **request)  # the setting off forgot the conds at the end of the job
    assert on.encoded == first.encoded


def other_checkpoint(app: RunningApp) -> str:
    """The checkpoint that is not loaded now (the two files hold the same weights: only the model changes)."""
    current = str(app.client.get("/sdapi/v1/options").json()["sd_model_checkpoint"])
    return "sd1.safetensors" if current.startswith("other") else "other.safetensors"


@pytest.mark.parametrize("override", [
    {"CLIP_stop_at_last_layers": 2},
    {"emphasis": "No norm"},
    {"sd_model_checkpoint": None},
], ids=["clip skip", "emphasis", "model"])
def test_model_and_encoder_options_invalidate_the_cache(app: RunningApp, override: dict[str, Any]) -> None:
    if "sd_model_checkpoint" in override:
        override = {"sd_model_checkpoint": other_checkpoint(app)}
    request = {"prompt": f"a (green:1.3) parrot, {next(iter(override))}", "negative_prompt": "dark"}
    run(app, **request)
    assert run(app, **request).encoded == 0
    changed = run(app, **request, override_settings=override)
    assert changed.encoded >= 2 and changed.from_cache == 0


def test_a_new_embedding_invalidates_the_cache_and_cached_conds_keep_ti_hashes(app: RunningApp) -> None:
    request = {"prompt": "a cachedemb cat"}
    before = run(app, **request)
    assert run(app, **request).encoded == 0
    folder = app.data_dir / "embeddings"
    folder.mkdir(parents=True, exist_ok=True)
    write_embedding(folder / "cachedemb.pt")  # the prompt's word now names an embedding
    with_embedding = run(app, **request)
    assert with_embedding.encoded >= 1 and "cachedemb" in with_embedding.infotext
    assert not np.array_equal(with_embedding.pixels, before.pixels)
    cached = run(app, **request)
    assert cached.encoded == 0 and cached.from_cache >= 1
    assert cached.infotext == with_embedding.infotext  # "TI hashes: cachedemb: …" also from the cache


def test_the_empty_chunk_is_encoded_only_when_pad_cond_uncond_uses_it(app: RunningApp) -> None:
    uncached = {"persistent_cond_cache": False}  # every text the job needs is encoded, none comes from the cache
    plain = run(app, prompt="a yellow submarine", negative_prompt="grey", override_settings=uncached)
    assert plain.encoded == 2  # the prompt and the negative prompt, not the empty prompt as well
    long_prompt = ", ".join(["a yellow submarine under the sea"] * 14)  # more than 75 tokens: two chunks
    padded = run(app, prompt=long_prompt, negative_prompt="grey",
                 override_settings={**uncached, "pad_cond_uncond": True})
    assert padded.encoded == 3 and "Pad conds: True" in padded.infotext  # + the empty prompt to pad "grey"
