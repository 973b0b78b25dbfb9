"""A full disk never loses the image: the API returns it with a notice, and no partial file is left behind."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.acceptance.conftest import WebUIFactory, decode_png


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs filled to the last byte (needs root, as CI and this workplace run)."""
    mount = tmp_path / "full"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)],
                                           capture_output=True).returncode != 0:
        pytest.skip("mounting a small tmpfs needs root")
    try:
        fd = os.open(mount / "filler", os.O_WRONLY | os.O_CREAT)
        try:
            while os.write(fd, b"\0" * 4096):
                pass
        except OSError:
            pass  # ENOSPC: the disk is full
        finally:
            os.close(fd)
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_no_space_left_returns_the_image_with_a_notice(webui_app: WebUIFactory, full_disk: Path) -> None:
    app = webui_app(["--api"])
    target = full_disk / "outputs"
    assert app.client.post("/sdapi/v1/options", json={"outdir_txt2img_samples": str(full_disk)}).status_code == 200
    data = app.txt2img(save_images=True)
    assert decode_png(data["images"][0]).size == (64, 64)
    info = json.loads(data["info"])
    assert any("could not be saved" in notice for notice in info["notices"]), info["notices"]
    leftovers = [p.name for p in full_disk.iterdir() if p.name != "filler"]
    assert leftovers == [] or all(p.is_dir() and not any(p.rglob("*")) for p in full_disk.iterdir()
                                  if p.name != "filler"), leftovers
    assert not target.exists() or not any(target.rglob("*.png"))
