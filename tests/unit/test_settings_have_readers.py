"""Every registered setting and every command-line flag has a reader in production code.

A setting shown in Settings, or a flag accepted on the command line, that nothing reads is a promise the program
does not keep. This test scans the production code (`modules/`, `webui.py`, `launch.py`, `scripts/`, and for the
options read in the browser `javascript/*.js`) for a read of each key:

* a setting is read where its key is a string constant in Python (`settings.get("jpeg_quality")`,
  `("outdir_samples", "outdir_txt2img_samples")` looked up later) or an attribute of a settings object
  (`snapshot.eta_ancestral`), or in JavaScript as `opts.<key>` / `opts["<key>"]`;
* a flag is read as an attribute of a flags object (`flags.port`, `ctx.flags.api`, `cmd_opts.lowvram`), as a
  string constant on a line that mentions the flags (`getattr(flags, "use_ipex", False)`, `flags.is_set("port")`),
  or by `webui.sh` (A1111's `-f`, which only the shell script reads).

Not counted: the declaration files, the settings store's load-time migration, path-dependent default tables
(`Paths.setting_default_overrides`), docstrings and comments, and a key in a dict display whose value is a plain
constant (a table of defaults such as `SAVING_DEFAULTS` is not a reader).

`ALLOWED_UNREAD` lists what another open issue still has to build, each with the issue that builds it. The list
only shrinks: a listed key that gains a reader fails the test until it is removed from the list. What is left and
why: docs/settings-allow-list.md.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

from modules.cli.flag_specs import FLAG_SPECS
from modules.settings.registry import BUILTIN_KEYS

ROOT = Path(__file__).resolve().parents[2]

DECLARATION_FILES = {
    "modules/settings/registry.py", "modules/settings/sections_saving.py", "modules/settings/sections_sd.py",
    "modules/settings/sections_system.py", "modules/settings/sections_ui.py", "modules/cli/flag_specs.py",
}
"""Where settings and flags are declared: a key written there is not a read."""

NOT_SETTING_READERS = {"modules/settings/store.py", "modules/cli/paths.py"}
"""Files that name settings without reading them: the store's load-time migration of renamed keys and the table
of path-dependent defaults. Their flag reads still count."""

SETTINGS_RECEIVER = re.compile(r"(opts|settings|snapshot|snap|options)$")
FLAGS_RECEIVER = re.compile(r"(flags|cmd_opts)$")

UNET_REPLACEMENTS = ("acts only with a UNet-replacement extension (A1111 `modules.sd_unet`, e.g. TensorRT), which "
                     "reaches into model internals and is not supported (docs/extensions.md); with no such "
                     "extension A1111's choices, Automatic and None, both use the checkpoint's UNet, as here")
EXTENSION_ONLY = "read only by extensions through shared.cmd_opts (A1111's own code never reads it either)"

ALLOWED_UNREAD: dict[str, str] = {
    # UNet replacements
    "sd_unet": UNET_REPLACEMENTS,
    # read by extensions only
    "administrator": EXTENSION_ONLY,
}
"""Registered settings and flags (by key / dest) that no production code reads yet → the open issue that builds
them. Shrinks only."""


def production_files() -> Iterator[tuple[str, Path]]:
    """(relative path, path) of every production source file."""
    candidates = [ROOT / "webui.py", ROOT / "launch.py"]
    candidates += sorted((ROOT / "modules").rglob("*.py")) + sorted((ROOT / "scripts").rglob("*.py"))
    candidates += sorted((ROOT / "javascript").glob("*.js"))
    for path in candidates:
        rel = path.relative_to(ROOT).as_posix()
        if path.is_file() and rel not in DECLARATION_FILES:
            yield rel, path


def _receiver_text(node: ast.expr) -> str:
    try:
        return ast.unparse(node)
    except Exception:
        return ""


def _docstring_nodes(tree: ast.AST) -> set[int]:
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            for stmt in body:
                if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) \
                        and isinstance(stmt.value.value, str):
                    out.add(id(stmt.value))
    return out


WRITERS = {"set_override", "set", "reset", "update"}
"""Calls whose first string argument names a setting being written (`settings.set("sd_vae", …)`, X/Y/Z's
`set_override("uni_pc_order")`), not read."""


def _not_reads(tree: ast.AST) -> set[int]:
    """Ids of string constants that name a setting without reading it: both sides of a constant → constant dict
    entry (a defaults table, an infotext-label → setting map used for pasting) and the key of a write call."""
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and isinstance(value, ast.Constant):
                    out.update((id(key), id(value)))
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            if name in WRITERS:
                out.add(id(node.args[0]))
    return out


def python_reads(source: str, *, settings: bool) -> tuple[set[str], set[str]]:
    """(setting keys read, flag dests read) in one Python file."""
    tree = ast.parse(source)
    lines = source.splitlines()
    skip = _docstring_nodes(tree) | _not_reads(tree)
    setting_reads: set[str] = set()
    flag_reads: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            if settings:
                setting_reads.add(node.value)
            line = lines[node.lineno - 1] if node.lineno <= len(lines) else ""
            if "flags" in line or "cmd_opts" in line:
                flag_reads.add(node.value)
        elif isinstance(node, ast.Attribute):
            receiver = _receiver_text(node.value)
            if settings and SETTINGS_RECEIVER.search(receiver):
                setting_reads.add(node.attr)
            if FLAGS_RECEIVER.search(receiver):
                flag_reads.add(node.attr)
    return setting_reads, flag_reads


JS_READ = re.compile(r"""opts\.(\w+)|opts\[\s*["'](\w+)["']\s*\]""")


def all_reads() -> tuple[set[str], set[str]]:
    """(setting keys read, flag dests read) across the production code."""
    setting_reads: set[str] = set()
    flag_reads: set[str] = set()
    for rel, path in production_files():
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".js":
            setting_reads.update(a or b for a, b in JS_READ.findall(text))
            continue
        s, f = python_reads(text, settings=rel not in NOT_SETTING_READERS)
        setting_reads |= s
        flag_reads |= f
    shell = (ROOT / "webui.sh").read_text(encoding="utf-8")
    flag_reads.update(spec.dest for spec in FLAG_SPECS if f'"{spec.option}"' in shell)
    return setting_reads, flag_reads


def unread() -> tuple[list[str], list[str]]:
    """(unread setting keys, unread flag dests), in declaration order."""
    setting_reads, flag_reads = all_reads()
    settings = [key for key in sorted(BUILTIN_KEYS) if key not in setting_reads]
    flags = [spec.dest for spec in FLAG_SPECS if not spec.legacy and spec.dest not in flag_reads]
    return settings, flags


def test_every_setting_and_flag_has_a_reader_or_an_issue_that_builds_it() -> None:
    settings, flags = unread()
    missing = [key for key in settings + flags if key not in ALLOWED_UNREAD]
    assert not missing, (
        f"{len(missing)} registered settings/flags are never read by production code and are not on the "
        f"allow-list (build a reader, or remove the option if no A1111 user would miss it): {missing}")


def test_allow_list_shrinks_when_a_reader_is_built() -> None:
    settings, flags = unread()
    still_unread = set(settings) | set(flags)
    now_read = [key for key in ALLOWED_UNREAD if key not in still_unread]
    assert not now_read, f"these allow-listed keys now have a reader; remove them from ALLOWED_UNREAD: {now_read}"


def test_allow_list_names_only_registered_keys() -> None:
    known = set(BUILTIN_KEYS) | {spec.dest for spec in FLAG_SPECS}
    assert not [key for key in ALLOWED_UNREAD if key not in known]


def test_scanner_sees_reads_and_ignores_tables_and_docstrings() -> None:
    source = '''
"""Module doc naming "jpeg_quality"."""
DEFAULTS = {"grid_format": "png"}
KEYS = ("outdir_samples", "outdir_grids")
def f(settings, flags, snapshot):
    """doc"""
    settings.get("samples_format")
    getattr(flags, "use_ipex", False)
    return snapshot.eta_ancestral, flags.port, ctx.flags.api
'''
    settings, flags = python_reads(source, settings=True)
    assert {"samples_format", "outdir_samples", "outdir_grids", "eta_ancestral"} <= settings
    assert "grid_format" not in settings
    assert {"use_ipex", "port", "api"} <= flags
