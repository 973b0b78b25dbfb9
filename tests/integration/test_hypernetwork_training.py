"""Hypernetwork training on the tiny SD1 model through the app's context and job queue: a few steps lower a
fixed-seed evaluation loss (the hypernetwork applied exactly as `<hypernet:name:1>` applies it), only the
hypernetwork's layers change, the file keeps A1111's layout with its step and checkpoint, training resumes from it,
and the epoch/settings-file rules hold."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

from modules.models.networks.hypernetworks import add_hypernetworks, load_hypernetwork
from modules.models.nn.text_encoders import encode_prompts
from modules.models.patcher import ModelPatcher
from modules.processing.extra_networks import model_components
from modules.processing.vae_io import encode_tensor
from modules.runtime.jobs import JobFailedError
from modules.training.hypernetwork_train import TrainHypernetworkOptions, train_hypernetwork_job
from modules.training.tasks import HypernetworkSpec, create_hypernetwork_job
from modules.training.textual_inversion import diffusion_loss
from modules.training.ti_dataset import load_dataset
from modules.training.train_common import PreviewOptions, epoch_text, steps_per_epoch
from tests.conftest import TinyCheckpointFactory
from tests.fixtures.app_context import context_for


@pytest.fixture(scope="module")
def ctx(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: TinyCheckpointFactory) -> Any:
    data = tmp_path_factory.mktemp("hn")
    dataset = data / "dataset"
    dataset.mkdir()
    Image.new("RGB", (64, 64), (200, 30, 30)).save(dataset / "01 red thing.png")
    Image.new("RGB", (64, 64), (30, 30, 200)).save(dataset / "02 blue thing.png")
    context = context_for(data, {"sd1": tiny_checkpoint("sd1")})
    yield context
    context.jobs.shutdown()


def run(ctx: Any, fn: Any, spec: Any) -> Any:
    return ctx.jobs.submit(fn, ctx, spec, kind="test").result(timeout=600)


def evaluation_loss(ctx: Any, name: str) -> float:
    """Mean loss over 32 fixed-seed (timestep, noise) draws with the saved hypernetwork wrapped on the UNet."""
    model = ctx.models.current
    network = load_hypernetwork(Path(ctx.paths.hypernetwork_dir) / f"{name}.pt")
    samples = load_dataset(Path(ctx.paths.data_dir) / "dataset", 64, 64)
    latents = torch.cat([encode_tensor(model, s.pixels[None], sample=False) for s in samples])
    generator = torch.Generator().manual_seed(123)
    patcher = ModelPatcher(model_components(model))
    add_hypernetworks(patcher, [(network, 1.0)])
    with torch.no_grad(), patcher:
        context = encode_prompts(model.text_encoders.clip_l, [f"an image in the style of {name}"] * 2).cond
        return sum(float(diffusion_loss(model, context, latents, generator)) for _ in range(32)) / 32


def options(name: str, ctx: Any, **overrides: Any) -> TrainHypernetworkOptions:
    values: dict[str, Any] = {"learn_rate": "0.001", "batch_size": 2, "data_root": str(Path(ctx.paths.data_dir) /
                              "dataset"), "training_width": 64, "training_height": 64, "steps": 20,
                              "template_filename": "style.txt", "save_hypernetwork_every": 10,
                              "latent_sampling_method": "deterministic", "preview": PreviewOptions(0)}
    return TrainHypernetworkOptions(name, **{**values, **overrides})


def test_a_few_steps_lower_the_loss_and_only_the_hypernetwork_learns(ctx: Any) -> None:
    run(ctx, create_hypernetwork_job, HypernetworkSpec("hyper", [64, 128], layer_structure="1, 2, 1",
                                                       activation_func="relu"))
    path = Path(ctx.paths.hypernetwork_dir) / "hyper.pt"
    created = torch.load(path, weights_only=False)
    ctx.models.current or ctx.models.load(None)
    unet_before = {k: v.clone() for k, v in ctx.models.current.unet.state_dict().items()}
    before = evaluation_loss(ctx, "hyper")
    result = run(ctx, train_hypernetwork_job, options("hyper", ctx))
    assert result.step == 20 and not result.interrupted and result.path == path
    after = evaluation_loss(ctx, "hyper")
    assert after < before * 0.97, (before, after)
    unet_after = ctx.models.current.unet.state_dict()
    assert all(torch.equal(unet_before[k], unet_after[k]) for k in unet_before), "the model must stay frozen"
    trained = torch.load(path, weights_only=False)
    assert set(trained) == set(created), "A1111's keys are kept"
    assert trained["step"] == 20 and trained["sd_checkpoint_name"] == "sd1" and trained["sd_checkpoint"]
    assert trained["layer_structure"] == created["layer_structure"] and trained["activation_func"] == "relu"
    for width in (64, 128):
        k_state, v_state = trained[width]
        assert set(k_state) == set(created[width][0]) and set(v_state) == set(created[width][1])
        assert not torch.equal(k_state["linear.0.weight"], created[width][0]["linear.0.weight"])
    assert sorted(p.name for p in (result.log_dir / "hypernetworks").iterdir()) == ["hyper-10.pt"]
    rows = (result.log_dir / "hypernetwork_loss.csv").read_text().splitlines()
    assert rows[0] == "step,epoch,epoch_step,loss,learn_rate" and rows[-1].startswith("20,")
    settings = json.loads(next(result.log_dir.glob("settings-*.json")).read_text())
    assert settings["hypernetwork_name"] == "hyper" and settings["num_of_dataset_images"] == 2
    assert settings["initial_step"] == 0 and settings["model_name"] == "sd1"


def test_training_resumes_from_the_saved_step(ctx: Any) -> None:
    run(ctx, create_hypernetwork_job, HypernetworkSpec("again", [64, 128]))
    first = run(ctx, train_hypernetwork_job, options("again", ctx, steps=3))
    assert first.step == 3
    second = run(ctx, train_hypernetwork_job, options("again", ctx, steps=5))
    assert second.step == 5 and second.steps_done == 2
    assert torch.load(second.path, weights_only=False)["step"] == 5
    with pytest.raises(JobFailedError, match="already trained to step 5"):
        run(ctx, train_hypernetwork_job, options("again", ctx, steps=5))


@pytest.mark.parametrize(("overrides", "message"), [
    ({"hypernetwork_name": "nope"}, "not found"),
    ({"data_root": "/nonexistent/dir"}, "does not exist"),
    ({"learn_rate": "fast"}, "Invalid learning rate"),
    ({"clip_grad_mode": "sometimes"}, "clip_grad_mode"),
])
def test_bad_input_is_refused_before_training(ctx: Any, overrides: dict[str, Any], message: str) -> None:
    run(ctx, create_hypernetwork_job, HypernetworkSpec("target", [64, 128], overwrite_old=True))
    name = overrides.pop("hypernetwork_name", "target")
    with pytest.raises(JobFailedError, match=message):
        run(ctx, train_hypernetwork_job, options(name, ctx, steps=100, **overrides))


def test_epochs_count_repeats_as_a1111() -> None:
    assert steps_per_epoch(10, 1, 2, 1) == 5 and steps_per_epoch(10, 3, 2, 1) == 15
    assert steps_per_epoch(1, 1, 4, 2) == 1
    assert epoch_text(1, 5, 0.5) == "[Epoch 0: 1/5]loss: 0.5000000"
    assert epoch_text(6, 5, 0.25) == "[Epoch 1: 1/5]loss: 0.2500000"
