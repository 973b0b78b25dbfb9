"""Start-up flags and settings a user sees in the terminal: `--log-startup`, `--loglevel`, and
`dump_stacks_on_signal` (every thread's stack printed when Ctrl+C arrives)."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

from tests.conftest import TinyCheckpointFactory
from tests.integration.test_app_start import Process, clean_env, start_api_only


def test_log_startup_loglevel_and_stack_dump_on_ctrl_c(tmp_path: Path, tiny_checkpoint: TinyCheckpointFactory
                                                       ) -> None:
    root = tmp_path / "data"
    (root / "models" / "Stable-diffusion").mkdir(parents=True)
    (root / "models" / "Stable-diffusion" / "sd1.safetensors").symlink_to(tiny_checkpoint("sd1"))
    (root / "config.json").write_text(json.dumps({"dump_stacks_on_signal": True}), encoding="utf-8")
    proc: Process
    proc, url = start_api_only(root, "--log-startup", "--loglevel", "WARNING", "--skip-load-model-at-start",
                               env=clean_env())
    try:
        proc.wait_http(f"{url}/sdapi/v1/options", timeout=180)
        os.killpg(proc.proc.pid, signal.SIGINT)
        proc.proc.wait(timeout=60)
    finally:
        proc.stop()
    text = proc.output()
    assert ">>> load scripts and settings took " in text, text
    assert " INFO " not in text, text  # --loglevel WARNING
    assert "# Thread: MainThread" in text, text
