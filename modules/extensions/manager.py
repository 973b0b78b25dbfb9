"""Extensions on disk: discovery, enable/disable, git versions, install from URL, update checks, the index.

A1111 behaviour followed (reference §3.9, §10.3, `modules/extensions.py`, `modules/ui_extensions.py`):

* An extension is a folder `extensions/<name>/` (built-ins in `extensions-builtin/`) with any of `install.py`,
  `preload.py`, `scripts/`, `javascript/`, `style.css`, `localizations/`, `metadata.ini`.
* Disabled extensions are listed by name in the `disabled_extensions` setting; `disable_all_extensions` "extra"
  turns off all non-built-in ones and "all" every one.
* Version info comes from git: remote URL, branch, commit hash (short = 8 chars) and commit date.
* Install from URL: clone into a temporary folder next to `extensions/`, move into place, run `install.py`;
  refused if the folder exists or the URL is already installed.  Default folder name = the last URL part without
  `.git`.  Only `https://` URLs are accepted here (a local path or `file://` only with `allow_local=True`, for
  tests and offline mirrors), and the folder name must be a plain name.
* "Check for updates" = `git fetch` and compare HEAD with the remote branch; "update" = fetch + reset --hard to it.
* git runs with prompts off; `git_env` adds variables such as `GIT_SSL_CAINFO` (never one that turns TLS
  verification off).  A failed git command raises ExtensionError with one line: the URL, the cause (DNS, refused,
  TLS certificate, handshake, reset, timeout, not found) and what to check (proxy, CA certificates, a mirror).
* Installing or changing extensions from the UI/API is refused when the server listens beyond localhost
  (`--share`, `--listen`, `--ngrok`, `--server-name`) unless `--enable-insecure-extension-access`.
* Index: JSON `{"tags": {...}, "extensions": [{"name", "url", "description", "tags", ...}]}` from
  `WEBUI_EXTENSIONS_INDEX` or A1111's default URL.
"""

from __future__ import annotations

import configparser
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

DEFAULT_INDEX_URL = ("https://raw.githubusercontent.com/AUTOMATIC1111/stable-diffusion-webui-extensions/master/"
                     "index.json")
INSECURE_ACCESS_MESSAGE = ("extension access disabled because of command line flags: the server is reachable "
                           "from the network (--share/--listen/--ngrok/--server-name); add "
                           "--enable-insecure-extension-access to allow it")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_FORBIDDEN_GIT_ENV = ("GIT_SSL_NO_VERIFY", "GIT_CONFIG_PARAMETERS", "GIT_CONFIG_COUNT")
_CHECK_NETWORK = ("check the internet connection and proxy settings (HTTPS_PROXY, `git config --global http.proxy`), "
                  "or install from a mirror")
# (substrings of git's stderr, lower-case) → what went wrong and what to check.  Order matters: the first match wins.
# Texts are curl's / git's own (OpenSSL, GnuTLS and Schannel builds word TLS failures differently).
_GIT_FAILURES: tuple[tuple[tuple[str, ...], str], ...] = (
    (("could not resolve host", "could not resolve proxy", "name or service not known",
      "temporary failure in name resolution"),
     "the host name could not be resolved (DNS); " + _CHECK_NETWORK),
    (("certificate", "ssl certificate problem", "server certificate verification failed", "cafile", "issuer"),
     "the server's TLS certificate is not trusted; check the system CA certificates (ca-certificates package), "
     "GIT_SSL_CAINFO or `git config http.sslCAInfo`, and whether a proxy or antivirus intercepts HTTPS"),
    (("gnutls_handshake", "ssl_connect", "handshake", "schannel", "wrong version number"),
     "the TLS/SSL handshake with the server failed (often a proxy, firewall or antivirus interfering); "
     + _CHECK_NETWORK),
    (("connection was reset", "connection reset by peer", "ssl_read", "ssl_write", "unexpected eof",
      "tls packet with unexpected length", "non-properly terminated", "early eof", "curl 56", "rpc failed"),
     "the connection was reset during the transfer (often a proxy, firewall, VPN or antivirus, or an unstable "
     "network); retry, or " + _CHECK_NETWORK),
    (("connection refused", "couldn't connect to server"),
     "the connection was refused (nothing accepts connections at that address, or a proxy refused it); check the URL "
     "and port, and " + _CHECK_NETWORK.removeprefix("check ")),
    (("timed out", "timeout"),
     "the connection timed out; " + _CHECK_NETWORK),
    (("network is unreachable", "no route to host", "failed to connect", "couldn't connect"),
     "the server could not be reached; " + _CHECK_NETWORK),
)
_NOT_FOUND_HINTS = ("repository not found", "returned error: 404", "could not read username",
                    "authentication failed", "returned error: 401", "returned error: 403")
_OTHER_NETWORK_HINTS = ("unable to access", "ssl", "tls", "could not read from remote", "curl")


class ExtensionError(RuntimeError):
    """An extension operation failed; the message says what and which extension/URL."""


class SettingsLike(Protocol):
    """What enable/disable needs from the settings store (`modules.settings.Settings`)."""

    def get(self, key: str) -> Any: ...

    def set(self, key: str, value: Any) -> Any: ...


@dataclass
class GitInfo:
    """Version of an extension checked out with git."""

    remote: str | None
    branch: str | None
    commit_hash: str
    commit_date: int  # unix time of the commit

    @property
    def version(self) -> str:
        """Short hash shown in the Installed table (A1111: first 8 characters)."""
        return self.commit_hash[:8]


@dataclass
class Extension:
    """One extension folder and what it contains."""

    name: str
    path: Path
    is_builtin: bool = False
    enabled: bool = True
    metadata: dict[str, dict[str, str]] = field(default_factory=dict)
    git: GitInfo | None = None
    update_status: str = "unknown"  # "unknown", "behind", "latest"

    @property
    def install_script(self) -> Path | None:
        path = self.path / "install.py"
        return path if path.is_file() else None

    @property
    def preload_script(self) -> Path | None:
        path = self.path / "preload.py"
        return path if path.is_file() else None

    def script_files(self) -> list[Path]:
        """`scripts/*.py`, sorted."""
        return sorted((self.path / "scripts").glob("*.py"))

    def javascript_files(self) -> list[Path]:
        """`javascript/*.js` and `*.mjs`, sorted (injected into the page head)."""
        folder = self.path / "javascript"
        return sorted([*folder.glob("*.js"), *folder.glob("*.mjs")])

    def stylesheet(self) -> Path | None:
        path = self.path / "style.css"
        return path if path.is_file() else None

    def localization_files(self) -> list[Path]:
        return sorted((self.path / "localizations").glob("*.json"))

    @property
    def canonical_name(self) -> str:
        """`[Extension] Name=` from metadata.ini, else the folder name, lower-case (A1111 canonical name)."""
        return self.metadata.get("Extension", {}).get("Name", self.name).lower()


def read_metadata(folder: str | Path) -> dict[str, dict[str, str]]:
    """`metadata.ini` as {section: {key: value}}; a missing or unreadable file gives {} (A1111 ignores it)."""
    path = Path(folder) / "metadata.ini"
    if not path.is_file():
        return {}
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError):
        return {}
    return {section: dict(parser[section]) for section in parser.sections()}


def _git_environment(git_env: Mapping[str, str] | None) -> dict[str, str]:
    """os.environ plus `git_env`, with prompts off (a missing login fails instead of waiting for a password).

    `git_env` may not turn TLS verification off or inject git configuration (GIT_SSL_NO_VERIFY,
    GIT_CONFIG_PARAMETERS, GIT_CONFIG_COUNT); those keys are refused with an ExtensionError.
    """
    extra = dict(git_env or {})
    refused = sorted(k for k in extra if k.upper() in _FORBIDDEN_GIT_ENV or k.upper().startswith("GIT_CONFIG_KEY_"))
    if refused:
        raise ExtensionError(f"git_env may not set {', '.join(refused)} (TLS verification stays on; give a CA file "
                             "with GIT_SSL_CAINFO instead)")
    return {**os.environ, **extra, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "echo"}


def _git_detail(output: str) -> str:
    """git's most telling line (the `fatal:`/`error:` one), whitespace collapsed, for one-line messages."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    telling = [line for line in lines if line.lower().startswith(("fatal:", "error:"))] or lines or ["no output"]
    return " ".join(telling[-1].split())


def describe_git_failure(operation: str, url: str | None, output: str) -> str:
    """One-line message for a failed git command: what failed, for which URL, why, and what to check.

    Network and TLS failures (curl's wording from OpenSSL/GnuTLS builds, e.g. "OpenSSL SSL_read: Connection was
    reset", "gnutls_handshake() failed", "server certificate verification FAILED") are mapped to a plain cause
    and advice (proxy, CA certificates, a mirror); git's own line follows in brackets.
    """
    detail = _git_detail(output)
    where = f" {url}" if url else ""
    lowered = output.lower()
    for hints, explanation in _GIT_FAILURES:
        if any(hint in lowered for hint in hints):
            return f"git {operation} could not reach the remote{where}: {explanation} [{detail}]"
    if any(hint in lowered for hint in _NOT_FOUND_HINTS):
        return (f"git {operation}{where} failed: the repository was not found or needs a login (only public "
                f"repositories can be installed); check the URL [{detail}]")
    if any(hint in lowered for hint in _OTHER_NETWORK_HINTS):
        return f"git {operation} could not reach the remote{where}: network or TLS problem; {_CHECK_NETWORK} [{detail}]"
    return f"git {operation}{where} failed: {detail}"


def _git(args: list[str], cwd: str | Path | None = None, timeout: float = 120, *, url: str | None = None,
         git_env: Mapping[str, str] | None = None) -> str:
    """Run git; failures raise ExtensionError with a one-line message naming `url` (see describe_git_failure)."""
    env = _git_environment(git_env)
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    except FileNotFoundError:
        raise ExtensionError("git is not installed or not on PATH; it is needed to install and update "
                             "extensions") from None
    except subprocess.TimeoutExpired:
        where = f" {url}" if url else ""
        raise ExtensionError(f"git {args[0]}{where} timed out after {timeout:.0f}s; {_CHECK_NETWORK}") from None
    if done.returncode != 0:
        raise ExtensionError(describe_git_failure(args[0], url, done.stderr or done.stdout))
    return done.stdout.strip()


def git_info(folder: str | Path) -> GitInfo | None:
    """Remote, branch, commit and date of a git checkout; None when the folder is not a git repository."""
    folder = Path(folder)
    if not (folder / ".git").exists():
        return None
    try:
        commit, date = _git(["log", "-1", "--format=%H %ct"], folder).split()
    except (ExtensionError, ValueError):
        return None
    try:
        remote: str | None = _git(["config", "--get", "remote.origin.url"], folder) or None
    except ExtensionError:
        remote = None
    try:
        branch: str | None = _git(["rev-parse", "--abbrev-ref", "HEAD"], folder)
    except ExtensionError:
        branch = None
    return GitInfo(remote, None if branch == "HEAD" else branch, commit, int(date))


def disabled_names(settings: SettingsLike | None) -> list[str]:
    """The `disabled_extensions` setting as a list."""
    value = settings.get("disabled_extensions") if settings is not None else None
    return list(value or [])


def discover_extensions(extensions_dir: str | Path, builtin_dir: str | Path | None = None, *,
                        disabled: Iterable[str] = (), disable_all: str = "none",
                        with_git: bool = True) -> list[Extension]:
    """Every extension folder (built-ins first, each group sorted by name) with its enabled state."""
    disabled = set(disabled)
    out: list[Extension] = []
    for root, builtin in ((builtin_dir, True), (extensions_dir, False)):
        if root is None or not Path(root).is_dir():
            continue
        for folder in sorted(p for p in Path(root).iterdir() if p.is_dir() and not p.name.startswith(".")):
            off = folder.name in disabled or disable_all == "all" or (disable_all == "extra" and not builtin)
            out.append(Extension(folder.name, folder, builtin, not off, read_metadata(folder),
                                 git_info(folder) if with_git else None))
    return out


def missing_requirements(extensions: Iterable[Extension]) -> dict[str, list[str]]:
    """Enabled extensions whose metadata.ini `[Extension] Requires=` names extensions that are not enabled.

    Names are compared as canonical names (A1111); `a|b` means either one will do.
    """
    extensions = list(extensions)
    enabled = {e.canonical_name for e in extensions if e.enabled} | {e.name.lower() for e in extensions if e.enabled}
    out: dict[str, list[str]] = {}
    for ext in extensions:
        if not ext.enabled:
            continue
        required = [r.strip() for r in ext.metadata.get("Extension", {}).get("Requires", "").split(",") if r.strip()]
        missing = [r for r in required if not any(alt.strip().lower() in enabled for alt in r.split("|"))]
        if missing:
            out[ext.name] = missing
    return out


def set_extension_enabled(settings: SettingsLike, name: str, enabled: bool) -> list[str]:
    """Enable or disable `name` by editing `disabled_extensions`; returns the new list (caller saves)."""
    names = [n for n in disabled_names(settings) if n != name]
    if not enabled:
        names.append(name)
    settings.set("disabled_extensions", sorted(names))
    return sorted(names)


def run_preloads(extensions: Iterable[Extension], parser: Any) -> list[str]:
    """Call `preload(parser)` of each enabled extension's preload.py (adds command-line flags before parsing).

    A broken preload.py is reported (returned message naming the file) and skipped, as A1111 does.
    """
    import importlib.util

    errors = []
    for ext in extensions:
        script = ext.preload_script
        if not ext.enabled or script is None:
            continue
        try:
            spec = importlib.util.spec_from_file_location(f"webui_preload_{ext.name}".replace("-", "_"), script)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            if hasattr(module, "preload"):
                module.preload(parser)
        except (Exception, SystemExit) as exc:
            errors.append(f"{script}: preload failed, skipped: {type(exc).__name__}: {exc}")
    return errors


def may_change_extensions(flags: Any) -> tuple[bool, str]:
    """Whether the UI/API may install/update/toggle extensions under these parsed flags, and why not.

    A1111: refused when `--share`, `--listen`, `--ngrok` or `--server-name` expose the server, unless
    `--enable-insecure-extension-access`.  Pure: reads the flag attributes only (missing ones count as off).
    """
    if server_exposed(flags) and not getattr(flags, "enable_insecure_extension_access", False):
        return False, INSECURE_ACCESS_MESSAGE
    return True, ""


def server_exposed(flags: Any) -> bool:
    """Whether `--share`, `--listen`, `--ngrok` or `--server-name` make the server reachable beyond this machine."""
    return any(getattr(flags, name, None) for name in ("share", "listen", "ngrok", "server_name"))


def check_url(url: str, *, allow_local: bool = False) -> str:
    """Accept `https://…` (or, with allow_local, a local folder / `file://` URL); anything else is refused."""
    url = url.strip()
    if not url:
        raise ExtensionError("no URL given")
    if url.startswith("-"):
        raise ExtensionError(f"{url!r} is not a URL")
    if url.lower().startswith("https://"):
        if "@" in url.split("/", 3)[2]:
            raise ExtensionError("URLs with a user name or password are not accepted; use a public https URL")
        return url
    if allow_local:
        if url.lower().startswith("file://"):
            return url
        if Path(url).is_dir():
            return str(Path(url).resolve())
    raise ExtensionError(f"only https:// git URLs can be installed, got {url!r}")


def folder_name_for(url: str, dirname: str | None = None) -> str:
    """The install folder: `dirname`, else the last URL part without `.git`; must be a plain, safe name."""
    name = (dirname or "").strip() or url.rstrip("/").split("/")[-1]
    name = name.removesuffix(".git")
    if not _SAFE_NAME.match(name) or name in (".", ".."):
        raise ExtensionError(f"{name!r} is not a usable folder name for an extension (letters, digits, '.', '_', "
                             "'-'; must start with a letter or digit)")
    return name


def normalise_remote(url: str | None) -> str:
    """A remote URL in the form installed remotes are compared in (no trailing `/` or `.git`, lower-case)."""
    return (url or "").strip().rstrip("/").removesuffix(".git").lower()


def run_install_script(ext_dir: str | Path, *, timeout: float = 600) -> str:
    """Run `install.py` of an extension in its folder with this Python; returns its output."""
    script = Path(ext_dir) / "install.py"
    if not script.is_file():
        return ""
    root = str(Path(__file__).resolve().parents[2])  # A1111 runs installers with PYTHONPATH=<install>: `import launch`
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}
    # `modules.compat.run_installer` runs the file as `python install.py` would, then checks the web UI's packages
    done = subprocess.run([sys.executable, "-m", "modules.compat.run_installer", str(script)], cwd=ext_dir,
                          capture_output=True, text=True, timeout=timeout, env=env)
    if done.returncode != 0:
        raise ExtensionError(f"{script} failed (exit {done.returncode}): {(done.stderr or done.stdout).strip()}")
    return done.stdout


def _refuse_when_exposed(flags: Any) -> None:
    if flags is not None:
        allowed, reason = may_change_extensions(flags)
        if not allowed:
            raise ExtensionError(reason)


def install_extension(url: str, extensions_dir: str | Path, *, branch: str | None = None, dirname: str | None = None,
                      allow_local: bool = False, run_install: bool = True, git_env: Mapping[str, str] | None = None,
                      flags: Any = None) -> Path:
    """Clone `url` into `extensions_dir/<name>` and run its install.py; returns the new folder.

    `git_env`: extra environment variables for the git subprocesses, e.g. `GIT_SSL_CAINFO` (a CA bundle for a
    private server or an intercepting proxy) or `HTTPS_PROXY`; TLS verification cannot be turned off.
    `flags`: the parsed command line; when given, the install is refused on an exposed server (A1111).
    The clone goes to a temporary folder first, so a failed clone leaves nothing in `extensions_dir`.
    """
    _refuse_when_exposed(flags)
    url = check_url(url, allow_local=allow_local)
    name = folder_name_for(url, dirname)
    extensions_dir = Path(extensions_dir)
    target = extensions_dir / name
    if target.exists():
        raise ExtensionError(f"extension folder already exists: {target}")
    for ext in discover_extensions(extensions_dir):
        if ext.git and normalise_remote(ext.git.remote) == normalise_remote(url):
            raise ExtensionError(f"extension {url} is already installed in {ext.path}")
    _git_environment(git_env)  # a refused git_env fails before anything is created
    extensions_dir.mkdir(parents=True, exist_ok=True)
    tmp_root = Path(tempfile.mkdtemp(prefix=".install-", dir=extensions_dir.parent))
    try:
        args = ["clone", "--filter=blob:none", "--recurse-submodules"]
        if branch:
            args += ["--branch", branch]
        _git([*args, "--", url, str(tmp_root / name)], timeout=600, url=url, git_env=git_env)
        _drop_unused_partial_clone(tmp_root / name)
        try:
            shutil.move(str(tmp_root / name), str(target))
        except OSError as exc:
            shutil.rmtree(target, ignore_errors=True)
            raise ExtensionError(f"could not move the clone of {url} into {target}: {exc}") from None
    finally:
        shutil.rmtree(tmp_root, ignore_errors=True)
    if run_install:
        try:
            run_install_script(target)
        except (ExtensionError, subprocess.TimeoutExpired) as exc:
            raise ExtensionError(f"extension {name} was installed but its install.py failed: {exc}") from None
    return target


def _drop_unused_partial_clone(folder: Path) -> None:
    """Make a clone whose server ignored `--filter=blob:none` an ordinary clone.

    A1111 clones with `--filter=blob:none`; servers without filter support (e.g. git's "dumb" HTTP protocol on a
    static file server or mirror) send everything, yet git still marks the remote as a promisor, and later fetches
    over such a server can then stall.  No `*.promisor` pack means nothing was filtered, so the marks go.
    """
    if any((folder / ".git" / "objects" / "pack").glob("*.promisor")):
        return
    for key in ("remote.origin.promisor", "remote.origin.partialclonefilter"):
        with contextlib.suppress(ExtensionError):  # already unset
            _git(["config", "--unset", key], folder)


def _remote_ref(folder: Path) -> str:
    try:
        return _git(["rev-parse", "--abbrev-ref", "--symbolic-full-name", "@{u}"], folder)
    except ExtensionError:
        return "origin/HEAD"


def check_for_updates(ext: Extension, *, git_env: Mapping[str, str] | None = None) -> str:
    """`git fetch` then compare HEAD with the remote branch: "behind" or "latest" (sets `ext.update_status`).

    `git_env` as for `install_extension` (e.g. `GIT_SSL_CAINFO`).
    """
    if ext.git is None:
        raise ExtensionError(f"extension {ext.name} is not a git checkout; cannot check for updates")
    _git(["fetch", "--quiet", "origin"], ext.path, timeout=300, url=ext.git.remote, git_env=git_env)
    head = _git(["rev-parse", "HEAD"], ext.path)
    remote = _git(["rev-parse", _remote_ref(ext.path)], ext.path)
    ext.update_status = "latest" if head == remote else "behind"
    return ext.update_status


def update_extension(ext: Extension, *, git_env: Mapping[str, str] | None = None, flags: Any = None) -> GitInfo:
    """Fetch and reset --hard to the remote branch head (A1111 "Apply and restart" update); returns the new info.

    `git_env` and `flags` as for `install_extension`.
    """
    _refuse_when_exposed(flags)
    if ext.git is None:
        raise ExtensionError(f"extension {ext.name} is not a git checkout; cannot update")
    _git(["fetch", "--quiet", "origin"], ext.path, timeout=300, url=ext.git.remote, git_env=git_env)
    _git(["reset", "--hard", _remote_ref(ext.path)], ext.path)
    info = git_info(ext.path)
    if info is None:
        raise ExtensionError(f"extension {ext.name}: git information unreadable after update")
    ext.git, ext.update_status = info, "latest"
    return info


def checkout_commit(ext: Extension, commit: str, *, git_env: Mapping[str, str] | None = None) -> None:
    """`git checkout --force <commit>` in the extension's folder, fetching first when the commit is not present
    (restoring a config state; A1111 `fetch_and_reset_hard(commit)`)."""
    try:
        _git(["cat-file", "-e", f"{commit}^{{commit}}"], ext.path)
    except ExtensionError:
        _git(["fetch", "--quiet", "origin"], ext.path, timeout=300, url=ext.git.remote if ext.git else None,
             git_env=git_env)
    _git(["checkout", "--quiet", "--force", commit], ext.path)


@dataclass
class ExtensionIndex:
    """The parsed extension index."""

    tags: dict[str, str]
    extensions: list[dict[str, Any]]


def parse_extension_index(text: str, source: str = "index") -> ExtensionIndex:
    """Validate the index JSON; errors name the source and the problem."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ExtensionError(f"{source}: not valid JSON ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("extensions"), list):
        raise ExtensionError(f"{source}: expected an object with an \"extensions\" list")
    entries = []
    for i, item in enumerate(data["extensions"]):
        if not isinstance(item, dict) or not isinstance(item.get("url"), str) or not item.get("name"):
            raise ExtensionError(f"{source}: extensions[{i}] needs a name and a url")
        entries.append({"description": "", "tags": [], **item})
    tags = data.get("tags") or {}
    return ExtensionIndex({str(k): str(v) for k, v in tags.items()} if isinstance(tags, dict) else {}, entries)


def load_extension_index(url: str | None = None, *, fetch: Callable[[str], str] | None = None,
                         timeout: float = 30) -> ExtensionIndex:
    """Download and parse the index (`WEBUI_EXTENSIONS_INDEX` or A1111's default URL)."""
    url = url or os.environ.get("WEBUI_EXTENSIONS_INDEX") or DEFAULT_INDEX_URL

    def _fetch(address: str) -> str:
        if not address.lower().startswith(("https://", "http://", "file://")):
            raise ExtensionError(f"extension index URL must be http(s):// or file://, got {address!r}")
        try:
            with urllib.request.urlopen(address, timeout=timeout) as response:
                return response.read().decode("utf-8")
        except urllib.error.URLError as exc:
            raise ExtensionError(f"could not download the extension index from {address} (network or TLS "
                                 f"problem): {exc.reason}") from None
        except (TimeoutError, OSError) as exc:
            raise ExtensionError(f"could not download the extension index from {address}: {exc}") from None

    return parse_extension_index((fetch or _fetch)(url), url)


def installed_urls(extensions: Iterable[Extension]) -> set[str]:
    """Normalised remotes of installed extensions (to mark index rows as Installed)."""
    return {normalise_remote(e.git.remote) for e in extensions if e.git and e.git.remote}


def is_installed(entry: dict[str, Any], extensions: Iterable[Extension]) -> bool:
    """Whether an index entry's URL is already installed."""
    return normalise_remote(entry.get("url")) in installed_urls(extensions)
