"""Minimum versions of the dependencies this app exposes to the network or to untrusted files, checked at start-up.

`requirements.txt` pins the same floors; this check catches an environment that was installed otherwise (a shared
venv, an extension's installer that downgraded a package). Each floor is the first release with the fix for a
published vulnerability in code this app reaches:

| package | floor | why |
|---|---|---|
| gradio | 6.0 | every CVE published for Gradio 4/5 (file-route traversal, SSRF, upload path issues) is fixed there |
| starlette | 0.49.1 | CVE-2025-54121 (multipart upload blocks the event loop), CVE-2025-62727 (Range header DoS in FileResponse) |
| fastapi | 0.115 | first release on a maintained Starlette line |
| python-multipart | 0.0.18 | CVE-2024-53981 (CPU exhaustion from data around multipart boundaries) — every upload is parsed by it |
| h11 | 0.16.0 | CVE-2025-43859 (request smuggling through chunked-encoding parsing) — uvicorn's HTTP parser |
| pillow | 11.3.0 | CVE-2025-48379 (DDS write overflow) and the earlier decoder CVEs of 10.x |
| torch | 2.6.0 | CVE-2025-32434 (`torch.load(weights_only=True)` could still run code) |
| transformers | 4.48.0 | CVE-2024-11392/11393/11394 (deserialisation of untrusted model files) |
| safetensors | 0.4.0 | the mmap loader this app uses for every checkpoint |
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from importlib import metadata

FLOORS: Mapping[str, str] = {
    "gradio": "6.0",
    "starlette": "0.49.1",
    "fastapi": "0.115",
    "h11": "0.16.0",
    "python-multipart": "0.0.18",
    "pillow": "11.3.0",
    "torch": "2.6.0",
    "transformers": "4.48.0",
    "safetensors": "0.4.0",
}


def _numbers(version: str) -> tuple[int, ...]:
    """`"2.14.1+cu130"` → (2, 14, 1); pre-release tags count as the release they precede."""
    parts = []
    for piece in version.split("+", 1)[0].split("."):
        match = re.match(r"\d+", piece)
        if match is None:
            break
        parts.append(int(match.group()))
    return tuple(parts)


def below_floor(installed: str, floor: str) -> bool:
    """True when `installed` is older than `floor` (numeric comparison, missing parts are 0)."""
    a, b = _numbers(installed), _numbers(floor)
    width = max(len(a), len(b))
    return a + (0,) * (width - len(a)) < b + (0,) * (width - len(b))


def outdated_dependencies(version_of: Callable[[str], str] = metadata.version) -> list[str]:
    """One warning per installed package below its floor (packages that are not installed are skipped)."""
    out = []
    for package, floor in FLOORS.items():
        try:
            installed = version_of(package)
        except metadata.PackageNotFoundError:
            continue
        if below_floor(installed, floor):
            out.append(f"{package} {installed} is older than {floor}, the first release without known "
                       f"vulnerabilities this app is exposed to; upgrade it: pip install -U '{package}>={floor}'")
    return out
