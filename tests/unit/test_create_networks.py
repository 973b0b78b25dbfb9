"""Creating embeddings and hypernetworks (modules/training/create_networks.py): A1111's file formats, read back by
this app's own loaders, the init-text rule and the input checks."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from modules.models.networks.embeddings import load_embedding_file
from modules.models.networks.hypernetworks import load_hypernetwork
from modules.training.create_networks import (
    AlreadyExistsError,
    CreateError,
    clean_name,
    create_embedding,
    create_hypernetwork,
    init_vectors,
)

TABLE = torch.arange(50 * 4, dtype=torch.float32).reshape(50, 4)


class FakeEncoder:
    def __init__(self, flavor: str, width: int) -> None:
        self.tokenizer_flavor = flavor
        self.device = torch.device("cpu")
        self.table = torch.randn(49408, width)

    def token_embeddings(self, ids: torch.Tensor) -> torch.Tensor:
        return self.table[ids]


def fake_model(clip_l: FakeEncoder | None, open_clip: FakeEncoder | None) -> SimpleNamespace:
    return SimpleNamespace(text_encoders=SimpleNamespace(clip_l=clip_l, open_clip=open_clip),
                           checkpoint=SimpleNamespace(shorthash="abcdef1234", model_name="tiny"))


def test_init_vectors_follow_the_token_spread() -> None:
    def table(ids: torch.Tensor) -> torch.Tensor:
        return TABLE[ids]

    vectors = init_vectors(table, [3, 7], 4)
    assert torch.equal(vectors, torch.stack([TABLE[3], TABLE[3], TABLE[7], TABLE[7]]))
    assert torch.equal(init_vectors(table, [], 2), torch.zeros(2, 4))


def test_sd1_embedding_is_the_a1111_dict(tmp_path: Path) -> None:
    encoder = FakeEncoder("clip", 16)
    path = create_embedding(fake_model(encoder, None), tmp_path, "my emb!", num_vectors_per_token=2,  # type: ignore[arg-type]
                            init_text="cat")
    assert path.name == "my emb.pt"
    data = torch.load(path, weights_only=True)
    assert set(data) == {"string_to_token", "string_to_param", "name", "step", "sd_checkpoint", "sd_checkpoint_name"}
    assert data["string_to_token"] == {"*": 265} and data["name"] == "my emb" and data["step"] == 0
    assert data["sd_checkpoint"] == "abcdef1234" and data["sd_checkpoint_name"] == "tiny"
    vec = data["string_to_param"]["*"]
    assert vec.dtype == torch.float32 and tuple(vec.shape) == (2, 16)
    from modules.prompts.tokenizer import get_tokenizer

    [cat] = get_tokenizer("clip").encode("cat")
    assert torch.equal(vec[0], encoder.table[cat]) and torch.equal(vec[1], encoder.table[cat])
    loaded = load_embedding_file(path)
    assert loaded is not None and loaded.vectors == 2 and loaded.shape == 16 and loaded.step == 0
    with pytest.raises(AlreadyExistsError):
        create_embedding(fake_model(encoder, None), tmp_path, "my emb")  # type: ignore[arg-type]
    create_embedding(fake_model(encoder, None), tmp_path, "my emb", overwrite_old=True)  # type: ignore[arg-type]


def test_sdxl_embedding_has_clip_l_and_clip_g(tmp_path: Path) -> None:
    model = fake_model(FakeEncoder("clip", 8), FakeEncoder("open_clip", 12))
    path = create_embedding(model, tmp_path, "xl", num_vectors_per_token=3, init_text="")  # type: ignore[arg-type]
    data = torch.load(path, weights_only=True)
    assert set(data) == {"clip_l", "clip_g"}
    assert tuple(data["clip_l"].shape) == (3, 8) and tuple(data["clip_g"].shape) == (3, 12)
    assert not data["clip_l"].any()
    loaded = load_embedding_file(path)
    assert loaded is not None and loaded.shape == 20 and loaded.vectors == 3
    with pytest.raises(CreateError, match="1–75"):
        create_embedding(model, tmp_path, "bad", num_vectors_per_token=76)  # type: ignore[arg-type]


@pytest.mark.parametrize(("norm", "dropout", "activation", "init"), [
    (False, False, "linear", "Normal"), (True, True, "relu", "KaimingUniform"),
    (True, False, "swish", "XavierNormal"), (False, True, "leakyrelu", "KaimingNormal"),
])
def test_hypernetwork_file_loads_in_our_loader(tmp_path: Path, norm: bool, dropout: bool, activation: str,
                                               init: str) -> None:
    path = create_hypernetwork(tmp_path, "hn", enable_sizes=["320", 768], layer_structure="1, 2, 1",
                               activation_func=activation, weight_init=init, add_layer_norm=norm, use_dropout=dropout,
                               dropout_structure="0, 0.1, 0")
    data = torch.load(path, weights_only=False)
    assert {"step", "name", "layer_structure", "activation_func", "is_layer_norm", "weight_initialization",
            "sd_checkpoint", "sd_checkpoint_name", "activate_output", "use_dropout", "dropout_structure",
            "last_layer_dropout", "optional_info"} <= set(data)
    assert data["layer_structure"] == [1.0, 2.0, 1.0] and data["activation_func"] == activation
    assert data["dropout_structure"] == ([0.0, 0.1, 0.0] if dropout else [0.0, 0.0, 0.0])
    assert data["last_layer_dropout"] is dropout and data["activate_output"] is False
    k, v = data[320]
    assert k["linear.0.weight"].shape == (640, 320) and k["linear.0.weight"].dtype == torch.float32
    assert set(v) == set(k)
    if init == "Normal":
        assert not k["linear.0.bias"].any() and k["linear.0.weight"].std() < 0.02
    network = load_hypernetwork(path)
    assert sorted(network.layers) == [320, 768]
    x = torch.randn(2, 320)
    assert network.layers[320][0](x).shape == x.shape


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"layer_structure": "2, 1"}, "start and end with 1"),
    ({"layer_structure": "1, x, 1"}, "numbers"),
    ({"use_dropout": True, "dropout_structure": "0.5, 0, 0"}, "Dropout structure"),
    ({"activation_func": "nope"}, "activation"),
    ({"weight_init": "Zeros"}, "initialization"),
    ({"enable_sizes": []}, "at least one"),
])
def test_hypernetwork_bad_input(tmp_path: Path, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(CreateError, match=message):
        create_hypernetwork(tmp_path, "bad", **kwargs)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_names_are_cleaned() -> None:
    assert clean_name("../a/b c.d") == "..ab c.d"
    with pytest.raises(CreateError, match="empty"):
        clean_name("///")
