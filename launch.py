"""Prepare the Python environment, then start the web UI (A1111's ``launch.py`` + ``modules/launch_utils.py``).

Run by ``webui.sh`` / ``webui.bat`` inside the venv, or directly: ``python launch.py [flags]``.  Flags come from the
command line plus the ``COMMANDLINE_ARGS`` environment variable (parsed by ``modules.cli.flags.parse_flags``).

Steps of ``prepare_environment`` (all skipped by ``--skip-prepare-environment``), in A1111's order:

1. delete the restart marker ``tmp/restart`` (and set ``SD_WEBUI_RESTARTING=1`` when it was there);
2. check the Python version (``--skip-python-version-check``);
3. print the Python version, ``Version:`` (``git describe --tags``) and ``Commit hash:``; with ``--update-check``,
   say whether the remote has a newer commit;
4. install torch with ``TORCH_COMMAND`` when torch or torchvision is missing (or ``--reinstall-torch``);
5. test that torch can use CUDA (``--skip-torch-cuda-test``; not needed with ``--use-cpu all``);
6. install xformers when ``--xformers`` is given and it is missing (``XFORMERS_PACKAGE``);
7. ``pip install -r REQS_FILE`` (default ``requirements.txt``) only when some requirement is not met;
8. run ``install.py`` of every enabled extension (``--skip-install`` skips this and every pip call);
9. ``--update-all-extensions`` (git pull), ``--exit``.

Then ``start`` imports ``webui`` and calls ``webui.main()``, which parses the same command line itself
(``--test-server`` adds ``--api --skip-torch-cuda-test --disable-nan-check`` first). ``--dump-sysinfo`` writes
``sysinfo-<date>.json`` in the working directory and exits before any of this.
Commands run as argument lists (never through a shell), so install paths with spaces or non-ASCII characters work.
"""

import sys

MIN_PYTHON = (3, 10)
TESTED_PYTHON = ((3, 10), (3, 11), (3, 12), (3, 13))

if sys.version_info[:2] < MIN_PYTHON:  # checked before anything newer than Python 3.6 syntax is evaluated
    sys.stderr.write(
        "INCOMPATIBLE PYTHON VERSION: this web UI needs Python {}.{} or newer, but {} is {}.{}.{}.\n"
        "Install Python 3.10-3.13, delete the venv folder next to webui.sh, and start again "
        "(or set PYTHON / python_cmd in webui-user.sh / webui-user.bat to a newer Python).\n".format(
            MIN_PYTHON[0], MIN_PYTHON[1], sys.executable, *sys.version_info[:3]))
    raise SystemExit(1)

import importlib  # noqa: E402 - the version check above must run first
import importlib.util  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import shlex  # noqa: E402
import subprocess  # noqa: E402
import threading  # noqa: E402
from collections.abc import Callable, Iterator, Mapping, MutableMapping, Sequence  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, TextIO  # noqa: E402

ROOT = Path(__file__).resolve().parent
RESTART_MARKER = Path("tmp") / "restart"
CUDA_SKIP_HINT = "add --skip-torch-cuda-test or --use-cpu all to COMMANDLINE_ARGS"
DEFAULT_TORCH_INDEX_WINDOWS = "https://download.pytorch.org/whl/cu130"
"""PyPI's Windows torch wheels are CPU-only, so A1111 adds the CUDA wheel index on Windows (cu121 for torch 2.1);
torch 2.14 is built against CUDA 13.0."""

_TORCH_PROBE = (
    "import json, torch\n"
    "print(json.dumps({'torch': torch.__version__, 'cuda': torch.version.cuda,"
    " 'available': bool(torch.cuda.is_available())}))\n"
)

Runner = Callable[..., "subprocess.CompletedProcess[str]"]


class LaunchError(Exception):
    """A problem the user must fix before the UI can start; printed as one clear message, no traceback."""


def run_command(args: Sequence[str], *, env: Mapping[str, str], cwd: Path,
                live: bool = True) -> "subprocess.CompletedProcess[str]":
    """Run a command from an argument list; ``live`` streams its output, otherwise it is captured."""
    output = None if live else subprocess.PIPE
    return subprocess.run(list(args), env=dict(env), cwd=str(cwd), text=True, encoding="utf-8", errors="replace",
                          check=False, stdout=output, stderr=output)


@dataclass
class Launcher:
    """Everything the preparation steps touch, passed explicitly so tests can substitute any of it."""

    flags: Any
    root: Path = ROOT
    python: str = sys.executable
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    run: Runner = run_command
    out: TextIO = sys.stdout
    system: str = platform.system()
    is_installed: Callable[[str], bool] = lambda name: importlib.util.find_spec(name) is not None

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def child_env(self, **extra: str) -> dict[str, str]:
        env = dict(self.env)
        env.update(extra)
        return env

    def execute(self, args: Sequence[str], description: str, *, live: bool = True,
                env: Mapping[str, str] | None = None) -> "subprocess.CompletedProcess[str]":
        """Run a command; a non-zero exit becomes a LaunchError naming the command and its output."""
        result = self.run(list(args), env=self.child_env() if env is None else env, cwd=self.root, live=live)
        if result.returncode != 0:
            parts = [f"{description} failed (exit code {result.returncode}).", "Command: " + _quote(args)]
            if result.stdout:
                parts.append("stdout: " + result.stdout.strip()[-2000:])
            if result.stderr:
                parts.append("stderr: " + result.stderr.strip()[-2000:])
            raise LaunchError("\n".join(parts))
        return result

    def pip(self, *args: str, description: str, live: bool = True) -> None:
        """``python -m pip ...`` with ``--prefer-binary`` and ``INDEX_URL``; a no-op with ``--skip-install``."""
        if self.flags.skip_install:
            return
        command = [self.python, "-m", "pip", *args, "--prefer-binary"]
        if self.env.get("INDEX_URL"):
            command += ["--index-url", self.env["INDEX_URL"]]
        self.say(f"Installing {description}")
        self.execute(command, f"Installing {description}", live=live)


def _quote(args: Sequence[str]) -> str:
    return " ".join(shlex.quote(str(a)) for a in args)


# -- 2. Python version -----------------------------------------------------------------------------------------------

def python_version_warning(version: Sequence[int] = tuple(sys.version_info[:3])) -> str | None:
    """A warning when Python is newer than the versions this release is tested with (A1111 warns, then goes on)."""
    if tuple(version[:2]) in TESTED_PYTHON:
        return None
    tested = ", ".join(f"{a}.{b}" for a, b in TESTED_PYTHON)
    found = ".".join(str(v) for v in version[:3])
    return (f"INCOMPATIBLE PYTHON VERSION: this program is tested with Python {tested}, but you have {found}.\n"
            "If installing packages fails, install one of the tested versions and delete the venv folder.\n"
            "Use --skip-python-version-check to suppress this warning.")


# -- 4./5. torch ---------------------------------------------------------------------------------------------------

def _pinned(requirements: Path, name: str) -> str:
    try:
        for line in requirements.read_text(encoding="utf-8").splitlines():
            line = line.split("#", 1)[0].strip()
            if line.lower().startswith(name + "=="):
                return line
    except OSError:
        pass
    return name


def torch_command(env: Mapping[str, str], root: Path, system: str) -> list[str]:
    """``TORCH_COMMAND`` split into arguments for ``python -m``; default: the torch pins of requirements.txt.

    ``TORCH_INDEX_URL`` adds a wheel index (A1111: the CUDA index, always used on Windows where PyPI's wheels are
    CPU-only).
    """
    command = env.get("TORCH_COMMAND")
    if command:
        return shlex.split(command, posix=system != "Windows")
    requirements = root / "requirements.txt"
    args = ["pip", "install", _pinned(requirements, "torch"), _pinned(requirements, "torchvision")]
    index = env.get("TORCH_INDEX_URL") or (DEFAULT_TORCH_INDEX_WINDOWS if system == "Windows" else "")
    if index:
        args += ["--extra-index-url", index]
    return args


def install_torch(launcher: Launcher) -> None:
    """Install torch/torchvision with ``TORCH_COMMAND`` if either is missing or ``--reinstall-torch`` is given."""
    flags = launcher.flags
    missing = not (launcher.is_installed("torch") and launcher.is_installed("torchvision"))
    if not (missing or flags.reinstall_torch) or flags.skip_install:
        return
    command = torch_command(launcher.env, launcher.root, launcher.system)
    launcher.say("Installing torch and torchvision")
    launcher.execute([launcher.python, "-m", *command], "Installing torch (TORCH_COMMAND)")


def cuda_test_needed(flags: Any) -> bool:
    """A1111 checks CUDA unless ``--skip-torch-cuda-test``; running everything on the CPU needs no CUDA either."""
    use_cpu = {str(m).lower() for m in (flags.use_cpu or ())}
    return not (flags.skip_torch_cuda_test or "all" in use_cpu or getattr(flags, "use_ipex", False))


def check_torch_cuda(launcher: Launcher) -> dict[str, Any]:
    """Ask a child Python whether torch sees a GPU. Torch that cannot be imported is an error (LaunchError with
    what to do); torch without a usable GPU is one warning and the app runs on the CPU.

    A1111 stops here ("Torch is not able to use GPU") unless ``--skip-torch-cuda-test``; this project's README
    promises that ``./webui.sh`` starts on any machine, so a machine without an NVIDIA GPU gets one clear warning
    about speed instead. The warning includes what one otherwise checks by hand: ``torch.__version__``,
    ``torch.version.cuda`` (None for a CPU-only build) and ``torch.cuda.is_available()``.
    """
    result = launcher.run([launcher.python, "-c", _TORCH_PROBE], env=launcher.child_env(), cwd=launcher.root,
                          live=False)
    if result.returncode != 0:
        last = (result.stderr or result.stdout or "").strip().splitlines()[-1:] or ["no output"]
        raise LaunchError(f"Torch could not be imported by {launcher.python}: {last[0]}\n"
                          "Reinstall it with --reinstall-torch (set TORCH_COMMAND to choose the build), or "
                          f"{CUDA_SKIP_HINT}.")
    try:
        info = json.loads(result.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise LaunchError(f"The torch check printed no result ({result.stdout!r}); {CUDA_SKIP_HINT}.") from None
    if not info["available"]:
        build = (f"torch {info['torch']} is a CPU-only build (torch.version.cuda is None); install a CUDA build "
                 "with --reinstall-torch and a CUDA TORCH_INDEX_URL / TORCH_COMMAND"
                 if info["cuda"] is None else
                 f"torch {info['torch']} was built for CUDA {info['cuda']}, but no usable NVIDIA GPU/driver was "
                 "found (check nvidia-smi)")
        print(f"Warning: Torch is not able to use a GPU ({build}). Running on the CPU instead: expect minutes per "
              f"image instead of seconds. To silence this check, {CUDA_SKIP_HINT}.",
              file=sys.stderr, flush=True)
    return info


class CudaCheck:
    """`check_torch_cuda` on a thread: the child Python's torch import (~2 s) then overlaps the web UI's own imports
    on the other core instead of delaying the page (issue 16: page up ≤ 5 s after start). `wait()` gives the same
    outcome as the synchronous check: its warning is printed by then, a broken torch raises its LaunchError."""

    def __init__(self, launcher: Launcher) -> None:
        self.error: LaunchError | None = None
        self.info: dict[str, Any] | None = None
        self._thread = threading.Thread(target=self._run, args=(launcher,), name="torch-cuda-check", daemon=True)
        self._thread.start()

    def _run(self, launcher: Launcher) -> None:
        try:
            self.info = check_torch_cuda(launcher)
        except LaunchError as exc:
            self.error = exc

    def wait(self) -> dict[str, Any] | None:
        """Block until the probe finished; its result, or its LaunchError raised."""
        self._thread.join()
        if self.error is not None:
            raise self.error
        return self.info


# -- 7. requirements -------------------------------------------------------------------------------------------------

def _requirement_lines(path: Path, seen: set[Path]) -> Iterator[str]:
    path = path.resolve()
    if path in seen:
        return
    seen.add(path)
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith(("-r ", "--requirement ")):
            yield from _requirement_lines(path.parent / line.split(None, 1)[1].strip(), seen)
        elif line.startswith("-"):
            continue  # pip options (--extra-index-url, -c, ...) do not describe an installed package
        else:
            yield line


def requirements_met(path: Path) -> bool:
    """True when every requirement of ``path`` (following ``-r``) is installed in a matching version.

    A1111's ``requirements_met`` does a quick parse and runs pip only when something is missing; anything this check
    cannot judge (no ``packaging`` module, an unparsable line) counts as not met, so pip decides.
    """
    try:
        from importlib import metadata

        from packaging.requirements import InvalidRequirement, Requirement
    except ImportError:
        return False
    try:
        lines = list(_requirement_lines(path, set()))
    except OSError:
        return False
    for line in lines:
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            return False
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        try:
            installed = metadata.version(requirement.name)
        except metadata.PackageNotFoundError:
            return False
        if requirement.specifier and not requirement.specifier.contains(installed, prereleases=True):
            return False
    return True


def install_requirements(launcher: Launcher) -> None:
    """``pip install -r REQS_FILE`` unless every requirement is already satisfied (or ``--skip-install``)."""
    name = launcher.env.get("REQS_FILE") or "requirements.txt"
    path = Path(name) if Path(name).is_absolute() else launcher.root / name
    if not path.is_file():
        raise LaunchError(f"Requirements file not found: {path} (set REQS_FILE to an existing file)")
    if launcher.flags.skip_install or requirements_met(path):
        return
    launcher.pip("install", "-r", str(path), description=f"requirements from {path.name}")


# -- 8. extensions ---------------------------------------------------------------------------------------------------

def enabled_extensions(flags: Any, root: Path) -> list[Path]:
    """Extension folders whose ``install.py`` should run: ``<data>/extensions/*`` then ``extensions-builtin/*``.

    A1111 skips names listed in ``disabled_extensions`` of the settings file, everything when its
    ``disable_all_extensions`` setting is ``all`` (``extra``: only built-ins run), and honours the flags
    ``--disable-all-extensions`` / ``--disable-extra-extensions`` the same way.
    """
    settings: dict[str, Any] = {}
    settings_file = Path(flags.ui_settings_file)
    if settings_file.is_file():
        try:
            settings = json.loads(settings_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            print(f"Could not read {settings_file} ({exc}); running every extension's installer", file=sys.stderr)
    disabled = set(settings.get("disabled_extensions") or ())
    mode = settings.get("disable_all_extensions", "none")
    if flags.disable_all_extensions or mode == "all":
        return []
    data_dir = Path(flags.data_dir) if flags.data_dir else root
    roots = [root / "extensions-builtin"]
    if not (flags.disable_extra_extensions or mode == "extra"):
        roots.insert(0, data_dir / "extensions")
    found: list[Path] = []
    for base in roots:
        if base.is_dir():
            found += [d for d in sorted(base.iterdir()) if d.is_dir() and not d.name.startswith(".")
                      and d.name not in disabled]
    return found


def run_extension_installers(launcher: Launcher) -> None:
    """Run each enabled extension's ``install.py`` with ``PYTHONPATH=<webui root>``, through
    ``modules.compat.run_installer`` (it checks the web UI's packages afterwards); a failure is reported, not fatal."""
    if launcher.flags.skip_install:
        return
    env = launcher.child_env(PYTHONPATH=str(launcher.root))
    for extension in enabled_extensions(launcher.flags, launcher.root):
        installer = extension / "install.py"
        if not installer.is_file():
            continue
        try:
            # under the guard: an installer that runs pip itself cannot leave the web UI's packages broken
            result = launcher.execute([launcher.python, "-m", "modules.compat.run_installer", str(installer)],
                                      f"install.py of extension {extension.name}", live=False, env=env)
            if result.stdout and result.stdout.strip():
                launcher.say(result.stdout.rstrip())
        except LaunchError as exc:
            print(f"*** Error running install.py for extension {extension}:\n{exc}", file=sys.stderr, flush=True)


def update_all_extensions(launcher: Launcher) -> None:
    """``--update-all-extensions``: ``git pull --autostash`` in every extension that is a git checkout."""
    git = launcher.env.get("GIT") or "git"
    for extension in enabled_extensions(launcher.flags, launcher.root):
        if (extension / ".git").exists():
            result = launcher.run([git, "-C", str(extension), "pull", "--autostash"], env=launcher.child_env(),
                                  cwd=launcher.root, live=False)
            state = "Pulled changes" if result.returncode == 0 else "Could not git pull"
            launcher.say(f"{state} for {extension.name}: {(result.stdout or result.stderr or '').strip()}")


# -- the whole preparation -------------------------------------------------------------------------------------------

def _git(launcher: Launcher, *args: str) -> str:
    try:
        result = launcher.run([launcher.env.get("GIT") or "git", "-C", str(launcher.root), *args],
                              env=launcher.child_env(), cwd=launcher.root, live=False)
    except OSError:
        return "<none>"
    return result.stdout.strip() if result.returncode == 0 and result.stdout.strip() else "<none>"


def clear_restart_marker(root: Path, env: MutableMapping[str, str]) -> bool:
    """Delete ``tmp/restart`` left by a restart request; sets ``SD_WEBUI_RESTARTING=1`` (no browser auto-launch)."""
    marker = root / RESTART_MARKER
    if not marker.exists():
        return False
    marker.unlink()
    env["SD_WEBUI_RESTARTING"] = "1"
    return True


def check_for_update(launcher: Launcher) -> str:
    """`--update-check` (A1111 `version_check`): compare this checkout's commit with the newest commit of its
    remote's default branch and say whether an update is available; never fails the start."""
    local = _git(launcher, "rev-parse", "HEAD")
    remote = _git(launcher, "ls-remote", "origin", "HEAD").split()[0] if local != "<none>" else "<none>"
    if "<none>" in (local, remote):
        message = "Not a git checkout or no remote reachable: could not check for updates."
    elif local == remote:
        message = "You are up to date with the most recent release."
    else:
        message = (f"A newer version is available: {remote[:8]} (this copy is at {local[:8]}). "
                   "Run `git pull` to update.")
    launcher.say(message)
    return message


TEST_SERVER_FLAGS = ("--api", "--skip-torch-cuda-test", "--disable-nan-check")
"""What `--test-server` adds (A1111 `configure_for_tests`; A1111 also loads its bundled test checkpoint, which
this app does not ship: the server starts with whatever checkpoint the data dir has)."""


def argv_for_test_server(args: Sequence[str]) -> list[str]:
    """The command line for `--test-server`: the given flags plus `TEST_SERVER_FLAGS` not already there."""
    out = list(args)
    out += [flag for flag in TEST_SERVER_FLAGS if flag not in out]
    return out


def dump_sysinfo(flags: Any, args: Sequence[str], env: Mapping[str, str], out: TextIO = sys.stdout) -> Path:
    """`--dump-sysinfo` (A1111 `launch_utils.dump_sysinfo`): write the sysinfo JSON in the working directory."""
    from modules.cli.sysinfo import dump_sysinfo as write

    launcher = Launcher(flags, env=env)
    path = write(Path.cwd(), argv=args, env=env, root=ROOT, data_dir=Path(flags.data_dir or ROOT),
                 config_file=Path(flags.ui_settings_file) if flags.ui_settings_file else None,
                 version=_git(launcher, "describe", "--tags"), commit=_git(launcher, "rev-parse", "HEAD"))
    print(f"Sysinfo saved as {path}. Exiting...", file=out, flush=True)
    return path


def prepare_environment(launcher: Launcher) -> CudaCheck | None:
    """Steps 2-9 of the module docstring (step 1 runs in ``main`` so that it also happens when this is skipped).

    The CUDA test (step 5) runs in the background (`CudaCheck`); the result is the pending check, which ``start``
    waits for once the web UI's modules are imported (``--exit`` waits for it here)."""
    flags = launcher.flags
    if not flags.skip_python_version_check:
        warning = python_version_warning()
        if warning:
            print(warning, file=sys.stderr, flush=True)
    launcher.say(f"Python {sys.version}")
    launcher.say(f"Version: {_git(launcher, 'describe', '--tags')}")
    launcher.say(f"Commit hash: {_git(launcher, 'rev-parse', 'HEAD')}")
    if flags.update_check:
        check_for_update(launcher)

    install_torch(launcher)
    cuda_check = CudaCheck(launcher) if cuda_test_needed(flags) else None
    if flags.xformers and launcher.system in ("Linux", "Windows") and (
            flags.reinstall_xformers or not launcher.is_installed("xformers")):
        launcher.pip("install", "-U", "-I", "--no-deps", launcher.env.get("XFORMERS_PACKAGE") or "xformers",
                     description="xformers")
    install_requirements(launcher)
    run_extension_installers(launcher)
    if flags.update_all_extensions:
        update_all_extensions(launcher)
    if flags.exit:
        if cuda_check is not None:
            cuda_check.wait()
        launcher.say("Exiting because of --exit argument")
        raise SystemExit(0)
    return cuda_check


def start(flags: Any, args: Sequence[str], out: TextIO = sys.stdout, cuda_check: CudaCheck | None = None) -> Any:
    """Import ``webui`` and run it: ``webui.main()`` parses ``sys.argv`` + ``COMMANDLINE_ARGS`` itself.

    A pending `cuda_check` is waited for after the import and before ``main``, so its warning (or its error about a
    broken torch, also when that broke the import) comes before the web UI starts, as in A1111's order."""
    from modules.cli.flags import masked_argv

    kind = "API server" if flags.nowebui else "Web UI"
    print(f"Launching {kind} with arguments: {' '.join(masked_argv(args))}", file=out, flush=True)
    try:
        webui = importlib.import_module("webui")
    except ModuleNotFoundError as exc:
        if exc.name != "webui":
            if cuda_check is not None:
                cuda_check.wait()
            raise
        raise LaunchError(f"webui.py was not found in {ROOT}; the installation is incomplete (git pull?)") from None
    except BaseException:
        if cuda_check is not None:
            cuda_check.wait()
        raise
    if cuda_check is not None:
        cuda_check.wait()
    return webui.main()


def main(argv: Sequence[str] | None = None) -> int:
    """Parse flags, prepare the environment unless ``--skip-prepare-environment``, start the UI; exit status."""
    from modules.cli.flags import FlagError, merged_argv
    from modules.extensions.preload import parse_command_line

    args = list(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        flags, _ = parse_command_line(args, os.environ)  # extensions' preload.py flags too (webui.main reports)
        merged = merged_argv(args, os.environ)
    except FlagError as exc:
        return int(exc.code or 2)
    if flags.dump_sysinfo:
        dump_sysinfo(flags, merged, os.environ)
        return 0
    try:
        clear_restart_marker(ROOT, os.environ)
        cuda_check = None if flags.skip_prepare_environment else prepare_environment(Launcher(flags, env=os.environ))
        if flags.test_server:  # webui.main() reads sys.argv and COMMANDLINE_ARGS again
            merged = argv_for_test_server(merged)
            sys.argv[1:] = merged
            os.environ["COMMANDLINE_ARGS"] = ""
        status = start(flags, merged, cuda_check=cuda_check)
    except LaunchError as exc:
        print(f"\nlaunch.py: error: {exc}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print("Interrupted with Ctrl+C", file=sys.stderr)
        return 130
    return status if isinstance(status, int) else 0


# -- the A1111 `launch` names extension installers call (`import launch; launch.run_pip(...)`) ------------------------

_EXTENSION_API = ("args", "is_installed", "run", "run_pip", "run_python", "check_run_python", "git_tag", "commit_hash",
                  "repo_dir", "python", "git", "index_url", "dir_repos", "default_command_live")


def __getattr__(name: str) -> Any:
    """`launch.is_installed`, `launch.run_pip`, `launch.run`, `launch.git_tag`, `launch.args`, … for extensions'
    install.py (guarded: an installer cannot break the web UI's packages; modules/compat/installer.py)."""
    if name in _EXTENSION_API:
        from modules.compat import installer

        return installer.attribute(name) if name == "args" else getattr(installer, name)
    raise AttributeError(f"module 'launch' has no attribute {name!r}")


if __name__ == "__main__":
    raise SystemExit(main())
