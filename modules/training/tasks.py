"""Queue jobs of the Train tab and the ``/sdapi/v1/create/*`` routes: each runs on ``ctx.jobs`` (one device user
at a time, A1111's ``queue_lock``) and leaves the app's lists up to date afterwards (A1111 reloads the embedding
database after creating one; new hypernetworks are found by the next listing)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from modules.models.sd_model import StableDiffusionModel
from modules.processing.context import AppContext
from modules.runtime.jobs import Job
from modules.training.create_networks import (
    DEFAULT_HYPERNETWORK_SIZES,
    create_embedding,
    create_hypernetwork,
)

ERROR_STATUS = {"CreateError": 400, "AlreadyExistsError": 409, "UnknownCheckpointError": 400,
                "CheckpointLoadError": 400, "TrainingError": 400}
"""HTTP status of a failed create/train job by exception type name (anything else is a 500)."""


@dataclass
class EmbeddingSpec:
    """Create embedding fields (A1111 names and defaults)."""

    name: str
    num_vectors_per_token: int = 1
    overwrite_old: bool = False
    init_text: str = "*"


@dataclass
class HypernetworkSpec:
    """Create hypernetwork fields (A1111 names and defaults)."""

    name: str
    enable_sizes: list[int | str] = field(default_factory=lambda: list(DEFAULT_HYPERNETWORK_SIZES))
    overwrite_old: bool = False
    layer_structure: str | list[float] | None = "1, 2, 1"
    activation_func: str | None = "linear"
    weight_init: str | None = "Normal"
    add_layer_norm: bool = False
    use_dropout: bool = False
    dropout_structure: str | list[float] | None = "0, 0, 0"


def loaded_model(ctx: AppContext) -> StableDiffusionModel:
    """The current model, loading the selected checkpoint first when none is loaded yet."""
    model = ctx.models.current
    if model is None:
        model = ctx.models.load(ctx.settings.get("sd_model_checkpoint") or None)
    return model


def create_embedding_job(ctx: AppContext, spec: EmbeddingSpec, *, job: Job) -> Path:
    """Create the embedding from the loaded model's token embeddings and reload the embedding list."""
    job.state.set_textinfo(f"Creating embedding {spec.name}")
    model = loaded_model(ctx)
    path = create_embedding(model, ctx.paths.embeddings_dir, spec.name, num_vectors_per_token=spec.num_vectors_per_token,
                            init_text=spec.init_text, overwrite_old=spec.overwrite_old)
    ctx.networks.sync_embeddings(model)
    ctx.networks.embeddings.load(force=True)
    return path


def create_hypernetwork_job(ctx: AppContext, spec: HypernetworkSpec, *, job: Job) -> Path:
    """Create the hypernetwork file."""
    job.state.set_textinfo(f"Creating hypernetwork {spec.name}")
    return create_hypernetwork(ctx.paths.hypernetwork_dir, spec.name, enable_sizes=spec.enable_sizes,
                               overwrite_old=spec.overwrite_old, layer_structure=spec.layer_structure,
                               activation_func=spec.activation_func or "linear",
                               weight_init=spec.weight_init or "Normal", add_layer_norm=spec.add_layer_norm,
                               use_dropout=spec.use_dropout, dropout_structure=spec.dropout_structure)
