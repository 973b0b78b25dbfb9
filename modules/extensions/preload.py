"""Command-line flags added by extensions (A1111 `preload.py`).

A1111 (`modules/shared_cmd_options.py`, `script_loading.preload_extensions`): before the command line is parsed,
each enabled extension's `preload.py` is imported and its `preload(parser)` called with the argparse parser, so
extensions add their own flags with `parser.add_argument("--my-flag", ...)`; the flags are then read as
`shared.cmd_opts.my_flag`. The extensions are those of the data dir the command line names (`--data-dir`), minus
the ones `config.json` disables (`disabled_extensions`, `disable_all_extensions`) or `--disable-all-extensions` /
`--disable-extra-extensions` turn off. A preload.py that raises (or re-declares a flag) is reported by name and
skipped, and the flags it added are dropped with it.

`parse_command_line(argv, env)` does this for `webui.create_app`, `webui.main` and `launch.py`: known flags are
read first (unknown ones ignored) to find the data dir, then every preload runs against a parser that already
knows the built-in flags, then the whole command line is parsed strictly with the recorded extension flags.
"""

from __future__ import annotations

import argparse
import contextlib
import contextvars
import importlib.util
import json
import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from modules.cli.flags import ENV_IGNORE_ERRORS, ExtensionArgument, FlagValues, build_parser, parse_flags
from modules.cli.paths import resolve_paths
from modules.extensions.manager import Extension, discover_extensions

log = logging.getLogger(__name__)

ImportScope = Callable[[Path], AbstractContextManager[Any]]
"""`scope(extension folder)`: the context a preload.py is imported in (the folder first on `sys.path`)."""


class PreloadParser:
    """What `preload(parser)` receives: it answers like an argparse parser that already holds every built-in flag
    (so a re-declared flag raises `argparse.ArgumentError`, as in A1111) and records each `add_argument` call."""

    def __init__(self, known: Sequence[ExtensionArgument] = ()) -> None:
        self._parser = build_parser(extension_arguments=known)
        self.recorded: list[ExtensionArgument] = []

    def add_argument(self, *args: str, **kwargs: Any) -> argparse.Action:
        """`parser.add_argument(...)`: checked against the known flags, then recorded."""
        action = self._parser.add_argument(*args, **kwargs)
        self.recorded.append((tuple(args), dict(kwargs)))
        return action

    def add_argument_group(self, *args: Any, **kwargs: Any) -> PreloadParser:
        """Groups only change the help layout: their flags are recorded like the parser's own."""
        return self

    def add_mutually_exclusive_group(self, *args: Any, **kwargs: Any) -> PreloadParser:
        return self

    def __getattr__(self, name: str) -> Any:
        return getattr(self._parser, name)


@dataclass
class PreloadResult:
    """The extension flags every preload added, and one message per preload.py that failed."""

    arguments: list[ExtensionArgument] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _run_one_preload(ext: Extension, script: Path, parser: PreloadParser, scope: ImportScope | None) -> None:
    name = f"webui_preload_{ext.name}".replace("-", "_").replace(".", "_")
    spec = importlib.util.spec_from_file_location(name, script)
    if spec is None or spec.loader is None:
        raise ImportError(f"{script} is not a loadable Python file")
    module = importlib.util.module_from_spec(spec)
    with scope(ext.path) if scope is not None else contextlib.nullcontext():
        spec.loader.exec_module(module)
        preload = getattr(module, "preload", None)
        if callable(preload):
            preload(parser)


def run_preloads(extensions: Iterable[Extension], scope: ImportScope | None = None,
                 timeout: float = 0.0) -> PreloadResult:
    """Import each enabled extension's preload.py and call `preload(parser)` (A1111 `preload_extensions`).

    With `timeout` > 0 (`--script-import-timeout`), a preload.py still running after that many seconds (a download
    that never ends, a prompt waiting for input) is reported and skipped, its flags dropped, and start-up goes on;
    the issue "safe to expose" §12 (A1111 waits forever)."""
    result = PreloadResult()
    for ext in extensions:
        script = ext.preload_script
        if not ext.enabled or script is None:
            continue
        parser = PreloadParser(result.arguments)
        failure: list[BaseException] = []

        def work(ext: Extension = ext, script: Path = script, parser: PreloadParser = parser,
                 failure: list[BaseException] = failure) -> None:
            try:
                _run_one_preload(ext, script, parser, scope)
            except (Exception, SystemExit) as error:
                failure.append(error)

        if timeout > 0:
            worker = threading.Thread(target=contextvars.copy_context().run, args=(work,), daemon=True,
                                      name=f"preload {ext.name}")
            worker.start()
            worker.join(timeout)
            if worker.is_alive():
                result.errors.append(f"extension {ext.name!r}: {script} still importing after {timeout:g} s "
                                     "(--script-import-timeout); skipped so that the server starts, its flags are "
                                     "not available")
                continue
        else:
            work()
        if failure:
            exc = failure[0]
            result.errors.append(f"extension {ext.name!r}: {script} failed, its flags are not available: "
                                 f"{type(exc).__name__}: {exc}")
            continue
        result.arguments.extend(parser.recorded)
    return result


def _config(path: Path) -> Mapping[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def enabled_extensions(flags: FlagValues, env: Mapping[str, str]) -> list[Extension]:
    """The extensions of the data dir with their enabled state from config.json and the flags (A1111
    `launch_utils.list_extensions`)."""
    paths = resolve_paths(flags, env)
    config = _config(paths.settings_file)
    mode = "all" if flags.disable_all_extensions else "extra" if flags.disable_extra_extensions else \
        str(config.get("disable_all_extensions") or "none")
    disabled = config.get("disabled_extensions") or []
    return discover_extensions(paths.extensions_dir, paths.extensions_builtin_dir,
                               disabled=[str(n) for n in disabled] if isinstance(disabled, list) else [],
                               disable_all=mode, with_git=False)


def parse_command_line(argv: Sequence[str] | None, env: Mapping[str, str], *, scope: ImportScope | None = None,
                       stderr: TextIO | None = None) -> tuple[FlagValues, list[str]]:
    """Flags of the command line (+ `COMMANDLINE_ARGS`) including the ones extensions add in `preload.py`;
    returns (flags, preload error messages). Raises `FlagError` on a bad command line, like `parse_flags`."""
    known = parse_flags(argv, {**env, ENV_IGNORE_ERRORS: "1"}, stderr=stderr)
    preloaded = run_preloads(enabled_extensions(known, env), scope,
                             timeout=float(getattr(known, "script_import_timeout", 0) or 0))
    for message in preloaded.errors:
        log.error("preload.py skipped: %s", message)
    flags = parse_flags(argv, env, extension_arguments=preloaded.arguments, stderr=stderr)
    return flags, preloaded.errors
