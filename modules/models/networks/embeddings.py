"""Textual-inversion embeddings: file formats, the embedding database and the token lookup the chunker uses.

File formats (A1111 ``modules/textual_inversion/textual_inversion.py`` ``load_from_file`` /
``create_embedding_from_data``; a1111-features.md §11.4):

* ``.pt`` / ``.bin`` (torch pickles, read through the safe unpickler) and ``.safetensors``:
  - A1111: ``{"string_to_token": {"*": 265}, "string_to_param": {"*": tensor[n, dim]}, "name", "step",
    "sd_checkpoint", "sd_checkpoint_name"}``; exactly one entry in ``string_to_param``;
  - SDXL: ``{"clip_l": [n, 768], "clip_g": [n, 1280]}``; its shape counts as 768 + 1280 = 2048;
  - diffusers "concept" ``.bin`` ``{token: tensor}`` or safetensors with one tensor (e.g. ``emb_params``): exactly
    one key; a ``[dim]`` tensor becomes ``[1, dim]``.
* images ``.png`` / ``.webp`` / ``.jxl`` / ``.avif`` (not ``*.preview.*``) carrying the data
  (:mod:`.embedding_images`); the stored ``name`` then replaces the file stem.

The trigger word is the file stem (or that stored name). An embedding whose shape differs from the loaded text
encoder's (768 SD1, 1024 SD2, 2048 SDXL) is listed as *skipped* (A1111 ``expected_shape``). Words are matched by
token ids: the name is tokenized (without BOS/EOS) and, at any prompt position, the longest registered id sequence
that matches there wins (A1111 ``find_embedding_at_position``); its vectors replace those tokens.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import Tensor

from modules.models.hashes import HashCache
from modules.models.networks.embedding_images import read_embedding_image
from modules.models.networks.hashes import embedding_hash, shorthash
from modules.models.safe_unpickle import CheckpointLoadError, load_torch_file
from modules.models.state_dict_io import read_state_dict

log = logging.getLogger(__name__)

TORCH_EXTENSIONS = (".pt", ".bin")
IMAGE_EXTENSIONS = (".png", ".webp", ".jxl", ".avif")
SDXL_KEYS = ("clip_l", "clip_g")

Tokenize = Callable[[str], Sequence[int]]
"""Text -> token ids without BOS/EOS (the loaded model's tokenizer)."""


class EmbeddingLoadError(ValueError):
    """An embedding file could not be read; the message names the file and the problem."""


@dataclass
class Embedding:
    """One textual-inversion embedding (A1111 ``Embedding``)."""

    name: str
    vec: Tensor | dict[str, Tensor]
    vectors: int
    shape: int
    step: int | None = None
    sd_checkpoint: str | None = None
    sd_checkpoint_name: str | None = None
    path: Path | None = None
    hash: str | None = None

    def vectors_for(self, encoder: str | None = None) -> Tensor:
        """``[vectors, dim]`` fp32 for one text encoder: ``clip_l`` / ``clip_g`` for SDXL embeddings, else the one."""
        if isinstance(self.vec, dict):
            if encoder not in self.vec:
                raise KeyError(f"embedding {self.name} has vectors for {sorted(self.vec)}, not {encoder!r}")
            return self.vec[encoder]
        return self.vec

    @property
    def shorthash(self) -> str:
        """First 12 hex digits of the file sha256 ("" until hashed)."""
        return shorthash(self.hash)


def _as_matrix(tensor: Tensor) -> Tensor:
    vec = tensor.detach().to(torch.float32)
    return vec.unsqueeze(0) if vec.dim() == 1 else vec


def embedding_from_data(data: Any, name: str, path: Path | None = None) -> Embedding:
    """Build an :class:`Embedding` from a loaded file's data (formats in the module docstring)."""
    where = str(path) if path is not None else name
    if not isinstance(data, Mapping):
        raise EmbeddingLoadError(f"{where}: expected a dict, found {type(data).__name__}")
    if "string_to_param" in data:
        params = data["string_to_param"]
        params = getattr(params, "_parameters", params)  # torch.nn.ParameterDict from old torch versions
        if not isinstance(params, Mapping) or len(params) != 1:
            raise EmbeddingLoadError(f"{where}: embedding file has multiple terms in it (string_to_param)")
        vec: Tensor | dict[str, Tensor] = _as_matrix(next(iter(params.values())))
        assert isinstance(vec, Tensor)
        shape, vectors = int(vec.shape[-1]), int(vec.shape[0])
    elif all(isinstance(data.get(key), Tensor) for key in SDXL_KEYS):
        vec = {key: _as_matrix(data[key]) for key in SDXL_KEYS}
        shape = int(vec["clip_l"].shape[-1] + vec["clip_g"].shape[-1])
        vectors = int(vec["clip_g"].shape[0])
        if vec["clip_l"].shape[0] != vectors:
            raise EmbeddingLoadError(f"{where}: clip_l has {vec['clip_l'].shape[0]} vectors, clip_g {vectors}")
    elif data and isinstance(next(iter(data.values())), Tensor):
        if len(data) != 1:
            raise EmbeddingLoadError(f"{where}: embedding file has multiple terms in it ({', '.join(map(str, data))})")
        vec = _as_matrix(next(iter(data.values())))
        shape, vectors = int(vec.shape[-1]), int(vec.shape[0])
    else:
        raise EmbeddingLoadError(f"{where}: not a textual inversion embedding nor a diffusers concept")
    step = data.get("step")
    return Embedding(
        name=name, vec=vec, vectors=vectors, shape=shape,
        step=int(step) if isinstance(step, (int, float)) else None,
        sd_checkpoint=_str_or_none(data.get("sd_checkpoint")),
        sd_checkpoint_name=_str_or_none(data.get("sd_checkpoint_name")),
        path=path,
    )


def _str_or_none(value: Any) -> str | None:
    return str(value) if isinstance(value, (str, int)) else None


def is_embedding_candidate(path: Path) -> bool:
    """Files the loader looks at (skipping ``*.preview.<image>`` card images)."""
    suffix = path.suffix.lower()
    if suffix in IMAGE_EXTENSIONS:
        return not path.stem.lower().endswith(".preview")
    return suffix in (*TORCH_EXTENSIONS, ".safetensors")


def load_embedding_file(path: str | os.PathLike[str], *, safe_unpickle: bool = True) -> Embedding | None:
    """Read one embedding file; None for images that carry no embedding. Raises :class:`EmbeddingLoadError`."""
    path = Path(path)
    suffix = path.suffix.lower()
    name = path.stem
    data: Any
    try:
        if suffix in IMAGE_EXTENSIONS:
            with Image.open(path) as image:
                image.load()
                data = read_embedding_image(image)
            if data is None:
                return None
            stored = data.get("name") if isinstance(data, dict) else None
            name = stored if isinstance(stored, str) and stored else name
        elif suffix == ".safetensors":
            data = read_state_dict(path)
        elif suffix in TORCH_EXTENSIONS:
            data = load_torch_file(path, safe=safe_unpickle)
        else:
            raise EmbeddingLoadError(f"{path}: not an embedding file type")
    except EmbeddingLoadError:
        raise
    except CheckpointLoadError as error:
        raise EmbeddingLoadError(str(error)) from None
    except Exception as error:  # pickles and images fail in many ways
        raise EmbeddingLoadError(f"{path}: could not be read ({type(error).__name__}: {error})") from None
    return embedding_from_data(data, name, path)


@dataclass
class EmbeddingDatabase:
    """Embeddings from one or more dirs, keyed by trigger word, with the chunker's token lookup.

    ``tokenize`` and ``expected_shape`` describe the loaded model (``expected_shape=None`` accepts every shape);
    after a model change call :meth:`set_model`, which forces the next :meth:`load` to reload.
    """

    tokenize: Tokenize | None = None
    expected_shape: int | None = None
    dirs: list[Path] = field(default_factory=list)
    hash_cache: HashCache | None = None
    safe_unpickle: bool = True
    word_embeddings: dict[str, Embedding] = field(default_factory=dict)
    skipped: dict[str, Embedding] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    _ids_lookup: dict[int, list[tuple[tuple[int, ...], Embedding]]] = field(default_factory=dict, init=False)
    _signature: tuple[Any, ...] | None = field(default=None, init=False)

    def add_dir(self, path: str | os.PathLike[str]) -> None:
        """Register another directory to load from (A1111 ``add_embedding_dir``)."""
        if Path(path) not in self.dirs:
            self.dirs.append(Path(path))
            self._signature = None

    def set_model(self, tokenize: Tokenize, expected_shape: int | None) -> None:
        """Adopt a new model's tokenizer and embedding width; the next :meth:`load` reloads everything."""
        self.tokenize, self.expected_shape, self._signature = tokenize, expected_shape, None

    def _files(self) -> list[Path]:
        files: list[Path] = []
        for root in self.dirs:
            if root.is_dir():
                for dirpath, _dirnames, filenames in os.walk(root, followlinks=True):
                    files.extend(Path(dirpath) / f for f in filenames if is_embedding_candidate(Path(f)))
        return sorted(files)

    def load(self, force: bool = False) -> bool:
        """(Re)load every embedding if any file changed (or ``force``); returns True when it reloaded."""
        files = self._files()
        signature = tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files if p.exists())
        if not force and signature == self._signature:
            return False
        self._signature = signature
        self.word_embeddings.clear()
        self.skipped.clear()
        self.errors.clear()
        self._ids_lookup.clear()
        for path in files:
            if path.stat().st_size == 0:
                continue
            try:
                embedding = load_embedding_file(path, safe_unpickle=self.safe_unpickle)
            except EmbeddingLoadError as error:
                self.errors[str(path)] = str(error)
                log.warning("Error loading embedding %s: %s", path.name, error)
                continue
            if embedding is None:
                continue
            if self.expected_shape is not None and embedding.shape != self.expected_shape:
                self.skipped[embedding.name] = embedding
                continue
            self.register(embedding)
        ordered = sorted(self.word_embeddings.values(), key=lambda e: e.name.lower())
        self.word_embeddings = {e.name: e for e in ordered}
        if self.skipped:
            log.info("Textual inversion embeddings skipped (%d, made for another model): %s",
                     len(self.skipped), ", ".join(self.skipped))
        return True

    def register(self, embedding: Embedding) -> None:
        """Make ``embedding`` matchable by its name's token ids (a later one with the same name replaces it)."""
        if self.tokenize is None:
            raise RuntimeError("EmbeddingDatabase needs a tokenizer before embeddings can be registered")
        ids = tuple(int(i) for i in self.tokenize(embedding.name))
        if not ids:
            self.errors[embedding.name] = f"embedding name {embedding.name!r} produces no tokens"
            return
        self.unregister(embedding.name)
        entries = self._ids_lookup.setdefault(ids[0], [])
        entries.append((ids, embedding))
        entries.sort(key=lambda entry: len(entry[0]), reverse=True)
        self.word_embeddings[embedding.name] = embedding

    def unregister(self, name: str) -> None:
        """Remove the embedding registered under ``name`` (if any)."""
        if self.word_embeddings.pop(name, None) is None:
            return
        for first, entries in list(self._ids_lookup.items()):
            kept = [entry for entry in entries if entry[1].name != name]
            if kept:
                self._ids_lookup[first] = kept
            else:
                del self._ids_lookup[first]

    def lookup(self, token_ids: Sequence[int], position: int) -> tuple[Embedding, int] | None:
        """The longest embedding whose name's ids start at ``token_ids[position]``, with its token span length."""
        candidates = self._ids_lookup.get(int(token_ids[position]))
        if not candidates:
            return None
        for ids, embedding in candidates:
            if tuple(token_ids[position:position + len(ids)]) == ids:
                return embedding, len(ids)
        return None

    def get(self, name: str) -> Embedding | None:
        """A loaded (not skipped) embedding by name."""
        return self.word_embeddings.get(name)

    def ensure_hash(self, embedding: Embedding) -> str:
        """The embedding file's sha256 (computed once, cached in ``hash_cache`` when given)."""
        if not embedding.hash and embedding.path is not None:
            embedding.hash = embedding_hash(embedding.path, cache=self.hash_cache, name=embedding.name)
        return embedding.hash or ""

    def find_by_shorthash(self, short: str) -> Embedding | None:
        """A loaded embedding whose 12-hex shorthash is ``short``."""
        for embedding in self.word_embeddings.values():
            if self.ensure_hash(embedding)[: len(short)] == short:
                return embedding
        return None

    def summary(self) -> dict[str, dict[str, dict[str, Any]]]:
        """``{"loaded": {...}, "skipped": {...}}`` with step, checkpoint, shape and vector count per embedding
        (the layout of A1111's ``GET /sdapi/v1/embeddings``)."""

        def describe(items: Iterable[Embedding]) -> dict[str, dict[str, Any]]:
            return {
                e.name: {"step": e.step, "sd_checkpoint": e.sd_checkpoint,
                         "sd_checkpoint_name": e.sd_checkpoint_name, "shape": e.shape, "vectors": e.vectors}
                for e in items
            }

        return {"loaded": describe(self.word_embeddings.values()), "skipped": describe(self.skipped.values())}
