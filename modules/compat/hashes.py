"""A1111 `modules.hashes` for extensions: sha256 of model files through the running app's hash cache.

`sha256(filename, title, use_addnet_hash=False)` (computes and caches), `sha256_from_cache(filename, title,
use_addnet_hash=False)` (None when not cached), `calculate_sha256(filename)`, `addnet_hash_safetensors(file)`.
"""

from __future__ import annotations

import os
from typing import Any, BinaryIO

from modules.compat.host import HOST
from modules.models import hashes as model_hashes


def calculate_sha256(filename: str | os.PathLike[str]) -> str:
    return model_hashes.sha256_file(filename)


def _cache() -> model_hashes.HashCache:
    cache: model_hashes.HashCache = HOST.current().models.hasher.cache
    return cache


def sha256(filename: str | os.PathLike[str], title: str, use_addnet_hash: bool = False) -> str | None:
    """The file's sha256 (the addnet hash of its tensors with `use_addnet_hash`), cached under `title`."""
    if use_addnet_hash:
        return model_hashes.addnet_hash_safetensors(filename)
    return _cache().sha256(filename, title, compute=True)


def sha256_from_cache(filename: str | os.PathLike[str], title: str, use_addnet_hash: bool = False) -> str | None:
    """The cached sha256, or None when it was never computed."""
    if use_addnet_hash:
        return None
    return _cache().sha256(filename, title, compute=False)


def addnet_hash_safetensors(file: BinaryIO | str | os.PathLike[str]) -> str:
    """A1111 takes an open file; a path works too."""
    name: Any = getattr(file, "name", file)
    return model_hashes.addnet_hash_safetensors(name)
