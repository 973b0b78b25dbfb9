"""Reading checkpoint files into state dicts, and reading only their shapes for architecture detection.

* ``.safetensors`` is read through ``safetensors`` with its default mmap backend: tensors are views of the mapped
  file, so nothing is copied until a tensor is converted or moved (A1111 loads safetensors the same way unless
  ``disable_mmap_load_safetensors`` is set).
* ``.ckpt`` / ``.pt`` / ``.pth`` / ``.bin`` go through the allow-list unpickler (:mod:`.safe_unpickle`), or plain
  ``torch.load`` with ``--disable-safe-unpickle``.
* Like A1111's ``get_state_dict_from_checkpoint``, a ``state_dict`` wrapper (possibly nested) is unwrapped, non-tensor
  entries (``epoch``, ``global_step``, callbacks) are dropped, and the old SD1 text-encoder key spelling
  ``cond_stage_model.transformer.{embeddings,encoder,final_layer_norm}`` (saved by transformers < 4.x) is normalised
  to ``cond_stage_model.transformer.text_model.…`` — the only rename anywhere; it maps a legacy variant of the same
  LDM layout onto the canonical one (``docs/architecture.md``).
* Every failure — missing file, garbage bytes, truncated file, header that does not match the data, a forbidden
  pickle global — is a :class:`CheckpointLoadError` (forbidden globals: its subclass
  :class:`UnsafeCheckpointError`) whose message names the file.
"""

from __future__ import annotations

import json
import os
import struct
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from modules.models.safe_unpickle import CheckpointLoadError, UnsafeCheckpointError, load_torch_file

__all__ = [
    "CheckpointLoadError",
    "UnsafeCheckpointError",
    "read_safetensors_header",
    "read_safetensors_metadata",
    "read_shapes",
    "read_state_dict",
    "unwrap_state_dict",
]

SAFETENSORS_SUFFIXES = (".safetensors",)
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")
MAX_SAFETENSORS_HEADER = 100 * 1024 * 1024
"""safetensors itself refuses headers above 100 MB; a bigger length field means the file is not safetensors."""

LEGACY_SD1_TEXT_PREFIXES = {
    "cond_stage_model.transformer.embeddings.": "cond_stage_model.transformer.text_model.embeddings.",
    "cond_stage_model.transformer.encoder.": "cond_stage_model.transformer.text_model.encoder.",
    "cond_stage_model.transformer.final_layer_norm.": "cond_stage_model.transformer.text_model.final_layer_norm.",
}


def is_safetensors(path: str | os.PathLike[str]) -> bool:
    """True for ``.safetensors`` files (by extension, as A1111 decides)."""
    return os.fspath(path).lower().endswith(SAFETENSORS_SUFFIXES)


def _require_file(path: Path) -> None:
    if not path.is_file():
        raise CheckpointLoadError(path, "file not found")
    if path.stat().st_size == 0:
        raise CheckpointLoadError(path, "file is empty (0 bytes); the download or copy probably failed")


def read_safetensors_header(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Parse and validate a safetensors header without touching tensor data.

    Checks what a truncated or corrupt file gets wrong: header length within the file, valid JSON, each tensor's
    byte range inside the file and equal to ``prod(shape) * itemsize`` for its dtype.
    """
    path = Path(path)
    _require_file(path)
    size = path.stat().st_size
    with open(path, "rb") as handle:
        prefix = handle.read(8)
        if len(prefix) < 8:
            raise CheckpointLoadError(path, "not a safetensors file (shorter than 8 bytes)")
        (length,) = struct.unpack("<Q", prefix)
        if length > MAX_SAFETENSORS_HEADER or 8 + length > size:
            raise CheckpointLoadError(
                path, f"not a valid safetensors file: header length {length} does not fit in a {size}-byte file "
                "(garbage bytes or a truncated download)"
            )
        raw = handle.read(length)
    try:
        header = json.loads(raw.decode("utf8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise CheckpointLoadError(path, f"not a valid safetensors file: header is not JSON ({error})") from None
    if not isinstance(header, dict):
        raise CheckpointLoadError(path, "not a valid safetensors file: header is not a JSON object")
    data_size = size - 8 - length
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        _validate_header_entry(path, name, entry, data_size)
    return header


_DTYPE_SIZES = {
    "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1,
    "U16": 2, "U32": 4, "U64": 8, "F8_E4M3": 1, "F8_E5M2": 1,
}


def _validate_header_entry(path: Path, name: str, entry: Any, data_size: int) -> None:
    if not isinstance(entry, dict) or not {"dtype", "shape", "data_offsets"} <= entry.keys():
        raise CheckpointLoadError(path, f"tensor '{name}': header entry lacks dtype/shape/data_offsets")
    begin, end = entry["data_offsets"]
    if end > data_size:
        raise CheckpointLoadError(
            path, f"tensor '{name}' ends at byte {end} but the file holds only {data_size} data bytes "
            "(the file is truncated)"
        )
    itemsize = _DTYPE_SIZES.get(entry["dtype"])
    if itemsize is None:
        return  # exotic dtypes (fp4 etc.) are checked by safetensors itself when read
    expected = itemsize
    for dim in entry["shape"]:
        expected *= int(dim)
    if end - begin != expected:
        raise CheckpointLoadError(
            path, f"tensor '{name}': header says shape {tuple(entry['shape'])} {entry['dtype']} ({expected} bytes) "
            f"but its data is {end - begin} bytes"
        )


def read_safetensors_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The ``__metadata__`` strings of a safetensors file (A1111 ``read_metadata_from_safetensors``)."""
    metadata = read_safetensors_header(path).get("__metadata__") or {}
    return {str(k): str(v) for k, v in metadata.items()}


def unwrap_state_dict(loaded: Any, path: str | os.PathLike[str] = "<memory>") -> dict[str, torch.Tensor]:
    """Unwrap ``state_dict`` nesting, keep tensors only and normalise legacy SD1 text-encoder keys (A1111 behaviour)."""
    current = loaded
    while isinstance(current, Mapping) and isinstance(current.get("state_dict"), Mapping):
        current = current["state_dict"]
    if not isinstance(current, Mapping):
        raise CheckpointLoadError(path, f"expected a dict of tensors, found {type(current).__name__}")
    result: dict[str, torch.Tensor] = {}
    for key, value in current.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            continue
        result[_normalise_key(key)] = value
    if not result:
        raise CheckpointLoadError(path, "the file contains no tensors")
    return result


def _normalise_key(key: str) -> str:
    for old, new in LEGACY_SD1_TEXT_PREFIXES.items():
        if key.startswith(old):
            return new + key[len(old):]
    return key


def read_state_dict(
    path: str | os.PathLike[str], device: str | torch.device = "cpu", *, safe_unpickle: bool = True,
    mmap: bool = True,
) -> dict[str, torch.Tensor]:
    """Read every tensor of a checkpoint into a flat ``{key: tensor}`` dict (mmap for safetensors, zero copy).

    ``mmap=False`` (A1111 ``disable_mmap_load_safetensors``) reads a ``.safetensors`` file into memory in one go and
    parses it from there: slower to start and more RAM, but no memory map on the file (network drives, files
    replaced while loaded). Raises :class:`CheckpointLoadError` (naming the file) for anything unreadable and
    :class:`UnsafeCheckpointError` when a pickle references a forbidden global.
    """
    path = Path(path)
    if is_safetensors(path):
        read_safetensors_header(path)
        from safetensors import SafetensorError
        from safetensors.torch import load, load_file

        try:
            if mmap:
                loaded: Any = load_file(path, device=str(device))
            else:
                loaded = {k: v.to(device) for k, v in load(path.read_bytes()).items()}
        except (SafetensorError, OSError, RuntimeError, ValueError) as error:
            raise CheckpointLoadError(path, f"safetensors could not read it ({error})") from None
        return unwrap_state_dict(loaded, path)
    _require_file(path)
    try:
        loaded = load_torch_file(path, map_location=device, safe=safe_unpickle)
    except UnsafeCheckpointError:
        raise
    except (EOFError, zipfile.BadZipFile) as error:
        raise CheckpointLoadError(path, f"the file is truncated or not a torch checkpoint ({error})") from None
    except Exception as error:  # pickle/torch raise many types (UnpicklingError, RuntimeError, KeyError...)
        raise CheckpointLoadError(path, f"not a readable torch checkpoint ({type(error).__name__}: {error})") from None
    return unwrap_state_dict(loaded, path)


def read_shapes(path: str | os.PathLike[str], *, safe_unpickle: bool = True) -> dict[str, tuple[int, ...]]:
    """Key → shape for architecture detection; for safetensors only the JSON header is read.

    Pickle files must be unpickled to learn shapes; zip-format ones are memory-mapped so the tensor data itself is
    not read. The legacy SD1 key rename is applied here too, so detection sees the same keys the loader will.
    """
    path = Path(path)
    if is_safetensors(path):
        header = read_safetensors_header(path)
        return {
            _normalise_key(name): tuple(int(d) for d in entry["shape"])
            for name, entry in header.items()
            if name != "__metadata__"
        }
    return {key: tuple(value.shape) for key, value in read_state_dict(path, safe_unpickle=safe_unpickle).items()}
