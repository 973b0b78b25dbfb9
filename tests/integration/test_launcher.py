"""The launcher: webui.sh and launch.py in an install folder whose path has spaces and non-ASCII characters.

A stand-in ``webui.py`` records what it was started with, so these tests need neither the real UI nor a network.
The environment-preparation steps are exercised with real subprocesses where they are cheap (extension installers,
the torch CUDA probe) and with a recording runner where they would install packages.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

import launch
from modules.cli.flags import parse_flags

REPO = Path(__file__).resolve().parents[2]
BASH = shutil.which("bash")
STAND_IN_WEBUI = '''
import json, os, sys
from pathlib import Path

def main():
    records = Path("records.jsonl")
    runs = len(records.read_text(encoding="utf-8").splitlines()) if records.exists() else 0
    with records.open("a", encoding="utf-8") as f:
        f.write(json.dumps({
            "argv": sys.argv[1:], "cwd": os.getcwd(), "executable": sys.executable,
            "COMMANDLINE_ARGS": os.environ.get("COMMANDLINE_ARGS"),
            "SD_WEBUI_RESTART": os.environ.get("SD_WEBUI_RESTART"),
            "SD_WEBUI_RESTARTING": os.environ.get("SD_WEBUI_RESTARTING"),
        }) + "\\n")
    if os.environ.get("STAND_IN_RESTARTS") and runs == 0:
        Path("tmp").mkdir(exist_ok=True)
        Path("tmp/restart").write_text("", encoding="utf-8")
'''


@pytest.fixture
def install(tmp_path: Path) -> Path:
    """A copy of the launcher, the flag parser and a stand-in webui.py under a path with a space, ü and 测试."""
    root = tmp_path / "stable diffusion ü 测试"
    root.mkdir()
    for name in ("webui.sh", "webui-user.sh", "launch.py", "requirements.txt"):
        shutil.copy2(REPO / name, root / name)
    shutil.copytree(REPO / "modules", root / "modules", ignore=shutil.ignore_patterns("__pycache__"))
    (root / "webui.py").write_text(STAND_IN_WEBUI, encoding="utf-8")
    return root


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("COMMANDLINE_ARGS", "VENV_DIR", "PYTHON", "LD_PRELOAD")}
    env.update({"VENV_DIR": "-", "PYTHON": sys.executable, "NO_TCMALLOC": "1"}, **extra)
    return env


def _records(root: Path) -> list[dict]:
    path = root / "records.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []


def _webui_sh(root: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    assert BASH is not None
    return subprocess.run([BASH, str(root / "webui.sh"), *args], cwd=str(root.parent), env=_env(**env),
                          capture_output=True, text=True, timeout=120)


needs_bash = pytest.mark.skipif(BASH is None or os.name == "nt", reason="webui.sh needs bash on a POSIX system")


@needs_bash
def test_webui_sh_starts_webui_with_flags_and_commandline_args(install: Path) -> None:
    result = _webui_sh(install, "-f", "--skip-prepare-environment", "--port", "7861",
                       COMMANDLINE_ARGS="--listen --api")
    assert result.returncode == 0, result.stderr
    [record] = _records(install)
    assert record["argv"] == ["-f", "--skip-prepare-environment", "--port", "7861"]
    assert record["COMMANDLINE_ARGS"] == "--listen --api"  # webui.main() parses it itself, once
    assert Path(record["cwd"]) == install
    assert record["SD_WEBUI_RESTART"] == "tmp/restart"
    assert "Launching Web UI with arguments: -f --skip-prepare-environment --port 7861 --listen --api" in result.stdout


@needs_bash
def test_webui_sh_restarts_while_the_restart_marker_exists(install: Path) -> None:
    result = _webui_sh(install, "-f", "--skip-prepare-environment", STAND_IN_RESTARTS="1")
    assert result.returncode == 0, result.stderr
    first, second = _records(install)
    assert first["SD_WEBUI_RESTARTING"] is None
    assert second["SD_WEBUI_RESTARTING"] == "1"  # launch.py removed the marker and flagged the restart
    assert not (install / "tmp" / "restart").exists()
    assert "Restarting..." in result.stdout


@needs_bash
def test_webui_sh_uses_a_venv_folder_with_spaces(install: Path) -> None:
    venv_bin = install / "my venv ü" / "bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "python").symlink_to(sys.executable)
    result = _webui_sh(install, "-f", "--skip-prepare-environment", VENV_DIR="my venv ü")
    assert result.returncode == 0, result.stderr
    [record] = _records(install)
    assert record["executable"] == str(venv_bin / "python")


@needs_bash
def test_webui_sh_creates_the_venv_in_a_folder_with_spaces(install: Path) -> None:
    """First start: a real venv is made in VENV_DIR (pip upgrade kept offline) and launch.py runs inside it."""
    result = _webui_sh(install, "-f", "--skip-prepare-environment", VENV_DIR="new venv 测试",
                       PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    assert result.returncode == 0, result.stderr
    [record] = _records(install)
    assert record["executable"] == str(install / "new venv 测试" / "bin" / "python")
    assert (install / "new venv 测试" / "pyvenv.cfg").is_file()


@needs_bash
def test_webui_sh_reads_webui_user_sh(install: Path) -> None:
    (install / "webui-user.sh").write_text('export COMMANDLINE_ARGS="--port 7999 --theme dark"\n', encoding="utf-8")
    result = _webui_sh(install, "-f", "--skip-prepare-environment")
    assert result.returncode == 0, result.stderr
    assert _records(install)[0]["COMMANDLINE_ARGS"] == "--port 7999 --theme dark"


@needs_bash
@pytest.mark.skipif(os.name == "nt" or os.geteuid() != 0, reason="the root refusal can only be seen as root")
def test_webui_sh_refuses_root_without_f(install: Path) -> None:
    result = _webui_sh(install, "--skip-prepare-environment")
    assert result.returncode == 1
    assert "must not be launched as root" in result.stderr
    assert "-f" in result.stderr
    assert _records(install) == []


@needs_bash
def test_webui_sh_rejects_a_python_that_cannot_run(install: Path) -> None:
    result = _webui_sh(install, "-f", PYTHON=str(install / "no such python"))
    assert result.returncode == 1
    assert "cannot be run" in result.stderr and "webui-user.sh" in result.stderr


def test_launch_py_reports_a_bad_flag_in_one_line(install: Path) -> None:
    result = subprocess.run([sys.executable, str(install / "launch.py"), "--skip-prepare-environment", "--lisen"],
                            cwd=str(install), env=_env(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "--listen" in result.stderr and "Traceback" not in result.stderr
    assert _records(install) == []


def test_launch_py_without_webui_py_says_what_is_missing(install: Path) -> None:
    (install / "webui.py").unlink()
    result = subprocess.run([sys.executable, str(install / "launch.py"), "--skip-prepare-environment"],
                            cwd=str(install), env=_env(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "webui.py was not found" in result.stderr and "Traceback" not in result.stderr


def test_launch_py_prepares_the_environment_then_starts(install: Path) -> None:
    """Full preparation with nothing to install: --skip-install keeps pip away, --use-cpu all skips the CUDA test."""
    ext = install / "extensions" / "my ext ü"
    ext.mkdir(parents=True)
    (ext / "install.py").write_text("open('ext-ran.txt', 'w').write('yes')\n", encoding="utf-8")
    result = subprocess.run([sys.executable, str(install / "launch.py"), "--use-cpu", "all", "--skip-install"],
                            cwd=str(install), env=_env(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "Python 3." in result.stdout and "Commit hash:" in result.stdout
    assert not (install / "ext-ran.txt").exists()  # --skip-install: no extension installers either
    assert len(_records(install)) == 1


# -- preparation steps with explicit flags ---------------------------------------------------------------------------

class Recorder:
    """Stands in for ``launch.run_command``: records argument lists, answers with canned results."""

    def __init__(self, probe: dict | None = None) -> None:
        self.calls: list[list[str]] = []
        self.probe = probe

    def __call__(self, args, *, env, cwd, live=True):
        self.calls.append(list(args))
        stdout = json.dumps(self.probe) if self.probe is not None and args[1:2] == ["-c"] else ""
        return subprocess.CompletedProcess(args, 0, stdout=stdout, stderr="")


def _launcher(tmp_path: Path, *argv: str, env: dict | None = None, installed: tuple[str, ...] = ("torch", "torchvision"),
              runner=None) -> launch.Launcher:
    flags = parse_flags(["--data-dir", str(tmp_path), *argv], env={})
    return launch.Launcher(flags, root=REPO, python="/venv/bin/python", env=env or {}, run=runner or Recorder(),
                           out=open(os.devnull, "w"), system="Linux", is_installed=lambda name: name in installed)


def test_torch_command_runs_only_when_torch_is_missing(tmp_path: Path) -> None:
    present = _launcher(tmp_path)
    launch.install_torch(present)
    assert present.run.calls == []

    missing = _launcher(tmp_path, installed=("torchvision",))
    launch.install_torch(missing)
    [call] = missing.run.calls
    assert call[:5] == ["/venv/bin/python", "-m", "pip", "install", "torch==2.14.1"]
    assert "torchvision==0.29.1" in call

    custom = _launcher(tmp_path, "--reinstall-torch",
                       env={"TORCH_COMMAND": "pip install torch --index-url https://download.pytorch.org/whl/cpu"})
    launch.install_torch(custom)
    assert custom.run.calls == [["/venv/bin/python", "-m", "pip", "install", "torch", "--index-url",
                                 "https://download.pytorch.org/whl/cpu"]]

    skipped = _launcher(tmp_path, "--skip-install", installed=())
    launch.install_torch(skipped)
    assert skipped.run.calls == []


def test_windows_default_torch_command_uses_the_cuda_wheel_index() -> None:
    command = launch.torch_command({}, REPO, "Windows")
    assert command[-2:] == ["--extra-index-url", launch.DEFAULT_TORCH_INDEX_WINDOWS]
    assert launch.torch_command({}, REPO, "Linux")[-1].startswith("torchvision")


def test_no_gpu_is_one_warning_and_the_cpu_is_used(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cpu_build = _launcher(tmp_path, runner=Recorder({"torch": "2.14.1+cpu", "cuda": None, "available": False}))
    assert launch.check_torch_cuda(cpu_build)["available"] is False
    message = capsys.readouterr().err
    assert message.count("Warning:") == 1
    assert "Torch is not able to use a GPU" in message and "CPU-only" in message and "minutes per image" in message
    assert "--skip-torch-cuda-test" in message and "--use-cpu all" in message

    assert launch.cuda_test_needed(_launcher(tmp_path).flags)
    assert not launch.cuda_test_needed(_launcher(tmp_path, "--use-cpu", "all").flags)
    assert not launch.cuda_test_needed(_launcher(tmp_path, "--skip-torch-cuda-test").flags)
    assert launch.cuda_test_needed(_launcher(tmp_path, "--use-cpu", "interrogate").flags)


def test_real_cuda_probe_on_this_machine(tmp_path: Path) -> None:
    """The probe runs in a child Python; without a GPU it warns and the launch goes on (on the CPU)."""
    import torch

    real = _launcher(tmp_path, runner=launch.run_command)
    real.python = sys.executable
    if torch.cuda.is_available():
        assert launch.check_torch_cuda(real)["available"] is True
    else:
        assert launch.check_torch_cuda(real)["available"] is False


def test_requirements_install_is_skipped_when_satisfied(tmp_path: Path) -> None:
    (tmp_path / "base.txt").write_text("# comment\npytest>=1.0  # inline\n--extra-index-url https://x.invalid\n",
                                       encoding="utf-8")
    satisfied = tmp_path / "ok.txt"
    satisfied.write_text("-r base.txt\npackaging\nnot-a-real-package-xyz; python_version < '3.0'\n", encoding="utf-8")
    unmet = tmp_path / "unmet.txt"
    unmet.write_text("pytest>=1.0\nnot-a-real-package-xyz==1.0\n", encoding="utf-8")
    too_old = tmp_path / "old.txt"
    too_old.write_text("pytest<1.0\n", encoding="utf-8")
    assert launch.requirements_met(satisfied)
    assert not launch.requirements_met(unmet)
    assert not launch.requirements_met(too_old)

    ok = _launcher(tmp_path, env={"REQS_FILE": str(satisfied)})
    launch.install_requirements(ok)
    assert ok.run.calls == []
    need = _launcher(tmp_path, env={"REQS_FILE": str(unmet), "INDEX_URL": "https://mirror.invalid/simple"})
    launch.install_requirements(need)
    assert need.run.calls == [["/venv/bin/python", "-m", "pip", "install", "-r", str(unmet), "--prefer-binary",
                               "--index-url", "https://mirror.invalid/simple"]]
    missing = _launcher(tmp_path, env={"REQS_FILE": "nope.txt"})
    with pytest.raises(launch.LaunchError, match="REQS_FILE"):
        launch.install_requirements(missing)


def test_extension_installers_run_for_enabled_extensions_only(tmp_path: Path) -> None:
    extensions = tmp_path / "extensions"
    script = ("import os, sys, pathlib; pathlib.Path(sys.argv[0]).with_name('ran.txt')"
              ".write_text(os.environ['PYTHONPATH'], encoding='utf-8')\n")
    for name in ("enabled ü", "disabled", "broken"):
        (extensions / name).mkdir(parents=True)
        (extensions / name / "install.py").write_text(script, encoding="utf-8")
    (extensions / "broken" / "install.py").write_text("raise SystemExit('cannot install')\n", encoding="utf-8")
    (extensions / "no installer").mkdir()
    (tmp_path / "config.json").write_text(json.dumps({"disabled_extensions": ["disabled"]}), encoding="utf-8")

    launcher = _launcher(tmp_path, runner=launch.run_command)
    launcher.python = sys.executable
    launch.run_extension_installers(launcher)  # the broken one is reported, not fatal
    assert (extensions / "enabled ü" / "ran.txt").read_text(encoding="utf-8") == str(REPO)
    assert not (extensions / "disabled" / "ran.txt").exists()

    assert launch.enabled_extensions(_launcher(tmp_path, "--disable-all-extensions").flags, REPO) == []
    (tmp_path / "config.json").write_text(json.dumps({"disable_all_extensions": "extra"}), encoding="utf-8")
    assert all(p.parent.name == "extensions-builtin" for p in launch.enabled_extensions(launcher.flags, REPO))


def test_prepare_environment_order_and_exit(tmp_path: Path) -> None:
    (tmp_path / "reqs.txt").write_text("not-a-real-package-xyz\n", encoding="utf-8")
    runner = Recorder({"torch": "2.14.1", "cuda": "13.0", "available": True})
    launcher = _launcher(tmp_path, "--exit", env={"REQS_FILE": str(tmp_path / "reqs.txt")}, installed=(),
                         runner=runner)
    with pytest.raises(SystemExit) as info:
        launch.prepare_environment(launcher)
    assert info.value.code == 0
    commands = [c for c in runner.calls if c[0] == "/venv/bin/python"]
    assert commands[0][2:4] == ["pip", "install"] and "torch==2.14.1" in commands[0]  # torch first
    # then the CUDA probe (on its own thread, issue 16) and the requirements, in either order
    assert sorted(c[1] for c in commands[1:]) == ["-c", "-m"]
    assert [c[2:6] for c in commands[1:] if c[1] == "-m"] == [["pip", "install", "-r", str(tmp_path / "reqs.txt")]]


def test_cuda_probe_overlaps_the_web_ui_import_and_start_waits_for_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """The child Python's torch import runs while the web UI imports (issue 16); `start` waits for its outcome
    before `webui.main()`: the no-GPU warning is printed by then, and a broken torch is the launcher's clear error."""
    import io
    import threading

    release = threading.Event()

    class SlowProbe(Recorder):
        def __call__(self, args, *, env, cwd, live=True):
            if args[1:2] == ["-c"]:
                release.wait(10)
            return super().__call__(args, env=env, cwd=cwd, live=live)

    calls: list[str] = []
    monkeypatch.setitem(sys.modules, "webui", SimpleNamespace(main=lambda: calls.append("main") or 0))
    launcher = _launcher(tmp_path, runner=SlowProbe({"torch": "2.14.1+cpu", "cuda": None, "available": False}))
    pending = launch.prepare_environment(launcher)  # returns while the probe still runs
    assert pending is not None and calls == []
    threading.Timer(0.2, release.set).start()
    assert launch.start(launcher.flags, [], out=io.StringIO(), cuda_check=pending) == 0
    assert calls == ["main"]
    assert "Torch is not able to use a GPU" in capsys.readouterr().err

    class Broken(Recorder):
        def __call__(self, args, *, env, cwd, live=True):
            self.calls.append(list(args))
            return subprocess.CompletedProcess(args, 1, stdout="", stderr="ImportError: libtorch.so: cannot open")

    calls.clear()
    broken = launch.prepare_environment(_launcher(tmp_path, runner=Broken()))
    with pytest.raises(launch.LaunchError, match="Torch could not be imported"):
        launch.start(launcher.flags, [], out=io.StringIO(), cuda_check=broken)
    assert calls == []


def test_python_version_warning_and_restart_marker(tmp_path: Path) -> None:
    assert launch.python_version_warning((3, 11, 7)) is None
    warning = launch.python_version_warning((3, 14, 0))
    assert warning is not None and "3.14.0" in warning and "--skip-python-version-check" in warning
    env: dict[str, str] = {}
    assert launch.clear_restart_marker(tmp_path, env) is False
    (tmp_path / "tmp").mkdir()
    (tmp_path / "tmp" / "restart").write_text("", encoding="utf-8")
    assert launch.clear_restart_marker(tmp_path, env) is True
    assert env == {"SD_WEBUI_RESTARTING": "1"}
    assert not (tmp_path / "tmp" / "restart").exists()


def test_start_calls_webui_main(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    calls: list[str] = []
    monkeypatch.setitem(sys.modules, "webui", SimpleNamespace(main=lambda: calls.append("main") or 0))
    flags = parse_flags(["--nowebui"], env={})
    assert launch.start(flags, ["--nowebui"], out=sys.stdout) == 0
    assert calls == ["main"]
    assert "Launching API server with arguments: --nowebui" in capsys.readouterr().out
