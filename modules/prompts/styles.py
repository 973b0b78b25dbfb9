"""Prompt styles (`styles.csv`), as A1111 keeps them (`modules/styles.py`).

* File: UTF-8 with BOM, header `name,prompt,negative_prompt` (the old two-column `name,text` is read too); rows
  whose name starts with "#" and empty rows are skipped.
* Applying a style: if its text contains "{prompt}" the user prompt is put there, otherwise the style is appended
  after ", " (empty parts are dropped).  Styles are applied in the order selected.
* Extracting (on infotext paste): a style is recognised when the prompt ends with its text (or is wrapped by the
  two halves around "{prompt}") and the negative prompt matches likewise; found styles are removed repeatedly.
* Several files (`--styles-file` given more than once, wildcards allowed): each file gets a divider pseudo-style
  "---- NAME ----" when there is more than one; saving writes every file back (a `.bak` copy first).

Unlike A1111, rows that cannot be read (missing name, extra columns, bad encoding) are reported in
`StyleDatabase.problems` with file and line, and the rest of the file is still loaded.  Saving is atomic.
"""

from __future__ import annotations

import csv
import glob
import io
import logging
import os
import secrets
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

log = logging.getLogger(__name__)

CSV_FIELDS = ("name", "prompt", "negative_prompt")
DO_NOT_SAVE = "do_not_save"


class PromptStyle(NamedTuple):
    """One style; `path` is the file it is stored in (None: the default file)."""

    name: str
    prompt: str | None
    negative_prompt: str | None
    path: str | None = None


def merge_prompts(style_prompt: str, prompt: str) -> str:
    """Insert `prompt` at "{prompt}" in the style, or append the style after ", " (A1111 `merge_prompts`)."""
    if "{prompt}" in style_prompt:
        return style_prompt.replace("{prompt}", prompt)
    return ", ".join(part for part in (prompt.strip(), style_prompt.strip()) if part)


def apply_styles_to_prompt(prompt: str, styles: Iterable[str | None]) -> str:
    """Apply style texts to a prompt one after the other."""
    for style in styles:
        prompt = merge_prompts(style or "", prompt)
    return prompt


def extract_style_text_from_prompt(style_text: str, prompt: str) -> tuple[bool, str]:
    """(True, prompt without the style) if the prompt carries `style_text`, else (False, prompt).

    With "{prompt}" the stripped prompt must start with the text before it and end with the text after it;
    otherwise it must end with the style text, and a ", " left in front of it is removed too.
    """
    stripped_prompt = prompt.strip()
    stripped_style = style_text.strip()
    if "{prompt}" in stripped_style:
        left, _, right = stripped_style.partition("{prompt}")
        if stripped_prompt.startswith(left) and stripped_prompt.endswith(right) \
                and len(stripped_prompt) >= len(left) + len(right):
            return True, stripped_prompt[len(left):len(stripped_prompt) - len(right)]
    elif stripped_prompt.endswith(stripped_style):
        rest = stripped_prompt[:len(stripped_prompt) - len(stripped_style)]
        if rest.endswith(", "):
            rest = rest[:-2]
        return True, rest
    return False, prompt


def extract_original_prompts(style: PromptStyle, prompt: str, negative_prompt: str) -> tuple[bool, str, str]:
    """Remove `style` from both prompts if both carry it (A1111 `extract_original_prompts`)."""
    if not style.prompt and not style.negative_prompt:
        return False, prompt, negative_prompt
    matched, new_prompt = extract_style_text_from_prompt(style.prompt or "", prompt)
    if not matched:
        return False, prompt, negative_prompt
    matched, new_negative = extract_style_text_from_prompt(style.negative_prompt or "", negative_prompt)
    if not matched:
        return False, prompt, negative_prompt
    return True, new_prompt, new_negative


def _is_pattern(path: str) -> bool:
    return any(ch in os.path.basename(path) for ch in "*?[")


class StyleDatabase:
    """All styles from one or more CSV files (the first file is the default one new styles go to)."""

    def __init__(self, paths: Sequence[str | os.PathLike[str]] | str | os.PathLike[str]) -> None:
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        if not paths:
            raise ValueError("StyleDatabase needs at least one styles file path")
        self.paths: list[str] = [os.fspath(p) for p in paths]
        self.no_style = PromptStyle("None", "", "", None)
        self.styles: dict[str, PromptStyle] = {}
        self.problems: list[str] = []
        self.all_styles_files: list[Path] = []
        first = self.paths[0]
        if _is_pattern(first):
            # a wildcard first path: its first match (else "styles.csv" in that folder) is the default file
            matches = sorted(glob.glob(first))
            self.default_file = Path(matches[0]) if matches else Path(os.path.dirname(first)) / "styles.csv"
            self.paths.insert(0, str(self.default_file))
        else:
            self.default_file = Path(first)
        self.reload()

    # -- loading ---------------------------------------------------------------------------------------------
    def reload(self) -> None:
        """Read every styles file again (files that do not exist yet are fine: they start empty)."""
        self.styles.clear()
        self.problems.clear()
        files: list[Path] = []
        for pattern in self.paths:
            found = [Path(p) for p in sorted(glob.glob(pattern))] if _is_pattern(pattern) else [Path(pattern)]
            for path in found:
                if path not in files:
                    files.append(path)
        self.all_styles_files = files
        for path in files:
            if len(files) > 1:
                divider = f" {path.stem.upper()} ".center(40, "-")
                self.styles[divider] = PromptStyle(divider, None, None, DO_NOT_SAVE)
            if path.is_file():
                self.load_from_csv(path)

    def _problem(self, message: str) -> None:
        self.problems.append(message)
        log.warning("%s", message)

    def load_from_csv(self, path: str | os.PathLike[str]) -> None:
        """Add the styles of one CSV file; unreadable rows are skipped and reported in `problems`."""
        path = Path(path)
        try:
            raw = path.read_bytes()
        except OSError as exc:
            self._problem(f"Error loading styles from {path}: {exc}")
            return
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            self._problem(f"{path}: not valid UTF-8 ({exc}); undecodable bytes were replaced")
            text = raw.decode("utf-8-sig", errors="replace")
        try:
            reader = csv.DictReader(io.StringIO(text, newline=""), skipinitialspace=True)
            header = [h.strip() for h in reader.fieldnames or []]
            reader.fieldnames = header
            if "name" not in header or not ({"prompt", "text"} & set(header)):
                if header:
                    self._problem(f"{path}: header must be 'name,prompt,negative_prompt' (or 'name,text'), "
                                  f"found {','.join(header)!r}; file skipped")
                return
            for row in reader:
                self._add_row(path, reader.line_num, row)
        except csv.Error as exc:
            self._problem(f"{path}: CSV error near line {reader.line_num}: {exc}; the rest of the file was skipped")

    def _add_row(self, path: Path, line: int, row: dict[str | None, str | list[str] | None]) -> None:
        name = row.get("name")
        if not isinstance(name, str) or not name.strip():
            if any(isinstance(v, str) and v.strip() for v in row.values()):
                self._problem(f"{path} line {line}: style without a name skipped")
            return
        if name.startswith("#"):
            return
        if row.get(None):
            self._problem(f"{path} line {line}: style {name!r} has {len(row[None] or [])} extra column(s) "
                          "(a comma in an unquoted text?); extra columns ignored")
        prompt = row.get("prompt") if "prompt" in row else row.get("text")
        negative = row.get("negative_prompt")
        name = csv_unescape(name)
        self.styles[name] = PromptStyle(name, csv_unescape(str(prompt or "")), csv_unescape(str(negative or "")),
                                        str(path))

    # -- queries ---------------------------------------------------------------------------------------------
    def get_style_prompts(self, styles: Iterable[str]) -> list[str | None]:
        return [self.styles.get(name, self.no_style).prompt for name in styles]

    def get_negative_style_prompts(self, styles: Iterable[str]) -> list[str | None]:
        return [self.styles.get(name, self.no_style).negative_prompt for name in styles]

    def apply_styles_to_prompt(self, prompt: str, styles: Iterable[str]) -> str:
        """Apply the named styles (unknown names do nothing) to a prompt."""
        return apply_styles_to_prompt(prompt, self.get_style_prompts(styles))

    def apply_negative_styles_to_prompt(self, prompt: str, styles: Iterable[str]) -> str:
        return apply_styles_to_prompt(prompt, self.get_negative_style_prompts(styles))

    def extract_styles_from_prompt(self, prompt: str, negative_prompt: str) -> tuple[list[str], str, str]:
        """Find the styles a prompt pair was made with; returns (names in application order, prompt, negative)."""
        extracted: list[str] = []
        candidates = [s for s in self.styles.values() if s.path != DO_NOT_SAVE]
        while True:
            found = None
            for style in candidates:
                matched, new_prompt, new_negative = extract_original_prompts(style, prompt, negative_prompt)
                if matched:
                    found, prompt, negative_prompt = style, new_prompt, new_negative
                    break
            if found is None:
                break
            candidates.remove(found)
            extracted.append(found.name)
        return list(reversed(extracted)), prompt, negative_prompt

    # -- editing and saving ----------------------------------------------------------------------------------
    def add_style(self, name: str, prompt: str, negative_prompt: str, path: str | os.PathLike[str] | None = None) -> None:
        """Add or replace a style (kept in its old file, else `path`, else the default file)."""
        if not name or not name.strip():
            raise ValueError("a style needs a name")
        old = self.styles.get(name)
        where = os.fspath(path) if path is not None else (old.path if old and old.path else str(self.default_file))
        self.styles[name] = PromptStyle(name, prompt, negative_prompt, where)

    def delete_style(self, name: str) -> bool:
        """Remove a style; False if there was none of that name."""
        return self.styles.pop(name, None) is not None

    def get_style_paths(self) -> set[str]:
        """Every file that holds styles, plus the default file (dividers excluded)."""
        for style in list(self.styles.values()):
            if not style.path:
                self.styles[style.name] = style._replace(path=str(self.default_file))
        paths = {str(self.default_file)} | {s.path for s in self.styles.values() if s.path}
        paths.discard(DO_NOT_SAVE)
        return paths

    def save_styles(self) -> None:
        """Write every styles file: `<file>.bak` copy of the old one first, then an atomic replace."""
        for style_path in sorted(self.get_style_paths()):
            target = Path(style_path)
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.exists():
                shutil.copyfile(target, f"{style_path}.bak")
            out = io.StringIO(newline="")
            writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, lineterminator="\r\n")
            writer.writeheader()
            for style in self.styles.values():
                if style.path == style_path:
                    writer.writerow({"name": csv_escape(style.name), "prompt": csv_escape(style.prompt or ""),
                                     "negative_prompt": csv_escape(style.negative_prompt or "")})
            _atomic_write_bytes(target, out.getvalue().encode("utf-8-sig"))


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""First characters that make Excel/LibreOffice/Sheets evaluate a CSV cell as a formula (OWASP "CSV injection")."""


def csv_escape(value: str) -> str:
    """A cell a spreadsheet shows as text: a leading `'` before a formula start (OWASP's neutralisation), and
    before a `'` that already starts the text, so that `csv_unescape` gives back exactly the original."""
    return f"'{value}" if value.startswith(FORMULA_STARTS) or value.startswith("'") else value


def csv_unescape(value: str) -> str:
    """Undo `csv_escape` when reading `styles.csv` (a leading `'` followed by a formula start or `'`)."""
    if value.startswith("'") and len(value) > 1 and value[1] in ("'", *FORMULA_STARTS):
        return value[1:]
    return value


def _atomic_write_bytes(target: Path, data: bytes) -> None:
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "xb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
