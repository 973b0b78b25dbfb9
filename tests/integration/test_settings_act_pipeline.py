"""Settings that act inside the pipeline where no HTTP route reaches them (the img2img Batch tab runs from the
browser only): built through the composition root on the tiny checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from modules.processing.context import AppContext
from modules.processing.img2img_batch import Img2ImgBatchSpec, run_img2img_batch
from modules.processing.run import run_txt2img
from tests.integration.test_extra_networks_pipeline import write_lora
from tests.integration.test_pipeline_helpers import i2i, init_image, make_ctx, new_job, t2i


@pytest.fixture(scope="module")
def ctx(tiny_checkpoint: Any, tmp_path_factory: pytest.TempPathFactory) -> AppContext:
    return make_ctx(tiny_checkpoint, tmp_path_factory.mktemp("settings_act"), {"sd1": ("sd1", 0)})


def _saved(ctx: AppContext) -> set[str]:
    return {p.name for p in (Path(ctx.paths.data_dir) / "outputs").rglob("*.png")}


def test_img2img_batch_names_saved_samples_after_the_input(ctx: AppContext, tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    init_image().save(inputs / "holiday.png")
    params = i2i("sd1", do_not_save_samples=False)
    before = _saved(ctx)
    run_img2img_batch(ctx, params, Img2ImgBatchSpec(str(inputs)), new_job())
    [plain] = _saved(ctx) - before
    assert "holiday" not in plain  # A1111 default: the samples file-name pattern
    ctx.settings.set("img2img_batch_use_original_name", True)
    try:
        before = _saved(ctx)
        run_img2img_batch(ctx, params, Img2ImgBatchSpec(str(inputs)), new_job())
        [named] = _saved(ctx) - before
        before = _saved(ctx)
        run_img2img_batch(ctx, i2i("sd1", do_not_save_samples=False, batch_size=2), Img2ImgBatchSpec(str(inputs)),
                          new_job())
        several = sorted(_saved(ctx) - before)
    finally:
        ctx.settings.set("img2img_batch_use_original_name", False)
    assert named.endswith("-holiday.png") or named == "holiday.png"
    assert len(several) == 2 and all(n.split("-", 1)[-1] in ("holiday-1.png", "holiday-2.png") for n in several)


def test_lora_in_memory_limit_keeps_that_many_besides_the_job_s(ctx: AppContext) -> None:
    lora_dir = Path(ctx.paths.lora_dir)
    lora_dir.mkdir(parents=True, exist_ok=True)
    for n, name in enumerate(("one", "two", "three")):
        write_lora(lora_dir / f"{name}.safetensors", seed=n + 1)
    ctx.networks.loras.refresh()
    for name in ("one", "two", "three"):
        run_txt2img(ctx, t2i("sd1", prompt=f"a cat <lora:{name}:1>"), new_job())
    assert ctx.networks.loras.in_memory == ["three"]  # A1111 default 0: only the last job's network stays
    ctx.settings.set("lora_in_memory_limit", 2)
    try:
        for name in ("one", "two", "three"):
            run_txt2img(ctx, t2i("sd1", prompt=f"a cat <lora:{name}:1>"), new_job())
        assert ctx.networks.loras.in_memory == ["one", "two", "three"]
        run_txt2img(ctx, t2i("sd1", prompt="a cat <lora:one:1>"), new_job())
        assert ctx.networks.loras.in_memory == ["two", "three", "one"]
    finally:
        ctx.settings.set("lora_in_memory_limit", 0)
