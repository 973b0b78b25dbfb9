"""Textual-inversion training on the tiny SD1 model through the app's context and job queue: a few steps lower a
fixed-seed evaluation loss, the file loads back with its step, training resumes from it, and the schedule /
dataset / template rules hold."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

from modules.models.networks.embeddings import load_embedding_file
from modules.models.nn.text_encoders import encode_prompts
from modules.processing.vae_io import encode_tensor
from modules.runtime.jobs import JobFailedError
from modules.training.tasks import EmbeddingSpec, create_embedding_job
from modules.training.textual_inversion import (
    TrainEmbeddingOptions,
    diffusion_loss,
    train_embedding_job,
    trainable_lookup,
)
from modules.training.ti_dataset import TrainingError, load_dataset, make_prompt, parse_schedule, rate_at
from tests.conftest import TinyCheckpointFactory
from tests.fixtures.app_context import context_for


@pytest.fixture(scope="module")
def ctx(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: TinyCheckpointFactory) -> Any:
    data = tmp_path_factory.mktemp("ti")
    dataset = data / "dataset"
    dataset.mkdir()
    Image.new("RGB", (64, 64), (200, 30, 30)).save(dataset / "01 red thing.png")
    Image.new("RGB", (64, 64), (30, 30, 200)).save(dataset / "02 blue thing.png")
    (dataset / "02 blue thing.txt").write_text("blue, square", encoding="utf-8")
    context = context_for(data, {"sd1": tiny_checkpoint("sd1")})
    yield context
    context.jobs.shutdown()


def run(ctx: Any, fn: Any, spec: Any) -> Any:
    return ctx.jobs.submit(fn, ctx, spec, kind="test").result(timeout=600)


def evaluation_loss(ctx: Any, name: str) -> float:
    """Mean loss over 32 fixed-seed (timestep, noise) draws for a fixed prompt and the dataset's mean latents."""
    model = ctx.models.current
    vec = torch.load(Path(ctx.paths.embeddings_dir) / f"{name}.pt", weights_only=True)["string_to_param"]["*"]
    samples = load_dataset(Path(ctx.paths.data_dir) / "dataset", 64, 64)
    latents = torch.cat([encode_tensor(model, s.pixels[None], sample=False) for s in samples])
    generator = torch.Generator().manual_seed(123)
    with torch.no_grad():
        context = encode_prompts(model.text_encoders.clip_l, [f"an image in the style of {name}"] * 2,
                                 embedding_lookup=trainable_lookup(name, vec, "clip")).cond
        return sum(float(diffusion_loss(model, context, latents, generator)) for _ in range(32)) / 32


def options(name: str, ctx: Any, **overrides: Any) -> TrainEmbeddingOptions:
    values: dict[str, Any] = {"learn_rate": "0.05", "batch_size": 2, "data_root": str(Path(ctx.paths.data_dir) /
                              "dataset"), "training_width": 64, "training_height": 64, "steps": 20,
                              "template_filename": "style.txt", "save_embedding_every": 10}
    return TrainEmbeddingOptions(name, **{**values, **overrides})


def test_a_few_steps_lower_the_loss_and_the_file_loads_back(ctx: Any) -> None:
    run(ctx, create_embedding_job, EmbeddingSpec("trainme", 2, False, "cat"))
    before = evaluation_loss(ctx, "trainme")
    result = run(ctx, train_embedding_job, options("trainme", ctx))
    assert result.step == 20 and not result.interrupted
    after = evaluation_loss(ctx, "trainme")
    assert after < before * 0.97, (before, after)
    loaded = load_embedding_file(result.path)
    assert loaded is not None and loaded.step == 20 and loaded.vectors == 2
    assert ctx.networks.embeddings.get("trainme").step == 20, "the app's embedding list shows the trained file"
    copies = sorted(p.name for p in (result.log_dir / "embeddings").iterdir())
    assert copies == ["trainme-10.pt"]
    rows = (result.log_dir / "textual_inversion_loss.csv").read_text().splitlines()
    assert rows[0] == "step,epoch,epoch_step,loss,learn_rate" and rows[-1].startswith("20,")


def test_training_resumes_from_the_saved_step_with_the_schedule(ctx: Any) -> None:
    run(ctx, create_embedding_job, EmbeddingSpec("resume", 1, False, "dog"))
    first = run(ctx, train_embedding_job, options("resume", ctx, steps=3, learn_rate="0.01:2, 0.001"))
    assert first.step == 3
    vec3 = torch.load(first.path, weights_only=True)["string_to_param"]["*"]
    again = run(ctx, train_embedding_job, options("resume", ctx, steps=5, learn_rate="0.01:2, 0.001"))
    assert again.step == 5 and again.steps_done == 2
    assert not torch.equal(torch.load(again.path, weights_only=True)["string_to_param"]["*"], vec3)
    with pytest.raises(JobFailedError, match="already trained to step 5"):
        run(ctx, train_embedding_job, options("resume", ctx, steps=5))


@pytest.mark.parametrize(("overrides", "message"), [
    ({"embedding_name": "nope"}, "not found"),
    ({"data_root": "/nonexistent/dir"}, "does not exist"),
    ({"template_filename": "missing.txt"}, "not found"),
    ({"learn_rate": "fast"}, "Invalid learning rate"),
    ({"batch_size": 3}, "larger than the dataset"),
])
def test_bad_input_is_refused_before_training(ctx: Any, overrides: dict[str, Any], message: str) -> None:
    name = overrides.pop("embedding_name", "trainme")
    with pytest.raises(JobFailedError, match=message):
        run(ctx, train_embedding_job, options(name, ctx, steps=100, **overrides))


def test_schedule_syntax_and_prompts() -> None:
    schedule = parse_schedule("0.005:100, 1e-3:1000, 1e-5", 5000)
    assert schedule == [(0.005, 100), (1e-3, 1000), (1e-5, 5000)]
    assert rate_at(schedule, 99) == 0.005 and rate_at(schedule, 100) == 1e-3 and rate_at(schedule, 4999) == 1e-5
    assert rate_at(schedule, 5000) is None
    assert parse_schedule("0.005:100, 1e-3:1000", 5000, current_step=150) == [(1e-3, 1000)]
    assert parse_schedule("0.1", 10) == [(0.1, 10)]
    with pytest.raises(TrainingError):
        parse_schedule("0.005:100", 500, current_step=200)
    import random

    prompt = make_prompt(["a [filewords] by [name]"], "emb", "red, square", random.Random(0))
    assert prompt == "a red, square by emb"
    assert make_prompt(["[filewords]"], "emb", "a, b, c", random.Random(0), tag_drop_out=0.999) == ""


def test_dataset_words_come_from_txt_or_the_file_name(ctx: Any) -> None:
    samples = load_dataset(Path(ctx.paths.data_dir) / "dataset", 32, 48)
    assert [s.words for s in samples] == ["red thing", "blue, square"]
    assert tuple(samples[0].pixels.shape) == (3, 48, 32)
