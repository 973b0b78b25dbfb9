"""Extra-network endpoints: ``/loras``, ``/refresh-loras``, ``/embeddings``, ``/refresh-embeddings``, ``/hypernetworks``.

Shapes are A1111's (a1111-features.md §12; the Lora extension's ``api.py`` for the LoRA routes):

* ``GET /sdapi/v1/loras`` → ``[{name, alias, path, metadata}]`` (metadata = the safetensors ``__metadata__``);
  ``POST /sdapi/v1/refresh-loras`` rescans the Lora dirs (answers null).
* ``GET /sdapi/v1/embeddings`` → ``{loaded: {name: {step, sd_checkpoint, sd_checkpoint_name, shape, vectors}},
  skipped: {…}}`` for the loaded model (embeddings whose width does not fit it are "skipped");
  ``POST /sdapi/v1/refresh-embeddings`` reloads the files (answers null).
* ``GET /sdapi/v1/hypernetworks`` → ``[{name, path}]``.

All of them read the app's :class:`~modules.processing.extra_networks.NetworkLibrary` (``ctx.networks``), built on
first use when the app was made without one (tests, embedding the API).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from modules.api.app import ApiServices
from modules.models.sd_model import StableDiffusionModel
from modules.processing.extra_networks import NetworkLibrary


def network_library(services: ApiServices) -> NetworkLibrary:
    """The app's library (``ctx.networks``)."""
    return services.ctx.networks


def current_model(services: ApiServices) -> StableDiffusionModel | None:
    """The loaded model (None when nothing is loaded yet)."""
    return services.ctx.models.current


def lora_items(library: NetworkLibrary) -> list[dict[str, Any]]:
    """``GET /loras`` items, in the registry's (natural path) order."""
    return [{"name": entry.name, "alias": entry.alias, "path": str(entry.path), "metadata": entry.metadata}
            for entry in library.loras.available.values()]


def synced_embeddings(services: ApiServices) -> Any:
    """The embedding database adjusted to the loaded model's width (files re-read when they changed)."""
    library = network_library(services)
    library.sync_embeddings(current_model(services))
    return library.embeddings


def embedding_summary(services: ApiServices) -> dict[str, Any]:
    """``GET /embeddings`` for the loaded model."""
    summary: dict[str, Any] = synced_embeddings(services).summary()
    return summary


def add_routes(router: APIRouter, services: ApiServices) -> None:
    """The list endpoints; ``refresh-loras`` / ``refresh-embeddings`` live in ``routes_misc`` with the other
    refresh routes and reach the same library through ``routes_info.lora_registry`` / ``embedding_db``."""

    def loras() -> list[dict[str, Any]]:
        return lora_items(network_library(services))

    def embeddings() -> dict[str, Any]:
        return embedding_summary(services)

    def hypernetworks() -> list[dict[str, Any]]:
        return [{"name": name, "path": str(path)} for name, path in network_library(services).list_hypernetworks().items()]

    router.add_api_route("/loras", loras, methods=["GET"], summary="loras")
    router.add_api_route("/embeddings", embeddings, methods=["GET"], summary="embeddings")
    router.add_api_route("/hypernetworks", hypernetworks, methods=["GET"], summary="hypernetworks")
