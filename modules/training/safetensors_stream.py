"""Write a ``.safetensors`` file one tensor at a time, and read one lazily, so a merge never holds whole models.

The format (a fact of the safetensors specification): 8 bytes little-endian header length N, then N bytes of a UTF-8
JSON object ``{name: {"dtype": "F16", "shape": [...], "data_offsets": [begin, end]}, "__metadata__": {str: str}}``
(padded with spaces so the data starts 8-byte aligned), then the raw little-endian tensor bytes in offset order.
Because every tensor's shape and dtype are known before any data is computed, the header is written first and the
tensors are appended as they are produced; the result needs no more memory than one tensor.

Files are written to a temporary name in the target folder and moved into place with ``os.replace`` only once
complete, so an interrupted or failed write never leaves a partial model behind.
"""

from __future__ import annotations

import json
import math
import os
import struct
import sys
import tempfile
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

import torch

from modules.models.state_dict_io import read_safetensors_header, read_state_dict

DTYPE_CODES: dict[torch.dtype, str] = {
    torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
    torch.bool: "BOOL",
}
CODE_DTYPES: dict[str, torch.dtype] = {code: dtype for dtype, code in DTYPE_CODES.items()}


def dtype_code(dtype: torch.dtype) -> str:
    """The safetensors dtype code of a torch dtype (ValueError for dtypes the format cannot hold here)."""
    try:
        return DTYPE_CODES[dtype]
    except KeyError:
        raise ValueError(f"dtype {dtype} cannot be written to safetensors") from None


class StreamingSafetensorsWriter:
    """``with StreamingSafetensorsWriter(path, plan, metadata) as w: w.write(name, tensor)`` for each planned name.

    ``plan`` is the ordered ``[(name, shape, dtype)]`` of every tensor; each :meth:`write` must follow that order
    with a tensor of exactly that shape and dtype. On a clean exit the temp file is fsynced and renamed to ``path``;
    on an exception (or if tensors are missing) it is deleted and ``path`` is untouched.
    """

    def __init__(self, path: str | os.PathLike[str], plan: Sequence[tuple[str, Sequence[int], torch.dtype]],
                 metadata: Mapping[str, str] | None = None) -> None:
        self.path = Path(path)
        self._plan = [(name, tuple(int(d) for d in shape), dtype) for name, shape, dtype in plan]
        self._metadata = {str(k): str(v) for k, v in (metadata or {}).items()}
        self._next = 0
        self._handle: BinaryIO | None = None
        self._tmp: Path | None = None

    def _header(self) -> bytes:
        header: dict[str, Any] = {}
        if self._metadata:
            header["__metadata__"] = self._metadata
        offset = 0
        for name, shape, dtype in self._plan:
            size = math.prod(shape) * torch.empty((), dtype=dtype).element_size()
            header[name] = {"dtype": dtype_code(dtype), "shape": list(shape), "data_offsets": [offset, offset + size]}
            offset += size
        raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
        return raw + b" " * (-len(raw) % 8)

    def __enter__(self) -> StreamingSafetensorsWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        self._tmp = Path(tmp)
        self._handle = os.fdopen(fd, "wb")
        header = self._header()
        self._handle.write(struct.pack("<Q", len(header)))
        self._handle.write(header)
        return self

    def write(self, name: str, tensor: torch.Tensor) -> None:
        """Append the next planned tensor."""
        if self._handle is None:
            raise RuntimeError("write() outside the writer's with-block")
        if self._next >= len(self._plan):
            raise ValueError(f"tensor {name!r} was not planned")
        planned, shape, dtype = self._plan[self._next]
        if name != planned or tuple(tensor.shape) != shape or tensor.dtype != dtype:
            raise ValueError(f"tensor {name!r} {tuple(tensor.shape)} {tensor.dtype} does not match the plan entry "
                             f"{planned!r} {shape} {dtype}")
        data = tensor.detach().to("cpu").contiguous()
        if sys.byteorder != "little" and data.element_size() > 1:
            raise RuntimeError("writing safetensors needs a little-endian machine")
        if data.numel():
            self._handle.write(data.reshape(-1).view(torch.uint8).numpy().tobytes())
        self._next += 1

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        assert self._handle is not None and self._tmp is not None
        try:
            if exc_type is None and self._next != len(self._plan):
                missing = self._plan[self._next][0]
                raise RuntimeError(f"the file is incomplete: tensor {missing!r} was never written")
            if exc_type is None:
                self._handle.flush()
                os.fsync(self._handle.fileno())
            self._handle.close()
            if exc_type is None:
                os.replace(self._tmp, self.path)
        finally:
            if not self._handle.closed:
                self._handle.close()
            self._tmp.unlink(missing_ok=True)  # already renamed on success; a failed write leaves nothing


class TensorSource:
    """One checkpoint's tensors read on demand: safetensors through ``safe_open`` (one tensor at a time from the
    memory-mapped file), pickles through the safe loader (zip-format files are memory-mapped too)."""

    def __init__(self, path: str | os.PathLike[str], *, safe_unpickle: bool = True) -> None:
        self.path = Path(path)
        self._stack = ExitStack()
        self._handle: Any = None
        self._tensors: dict[str, torch.Tensor] | None = None
        self._shapes: dict[str, tuple[int, ...]] = {}
        self._dtypes: dict[str, torch.dtype] = {}
        if self.path.suffix.lower() == ".safetensors":
            header = read_safetensors_header(self.path)
            from safetensors import safe_open

            self._handle = self._stack.enter_context(safe_open(str(self.path), framework="pt", device="cpu"))
            for name, entry in header.items():
                if name == "__metadata__":
                    continue
                self._shapes[name] = tuple(int(d) for d in entry["shape"])
                self._dtypes[name] = CODE_DTYPES.get(entry["dtype"], torch.float32)
        else:
            self._tensors = read_state_dict(self.path, safe_unpickle=safe_unpickle)
            for name, tensor in self._tensors.items():
                self._shapes[name] = tuple(tensor.shape)
                self._dtypes[name] = tensor.dtype

    def names(self) -> list[str]:
        """Tensor names in file order."""
        return list(self._shapes)

    def __contains__(self, name: object) -> bool:
        return name in self._shapes

    def shape(self, name: str) -> tuple[int, ...]:
        return self._shapes[name]

    def dtype(self, name: str) -> torch.dtype:
        return self._dtypes[name]

    def get(self, name: str) -> torch.Tensor:
        """The tensor ``name`` (a fresh CPU tensor for safetensors; a mapped view for pickles)."""
        if self._tensors is not None:
            return self._tensors[name]
        tensor: torch.Tensor = self._handle.get_tensor(name)
        return tensor

    def close(self) -> None:
        self._tensors = None
        self._handle = None
        self._stack.close()

    def __enter__(self) -> TensorSource:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
