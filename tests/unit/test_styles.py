"""styles.csv: A1111's file format, applying and extracting styles, several files, safe saving, bad rows."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from modules.prompts import styles as styles_module
from modules.prompts.styles import (
    PromptStyle,
    StyleDatabase,
    apply_styles_to_prompt,
    extract_style_text_from_prompt,
    merge_prompts,
)

A1111_STYLES = (
    "name,prompt,negative_prompt\r\n"
    'Cinematic,"cinematic still {prompt} . emotional, harmonious, vignette","anime, cartoon, graphic"\r\n'
    'Quality,"masterpiece, best quality","lowres, bad anatomy"\r\n'
    '# Disabled,"never, used",\r\n'
    "Plain,watercolor,\r\n"
)


def write(path: Path, text: str, encoding: str = "utf-8-sig") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


@pytest.fixture
def db(tmp_path: Path) -> StyleDatabase:
    return StyleDatabase([write(tmp_path / "styles.csv", A1111_STYLES)])


def test_reads_a1111_file(db: StyleDatabase) -> None:
    assert list(db.styles) == ["Cinematic", "Quality", "Plain"]  # "#" rows are skipped
    assert db.styles["Quality"] == PromptStyle("Quality", "masterpiece, best quality", "lowres, bad anatomy",
                                               str(db.default_file))
    assert db.styles["Plain"].negative_prompt == ""
    assert db.problems == []


def test_old_two_column_format(tmp_path: Path) -> None:
    db = StyleDatabase(write(tmp_path / "old.csv", "name,text\nOld,\"oil painting, impasto\"\n"))
    assert db.styles["Old"].prompt == "oil painting, impasto" and db.styles["Old"].negative_prompt == ""


def test_merge_rules() -> None:
    assert merge_prompts("masterpiece, best quality", "a cat") == "a cat, masterpiece, best quality"
    assert merge_prompts("cinematic still {prompt} . vignette", "a cat") == "cinematic still a cat . vignette"
    assert merge_prompts("style", "") == "style"
    assert merge_prompts("", "  a cat ") == "a cat"
    assert apply_styles_to_prompt("a cat", ["A {prompt} B", "C"]) == "A a cat B, C"


def test_apply_named_styles_in_order(db: StyleDatabase) -> None:
    prompt = db.apply_styles_to_prompt("a cat", ["Quality", "Cinematic", "Unknown"])
    assert prompt == "cinematic still a cat, masterpiece, best quality . emotional, harmonious, vignette"
    negative = db.apply_negative_styles_to_prompt("blurry", ["Quality", "Cinematic"])
    assert negative == "blurry, lowres, bad anatomy, anime, cartoon, graphic"


def test_extract_reverses_apply(db: StyleDatabase) -> None:
    names = ["Quality", "Cinematic"]
    prompt = db.apply_styles_to_prompt("a cat, sitting", names)
    negative = db.apply_negative_styles_to_prompt("blurry", names)
    assert db.extract_styles_from_prompt(prompt, negative) == (names, "a cat, sitting", "blurry")
    assert db.extract_styles_from_prompt("a dog", "") == ([], "a dog", "")


def test_extract_needs_both_prompts_to_match(db: StyleDatabase) -> None:
    prompt = db.apply_styles_to_prompt("a cat", ["Quality"])
    assert db.extract_styles_from_prompt(prompt, "something else") == ([], prompt, "something else")


def test_extract_text_examples() -> None:
    assert extract_style_text_from_prompt("masterpiece", "1girl, art by greg, masterpiece") == (True, "1girl, art by greg")
    assert extract_style_text_from_prompt("masterpiece, {prompt}", "masterpiece, 1girl") == (True, "1girl")
    assert extract_style_text_from_prompt("masterpiece, {prompt}", "exquisite, 1girl") == (False, "exquisite, 1girl")
    assert extract_style_text_from_prompt("ab{prompt}ba", "aba") == (False, "aba")  # halves may not overlap


def test_save_writes_backup_and_a1111_format(db: StyleDatabase, tmp_path: Path) -> None:
    path = tmp_path / "styles.csv"
    original = path.read_bytes()
    db.add_style("New, with comma", 'say "hi", {prompt}', "")
    assert db.delete_style("Plain") and not db.delete_style("Plain")
    db.save_styles()
    assert (tmp_path / "styles.csv.bak").read_bytes() == original
    data = path.read_bytes()
    assert data.startswith(b"\xef\xbb\xbfname,prompt,negative_prompt\r\n")
    reread = StyleDatabase([path])
    assert list(reread.styles) == ["Cinematic", "Quality", "New, with comma"]
    assert reread.styles["New, with comma"].prompt == 'say "hi", {prompt}'
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_failed_save_keeps_the_old_file(db: StyleDatabase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "styles.csv"
    original = path.read_bytes()
    db.add_style("Another", "x", "y")

    def broken_replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(styles_module.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        db.save_styles()
    assert path.read_bytes() == original
    assert sorted(p.name for p in tmp_path.iterdir()) == ["styles.csv", "styles.csv.bak"]


def test_several_files_and_wildcards(tmp_path: Path) -> None:
    write(tmp_path / "styles.csv", "name,prompt,negative_prompt\nBase,base style,\n")
    extra = tmp_path / "extra"
    extra.mkdir()
    write(extra / "anime.csv", "name,prompt,negative_prompt\nCel,cel shading,photo\n")
    write(extra / "photo.csv", "name,prompt,negative_prompt\nBokeh,\"bokeh, 85mm\",\n")
    db = StyleDatabase([tmp_path / "styles.csv", str(extra / "*.csv")])
    names = list(db.styles)
    assert names == ["---------------- STYLES ----------------", "Base",
                     "---------------- ANIME -----------------", "Cel",
                     "---------------- PHOTO -----------------", "Bokeh"]
    assert db.styles["Cel"].path == str(extra / "anime.csv")
    assert db.extract_styles_from_prompt("a cat, bokeh, 85mm", "") == (["Bokeh"], "a cat", "")
    db.add_style("Cel", "cel shading, flat colors", "photo")  # stays in its own file
    db.add_style("Fresh", "fresh", "")  # goes to the default file
    db.save_styles()
    assert "flat colors" in (extra / "anime.csv").read_text(encoding="utf-8-sig")
    assert "Fresh" in (tmp_path / "styles.csv").read_text(encoding="utf-8-sig")
    assert "STYLES" not in (tmp_path / "styles.csv").read_text(encoding="utf-8-sig")  # dividers are not saved
    assert list(StyleDatabase([tmp_path / "styles.csv", str(extra / "*.csv")]).styles) == [*names[:2], "Fresh", *names[2:]]


def test_wildcard_first_path_picks_a_default_file(tmp_path: Path) -> None:
    db = StyleDatabase([str(tmp_path / "*.csv")])
    assert db.default_file == tmp_path / "styles.csv" and db.styles == {}
    db.add_style("First", "first", "")
    db.save_styles()
    assert StyleDatabase([str(tmp_path / "*.csv")]).styles["First"].prompt == "first"


def test_missing_file_is_an_empty_database(tmp_path: Path) -> None:
    db = StyleDatabase(tmp_path / "nope.csv")
    assert db.styles == {} and db.problems == []
    with pytest.raises(ValueError):
        StyleDatabase([])


def test_malformed_rows_are_reported_and_the_rest_loaded(tmp_path: Path) -> None:
    path = write(tmp_path / "styles.csv", (
        "name,prompt,negative_prompt\n"
        "Good,good prompt,bad\n"
        ",orphan prompt,\n"
        "Split,unquoted, comma,neg,more\n"
        "\n"
        "Last,last,\n"
    ))
    db = StyleDatabase(path)
    assert list(db.styles) == ["Good", "Split", "Last"]
    assert db.styles["Split"].prompt == "unquoted"
    assert any("line 3" in p and "without a name" in p for p in db.problems)
    assert any("line 4" in p and "'Split'" in p and "extra column" in p for p in db.problems)
    assert all(str(path) in p for p in db.problems)


def test_bad_header_and_bad_encoding(tmp_path: Path) -> None:
    db = StyleDatabase(write(tmp_path / "a.csv", "title,body\nx,y\n"))
    assert db.styles == {} and "header must be" in db.problems[0] and "title,body" in db.problems[0]
    latin = write(tmp_path / "b.csv", "name,prompt,negative_prompt\nCafé,crème,\n", encoding="latin-1")
    db = StyleDatabase(latin)
    assert "not valid UTF-8" in db.problems[0] and len(db.styles) == 1


def test_saved_styles_cannot_inject_spreadsheet_formulas(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Style names/prompts written verbatim would run as formulas in Excel/LibreOffice (CSV injection); the file
    stays valid CSV, spreadsheets show text, and the styles read back unchanged."""
    import csv as csv_module

    from modules.prompts.styles import PromptStyle, StyleDatabase

    path = tmp_path / "styles.csv"
    db = StyleDatabase([str(path)])
    hostile = {"=HYPERLINK(\"http://x\",\"y\")": ("+cmd|' /C calc'!A0", "-2+3"),
               "@SUM(1)": ("'quoted", "\tTAB"), "plain, (best:1.2)": ("a cat", "")}
    for name, (prompt, negative) in hostile.items():
        db.styles[name] = PromptStyle(name, prompt, negative, str(path))
    db.save_styles()
    rows = list(csv_module.DictReader(path.read_text(encoding="utf-8-sig").splitlines()))
    for row in rows:
        for cell in row.values():
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cell
    again = StyleDatabase([str(path)])
    for name, (prompt, negative) in hostile.items():
        assert again.styles[name].prompt == prompt and again.styles[name].negative_prompt == negative
