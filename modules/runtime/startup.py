"""Start-up and shutdown behaviour behind flags and settings (A1111 `webui.py`, `modules/logging_config.py`,
`modules/timer.py`, `modules/initialize_util.py`).

* `log_level`: `--loglevel`, else the `SD_WEBUI_LOG_LEVEL` environment variable (A1111 `setup_logging`), else INFO
  (this app's default: its console messages are log records, where A1111 uses `print`).
* `opens_browser`: A1111's rule for opening the UI in the browser once the server runs: `--autolaunch` or the
  `auto_launch_browser` setting "Remote" always, "Local" (the default) only when the server is not reachable from
  the network (no `--listen`, `--share`, `--ngrok`, `--server-name`), "Disable" never; never in API-only mode
  (`--nowebui`) or while restarting (`SD_WEBUI_RESTARTING=1`).
* `stack_dump`: with `dump_stacks_on_signal`, the stack of every thread is printed when Ctrl+C / SIGTERM arrives,
  before the server shuts down (A1111 `dumpstacks` in its SIGINT handler) — for finding where a job hangs.
* `book_stages`: the stages before the app's timer started (importing torch, gradio and the rest of the app, then
  flag parsing and the port) join the "Startup time" line, as A1111's "import torch", "import gradio",
  "other imports", "initialize" stages do.
* `StartupLog`: `--log-startup` prints each start-up stage with its time as it finishes (A1111
  `Timer(print_log=True)`: "  >>> name took 1.23s").
* `apply_warning_filters`: Python's `UserWarning`s reach the console only with `show_warnings` (default off), and
  Gradio's deprecation warnings only with `show_gradio_deprecation_warnings` (default on) — A1111 sets both
  filters when its UI module loads. Gradio 6 has no warning class of its own; its `DeprecationWarning` /
  `FutureWarning`s are matched by module.
"""

from __future__ import annotations

import logging
import sys
import threading
import traceback
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, TextIO

from modules.runtime.diagnostics import StageTimer

LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")


def log_level(flags: Any, env: Mapping[str, str]) -> str:
    """The logging level name for this run (see module docstring); an unknown name falls back to INFO."""
    wanted = str(getattr(flags, "loglevel", None) or env.get("SD_WEBUI_LOG_LEVEL") or "INFO").upper()
    return wanted if wanted in LEVELS else "INFO"


def configure_logging(flags: Any, env: Mapping[str, str]) -> None:
    """Root logging at `log_level` with the app's console format."""
    logging.basicConfig(level=log_level(flags, env), format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        force=True)


def _exposed(flags: Any) -> bool:
    """Whether the server answers the network (A1111 `cmd_opts.webui_is_non_local`)."""
    return any(getattr(flags, name, None) for name in ("listen", "share", "ngrok", "server_name"))


def opens_browser(flags: Any, settings: Any, env: Mapping[str, str]) -> bool:
    """Whether to open the UI in the browser after start-up (see module docstring)."""
    if getattr(flags, "nowebui", False) or env.get("SD_WEBUI_RESTARTING") == "1":
        return False
    mode = str(settings.get("auto_launch_browser") or "Local")
    if getattr(flags, "autolaunch", False) or mode == "Remote":
        return True
    return mode == "Local" and not _exposed(flags)


def dump_stacks() -> str:
    """The current stack of every thread, named (A1111 `dumpstacks`)."""
    names = {thread.ident: thread.name for thread in threading.enumerate()}
    lines: list[str] = []
    for ident, frame in sys._current_frames().items():
        lines.append(f"\n# Thread: {names.get(ident, '')}({ident})")
        lines.extend(line.rstrip() for line in traceback.format_stack(frame))
    return "\n".join(lines)


def stack_dump(settings: Any, out: TextIO | None = None) -> Callable[[], None]:
    """The server's on-signal hook: prints `dump_stacks()` when `dump_stacks_on_signal` is on (read at the signal,
    so changing the setting while running counts)."""
    def on_signal() -> None:
        if settings.get("dump_stacks_on_signal"):
            print(dump_stacks(), file=out or sys.stderr, flush=True)

    return on_signal


class StartupLog:
    """`--log-startup`: a stage recorder that prints each stage as it ends (wraps the app's `StageTimer`)."""

    def __init__(self, enabled: bool, out: TextIO | None = None) -> None:
        self.enabled = enabled
        self.out = out

    def stage_done(self, name: str, seconds: float) -> None:
        if self.enabled:
            print(f"  >>> {name} took {seconds:.2f}s", file=self.out or sys.stdout, flush=True)


def book_stages(timer: StageTimer, started: float, marks: Sequence[tuple[str, float]]) -> None:
    """Book on `timer` each stage that ran before it existed: `marks` are (name, end time) in order, the first
    stage began at `started` (same clock as the timer). `--log-startup` prints them as usual."""
    begin = started
    for name, end in marks:
        seconds = max(0.0, end - begin)
        timer.records[name] = timer.records.get(name, 0.0) + seconds
        if timer.on_record is not None:
            timer.on_record(name, seconds)
        begin = end


def apply_warning_filters(settings: Any) -> None:
    """Console warning filters from `show_warnings` and `show_gradio_deprecation_warnings` (see module docstring)."""
    shown: Literal["default", "ignore"] = "default" if settings.get("show_warnings") else "ignore"
    warnings.filterwarnings(shown, category=UserWarning)
    gradio: Literal["default", "ignore"] = "default" if settings.get("show_gradio_deprecation_warnings") else "ignore"
    for category in (DeprecationWarning, FutureWarning):
        warnings.filterwarnings(gradio, category=category, module=r"gradio(\.|$)")
