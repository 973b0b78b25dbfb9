"""launch.py flags: --dump-sysinfo, --test-server, --update-check (A1111 launch.py / launch_utils)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import launch
from modules.cli.flags import parse_flags

REPO = Path(__file__).resolve().parents[2]


def test_dump_sysinfo_writes_the_json_and_exits_without_secrets(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"samples_format": "jpg"}), encoding="utf-8")
    env = {**os.environ, "COMMANDLINE_ARGS": "--api-auth user:s3cret", "HF_TOKEN": "hf_secret",
           "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, str(REPO / "launch.py"), "--dump-sysinfo", "--data-dir", str(tmp_path),
                             "--ui-settings-file", str(config)], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    [written] = list(tmp_path.glob("sysinfo-*.json"))
    assert f"Sysinfo saved as {written}. Exiting..." in result.stdout
    text = written.read_text(encoding="utf-8")
    info = json.loads(text)
    assert info["Config"] == {"samples_format": "jpg"} and info["Data path"] == str(tmp_path)
    assert info["Environment"]["COMMANDLINE_ARGS"] and "HF_TOKEN" not in info["Environment"]
    assert "s3cret" not in "".join(info["Commandline"]) and "hf_secret" not in text
    assert any(p.startswith("torch==") for p in info["Packages"])


def test_test_server_starts_webui_with_the_test_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    assert launch.argv_for_test_server(["--api", "--port", "7000"]) == [
        "--api", "--port", "7000", "--skip-torch-cuda-test", "--disable-nan-check"]
    seen: dict[str, object] = {}

    def start(flags: object, args: list[str], **kwargs: object) -> int:  # kwargs: the pending CUDA check
        seen.update(args=list(args), argv=list(sys.argv[1:]), env=os.environ.get("COMMANDLINE_ARGS"))
        return 0

    monkeypatch.setattr(launch, "start", start)
    monkeypatch.setattr(launch, "clear_restart_marker", lambda root, env: False)
    monkeypatch.setattr(sys, "argv", ["launch.py"])
    monkeypatch.setenv("COMMANDLINE_ARGS", "--port 7001")
    assert launch.main(["--test-server", "--skip-prepare-environment"]) == 0
    expected = ["--test-server", "--skip-prepare-environment", "--port", "7001", "--api", "--skip-torch-cuda-test",
                "--disable-nan-check"]
    assert seen == {"args": expected, "argv": expected, "env": ""}


def test_update_check_compares_with_the_remote(tmp_path: Path) -> None:
    def git(*args: str, cwd: Path) -> str:
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()

    origin, clone = tmp_path / "origin", tmp_path / "clone"
    origin.mkdir()
    git("init", "-q", "-b", "main", cwd=origin)
    git("-c", "user.email=a@b", "-c", "user.name=a", "commit", "-q", "--allow-empty", "-m", "one", cwd=origin)
    git("clone", "-q", str(origin), str(clone), cwd=tmp_path)
    flags = parse_flags(["--update-check"], env={})
    out = io.StringIO()
    launcher = launch.Launcher(flags, root=clone, env=dict(os.environ), out=out)
    assert launch.check_for_update(launcher) == "You are up to date with the most recent release."
    git("-c", "user.email=a@b", "-c", "user.name=a", "commit", "-q", "--allow-empty", "-m", "two", cwd=origin)
    assert launch.check_for_update(launcher).startswith("A newer version is available")
    assert "could not check" in launch.check_for_update(launch.Launcher(flags, root=tmp_path / "nothing",
                                                                       env=dict(os.environ), out=out))
