"""Reading checkpoint files into state dicts, and reading only their shapes for architecture detection.

* ``.safetensors`` is read through ``safetensors`` with its default mmap backend: tensors are views of the mapped
  file, so nothing is copied until a tensor is converted or moved (A1111 loads safetensors the same way unless
  ``disable_mmap_load_safetensors`` is set).
* With a ``dtype_for`` rule (what the loader passes: each network's dtype by key prefix) the file is mapped by
  :func:`read_safetensors_converted` instead: tensors are converted one by one in file order and the mapped pages of
  each converted tensor are released right after (``madvise(MADV_DONTNEED)``), while a helper thread reads ahead, so
  a load from an fp16 file into fp32/bf16 networks holds the new weights plus one tensor, not the new weights plus
  the whole mapped file, and the disk read overlaps the conversion.
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
import mmap as mmap_module
import os
import struct
import threading
import zipfile
from collections.abc import Callable, Mapping
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


DtypeRule = Callable[[str], "torch.dtype | None"]
"""``key -> dtype`` its floating-point tensor should have after the read, or None to leave it as stored."""

_TORCH_DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "I64": torch.int64,
    "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8, "BOOL": torch.bool,
    "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2,
}
_READ_AHEAD_CHUNK = 16 << 20


def _read_ahead(fd: int, ranges: list[tuple[int, int]], stop: threading.Event) -> None:
    """Pull ``ranges`` of the file into the page cache in file order (``preadv`` into one scratch buffer; the GIL
    is released while the kernel reads), so the disk works while the caller converts what is already read."""
    scratch = bytearray(_READ_AHEAD_CHUNK)
    for begin, end in ranges:
        offset = begin
        while offset < end and not stop.is_set():
            try:
                got = os.preadv(fd, [memoryview(scratch)[: min(_READ_AHEAD_CHUNK, end - offset)]], offset)
            except OSError:
                return
            if got <= 0:
                return
            offset += got


def read_safetensors_converted(path: str | os.PathLike[str], dtype_for: DtypeRule,
                               channels_last: Callable[[str], bool] | None = None) -> dict[str, torch.Tensor]:
    """Map a safetensors file and convert each floating-point tensor to ``dtype_for(key)`` as it is reached.

    Tensors already in their target dtype (or whose rule is None) stay zero-copy views of the private (copy-on-write)
    mapping, like ``safetensors.torch.load_file`` gives. A converted tensor gets memory of its own and the whole
    pages of its byte range are dropped from the mapping at once (``MADV_DONTNEED``), so the resident set never holds
    the file and the converted weights together. 4-D tensors of keys ``channels_last`` accepts are written in
    ``torch.channels_last`` in the same pass (the layout the CPU fast path and ``--opt-channelslast`` would otherwise
    convert them to afterwards, in a second copy). Keys are normalised as by :func:`read_state_dict`. Raises
    :class:`CheckpointLoadError` for an unreadable file; dtypes this reader does not know fall back to safetensors.
    """
    path = Path(path)
    header = read_safetensors_header(path)
    entries = sorted(((name, entry) for name, entry in header.items() if name != "__metadata__"),
                     key=lambda item: int(item[1]["data_offsets"][0]))
    if any(entry["dtype"] not in _TORCH_DTYPES for _, entry in entries):
        return {k: v.to(dtype) if (dtype := dtype_for(k)) is not None and v.is_floating_point() else v
                for k, v in read_state_dict(path).items()}
    with open(path, "rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        start = 8 + length
        try:
            mapped = mmap_module.mmap(handle.fileno(), 0, access=mmap_module.ACCESS_COPY)
        except (OSError, ValueError) as error:
            raise CheckpointLoadError(path, f"could not map the file ({error})") from None
        wanted = [(start + int(e["data_offsets"][0]), start + int(e["data_offsets"][1]))
                  for name, e in entries if dtype_for(_normalise_key(name)) is not None]
        stop = threading.Event()
        reader = threading.Thread(target=_read_ahead, args=(handle.fileno(), wanted, stop), daemon=True)
        reader.start()
        try:
            result = _convert_entries(mapped, start, entries, dtype_for, channels_last or (lambda key: False))
        finally:
            stop.set()
            reader.join()
    return result


def _convert_entries(mapped: mmap_module.mmap, start: int, entries: list[tuple[str, Any]],
                     dtype_for: DtypeRule, channels_last: Callable[[str], bool]) -> dict[str, torch.Tensor]:
    page = mmap_module.PAGESIZE
    result: dict[str, torch.Tensor] = {}
    for name, entry in entries:
        key = _normalise_key(name)
        dtype = _TORCH_DTYPES[entry["dtype"]]
        shape = tuple(int(d) for d in entry["shape"])
        begin, end = (start + int(offset) for offset in entry["data_offsets"])
        if end == begin:
            result[key] = torch.empty(shape, dtype=dtype)
            continue
        count = (end - begin) // dtype.itemsize
        tensor = torch.frombuffer(mapped, dtype=dtype, count=count, offset=begin).reshape(shape)
        target = dtype_for(key)
        nhwc = target is not None and tensor.dim() == 4 and channels_last(key)
        if target is not None and tensor.is_floating_point() and (target != dtype or nhwc):
            tensor = tensor.to(target, memory_format=torch.channels_last if nhwc else torch.preserve_format)
            first, last = -(-begin // page) * page, end // page * page  # whole pages inside this tensor only
            if last > first:
                mapped.madvise(mmap_module.MADV_DONTNEED, first, last - first)
        result[key] = tensor
    return result


def read_state_dict(
    path: str | os.PathLike[str], device: str | torch.device = "cpu", *, safe_unpickle: bool = True,
    mmap: bool = True, dtype_for: DtypeRule | None = None, channels_last: Callable[[str], bool] | None = None,
) -> dict[str, torch.Tensor]:
    """Read every tensor of a checkpoint into a flat ``{key: tensor}`` dict (mmap for safetensors, zero copy).

    ``mmap=False`` (A1111 ``disable_mmap_load_safetensors``) reads a ``.safetensors`` file into memory in one go and
    parses it from there: slower to start and more RAM, but no memory map on the file (network drives, files
    replaced while loaded). ``dtype_for`` (mapped safetensors on the CPU only) converts while reading, see
    :func:`read_safetensors_converted`; other files are returned as stored and the builders convert. Raises
    :class:`CheckpointLoadError` (naming the file) for anything unreadable and :class:`UnsafeCheckpointError` when a
    pickle references a forbidden global.
    """
    path = Path(path)
    if is_safetensors(path) and mmap and dtype_for is not None and torch.device(device).type == "cpu":
        return read_safetensors_converted(path, dtype_for, channels_last)
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
