"""Reading checkpoint files: round trips, header-only shapes, unwrapping, and a clear error for every bad file."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from modules.models.state_dict_io import (
    CheckpointLoadError,
    read_safetensors_metadata,
    read_shapes,
    read_state_dict,
    unwrap_state_dict,
)

TENSORS = {
    "model.diffusion_model.input_blocks.0.0.weight": torch.randn(8, 4, 3, 3),
    "model.diffusion_model.input_blocks.0.0.bias": torch.randn(8).half(),
    "first_stage_model.quant_conv.weight": torch.randn(8, 8, 1, 1).bfloat16(),
}


@pytest.fixture
def safetensors_file(tmp_path: Path) -> Path:
    path = tmp_path / "model.safetensors"
    save_file(TENSORS, path, metadata={"modelspec.title": "tiny"})
    return path


def test_safetensors_round_trip_keeps_values_and_dtypes(safetensors_file: Path) -> None:
    loaded = read_state_dict(safetensors_file)
    assert loaded.keys() == TENSORS.keys()
    for key, tensor in TENSORS.items():
        assert loaded[key].dtype == tensor.dtype
        assert torch.equal(loaded[key], tensor)


def test_shapes_and_metadata_come_from_the_header(safetensors_file: Path) -> None:
    assert read_shapes(safetensors_file) == {key: tuple(t.shape) for key, t in TENSORS.items()}
    assert read_safetensors_metadata(safetensors_file) == {"modelspec.title": "tiny"}


def test_ckpt_state_dict_nesting_is_unwrapped(tmp_path: Path) -> None:
    path = tmp_path / "model.ckpt"
    torch.save({"state_dict": {"state_dict": dict(TENSORS)}, "epoch": 6, "global_step": 100}, path)
    loaded = read_state_dict(path)
    assert loaded.keys() == TENSORS.keys()
    assert torch.equal(loaded["first_stage_model.quant_conv.weight"], TENSORS["first_stage_model.quant_conv.weight"])
    assert read_shapes(path)["model.diffusion_model.input_blocks.0.0.weight"] == (8, 4, 3, 3)


def test_legacy_sd1_text_encoder_keys_are_normalised() -> None:
    old = {"cond_stage_model.transformer.embeddings.position_ids": torch.arange(3),
           "cond_stage_model.transformer.encoder.layers.0.mlp.fc1.weight": torch.zeros(2, 2),
           "cond_stage_model.transformer.text_model.final_layer_norm.bias": torch.zeros(2)}
    assert set(unwrap_state_dict(old)) == {
        "cond_stage_model.transformer.text_model.embeddings.position_ids",
        "cond_stage_model.transformer.text_model.encoder.layers.0.mlp.fc1.weight",
        "cond_stage_model.transformer.text_model.final_layer_norm.bias",
    }


def _write_safetensors(path: Path, header: dict, data: bytes) -> None:
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)


def _expect_error(path: Path, *fragments: str) -> None:
    with pytest.raises(CheckpointLoadError) as raised:
        read_state_dict(path)
    message = str(raised.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message


@pytest.mark.parametrize("suffix", [".safetensors", ".ckpt"])
def test_garbage_bytes(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"garbage{suffix}"
    path.write_bytes(os.urandom(4096))
    _expect_error(path)
    if suffix == ".safetensors":
        with pytest.raises(CheckpointLoadError):
            read_shapes(path)


def test_truncated_safetensors(tmp_path: Path, safetensors_file: Path) -> None:
    path = tmp_path / "truncated.safetensors"
    path.write_bytes(safetensors_file.read_bytes()[:-100])
    _expect_error(path, "truncated")


def test_truncated_ckpt(tmp_path: Path) -> None:
    whole = tmp_path / "whole.ckpt"
    torch.save(dict(TENSORS), whole)
    path = tmp_path / "truncated.ckpt"
    path.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    _expect_error(path)


def test_header_shape_disagrees_with_data(tmp_path: Path) -> None:
    path = tmp_path / "wrong-shape.safetensors"
    _write_safetensors(path, {"w": {"dtype": "F32", "shape": [4, 4], "data_offsets": [0, 32]}}, bytes(32))
    _expect_error(path, "'w'", "(4, 4)", "32 bytes")


def test_header_that_is_not_json(tmp_path: Path) -> None:
    path = tmp_path / "bad-header.safetensors"
    path.write_bytes(struct.pack("<Q", 10) + b"not json!!" + bytes(16))
    _expect_error(path, "header is not JSON")


def test_empty_missing_and_tensorless_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.safetensors"
    empty.write_bytes(b"")
    _expect_error(empty, "empty")
    _expect_error(tmp_path / "missing.ckpt", "not found")
    no_tensors = tmp_path / "no-tensors.ckpt"
    torch.save({"epoch": 1}, no_tensors)
    _expect_error(no_tensors, "no tensors")
    not_a_dict = tmp_path / "list.pt"
    torch.save([torch.zeros(1)], not_a_dict)
    _expect_error(not_a_dict, "expected a dict")


def _rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS line")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc to read the resident size")
def test_safetensors_are_memory_mapped_not_copied(tmp_path: Path) -> None:
    path = tmp_path / "big.safetensors"
    save_file({f"w{i}": torch.ones(1024, 1024) for i in range(32)}, path)  # 128 MiB on disk
    before = _rss_bytes()
    state = read_state_dict(path)
    grown = _rss_bytes() - before
    assert len(state) == 32
    assert grown < 32 * 1024 * 1024, f"reading grew the resident set by {grown} bytes: the file was copied"
    assert state["w31"][1023, 1023].item() == 1.0  # the data is there when touched


def test_without_mmap_the_tensors_do_not_depend_on_the_file(safetensors_file: Path) -> None:
    """A1111 `disable_mmap_load_safetensors`: the file is read into memory, so changing it later changes nothing."""
    mapped, copied = read_state_dict(safetensors_file), read_state_dict(safetensors_file, mmap=False)
    assert mapped.keys() == copied.keys() and all(torch.equal(mapped[k], copied[k]) for k in mapped)
    expected = {k: v.clone() for k, v in copied.items()}
    data = bytearray(safetensors_file.read_bytes())
    header = 8 + int.from_bytes(data[:8], "little")
    data[header:] = bytes(len(data) - header)  # zero every tensor byte in place
    with open(safetensors_file, "r+b") as fh:
        fh.write(data)
    assert all(torch.equal(copied[k], expected[k]) for k in copied)


def test_the_app_reads_the_mmap_setting_at_each_load(tmp_path: Path) -> None:
    from tests.fixtures.app_context import context_for

    ctx = context_for(tmp_path, {})
    assert ctx.models.policy.mmap_safetensors()
    ctx.settings.set("disable_mmap_load_safetensors", True)
    assert not ctx.models.policy.mmap_safetensors()
