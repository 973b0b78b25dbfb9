"""Checkpoint discovery and naming, as A1111's ``sd_models.CheckpointInfo`` / ``list_models`` present them.

* Discovery: recursive listing of ``models/Stable-diffusion`` and ``--ckpt-dir`` for ``.ckpt`` and ``.safetensors``,
  skipping ``*.vae.ckpt`` / ``*.vae.safetensors``; the ``--ckpt`` file is added and becomes the default selection;
  natural sort.
* Names: ``name`` = path relative to the model dir (subfolders kept, ``/`` separators); ``model_name`` = ``name``
  with ``/``→``_`` and no extension; ``name_for_extra`` = file stem; ``title`` = ``"name [shorthash]"`` once the
  sha256 is known, else ``name``; ``short_title`` = ``"stem [shorthash]"``.
* Lookup accepts any id: legacy 8-hex hash, ``model_name``, title, name, stem, ``name [hash]``, shorthash, sha256;
  then A1111's "closest match": the shortest title containing the search string (first as given, then with a
  trailing ``[hash]`` removed).
* sha256 is taken from the hash cache only (never computed while listing); the loader/manager fills it in in the
  background and titles update when it arrives.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from modules.models import hashes, sidecars

CHECKPOINT_SUFFIXES = (".ckpt", ".safetensors")
VAE_CHECKPOINT_SUFFIXES = (".vae.ckpt", ".vae.safetensors")


def natural_sort_key(text: str) -> list[int | str]:
    """Sort key that orders ``model2`` before ``model10`` (A1111 ``natural_sort_key``), case-insensitive."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", text)]


@dataclass
class CheckpointInfo:
    """One checkpoint file and every name A1111 shows or accepts for it."""

    filename: Path
    name: str
    sha256: str | None = None
    config_path: Path | None = None
    vae_sidecars: list[Path] = field(default_factory=list)
    _legacy_hash: str | None = field(default=None, repr=False)

    @classmethod
    def from_path(
        cls, filename: str | os.PathLike[str], roots: Iterable[str | os.PathLike[str]] = (),
        hash_cache: hashes.HashCache | None = None,
    ) -> CheckpointInfo:
        """Describe ``filename``; ``name`` is relative to the first root containing it, else the bare file name."""
        path = Path(filename).absolute()
        name = path.name
        for root in roots:
            root_path = Path(root).absolute()
            if path.is_relative_to(root_path):
                name = path.relative_to(root_path).as_posix()
                break
        info = cls(path, name, config_path=sidecars.find_config_sidecar(path),
                   vae_sidecars=sidecars.find_vae_sidecars(path))
        if hash_cache is not None:
            info.sha256 = hash_cache.sha256(path, info.hash_cache_key, compute=False)
        return info

    @property
    def name_for_extra(self) -> str:
        """File stem, used by the extra-networks cards."""
        return Path(self.name).stem

    @property
    def model_name(self) -> str:
        """``name`` without extension and with ``/`` replaced by ``_`` (A1111 ``model_name``)."""
        return os.path.splitext(self.name.replace("/", "_").replace("\\", "_"))[0]

    @property
    def hash_cache_key(self) -> str:
        """Key of this checkpoint's sha256 in the hash cache (A1111: ``checkpoint/<name>``)."""
        return f"checkpoint/{self.name}"

    @property
    def shorthash(self) -> str | None:
        """First 10 hex digits of the sha256: the ``Model hash`` written to infotext."""
        return hashes.shorthash(self.sha256)

    @property
    def legacy_hash(self) -> str:
        """The old 8-hex model hash (cheap: 64 KiB read), computed on first use."""
        if self._legacy_hash is None:
            self._legacy_hash = hashes.legacy_model_hash(self.filename)
        return self._legacy_hash

    @property
    def title(self) -> str:
        """``name [shorthash]`` (``name`` while the sha256 is unknown): the checkpoint dropdown's entries."""
        return self.name if self.shorthash is None else f"{self.name} [{self.shorthash}]"

    @property
    def short_title(self) -> str:
        """``stem [shorthash]`` (``stem`` while unhashed)."""
        return self.name_for_extra if self.shorthash is None else f"{self.name_for_extra} [{self.shorthash}]"

    def ids(self) -> list[str]:
        """Every string A1111 accepts as an exact reference to this checkpoint."""
        ids = [self.legacy_hash, self.model_name, self.title, self.name, self.name_for_extra,
               f"{self.name} [{self.legacy_hash}]"]
        if self.sha256:
            ids += [self.sha256, self.shorthash or "", self.short_title, f"{self.name} [{self.sha256}]"]
        return ids

    def read_metadata(self) -> dict[str, str]:
        """safetensors ``__metadata__`` (empty for ``.ckpt``)."""
        from modules.models.state_dict_io import read_safetensors_metadata

        if self.filename.suffix.lower() != ".safetensors":
            return {}
        return read_safetensors_metadata(self.filename)


def _walk(root: Path, include_hidden: bool) -> Iterator[Path]:
    for directory, subdirs, files in os.walk(root, followlinks=True):
        if not include_hidden:
            subdirs[:] = [d for d in subdirs if not d.startswith(".")]
        for file in files:
            if include_hidden or not file.startswith("."):
                yield Path(directory) / file


def is_checkpoint_file(path: str | os.PathLike[str]) -> bool:
    """``.ckpt``/``.safetensors`` but not a VAE sidecar (``*.vae.ckpt``/``*.vae.safetensors``)."""
    lower = os.fspath(path).lower()
    return lower.endswith(CHECKPOINT_SUFFIXES) and not lower.endswith(VAE_CHECKPOINT_SUFFIXES)


class CheckpointRegistry:
    """The list of known checkpoints, refreshed from disk on demand (``/sdapi/v1/refresh-checkpoints``).

    ``model_dir`` is ``models/Stable-diffusion``; ``ckpt_dir`` is ``--ckpt-dir`` (both scanned); ``ckpt_file`` is
    ``--ckpt`` (added and selected as default when it exists). ``include_hidden`` mirrors A1111's
    ``list_hidden_files`` setting (default True).
    """

    def __init__(
        self,
        model_dir: str | os.PathLike[str],
        ckpt_dir: str | os.PathLike[str] | None = None,
        ckpt_file: str | os.PathLike[str] | None = None,
        hash_cache: hashes.HashCache | None = None,
        *,
        include_hidden: bool = True,
    ) -> None:
        self.model_dir = Path(model_dir)
        self.ckpt_dir = Path(ckpt_dir) if ckpt_dir is not None else None
        self.ckpt_file = Path(ckpt_file) if ckpt_file is not None else None
        self.hash_cache = hash_cache
        self.include_hidden = include_hidden
        self._lock = threading.Lock()
        self._items: list[CheckpointInfo] = []
        self._selected: CheckpointInfo | None = None
        self.refresh()

    @property
    def roots(self) -> list[Path]:
        """Directories scanned, in name-resolution order."""
        return [root for root in (self.model_dir, self.ckpt_dir) if root is not None]

    def refresh(self) -> list[CheckpointInfo]:
        """Rescan the directories; previously known sha256 values are kept for unchanged paths."""
        known = {info.filename: info for info in self._items}
        found: dict[Path, CheckpointInfo] = {}
        for root in self.roots:
            if not root.is_dir():
                continue
            for path in _walk(root, self.include_hidden):
                if is_checkpoint_file(path) and path.absolute() not in found:
                    found[path.absolute()] = self._describe(path, known)
        selected: CheckpointInfo | None = None
        if self.ckpt_file is not None and self.ckpt_file.is_file():
            selected = found.get(self.ckpt_file.absolute()) or self._describe(self.ckpt_file, known)
            found[selected.filename] = selected
        items = sorted(found.values(), key=lambda info: natural_sort_key(info.name))
        with self._lock:
            self._items = items
            self._selected = selected
        return list(items)

    def _describe(self, path: Path, known: dict[Path, CheckpointInfo]) -> CheckpointInfo:
        info = CheckpointInfo.from_path(path, self.roots, self.hash_cache)
        previous = known.get(info.filename)
        if previous is not None and info.sha256 is None and self.hash_cache is None:
            info.sha256 = previous.sha256
        return info

    def __iter__(self) -> Iterator[CheckpointInfo]:
        with self._lock:
            return iter(list(self._items))

    def __len__(self) -> int:
        return len(self._items)

    def titles(self) -> list[str]:
        """Dropdown entries in display order."""
        return [info.title for info in self]

    @property
    def default(self) -> CheckpointInfo | None:
        """The ``--ckpt`` file when given and present, else the first checkpoint in sort order."""
        with self._lock:
            return self._selected or (self._items[0] if self._items else None)

    def get(self, identifier: str) -> CheckpointInfo | None:
        """Exact lookup by any alias in :meth:`CheckpointInfo.ids` (A1111 ``checkpoint_aliases``)."""
        for info in self:
            if identifier in info.ids():
                return info
        return None

    def get_closest(self, search: str) -> CheckpointInfo | None:
        """Exact alias, else the shortest title containing ``search`` (retrying without a trailing ``[hash]``).

        This is A1111's ``get_closet_checkpoint_match``, used when infotext or the API names a checkpoint.
        """
        exact = self.get(search)
        if exact is not None:
            return exact
        for needle in (search, re.sub(r"\s*\[[^\]]+\]\s*$", "", search)):
            if not needle:
                continue
            matches = sorted((info for info in self if needle in info.title), key=lambda info: len(info.title))
            if matches:
                return matches[0]
        return None
