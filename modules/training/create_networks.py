"""Create a textual-inversion embedding or a hypernetwork file (Train tab sub-tabs, ``POST /sdapi/v1/create/*``).

A1111 behaviour implemented (reference §3.7, §11.4, §11.6; A1111 ``textual_inversion.create_embedding`` and
``hypernetworks.hypernetwork.create_hypernetwork``):

* Names keep only letters, digits and ``._- `` (A1111 strips the rest); an empty name is refused. An existing
  file is refused unless "Overwrite Old" is ticked.
* Embedding ``embeddings/<name>.pt``: the init text (default ``*``) is tokenised without BOS/EOS and looked up in
  the loaded model's token-embedding table; vector ``i`` of ``n`` (1–75) is the embedding of token
  ``i·tokens // n``; an empty init text gives zeros. The file is A1111's dict ``{"string_to_token": {"*": 265},
  "string_to_param": {"*": float32[n, width]}, "name", "step": 0, "sd_checkpoint", "sd_checkpoint_name"}`` (we
  fill the two checkpoint fields with the model the vectors came from; A1111 leaves them None until training).
  SDXL models have two text encoders: their embeddings are saved as ``{"clip_l": [n, 768], "clip_g": [n, 1280]}``,
  the SDXL format both A1111 and this app load.
* Hypernetwork ``models/hypernetworks/<name>.pt``: for each enabled size (context width, default 768, 320, 640,
  1280) a pair of residual MLPs (k, v) with the layer structure (default ``1, 2, 1``; must start and end with 1),
  activation (``linear`` = none), optional LayerNorm after each linear, dropout structure (used only with "Use
  dropout"; must start and end with 0, same length), and the weight initialisation: ``Normal`` (weights N(0, 0.01),
  zero biases; LayerNorms always get that), ``XavierUniform``/``XavierNormal``/``KaimingUniform``/``KaimingNormal``
  (zero biases; Kaiming uses the leaky-relu gain for ``leakyrelu``, else relu). Saved as A1111 does:
  ``{size: (k_state_dict, v_state_dict), "step": 0, "name", "layer_structure", "activation_func", "is_layer_norm",
  "weight_initialization", "sd_checkpoint": None, "sd_checkpoint_name": None, "activate_output": False,
  "use_dropout", "dropout_structure", "last_layer_dropout", "optional_info": None}``.

Files are written through a temp file and ``os.replace``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from modules.models.networks.hypernetworks import HypernetworkModule
from modules.models.sd_model import StableDiffusionModel
from modules.prompts.tokenizer import get_tokenizer
from modules.training.atomic import atomic_torch_save

DEFAULT_HYPERNETWORK_SIZES = (768, 320, 640, 1280)
HYPERNETWORK_SIZE_CHOICES = (768, 1024, 320, 640, 1280)
WEIGHT_INITS = ("Normal", "KaimingUniform", "KaimingNormal", "XavierUniform", "XavierNormal")
MAX_VECTORS_PER_TOKEN = 75
A1111_STRING_TO_TOKEN = {"*": 265}
"""The placeholder token A1111 writes in every embedding file (the vectors are what matter)."""


class CreateError(ValueError):
    """Bad input for creating a network; the message is shown to the user."""


class AlreadyExistsError(CreateError):
    """The target file exists and overwriting was not asked for."""


MAX_NAME_BYTES = 200
"""File systems hold 255 bytes per name; training derives `<name>-<step>.pt`, `<name>.pt.optim` and preview images
from the name, so it keeps room for those (A1111 has no limit and fails with "File name too long")."""


def clean_name(name: str) -> str:
    """Letters, digits and ``._- `` only (A1111); CreateError when nothing is left or the name is longer than
    `MAX_NAME_BYTES` as a file name."""
    cleaned = "".join(ch for ch in str(name or "") if ch.isalnum() or ch in "._- ").strip()
    if not cleaned or set(cleaned) <= {"."}:
        raise CreateError("Name cannot be empty!")
    size = len(cleaned.encode("utf-8"))
    if size > MAX_NAME_BYTES:
        raise CreateError(f"Name is too long for a file name ({size} bytes; at most {MAX_NAME_BYTES})")
    return cleaned


def activation_names() -> list[str]:
    """A1111's choices: linear, relu, leakyrelu, elu, swish, tanh, sigmoid, then every other torch.nn activation."""
    first = ["linear", "relu", "leakyrelu", "elu", "swish", "tanh", "sigmoid"]
    others = sorted(name.lower() for name, cls in inspect.getmembers(torch.nn.modules.activation, inspect.isclass)
                    if issubclass(cls, nn.Module) and cls.__module__ == "torch.nn.modules.activation")
    return first + [name for name in others if name not in first]


def _target(folder: Path, name: str, overwrite: bool) -> Path:
    path = folder / f"{name}.pt"
    if path.exists() and not overwrite:
        raise AlreadyExistsError(f"file {path} already exists; tick Overwrite Old to replace it")
    return path


# -------------------------------------------------------------------------------------------------- embeddings
def init_vectors(token_table: Callable[[torch.Tensor], torch.Tensor], ids: Sequence[int], count: int) -> torch.Tensor:
    """``count`` vectors from the token embeddings of ``ids`` (vector i = token ``i·len(ids) // count``); zeros
    when ``ids`` is empty. ``token_table(ids_tensor)`` returns ``[len(ids), width]``."""
    width = int(token_table(torch.zeros(1, dtype=torch.long)).shape[-1])
    vectors = torch.zeros(count, width, dtype=torch.float32)
    if ids:
        embedded = token_table(torch.tensor(list(ids), dtype=torch.long)).detach().float().cpu()
        for i in range(count):
            vectors[i] = embedded[i * len(ids) // count]
    return vectors


def _token_table(encoder: Any) -> Callable[[torch.Tensor], torch.Tensor]:
    def lookup(ids: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            result: torch.Tensor = encoder.token_embeddings(ids.to(encoder.device))
        return result

    return lookup


def embedding_data(model: StableDiffusionModel, name: str, num_vectors: int, init_text: str) -> dict[str, Any]:
    """The dict saved for a new embedding of ``model`` (format in the module docstring)."""
    if not 1 <= int(num_vectors) <= MAX_VECTORS_PER_TOKEN:
        raise CreateError(f"Number of vectors per token must be 1–{MAX_VECTORS_PER_TOKEN}, got {num_vectors}")
    encoders = model.text_encoders
    clip_l, open_clip = getattr(encoders, "clip_l", None), getattr(encoders, "open_clip", None)
    if clip_l is None and open_clip is None:
        raise CreateError("The loaded model has no text encoder to take the initial vectors from")
    text = init_text or ""

    def vectors(encoder: Any) -> torch.Tensor:
        ids = get_tokenizer(str(getattr(encoder, "tokenizer_flavor", "clip"))).encode(text) if text else []
        return init_vectors(_token_table(encoder), ids, int(num_vectors))

    if clip_l is not None and open_clip is not None:  # SDXL: one vector set per text encoder
        return {"clip_l": vectors(clip_l), "clip_g": vectors(open_clip)}
    return {
        "string_to_token": dict(A1111_STRING_TO_TOKEN),
        "string_to_param": {"*": vectors(clip_l if clip_l is not None else open_clip)},
        "name": name,
        "step": 0,
        "sd_checkpoint": model.checkpoint.shorthash,
        "sd_checkpoint_name": model.checkpoint.model_name,
    }


def create_embedding(model: StableDiffusionModel, embeddings_dir: str | Path, name: str, *,
                     num_vectors_per_token: int = 1, init_text: str = "*", overwrite_old: bool = False) -> Path:
    """Write ``<embeddings_dir>/<name>.pt`` initialised from ``model``'s token embeddings; returns the path."""
    cleaned = clean_name(name)
    path = _target(Path(embeddings_dir), cleaned, overwrite_old)
    return atomic_torch_save(embedding_data(model, cleaned, num_vectors_per_token, init_text), path)


# ----------------------------------------------------------------------------------------------- hypernetworks
def parse_structure(value: str | Iterable[float] | None, what: str) -> list[float]:
    """``"1, 2, 1"`` (or a list) as floats; CreateError naming ``what`` for anything else."""
    if value is None:
        return []
    try:
        items = [float(x) for x in (value.split(",") if isinstance(value, str) else value) if str(x).strip()]
    except ValueError:
        raise CreateError(f"{what} must be comma-separated numbers, got {value!r}") from None
    return items


def _initialise(module: HypernetworkModule, weight_init: str, activation: str) -> None:
    for layer in module.linear:
        if not isinstance(layer, (nn.Linear, nn.LayerNorm)):
            continue
        weight, bias = layer.weight.data, layer.bias.data
        if weight_init == "Normal" or isinstance(layer, nn.LayerNorm):
            nn.init.normal_(weight, mean=0.0, std=0.01)
            nn.init.zeros_(bias)
            continue
        leaky = activation == "leakyrelu"
        if weight_init == "XavierUniform":
            nn.init.xavier_uniform_(weight)
        elif weight_init == "XavierNormal":
            nn.init.xavier_normal_(weight)
        elif weight_init == "KaimingUniform":
            nn.init.kaiming_uniform_(weight, nonlinearity="leaky_relu" if leaky else "relu")
        else:
            nn.init.kaiming_normal_(weight, nonlinearity="leaky_relu" if leaky else "relu")
        nn.init.zeros_(bias)


def hypernetwork_data(name: str, enable_sizes: Iterable[int | str], layer_structure: str | Sequence[float] | None,
                      activation_func: str, weight_init: str, add_layer_norm: bool, use_dropout: bool,
                      dropout_structure: str | Sequence[float] | None) -> dict[Any, Any]:
    """The dict saved for a new hypernetwork (format and validation in the module docstring)."""
    try:
        sizes = sorted({int(s) for s in enable_sizes})
    except (TypeError, ValueError):
        raise CreateError(f"Modules (enable_sizes) must be whole numbers, got {enable_sizes!r}") from None
    if not sizes or any(s <= 0 for s in sizes):
        raise CreateError("Choose at least one module size (e.g. 768, 320, 640, 1280)")
    layers = parse_structure(layer_structure, "Layer structure") or [1.0, 2.0, 1.0]
    if len(layers) < 2 or layers[0] != 1 or layers[-1] != 1 or any(x <= 0 for x in layers):
        raise CreateError(f"Layer structure {layers} must start and end with 1 (e.g. 1, 2, 1)")
    dropout = parse_structure(dropout_structure, "Dropout structure") if use_dropout else []
    if not use_dropout or not dropout:
        dropout = [0.0] * len(layers)
    if len(dropout) != len(layers) or dropout[0] != 0 or dropout[-1] != 0 or any(not 0 <= p < 1 for p in dropout):
        raise CreateError(f"Dropout structure {dropout} must have {len(layers)} values in [0, 1) starting and "
                          "ending with 0 (e.g. 0, 0.1, 0)")
    activation = (activation_func or "linear").lower()
    if activation not in activation_names():
        raise CreateError(f"Unknown activation function {activation_func!r}")
    if weight_init not in WEIGHT_INITS:
        raise CreateError(f"Weight initialization must be one of {', '.join(WEIGHT_INITS)}")
    data: dict[Any, Any] = {}
    for size in sizes:
        pair = []
        for _ in "kv":
            try:
                module = HypernetworkModule(size, layers, activation, bool(add_layer_norm), False, dropout)
            except ValueError as error:
                raise CreateError(str(error)) from None
            _initialise(module, weight_init, activation)
            pair.append(dict(module.state_dict()))
        data[size] = (pair[0], pair[1])
    data.update({
        "step": 0, "name": name, "layer_structure": layers, "activation_func": activation,
        "is_layer_norm": bool(add_layer_norm), "weight_initialization": weight_init, "sd_checkpoint": None,
        "sd_checkpoint_name": None, "activate_output": False, "use_dropout": bool(use_dropout),
        "dropout_structure": dropout, "last_layer_dropout": dropout[-2] != 0 if len(dropout) > 1 else False,
        "optional_info": None,
    })
    return data


def create_hypernetwork(hypernetwork_dir: str | Path, name: str, *,
                        enable_sizes: Iterable[int | str] = DEFAULT_HYPERNETWORK_SIZES, overwrite_old: bool = False,
                        layer_structure: str | Sequence[float] | None = "1, 2, 1", activation_func: str = "linear",
                        weight_init: str = "Normal", add_layer_norm: bool = False, use_dropout: bool = False,
                        dropout_structure: str | Sequence[float] | None = "0, 0, 0") -> Path:
    """Write ``<hypernetwork_dir>/<name>.pt``; returns the path."""
    cleaned = clean_name(name)
    path = _target(Path(hypernetwork_dir), cleaned, overwrite_old)
    data = hypernetwork_data(cleaned, enable_sizes, layer_structure, activation_func, weight_init, add_layer_norm,
                             use_dropout, dropout_structure)
    return atomic_torch_save(data, path)
