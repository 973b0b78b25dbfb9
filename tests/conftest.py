"""Shared pytest fixtures.

``tiny_checkpoint`` is a session-scoped factory: ``tiny_checkpoint("sdxl")`` returns the path of a tiny random-weight
SDXL checkpoint in the original single-file layout (see ``tests/fixtures/tiny_checkpoints.py``), written once and
cached under ``tests/.cache/tiny-<content version>/``. The content version hashes the fixture writer and the network
modules whose parameter names define the layout, so editing them regenerates the files. Treat the files as
read-only; copy one if a test needs to change it.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from tests.fixtures.tiny_checkpoints import FAMILIES, FIXTURE_VERSION, write_tiny_checkpoint

REPO = Path(__file__).resolve().parents[1]
CACHE_DIR = REPO / "tests" / ".cache"
_LAYOUT_SOURCES = (
    "tests/fixtures/tiny_checkpoints.py",
    "modules/models/nn/unet.py",
    "modules/models/nn/blocks.py",
    "modules/models/nn/transformer.py",
    "modules/models/nn/vae.py",
)

TinyCheckpointFactory = Callable[..., Path]


def tiny_content_version() -> str:
    """FIXTURE_VERSION plus a short hash of the files that decide the fixtures' keys and values."""
    digest = hashlib.sha256(str(FIXTURE_VERSION).encode())
    for rel in _LAYOUT_SOURCES:
        digest.update((REPO / rel).read_bytes())
    return f"{FIXTURE_VERSION}-{digest.hexdigest()[:10]}"


def _dtype_tag(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


@pytest.fixture(scope="session")
def tiny_checkpoint() -> TinyCheckpointFactory:
    """Factory ``(family, *, fmt="safetensors" | "ckpt", dtype=torch.float32, seed=0) -> Path``."""
    folder = CACHE_DIR / f"tiny-{tiny_content_version()}"

    def make(family: str, *, fmt: str = "safetensors", dtype: torch.dtype = torch.float32, seed: int = 0) -> Path:
        if family not in FAMILIES:
            raise ValueError(f"unknown tiny family {family!r}; known: {', '.join(FAMILIES)}")
        if fmt not in ("safetensors", "ckpt"):
            raise ValueError(f"fmt must be 'safetensors' or 'ckpt', not {fmt!r}")
        path = folder / f"{family}-seed{seed}-{_dtype_tag(dtype)}.{fmt}"
        if not path.exists():
            tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.{fmt}")
            write_tiny_checkpoint(family, tmp, seed=seed, dtype=dtype)
            os.replace(tmp, path)
        return path

    return make
