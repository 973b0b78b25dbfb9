"""Extra-network API endpoints against a live server (A1111 shapes, a1111-features.md §12)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.integration.conftest import LiveServer, LiveServerFactory
from tests.integration.test_extra_networks_pipeline import write_embedding, write_hypernetwork, write_lora


@pytest.fixture(scope="module")
def server(live_server: LiveServerFactory, tiny_checkpoint, tmp_path_factory: pytest.TempPathFactory) -> LiveServer:
    data = tmp_path_factory.mktemp("networks-api")
    models = data / "models"
    for folder in ("Stable-diffusion", "Lora/sub", "hypernetworks"):
        (models / folder).mkdir(parents=True)
    (models / "Stable-diffusion" / "sd1.safetensors").symlink_to(tiny_checkpoint("sd1"))
    write_lora(models / "Lora" / "sub" / "tinylora.safetensors")
    write_hypernetwork(models / "hypernetworks" / "tinyhn.pt")
    (data / "embeddings").mkdir()
    write_embedding(data / "embeddings" / "tinyemb.pt", vectors=2)
    write_embedding(data / "embeddings" / "xl_sized.pt", dim=2048)
    return live_server(["--nowebui", "--api"], data_dir=data)


def call(server: LiveServer, method: str, path: str) -> object:
    response = server.client.request(method, f"/sdapi/v1/{path}")
    assert response.status_code == 200, (path, response.text)
    return response.json()


def test_loras_list_and_refresh(server: LiveServer) -> None:
    loras = call(server, "GET", "loras")
    assert isinstance(loras, list) and len(loras) == 1
    assert set(loras[0]) == {"name", "alias", "path", "metadata"}
    assert loras[0]["name"] == "tinylora" and loras[0]["alias"] == "tinylora"
    assert loras[0]["path"].endswith("Lora/sub/tinylora.safetensors")
    assert loras[0]["metadata"]["ss_network_dim"] == "4"
    new = Path(loras[0]["path"]).parent.parent / "second.safetensors"
    write_lora(new, seed=9)
    assert [item["name"] for item in call(server, "GET", "loras")] == ["tinylora"]  # not rescanned yet
    assert call(server, "POST", "refresh-loras") is None
    assert sorted(item["name"] for item in call(server, "GET", "loras")) == ["second", "tinylora"]


def test_hypernetworks_list(server: LiveServer) -> None:
    hypernetworks = call(server, "GET", "hypernetworks")
    assert [set(h) for h in hypernetworks] == [{"name", "path"}]
    assert hypernetworks[0]["name"] == "tinyhn" and hypernetworks[0]["path"].endswith("tinyhn.pt")


def test_embeddings_follow_the_loaded_model(server: LiveServer) -> None:
    server.ctx.models.load("sd1")
    summary = call(server, "GET", "embeddings")
    assert set(summary) == {"loaded", "skipped"}
    assert summary["loaded"] == {"tinyemb": {"step": 500, "sd_checkpoint": "abcdef12", "sd_checkpoint_name": "tiny",
                                             "shape": 128, "vectors": 2}}
    assert set(summary["skipped"]) == {"xl_sized"} and summary["skipped"]["xl_sized"]["shape"] == 2048
    torch.save({"emb_params": torch.zeros(1, 128)}, Path(server.data_dir) / "embeddings" / "added.pt")
    assert call(server, "POST", "refresh-embeddings") is None
    assert "added" in call(server, "GET", "embeddings")["loaded"]
