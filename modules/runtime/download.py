"""First start without a checkpoint: download the default SD1.5 model, resumably, and verify it.

A1111 (``modules/sd_models.py``): when no checkpoint is found in ``models/Stable-diffusion`` (or ``--ckpt-dir``) it
downloads ``v1-5-pruned-emaonly.safetensors`` (sha256 ``6ce0161689b3…``, 4 265 146 304 bytes) unless
``--no-download-sd-model`` is given.  Its URL pointed at ``runwayml/stable-diffusion-v1-5``; RunwayML deleted that
repository in 2024 (A1111 issue #16459, fixed by PR #16460), and the same file lives on in the
``stable-diffusion-v1-5/stable-diffusion-v1-5`` archive, which is used here.

Behaviour:
- ``HF_ENDPOINT`` replaces ``https://huggingface.co`` (users in mainland China set ``https://hf-mirror.com``);
  ``HF_HUB_OFFLINE=1`` means "do not try";
- proxies come from ``http_proxy`` / ``https_proxy`` / ``no_proxy`` (lower or upper case), as urllib reads them;
- the file is written to ``<name>.part`` and resumed with an HTTP ``Range`` request after an interruption;
- the sha256 is checked before the file gets its final name; a mismatch deletes the ``.part`` file;
- no network: a message saying where to put a model, and the app starts without one.
Only the standard library is used (urllib), so this works before any package is installed.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

__all__ = [
    "DEFAULT_SD_MODEL",
    "HF_DEFAULT_ENDPOINT",
    "ChecksumError",
    "DownloadError",
    "ModelFile",
    "OfflineError",
    "download_file",
    "ensure_default_checkpoint",
    "find_checkpoints",
    "hf_url",
]

HF_DEFAULT_ENDPOINT = "https://huggingface.co"
CHECKPOINT_SUFFIXES = (".safetensors", ".ckpt")
USER_AGENT = "sd-webui (+https://github.com/AUTOMATIC1111/stable-diffusion-webui compatible)"
_MB = 1024 * 1024


@dataclass(frozen=True)
class ModelFile:
    """A file in a Hugging Face repository with its known sha256 and size."""

    repo: str
    filename: str
    sha256: str
    size: int | None = None
    revision: str = "main"


DEFAULT_SD_MODEL = ModelFile(
    repo="stable-diffusion-v1-5/stable-diffusion-v1-5",
    filename="v1-5-pruned-emaonly.safetensors",
    sha256="6ce0161689b3853acaa03779ec93eafe75a02f4ced659bee03f50797806fa2fa",
    size=4_265_146_304,
)


class DownloadError(Exception):
    """A download failed; the message says why and what to do."""


class OfflineError(DownloadError):
    """The server could not be reached at all (no network, DNS failure, refused connection, HF_HUB_OFFLINE)."""


class ChecksumError(DownloadError):
    """The downloaded bytes do not have the expected sha256; the partial file was deleted."""


def hf_url(model: ModelFile, env: Mapping[str, str] | None = None) -> str:
    """``<HF_ENDPOINT>/<repo>/resolve/<revision>/<filename>`` (the URL form huggingface_hub uses)."""
    env = os.environ if env is None else env
    endpoint = (env.get("HF_ENDPOINT") or HF_DEFAULT_ENDPOINT).strip().rstrip("/")
    return f"{endpoint}/{model.repo}/resolve/{model.revision}/{urllib.parse.quote(model.filename)}"


# -- HTTP -------------------------------------------------------------------------------------------------------------

class _EnvProxyHandler(urllib.request.ProxyHandler):
    """urllib's ProxyHandler fed from an explicit environment mapping (lower-case names win, like urllib)."""

    def __init__(self, env: Mapping[str, str]) -> None:
        proxies: dict[str, str] = {}
        for key in sorted(env, key=lambda k: k.islower()):  # upper case first, lower case overrides
            name = key.lower()
            if name.endswith("_proxy") and name != "no_proxy" and env[key]:
                proxies[name[: -len("_proxy")]] = env[key]
        self._no_proxy = env.get("no_proxy") or env.get("NO_PROXY") or ""
        super().__init__(proxies)

    def proxy_open(self, req: urllib.request.Request, proxy: str, type: str) -> Any:
        # proxy_bypass_environment is an undocumented urllib helper that typeshed leaves out
        bypass = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]
        if self._no_proxy and bypass(req.host, {"no": self._no_proxy}):
            return None
        return super().proxy_open(req, proxy, type)


def _opener(env: Mapping[str, str]) -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(_EnvProxyHandler(env))


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", exc)
    if isinstance(reason, socket.gaierror):
        return f"the host name could not be resolved ({reason.strerror or reason})"
    if isinstance(reason, ConnectionRefusedError):
        return "the connection was refused"
    if isinstance(reason, TimeoutError):
        return "the connection timed out"
    return str(reason) or type(reason).__name__


# -- progress bar -----------------------------------------------------------------------------------------------------

def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1024
    return f"{n:.1f}GB"


class ConsoleProgress:
    """A one-line console progress bar: percent, bar, bytes, speed and ETA; redrawn at most every ``interval`` s."""

    def __init__(self, stream: TextIO | None, total: int | None, initial: int = 0, label: str = "") -> None:
        self.stream = stream
        self.total = total
        self.done = initial
        self.label = label
        self._start_bytes = initial
        self._start = time.monotonic()
        self._last_draw = 0.0
        is_tty = bool(stream is not None and getattr(stream, "isatty", lambda: False)())
        self.interval = 0.1 if is_tty else 5.0

    def update(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if now - self._last_draw >= self.interval:
            self._last_draw = now
            self._draw(now)

    def close(self) -> None:
        self._draw(time.monotonic())
        if self.stream is not None:
            self.stream.write("\n")
            self.stream.flush()

    def line(self, now: float) -> str:
        elapsed = max(now - self._start, 1e-9)
        speed = (self.done - self._start_bytes) / elapsed
        if self.total:
            fraction = min(self.done / self.total, 1.0)
            bar = "█" * int(fraction * 30)
            eta = (self.total - self.done) / speed if speed > 0 else 0.0
            return (f"{self.label}{fraction * 100:3.0f}%|{bar:<30}| {_size(self.done)}/{_size(self.total)} "
                    f"[{_size(speed)}/s, ETA {int(eta) // 60}:{int(eta) % 60:02d}]")
        return f"{self.label}{_size(self.done)} [{_size(speed)}/s]"

    def _draw(self, now: float) -> None:
        if self.stream is not None:
            self.stream.write("\r" + self.line(now))
            self.stream.flush()


# -- download ---------------------------------------------------------------------------------------------------------

def _hash_existing(path: Path, digest: Any) -> None:
    with path.open("rb") as f:
        for block in iter(lambda: f.read(_MB), b""):
            digest.update(block)


def _content_range(value: str | None) -> tuple[int | None, int | None]:
    """``bytes 100-199/1000`` → (100, 1000); ``bytes */1000`` → (None, 1000)."""
    match = re.match(r"bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)", value or "")
    if not match:
        return None, None
    start = int(match.group(1)) if match.group(1) else None
    total = int(match.group(2)) if match.group(2) != "*" else None
    return start, total


def download_file(url: str, dest: str | os.PathLike[str], *, sha256: str | None = None,
                  env: Mapping[str, str] | None = None, progress: TextIO | None = sys.stderr,
                  chunk_size: int = _MB, timeout: float = 30.0) -> Path:
    """Download ``url`` to ``dest`` through ``<dest>.part``, resuming a previous partial download.

    Raises :class:`OfflineError` when the server cannot be reached, :class:`ChecksumError` when the sha256 differs
    (the ``.part`` file is deleted), :class:`DownloadError` for HTTP errors and broken transfers (the ``.part``
    file is kept so the next attempt resumes).
    """
    env = os.environ if env is None else env
    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    if env.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        raise OfflineError(f"HF_HUB_OFFLINE is set, so {url} is not downloaded")
    opener = _opener(env)
    digest = hashlib.sha256()
    complete_before = False
    for _attempt in range(2):  # a second attempt only after a stale .part file was discarded
        offset = part.stat().st_size if part.exists() else 0
        request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
        if offset:
            request.add_header("Range", f"bytes={offset}-")
        try:
            response = opener.open(request, timeout=timeout)
        except urllib.error.HTTPError as exc:
            if exc.code == 416 and offset:
                _, total = _content_range(exc.headers.get("Content-Range"))
                exc.close()
                if total == offset:
                    complete_before = True  # the .part file already holds the whole file
                    break
                part.unlink()
                continue
            raise DownloadError(_http_error_message(url, exc)) from None
        except (urllib.error.URLError, OSError) as exc:
            raise OfflineError(f"could not reach {urllib.parse.urlsplit(url).netloc}: {_reason(exc)}") from None
        with response:
            start, total = _content_range(response.headers.get("Content-Range"))
            if response.status == 206 and start != offset:
                part.unlink()
                continue
            if response.status != 206:
                offset = 0  # the server ignored Range and sends the whole file
                length = response.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
            if offset:
                _hash_existing(part, digest)
            _stream(response, part, offset, total, digest, url, dest, progress, chunk_size)
        break
    else:
        raise DownloadError(f"the server at {url} does not resume downloads consistently; delete {part} and retry")
    if complete_before:
        _hash_existing(part, digest)
    actual = digest.hexdigest()
    if sha256 and actual != sha256.lower():
        part.unlink(missing_ok=True)
        raise ChecksumError(
            f"sha256 mismatch for {dest.name}: expected {sha256.lower()}, got {actual}. The damaged download was "
            f"deleted; start again to download it anew (a mirror set with HF_ENDPOINT may serve a different file).")
    os.replace(part, dest)
    return dest


def _stream(response: Any, part: Path, offset: int, total: int | None, digest: Any, url: str, dest: Path,
            progress: TextIO | None, chunk_size: int) -> None:
    if progress is not None:
        progress.write(f'Downloading: "{url}" to {dest}' + (f" (resuming at {_size(offset)})" if offset else "") + "\n")
    bar = ConsoleProgress(progress, total, offset)
    written = offset
    try:
        with part.open("ab" if offset else "wb") as f:
            while True:
                block = response.read(chunk_size)
                if not block:
                    break
                f.write(block)
                digest.update(block)
                written += len(block)
                bar.update(len(block))
    except (OSError, http.client.HTTPException) as exc:
        raise DownloadError(f"the download of {dest.name} broke off after {_size(written)} ({_reason(exc)}); "
                            f"start again to resume from {part}") from None
    finally:
        bar.close()
    if total is not None and written != total:
        raise DownloadError(f"the download of {dest.name} stopped at {_size(written)} of {_size(total)}; "
                            f"start again to resume from {part}")


def _http_error_message(url: str, exc: urllib.error.HTTPError) -> str:
    hint = {401: "the server asks for a login", 403: "access is forbidden",
            404: "the file is not there (moved or deleted upstream?)"}.get(exc.code, "the server refused")
    return f"HTTP {exc.code} {exc.reason} for {url}: {hint}"


# -- first start ------------------------------------------------------------------------------------------------------

def _is_checkpoint(path: Path) -> bool:
    name = path.name.lower()
    return path.is_file() and name.endswith(CHECKPOINT_SUFFIXES) and ".vae." not in name


def find_checkpoints(paths: Iterable[str | os.PathLike[str] | None]) -> list[Path]:
    """Checkpoints among ``paths``: files as given, directories searched recursively, as A1111 lists them.

    A checkpoint is a ``.safetensors`` or ``.ckpt`` file that is not a VAE (``*.vae.*``).
    """
    found: list[Path] = []
    for entry in paths:
        if entry is None:
            continue
        entry = Path(entry)
        if entry.is_dir():
            found += [p for p in sorted(entry.rglob("*")) if _is_checkpoint(p)]
        elif _is_checkpoint(entry):
            found.append(entry)
    return found


def ensure_default_checkpoint(model_dir: str | os.PathLike[str], *,
                              extra_paths: Iterable[str | os.PathLike[str] | None] = (),
                              no_download: bool = False, env: Mapping[str, str] | None = None,
                              model: ModelFile = DEFAULT_SD_MODEL, out: TextIO | None = sys.stdout,
                              progress: TextIO | None = sys.stderr) -> Path | None:
    """Download the default model into ``model_dir`` when no checkpoint exists anywhere; the new file or None.

    ``extra_paths`` are the other places A1111 looks: the ``--ckpt-dir`` directory and the ``--ckpt`` file.

    Never raises for network trouble: it prints what happened and where to put a model, and the UI starts without
    one (A1111 exits instead, which leaves an offline user with nothing).
    """
    model_dir = Path(model_dir)
    if find_checkpoints([model_dir, *extra_paths]):
        return None
    where = (f"Put a .safetensors or .ckpt checkpoint into {model_dir} (subfolders are fine) and press the refresh "
             "button next to the checkpoint list; the web UI starts without a model until then.")
    if no_download:
        _say(out, f"No checkpoint found and --no-download-sd-model is set. {where}")
        return None
    url = hf_url(model, env)
    try:
        return download_file(url, model_dir / model.filename, sha256=model.sha256, env=env, progress=progress)
    except DownloadError as exc:
        _say(out, f"Could not download the default model {model.filename}: {exc}\n{where}\n"
                  f"Or download {url} by hand into that folder. Behind a proxy set https_proxy; in mainland China "
                  "set HF_ENDPOINT=https://hf-mirror.com (in webui-user.sh / webui-user.bat).")
        return None


def _say(out: TextIO | None, text: str) -> None:
    if out is not None:
        print(text, file=out, flush=True)
