"""Start-up options: --loglevel, auto_launch_browser / --autolaunch, dump_stacks_on_signal, --log-startup."""

from __future__ import annotations

import io
import threading
from types import SimpleNamespace
from typing import Any

from modules.runtime.diagnostics import StageTimer
from modules.runtime.startup import StartupLog, book_stages, log_level, opens_browser, stack_dump


def flags(**kw: Any) -> SimpleNamespace:
    base = {"loglevel": None, "nowebui": False, "autolaunch": False, "listen": False, "share": False,
            "ngrok": None, "server_name": None}
    return SimpleNamespace(**{**base, **kw})


def test_log_level_from_flag_then_environment() -> None:
    assert log_level(flags(), {}) == "INFO"
    assert log_level(flags(), {"SD_WEBUI_LOG_LEVEL": "debug"}) == "DEBUG"
    assert log_level(flags(loglevel="warning"), {"SD_WEBUI_LOG_LEVEL": "debug"}) == "WARNING"
    assert log_level(flags(loglevel="loud"), {}) == "INFO"


def test_browser_opens_like_a1111() -> None:
    local, remote, off = {"auto_launch_browser": "Local"}, {"auto_launch_browser": "Remote"}, \
        {"auto_launch_browser": "Disable"}
    assert opens_browser(flags(), local, {})
    assert not opens_browser(flags(listen=True), local, {})
    assert opens_browser(flags(listen=True), remote, {})
    assert not opens_browser(flags(), off, {})
    assert opens_browser(flags(autolaunch=True), off, {})
    assert not opens_browser(flags(nowebui=True, autolaunch=True), remote, {})
    assert not opens_browser(flags(), local, {"SD_WEBUI_RESTARTING": "1"})


def test_stack_dump_names_every_thread_only_when_enabled() -> None:
    out = io.StringIO()
    settings = {"dump_stacks_on_signal": False}
    hook = stack_dump(settings, out)
    hook()
    assert out.getvalue() == ""
    settings["dump_stacks_on_signal"] = True
    waiting = threading.Event()
    worker = threading.Thread(target=waiting.wait, name="stuck-worker")
    worker.start()
    try:
        hook()
    finally:
        waiting.set()
        worker.join()
    assert "# Thread: stuck-worker" in out.getvalue() and "in wait" in out.getvalue()


def test_log_startup_prints_each_stage() -> None:
    out = io.StringIO()
    clock = iter([0.0, 1.5, 2.0])
    timer = StageTimer(lambda: next(clock), on_record=StartupLog(True, out).stage_done)
    timer.record("load scripts")
    timer.record("create ui")
    assert out.getvalue() == "  >>> load scripts took 1.50s\n  >>> create ui took 0.50s\n"
    quiet = io.StringIO()
    StartupLog(False, quiet).stage_done("x", 1.0)
    assert quiet.getvalue() == ""


def test_import_stages_join_the_startup_time_line() -> None:
    """The stages before the app's timer (imports, flags) are booked like A1111's "import torch: 2.0s, ..." and
    printed by --log-startup; the app's own stages follow them in the summary."""
    out = io.StringIO()
    clock = iter([10.0, 11.0])
    timer = StageTimer(lambda: next(clock), on_record=StartupLog(True, out).stage_done)
    book_stages(timer, 5.0, [("import torch", 7.0), ("import gradio", 8.5), ("other imports", 9.5),
                             ("initialize", 10.0)])
    timer.record("create ui")
    assert list(timer.records) == ["import torch", "import gradio", "other imports", "initialize", "create ui"]
    assert timer.summary() == ("6.0s (import torch: 2.0s, import gradio: 1.5s, other imports: 1.0s, initialize: 0.5s, "
                               "create ui: 1.0s)")
    assert out.getvalue().splitlines()[0] == "  >>> import torch took 2.00s"


def test_warning_filters_follow_the_settings() -> None:
    import warnings

    from modules.runtime.startup import apply_warning_filters

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        apply_warning_filters({"show_warnings": False, "show_gradio_deprecation_warnings": False})
        warnings.warn("hidden", UserWarning, stacklevel=1)
        warnings.warn_explicit("old gradio call", DeprecationWarning, "x.py", 1, module="gradio.blocks")
        apply_warning_filters({"show_warnings": True, "show_gradio_deprecation_warnings": True})
        warnings.warn("shown", UserWarning, stacklevel=1)
        warnings.warn_explicit("old gradio call 2", DeprecationWarning, "x.py", 2, module="gradio.blocks")
    assert [str(w.message) for w in caught] == ["shown", "old gradio call 2"]
