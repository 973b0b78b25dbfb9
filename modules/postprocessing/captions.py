"""Caption files of Extras results: combining a generated caption with an existing one, writing `<image>.txt`.

A1111 facts (`modules/postprocessing.py` `run_postprocessing`, setting `postprocessing_existing_caption_action`,
"Action for existing captions": Ignore / Keep / Prepend / Append, default Ignore):
- only a result whose `pp.caption` is set gets a caption file, `<saved file without extension>.txt`;
- the existing caption is that `.txt` when it already exists (read and stripped); Ignore = the generated caption;
  Keep = the existing one; Prepend = `"{existing} {generated}"`; Append = `"{generated} {existing}"` — an empty
  existing caption always gives the generated one;
- the result is stripped and written only when not empty.
Ours in addition: in "Batch from Directory" an input image's own same-named `.txt` counts as its existing caption
when the output folder has none yet (A1111 only finds it when input and output folders are the same).
The Train → Preprocess sub-tab (A1111 1.6 `preprocess.py`) names the actions ignore / copy / prepend / append;
`copy` is Keep.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

CAPTION_ACTIONS = ("Ignore", "Keep", "Prepend", "Append")
"""A1111 `postprocessing_existing_caption_action` choices."""

_PREPROCESS_NAMES = {"ignore": "Ignore", "copy": "Keep", "prepend": "Prepend", "append": "Append"}


def combine_caption(generated: str, existing: str | None, action: str) -> str:
    """The caption to write for `action` (A1111 names, or the Preprocess sub-tab's lower-case ones); unknown
    actions behave as Ignore, as A1111's `else` branch does."""
    action = _PREPROCESS_NAMES.get(action, action)
    existing = (existing or "").strip()
    if existing and action == "Prepend":
        caption = f"{existing} {generated}"
    elif existing and action == "Append":
        caption = f"{generated} {existing}"
    elif existing and action == "Keep":
        caption = existing
    else:
        caption = generated
    return caption.strip()


def _read(path: Path | None) -> str | None:
    if path is None or not path.is_file():
        return None
    return path.read_text(encoding="utf-8", errors="replace").strip()


def write_caption(saved: Path, caption: str | None, settings: Mapping[str, Any] | None = None,
                  source: Path | None = None) -> Path | None:
    """Write `caption` (a result's `pp.caption`) beside the saved image `saved` as `<stem>.txt`, combined with the
    existing caption per `postprocessing_existing_caption_action`; `source` is the input image (its `.txt` is the
    fallback existing caption). Returns the caption file, or None when nothing was written."""
    if not caption:
        return None
    target = saved.with_suffix(".txt")
    existing = _read(target)
    if existing is None and source is not None:
        existing = _read(source.with_suffix(".txt"))
    action = str((settings or {}).get("postprocessing_existing_caption_action", "Ignore") or "Ignore")
    text = combine_caption(caption, existing, action)
    if not text:
        return None
    target.write_text(text, encoding="utf-8")
    return target
