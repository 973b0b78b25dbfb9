"""Allow-list unpickler for ``.ckpt`` / ``.pt`` / ``.bin`` torch files (A1111 ``modules/safe.py`` behaviour).

A pickle can name any importable callable and call it while loading, so a downloaded ``.ckpt`` can run code.
A1111 refuses such files: every global the pickle references must be on an allow-list, and a zip-format file may
only contain the members ``torch.save`` writes. We do the same with our own :class:`RestrictedUnpickler`, handed
to :func:`torch.load` as its ``pickle_module`` (torch's documented extension point), so torch still handles the zip
container, storages and ``mmap`` while every global goes through :meth:`RestrictedUnpickler.find_class`.

Why not ``torch.load(weights_only=True)``: it would also be safe, but its allow-list is process-global
(``torch.serialization.add_safe_globals``), which is mutable shared state across threads, and its errors do not
name the file. Resolving globals ourselves gives A1111's exact allow-list and a message naming file and global.

Allowed globals (A1111's list, plus what current torch writes for the same objects): ``collections.OrderedDict``;
torch's tensor/parameter rebuild functions; typed storages (``torch.FloatStorage``…, mapped by torch itself);
torch dtypes and ``torch.Size``; ``torch.nn.modules.container.ParameterDict``; numpy ``scalar``/``_reconstruct``/
``dtype``/``ndarray`` (old and new numpy module paths); ``_codecs.encode``; ``builtins.set``; and
``pytorch_lightning...ModelCheckpoint``, which original SD 1.x checkpoints contain and which is replaced by an inert
placeholder class (lightning is never imported). Anything else raises :class:`UnsafeCheckpointError` *before* it is
called: the GLOBAL opcode is resolved before any REDUCE that would call it, so nothing executes.

``--disable-safe-unpickle`` → :func:`load_torch_file` with ``safe=False``: plain ``torch.load`` after a loud warning.
"""

from __future__ import annotations

import collections
import importlib
import logging
import os
import pickle
import re
import zipfile
from typing import Any, BinaryIO, ClassVar

import torch

log = logging.getLogger(__name__)

ZIP_MEMBER_PATTERN = re.compile(
    r"^([^/]+)/((data/\d+)|version|byteorder|\.format_version|\.storage_alignment|\.data/serialization_id|data\.pkl)$"
)
"""Members ``torch.save`` writes (A1111's pattern plus ``.format_version``/``.storage_alignment`` of newer torch)."""


class CheckpointLoadError(Exception):
    """A model file could not be read; the message names the file and what was wrong.

    Defined here (the lowest reader module) so that :class:`UnsafeCheckpointError` can derive from it and callers
    catch one type; :mod:`modules.models.state_dict_io` re-exports it.
    """

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(f"Could not load {self.path}: {reason}")


class UnsafeCheckpointError(CheckpointLoadError):
    """A pickle-based model file references a global outside the allow-list (or has unexpected zip members)."""

    def __init__(self, path: str | os.PathLike[str], offending: str) -> None:
        self.offending = offending
        super().__init__(
            path,
            f"refused to unpickle: {offending}. The file may contain malicious code, so nothing in it was run. "
            "If you trust this file, start the web UI with --disable-safe-unpickle to load it anyway.",
        )


class _ForbiddenGlobal(pickle.UnpicklingError):
    """Raised inside the unpickler; converted to :class:`UnsafeCheckpointError` with the file name."""

    def __init__(self, module: str, name: str) -> None:
        self.module = module
        self.name = name
        super().__init__(f"global '{module}/{name}' is forbidden")


class LightningCheckpointPlaceholder:
    """Inert stand-in for ``pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint`` (SD 1.x ``callbacks``)."""

    def __setstate__(self, state: Any) -> None:
        self.state = state


def _allowed_globals() -> dict[tuple[str, str], Any]:
    """Build the allow-list; resolved lazily so importing this module never imports numpy."""
    import numpy

    allowed: dict[tuple[str, str], Any] = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch._utils", "_rebuild_tensor"): torch._utils._rebuild_tensor,
        ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
        ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
        ("torch._utils", "_rebuild_device_tensor_from_numpy"): torch._utils._rebuild_device_tensor_from_numpy,
        ("torch", "Size"): torch.Size,
        ("torch.nn.modules.container", "ParameterDict"): torch.nn.modules.container.ParameterDict,
        ("_codecs", "encode"): __import__("_codecs").encode,
        ("builtins", "set"): set,
        ("__builtin__", "set"): set,
        ("numpy", "dtype"): numpy.dtype,
        ("numpy", "ndarray"): numpy.ndarray,
        ("pytorch_lightning.callbacks.model_checkpoint", "ModelCheckpoint"): LightningCheckpointPlaceholder,
        ("pytorch_lightning.callbacks", "ModelCheckpoint"): LightningCheckpointPlaceholder,
    }
    rebuild_parameter_with_state = getattr(torch._utils, "_rebuild_parameter_with_state", None)
    if rebuild_parameter_with_state is not None:
        allowed[("torch._utils", "_rebuild_parameter_with_state")] = rebuild_parameter_with_state
    for dtype_name in ("float32", "float16", "bfloat16", "float64", "int64", "int32", "int16", "int8", "uint8", "bool"):
        allowed[("torch", dtype_name)] = getattr(torch, dtype_name)
    for storage in ("Float", "Half", "BFloat16", "Double", "Int", "Long", "Short", "Char", "Byte", "Bool"):
        allowed[("torch", f"{storage}Storage")] = getattr(torch, f"{storage}Storage")
    multiarray = importlib.import_module("numpy._core.multiarray" if hasattr(numpy, "_core") else "numpy.core.multiarray")
    for module_name in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(module_name, "scalar")] = multiarray.scalar
        allowed[(module_name, "_reconstruct")] = multiarray._reconstruct
    return allowed


_TRUSTED_ALLOWED = _allowed_globals()
"""The allow-list resolved when this module is imported (at start-up, before any script or extension runs), so a
plugin that later replaces `torch._utils._rebuild_tensor_v2` or a numpy constructor cannot smuggle its function
into the list."""
_trusted_torch_load = torch.load
"""`torch.load` as it was at start-up: an extension that assigns `torch.load = …` (to patch model loading) does
not turn this loader into a pass-through."""
_trusted_is_zipfile = zipfile.is_zipfile


class RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` that resolves only allow-listed globals (A1111 ``safe.RestrictedUnpickler``)."""

    _allowed: ClassVar[dict[tuple[str, str], Any]] = _TRUSTED_ALLOWED

    def find_class(self, module: str, name: str) -> Any:
        found = _TRUSTED_ALLOWED.get((module, name))
        if found is None:
            raise _ForbiddenGlobal(module, name)
        return found


class _RestrictedPickleModule:
    """The ``pickle_module`` interface ``torch.load`` uses: ``Unpickler``, ``load`` and ``__name__``."""

    __name__ = "restricted_pickle"
    Unpickler = RestrictedUnpickler

    @staticmethod
    def load(file: BinaryIO, **kwargs: Any) -> Any:
        return RestrictedUnpickler(file, **kwargs).load()


def check_zip_members(path: str | os.PathLike[str]) -> None:
    """Refuse zip files with members ``torch.save`` does not write, or without exactly one ``data.pkl`` (A1111)."""
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    for member in names:
        if not ZIP_MEMBER_PATTERN.match(member):
            raise UnsafeCheckpointError(path, f"unexpected file '{member}' inside the archive")
    pickles = [member for member in names if member.endswith("/data.pkl")]
    if len(pickles) != 1:
        raise UnsafeCheckpointError(path, f"expected exactly one data.pkl inside the archive, found {len(pickles)}")


def load_torch_file(path: str | os.PathLike[str], *, map_location: str | torch.device = "cpu", safe: bool = True) -> Any:
    """Load a torch pickle file through the allow-list (or plainly when ``safe`` is false, for --disable-safe-unpickle).

    Zip-format files are memory-mapped (``mmap=True``) so tensors are paged in on use rather than read up front.
    Raises :class:`UnsafeCheckpointError` for forbidden globals; other unpickling problems propagate to the caller
    (:mod:`modules.models.state_dict_io` turns them into ``CheckpointLoadError``).
    """
    is_zip = _trusted_is_zipfile(path)
    if not safe:
        log.warning(
            "%s: loading WITHOUT the safe unpickler (--disable-safe-unpickle): any code inside this file will run.",
            os.fspath(path),
        )
        return _trusted_torch_load(path, map_location=map_location, weights_only=False, mmap=is_zip)
    if is_zip:
        check_zip_members(path)
    try:
        return _trusted_torch_load(
            path, map_location=map_location, pickle_module=_RestrictedPickleModule, weights_only=False, mmap=is_zip
        )
    except _ForbiddenGlobal as error:
        raise UnsafeCheckpointError(path, f"global '{error.module}/{error.name}' is forbidden") from None
