"""Caption files of Extras results: A1111's `postprocessing_existing_caption_action` rules (Ignore / Keep /
Prepend / Append) and where the existing caption comes from."""

from __future__ import annotations

from pathlib import Path

import pytest

from modules.postprocessing.captions import CAPTION_ACTIONS, combine_caption, write_caption


@pytest.mark.parametrize(("action", "expected"), [
    ("Ignore", "new tags"), ("Keep", "old caption"), ("Prepend", "old caption new tags"),
    ("Append", "new tags old caption"),
    # the Train -> Preprocess names
    ("ignore", "new tags"), ("copy", "old caption"), ("prepend", "old caption new tags"),
    ("append", "new tags old caption"),
])
def test_actions_combine_like_a1111(action: str, expected: str) -> None:
    assert combine_caption("new tags", " old caption\n", action) == expected


@pytest.mark.parametrize("action", CAPTION_ACTIONS)
def test_without_an_existing_caption_the_generated_one_is_used(action: str) -> None:
    assert combine_caption(" new tags ", None, action) == "new tags"
    assert combine_caption("new tags", "   ", action) == "new tags"


def test_write_caption_prefers_the_saved_files_txt_then_the_sources(tmp_path: Path) -> None:
    source_dir, out_dir = tmp_path / "in", tmp_path / "out"
    source_dir.mkdir()
    out_dir.mkdir()
    (source_dir / "a.txt").write_text("from input", encoding="utf-8")
    saved = out_dir / "a.png"
    settings = {"postprocessing_existing_caption_action": "Append"}
    assert write_caption(saved, "gen", settings, source_dir / "a.png") == out_dir / "a.txt"
    assert (out_dir / "a.txt").read_text(encoding="utf-8") == "gen from input"
    # A1111 reads the caption beside the saved file first
    write_caption(saved, "again", {"postprocessing_existing_caption_action": "Prepend"}, source_dir / "a.png")
    assert (out_dir / "a.txt").read_text(encoding="utf-8") == "gen from input again"


def test_no_caption_no_file(tmp_path: Path) -> None:
    assert write_caption(tmp_path / "a.png", None, {}) is None
    assert write_caption(tmp_path / "a.png", "", {}) is None
    assert not (tmp_path / "a.txt").exists()
    # default action is Ignore
    (tmp_path / "b.txt").write_text("old", encoding="utf-8")
    write_caption(tmp_path / "b.png", "new", {})
    assert (tmp_path / "b.txt").read_text(encoding="utf-8") == "new"
