"""The allow-list unpickler: real torch files load, anything that would run code is refused before it runs."""

from __future__ import annotations

import collections
import datetime
import logging
import os
import pickle
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from modules.models.safe_unpickle import CheckpointLoadError, UnsafeCheckpointError, load_torch_file
from modules.models.state_dict_io import read_state_dict


class _CreatesFile:
    """Pickles to a call of ``open(target, "w")``: loading it would create ``target``."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):  # type: ignore[override]
        return (open, (str(self.target), "w"))


class _RunsShell:
    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):  # type: ignore[override]
        return (os.system, (f"touch {self.target}",))


def _sd1_like_checkpoint() -> dict:
    return {
        "state_dict": collections.OrderedDict(
            {"model.diffusion_model.out.2.weight": torch.randn(4, 8, 3, 3, dtype=torch.float16),
             "first_stage_model.decoder.conv_in.bias": torch.nn.Parameter(torch.randn(8)),
             "cond_stage_model.transformer.text_model.final_layer_norm.weight": torch.randn(8, dtype=torch.bfloat16)}
        ),
        "global_step": 470000,
        "numpy_scalar": np.float64(0.5),
        "numpy_array": np.arange(3),
        "tags": {"a", "b"},
    }


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_real_checkpoints_load(tmp_path: Path, zip_format: bool) -> None:
    original = _sd1_like_checkpoint()
    path = tmp_path / "model.ckpt"
    torch.save(original, path, _use_new_zipfile_serialization=zip_format)
    loaded = load_torch_file(path)
    for key, tensor in original["state_dict"].items():
        assert torch.equal(loaded["state_dict"][key], tensor)
        assert loaded["state_dict"][key].dtype == tensor.dtype
    assert loaded["global_step"] == 470000
    assert loaded["numpy_scalar"] == 0.5
    assert list(loaded["numpy_array"]) == [0, 1, 2]
    assert loaded["tags"] == {"a", "b"}


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
@pytest.mark.parametrize("payload", [_CreatesFile, _RunsShell], ids=["open", "os.system"])
def test_code_in_a_pickle_never_runs(tmp_path: Path, zip_format: bool, payload: type) -> None:
    target = tmp_path / "pwned.txt"
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(2)}, "x": payload(target)}, path,
               _use_new_zipfile_serialization=zip_format)
    assert not target.exists()
    with pytest.raises(UnsafeCheckpointError) as raised:
        load_torch_file(path)
    assert not target.exists()
    message = str(raised.value)
    assert str(path) in message
    assert "is forbidden" in message and "--disable-safe-unpickle" in message
    assert raised.value.offending.split("'")[1].split("/")[1] in {"open", "system"}
    # the state-dict reader refuses it too, and the refusal is a CheckpointLoadError callers can catch
    with pytest.raises(CheckpointLoadError):
        read_state_dict(path)
    assert not target.exists()


def test_plain_pickle_with_forbidden_global_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "pwned.txt"
    path = tmp_path / "evil.pt"
    with open(path, "wb") as handle:
        pickle.dump(_CreatesFile(target), handle)
    with pytest.raises(UnsafeCheckpointError):
        load_torch_file(path)
    assert not target.exists()


def test_unexpected_zip_member_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "extra.ckpt"
    torch.save({"w": torch.zeros(1)}, path)
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("extra/payload.py", "print('hi')")
    with pytest.raises(UnsafeCheckpointError, match=r"unexpected file 'extra/payload\.py'"):
        load_torch_file(path)


def test_disable_safe_unpickle_loads_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "dated.ckpt"
    torch.save({"w": torch.ones(1), "when": datetime.date(2023, 1, 2)}, path)
    with pytest.raises(UnsafeCheckpointError, match="datetime/date"):
        load_torch_file(path)
    with caplog.at_level(logging.WARNING):
        loaded = load_torch_file(path, safe=False)
    assert loaded["when"] == datetime.date(2023, 1, 2)
    assert "WITHOUT the safe unpickler" in caplog.text


def test_lightning_callbacks_of_sd1_checkpoints_are_inert(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Original SD 1.x .ckpt files pickle a pytorch_lightning ModelCheckpoint; it must load without lightning.
    import types

    fake_module = types.ModuleType("pytorch_lightning.callbacks.model_checkpoint")

    class ModelCheckpoint:
        def __init__(self) -> None:
            self.monitor = None

    ModelCheckpoint.__module__ = fake_module.__name__
    ModelCheckpoint.__qualname__ = "ModelCheckpoint"
    fake_module.ModelCheckpoint = ModelCheckpoint  # type: ignore[attr-defined]
    for parent in ("pytorch_lightning", "pytorch_lightning.callbacks"):
        monkeypatch.setitem(sys.modules, parent, types.ModuleType(parent))
    monkeypatch.setitem(sys.modules, fake_module.__name__, fake_module)
    path = tmp_path / "sd-v1-4.ckpt"
    torch.save({"state_dict": {"w": torch.ones(1)}, "callbacks": {"ckpt": ModelCheckpoint()}}, path)
    for name in ("pytorch_lightning", "pytorch_lightning.callbacks", fake_module.__name__):
        monkeypatch.delitem(sys.modules, name)

    loaded = load_torch_file(path)
    assert type(loaded["callbacks"]["ckpt"]).__name__ == "LightningCheckpointPlaceholder"
    assert torch.equal(read_state_dict(path)["w"], torch.ones(1))
