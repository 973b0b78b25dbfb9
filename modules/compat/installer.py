"""What extension installers (`install.py`, and scripts at import) call: A1111 `launch` / `modules.launch_utils`.

A1111 facts followed: `is_installed(package)` looks for an installed distribution, else an importable module;
`run(command, desc=None, errdesc=None, custom_env=None, live=...)` runs a command, prints `desc`, returns its
output and raises RuntimeError with the output when it fails; `run_pip(command, desc=None, live=...)` runs
`python -m pip <command> --prefer-binary` (with `INDEX_URL`) and is a no-op with `--skip-install`;
`git_tag()` is `git describe --tags` of the install; `args` the parsed flags; `python`, `git`, `index_url`.

Differences, on purpose: commands run from an argument list (a string is split like a shell would, but no shell
runs); and an installer may never break the web UI's own environment. Before pip runs, every requirement it was
asked for is checked against the app's `requirements.txt` (a pin that the installed version does not satisfy,
e.g. `gradio==3.41.2`, is refused), and `pip install --dry-run --report` shows what pip would change; after pip
ran, the app's requirements are checked again and any package pip moved away from a version the app needs is put
back. Refusals and roll-backs raise `InstallRefusedError` naming the extension and the package.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import json
import os
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from modules.cli.flags import INSTALL_ROOT, FlagError, parse_flags

python = sys.executable
git = os.environ.get("GIT", "git")
index_url = os.environ.get("INDEX_URL", "")
dir_repos = "repositories"
default_command_live = os.environ.get("WEBUI_LAUNCH_LIVE_OUTPUT") == "1"
A1111_VERSION = "v1.10.1"
"""The A1111 release whose extension API this app follows (what `git_tag()` answers without a git tag)."""


class InstallRefusedError(RuntimeError):
    """An installer asked for something that would break the web UI's own packages."""


@functools.cache
def _args() -> Any:
    try:
        return parse_flags([], os.environ)  # COMMANDLINE_ARGS, as the launcher passed them on
    except FlagError:
        return parse_flags([], {})


def is_installed(package: str) -> bool:
    """True when a distribution named `package` is installed, or a module of that name can be imported."""
    try:
        importlib.metadata.distribution(package)
        return True
    except importlib.metadata.PackageNotFoundError:
        try:
            return importlib.util.find_spec(package) is not None
        except (ModuleNotFoundError, ValueError):
            return False


def _split(command: str | Sequence[str]) -> list[str]:
    return shlex.split(command, posix=os.name != "nt") if isinstance(command, str) else [str(c) for c in command]


def run(command: str | Sequence[str], desc: str | None = None, errdesc: str | None = None,
        custom_env: Mapping[str, str] | None = None, live: bool = default_command_live) -> str:
    """Run `command`; returns its output (empty when `live`); raises RuntimeError naming it when it fails."""
    if desc:
        print(desc, flush=True)
    argv = _split(command)
    done = subprocess.run(argv, env=dict(custom_env) if custom_env is not None else None, text=True,
                          encoding="utf8", errors="ignore", stdout=None if live else subprocess.PIPE,
                          stderr=None if live else subprocess.PIPE, check=False)
    if done.returncode != 0:
        parts = [f"{errdesc or 'Error running command'}.", f"Command: {shlex.join(argv)}",
                 f"Error code: {done.returncode}"]
        if done.stdout:
            parts.append(f"stdout: {done.stdout}")
        if done.stderr:
            parts.append(f"stderr: {done.stderr}")
        raise RuntimeError("\n".join(parts))
    return done.stdout or ""


def run_python(code: str, desc: str | None = None, errdesc: str | None = None) -> str:
    return run([python, "-c", code], desc, errdesc)


def check_run_python(code: str) -> bool:
    return subprocess.run([python, "-c", code], capture_output=True, check=False).returncode == 0


@functools.cache
def git_tag() -> str:
    """`git describe --tags` of the install; without a tag, the A1111 version this app's extension API follows."""
    try:
        return subprocess.check_output([git, "-C", str(INSTALL_ROOT), "describe", "--tags"],
                                       stderr=subprocess.DEVNULL, encoding="utf8").strip() or A1111_VERSION
    except (OSError, subprocess.CalledProcessError):
        return A1111_VERSION


def commit_hash() -> str:
    try:
        return subprocess.check_output([git, "-C", str(INSTALL_ROOT), "rev-parse", "HEAD"],
                                       stderr=subprocess.DEVNULL, encoding="utf8").strip()
    except (OSError, subprocess.CalledProcessError):
        return "<none>"


def repo_dir(name: str) -> str:
    return str(INSTALL_ROOT / dir_repos / name)


# -- the guard ---------------------------------------------------------------------------------------------------

def app_requirements(path: Path | None = None) -> dict[str, Requirement]:
    """The web UI's own requirements (`requirements.txt`), by canonical name."""
    path = path or INSTALL_ROOT / "requirements.txt"
    out: dict[str, Requirement] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith(("#", "-")):
            continue
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            continue
        if requirement.marker is None or requirement.marker.evaluate():
            out[canonicalize_name(requirement.name)] = requirement
    return out


def installed_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def calling_extension() -> str:
    """The extension whose code asked (its folder under `extensions/`), from the running installer's path."""
    main = Path(sys.argv[0] if sys.argv and sys.argv[0] else ".").resolve()
    for frame_file in [main, *(Path(f.filename) for f in _stack())]:
        parts = frame_file.parts
        for marker in ("extensions", "extensions-builtin"):
            if marker in parts[:-1]:
                index = len(parts) - 1 - parts[::-1].index(marker)
                if index + 1 < len(parts):
                    return parts[index + 1]
    return "an extension"


def _stack() -> list[Any]:
    import inspect

    return inspect.stack()[2:]


_VALUE_OPTIONS = frozenset({"-i", "--index-url", "--extra-index-url", "-f", "--find-links", "-c", "--constraint", "-t",
                            "--target", "--prefix", "--root", "--platform", "--python-version", "--implementation",
                            "--abi", "--src", "--upgrade-strategy", "-e", "--editable", "--report", "--log"})
"""pip options whose next argument is their value, not a requirement."""


def requested(args: Sequence[str]) -> list[Requirement]:
    """The requirements a `pip install` argument list names (also from `-r file`)."""
    out: list[Requirement] = []
    items = list(args[1:] if args and args[0] == "install" else args)
    i = 0
    while i < len(items):
        item = items[i]
        if item in _VALUE_OPTIONS:
            i += 2
            continue
        if item in ("-r", "--requirement") and i + 1 < len(items):
            path = Path(items[i + 1])
            lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
            out += [r for r in (_requirement(line.split(" #", 1)[0].strip()) for line in lines) if r is not None]
            i += 2
            continue
        if not item.startswith("-"):
            requirement = _requirement(item)
            if requirement is not None:
                out.append(requirement)
        i += 1
    return out


def _requirement(text: str) -> Requirement | None:
    if not text or text.startswith(("#", "-")) or "/" in text or text.endswith((".whl", ".tar.gz", ".zip")):
        return None
    try:
        return Requirement(text)
    except InvalidRequirement:
        return None


def conflicts(changes: Mapping[str, str], needs: Mapping[str, Requirement]) -> list[str]:
    """"<package> <new version> (the web UI needs <spec>)" for every change that breaks an app requirement."""
    out = []
    for name, version in changes.items():
        need = needs.get(canonicalize_name(name))
        if need is not None and need.specifier and not need.specifier.contains(version, prereleases=True):
            out.append(f"{name} {version} (the web UI needs {need})")
    return out


def check_request(extension: str, args: Sequence[str], needs: Mapping[str, Requirement]) -> None:
    """Refuse pins of the app's packages that the installed version does not satisfy (before pip runs)."""
    bad = []
    for requirement in requested(args):
        name = canonicalize_name(requirement.name)
        current = installed_version(requirement.name)
        if name in needs and current is not None and requirement.specifier and \
                not requirement.specifier.contains(current, prereleases=True):
            bad.append(f"{requirement} (the web UI runs {requirement.name} {current} and needs {needs[name]})")
    if bad:
        raise InstallRefusedError(f"extension {extension!r}: refused to install {', '.join(bad)}; the extension "
                                  f"needs a version of the web UI's own packages it cannot run with")


def planned_changes(args: Sequence[str]) -> dict[str, str] | None:
    """What `pip install <args>` would install ({name: version}) from `--dry-run --report`; None when pip cannot
    tell (no index reachable, old pip)."""
    with tempfile.TemporaryDirectory() as folder:
        report = Path(folder) / "report.json"
        done = subprocess.run([python, "-m", "pip", *args, "--dry-run", "--quiet", "--retries", "1", "--report",
                               str(report)],
                              capture_output=True, text=True, check=False)
        if done.returncode != 0 or not report.is_file():
            return None
        data = json.loads(report.read_text(encoding="utf-8"))
    return {item["metadata"]["name"]: item["metadata"]["version"] for item in data.get("install", [])}


def guarded_pip(extension: str, args: Sequence[str], desc: str, live: bool,
                needs: Mapping[str, Requirement] | None = None) -> str:
    """Run pip for `extension` without letting it break the app (see the module docstring)."""
    needs = app_requirements() if needs is None else needs
    installing = bool(args) and args[0] == "install"
    if installing:
        check_request(extension, args, needs)
        planned = planned_changes(args)
        bad = conflicts(planned or {}, needs)
        if bad:
            raise InstallRefusedError(f"extension {extension!r}: refused to install {desc}: pip would change "
                                      f"{', '.join(bad)}")
    before = snapshot(needs)
    command = [python, "-m", "pip", *args, "--prefer-binary", *(["--index-url", index_url] if index_url else [])]
    output = run(command, desc=f"Installing {desc}", errdesc=f"Couldn't install {desc}", live=live)
    restore_broken(extension, f"installing {desc}", before, needs, live)
    return output


def snapshot(needs: Mapping[str, Requirement]) -> dict[str, str | None]:
    """The installed version of each of the app's required packages (None when missing)."""
    importlib.invalidate_caches()
    return {name: installed_version(name) for name in needs}


def restore_broken(extension: str, what: str, before: Mapping[str, str | None], needs: Mapping[str, Requirement],
                   live: bool = False) -> None:
    """After pip (or an install.py that ran pip itself) changed packages: put back every app package moved to a
    version the app cannot run with, then raise `InstallRefusedError` naming the extension and the packages."""
    after = snapshot(needs)
    broken = conflicts({name: v for name, v in after.items() if v is not None and v != before.get(name)}, needs)
    if broken:
        restore = [f"{name}=={v}" for name, v in before.items() if v is not None and after.get(name) != v]
        run([python, "-m", "pip", "install", *restore], desc=f"Restoring {', '.join(restore)}",
            errdesc="Couldn't restore the web UI's packages", live=live)
        raise InstallRefusedError(f"extension {extension!r}: {what} changed {', '.join(broken)}; "
                                  f"rolled back to {', '.join(restore)}")


def run_pip(command: str | Sequence[str], desc: str | None = None, live: bool = default_command_live) -> str:
    """`python -m pip <command> --prefer-binary` for an extension, guarded (A1111 `launch.run_pip`)."""
    if _args().skip_install:
        return ""
    args = _split(command)
    return guarded_pip(calling_extension(), args, desc or " ".join(args[1:]) or "requirements", live)


def attribute(name: str) -> Any:
    """`launch.args` / `launch_utils.args`: the flags as the launcher passed them on."""
    if name == "args":
        return _args()
    raise AttributeError(f"module 'launch' has no attribute {name!r}")


__all__ = ["A1111_VERSION", "InstallRefusedError", "check_run_python", "commit_hash", "default_command_live",
           "dir_repos", "git", "git_tag", "index_url", "is_installed", "python", "repo_dir", "run", "run_pip",
           "run_python"]
