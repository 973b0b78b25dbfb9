"""Images in API requests and responses: base64 (or URL) → PIL, PIL → base64 with the infotext embedded.

A1111 (`modules/api/api.py` `decode_base64_to_image` / `encode_pil_to_base64`):
* a request image is base64, optionally with a `data:image/...;base64,` prefix, or — when the setting
  `api_enable_requests` is on — an `http(s)://` URL fetched with the `api_useragent` user agent and a 30 s timeout,
  refusing private/loopback addresses while `api_forbid_local_requests` is on (here: resolved once per hop and
  connected to the checked address, redirects followed and checked hop by hop — see `fetch_image_url`);
* a response image is raw base64 (no `data:` prefix) in the `samples_format` setting: PNG with the infotext in the
  `parameters` text chunk, JPEG/WebP with it in EXIF UserComment (A1111 writes metadata only when `enable_pnginfo`).
An undecodable image here is a 422 naming the request field (A1111 answers 500 "Invalid encoded image").
"""

from __future__ import annotations

import base64
import binascii
import io
import ipaddress
import re
import socket
import warnings
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urljoin, urlparse

import httpcore
from PIL import Image, UnidentifiedImageError

from modules.api.errors import ApiError

DATA_URI = re.compile(r"^data:(?P<mime>[\w/+.-]*)(?:;[\w=-]+)*?;base64,", re.IGNORECASE)
URL_TIMEOUT_SECONDS = 30
MAX_URL_BYTES = 64 * 1024 * 1024
FORMATS = {"png": "png", "jpg": "jpg", "jpeg": "jpg", "webp": "webp"}


def _bad(field: str, why: str) -> ApiError:
    return ApiError(422, f"{field}: {why}", field=field)


def strip_data_uri(value: str) -> str:
    """The base64 payload of `value` (a `data:...;base64,` prefix removed, whitespace dropped)."""
    match = DATA_URI.match(value)
    payload = value[match.end():] if match else value
    return "".join(payload.split())


def decode_base64_bytes(value: str, field: str) -> bytes:
    """Base64 text (with or without a data URI prefix, padding optional) → bytes; 422 naming `field` if invalid."""
    payload = strip_data_uri(value)
    if not payload:
        raise _bad(field, "empty image data")
    payload += "=" * (-len(payload) % 4)
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        try:
            return base64.urlsafe_b64decode(payload)
        except (binascii.Error, ValueError):
            raise _bad(field, "is not valid base64 image data") from None


def open_image_bytes(data: bytes, field: str) -> Image.Image:
    """Bytes of an image file → a loaded PIL image; 422 naming `field` for non-images and decompression bombs."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _bad(field, "image has too many pixels to be decoded safely") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        reason = "not a recognised image format" if isinstance(exc, UnidentifiedImageError) else str(exc)
        raise _bad(field, f"could not decode image ({reason})") from None
    return image


MAX_REDIRECTS = 5


def resolve_host(host: str) -> list[str]:
    """Every address `host` resolves to (one DNS lookup)."""
    return [str(info[4][0]) for info in socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)]


NAT64_PREFIXES = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))
"""NAT64 prefixes (RFC 6052 well-known, RFC 8215 local-use): the last 32 bits are an IPv4 address a NAT64
gateway connects to."""
IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
"""Deprecated IPv4-compatible IPv6 addresses (RFC 4291 §2.5.5.1, `::127.0.0.1`)."""


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries and reaches (IPv4-mapped, IPv4-compatible, 6to4, Teredo server and
    client, NAT64), or None."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]  # the client's address (2001::/32 itself is not global either)
    if any(address in net for net in NAT64_PREFIXES) or (address in IPV4_COMPATIBLE and int(address) > 1):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def is_public_address(address: str) -> bool:
    """True only for globally routable addresses: loopback, private, link-local (cloud metadata 169.254.169.254),
    carrier-grade NAT, unspecified (0.0.0.0 reaches this machine on Linux), multicast and reserved are refused;
    an IPv6 address that carries an IPv4 address (IPv4-mapped `::ffff:127.0.0.1`, IPv4-compatible, 6to4
    `2002:7f00:1::`, Teredo, NAT64 `64:ff9b::10.0.0.1`) must pass with both (OWASP SSRF prevention)."""
    parsed = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(parsed, ipaddress.IPv6Address):
        inner = embedded_ipv4(parsed)
        if inner is not None:
            if not (inner.is_global and not inner.is_multicast):
                return False
            if parsed.ipv4_mapped is not None:
                return True
    return parsed.is_global and not parsed.is_multicast


class _PinnedBackend(httpcore.NetworkBackend):
    """Connects to the address resolved (and checked) once, whatever host name the URL has: TLS still verifies the
    certificate for the URL's host and the Host header keeps it, but a second DNS answer (rebinding) is never used."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.inner = httpcore.SyncBackend()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Any = None) -> httpcore.NetworkStream:
        return self.inner.connect_tcp(self.address, port, timeout=timeout, local_address=local_address,
                                      socket_options=socket_options)

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Any = None) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("unix sockets are never used for image URLs")

    def sleep(self, seconds: float) -> None:
        self.inner.sleep(seconds)


def _pinned_address(url: str, field: str, check: bool, resolve: Callable[[str], list[str]],
                    allowed: Callable[[str], bool]) -> str:
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise _bad(field, f"URL {url!r} is not an http(s) URL with a host")
    try:
        addresses = resolve(parsed.hostname)
    except OSError:
        raise _bad(field, f"cannot resolve the host of {url!r}") from None
    if not addresses:
        raise _bad(field, f"cannot resolve the host of {url!r}")
    if check and not all(allowed(address) for address in addresses):
        raise _bad(field, f"URL {url!r} points to a local address (loopback, private or link-local); the setting "
                          "api_forbid_local_requests refuses those")
    return addresses[0]


def fetch_image_url(url: str, field: str, settings: Mapping[str, Any], *,
                    resolve: Callable[[str], list[str]] = resolve_host,
                    allowed: Callable[[str], bool] = is_public_address) -> bytes:
    """Download an image URL with A1111's rules (module docstring). With `api_forbid_local_requests` each hop's
    host is resolved once, every address it resolves to must be public, and the connection goes to that checked
    address (no second lookup a rebinding DNS server could answer differently); up to `MAX_REDIRECTS` redirects
    are followed, each hop checked the same way."""
    if not settings.get("api_enable_requests", True):
        raise _bad(field, "image URLs are disabled (setting api_enable_requests); send base64 data instead")
    check = bool(settings.get("api_forbid_local_requests", True))
    agent = str(settings.get("api_useragent") or "Mozilla/5.0 (sd-webui API)")
    timeout = {"connect": URL_TIMEOUT_SECONDS, "read": URL_TIMEOUT_SECONDS, "write": URL_TIMEOUT_SECONDS,
               "pool": URL_TIMEOUT_SECONDS}
    for _hop in range(MAX_REDIRECTS + 1):
        address = _pinned_address(url, field, check, resolve, allowed)
        try:
            with httpcore.ConnectionPool(network_backend=_PinnedBackend(address)) as pool, pool.stream(
                    "GET", url, headers=[(b"user-agent", agent.encode("latin-1", "replace"))],
                    extensions={"timeout": timeout}) as resp:
                if resp.status in (301, 302, 303, 307, 308):
                    location = dict((k.lower(), v) for k, v in resp.headers).get(b"location", b"")
                    if not location:
                        raise _bad(field, f"{url!r} redirected without a Location")
                    url = urljoin(url, location.decode("latin-1"))
                    continue
                if resp.status != 200:
                    raise _bad(field, f"fetching {url!r} answered HTTP {resp.status}")
                chunks: list[bytes] = []
                size = 0
                for chunk in resp.iter_stream():
                    size += len(chunk)
                    if size > MAX_URL_BYTES:
                        raise _bad(field, f"{url!r} is larger than {MAX_URL_BYTES // 2**20} MiB")
                    chunks.append(chunk)
                return b"".join(chunks)
        except (httpcore.NetworkError, httpcore.TimeoutException, httpcore.ProtocolError,
                httpcore.UnsupportedProtocol) as exc:
            raise _bad(field, f"could not fetch {url!r}: {exc}") from None
    raise _bad(field, f"{url!r} redirected more than {MAX_REDIRECTS} times")


def decode_image(value: Any, field: str, settings: Mapping[str, Any] | None = None) -> Image.Image:
    """A request image (base64, data URI or URL) → PIL image; every failure is a 422 naming `field`."""
    if not isinstance(value, str):
        raise _bad(field, f"expected a base64 string, got {type(value).__name__}")
    text = value.strip()
    if text.lower().startswith(("http://", "https://")):
        return open_image_bytes(fetch_image_url(text, field, settings or {}), field)
    return open_image_bytes(decode_base64_bytes(text, field), field)


def encode_image(image: Image.Image, infotext: str | None = None, settings: Mapping[str, Any] | None = None,
                 image_format: str | None = None) -> str:
    """PIL image → raw base64 in `samples_format` (png/jpg/webp; others fall back to png) with the infotext embedded."""
    from modules.images import save_image_with_geninfo

    settings = settings or {}
    fmt = FORMATS.get(str(image_format or settings.get("samples_format") or "png").lower().lstrip("."), "png")
    buffer = io.BytesIO()
    if fmt != "png" and image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    save_image_with_geninfo(image, infotext, buffer, f".{fmt}",
                            enable_pnginfo=bool(settings.get("enable_pnginfo", True)),
                            jpeg_quality=int(settings.get("jpeg_quality", 80)),
                            webp_lossless=bool(settings.get("webp_lossless", False)))
    return base64.b64encode(buffer.getvalue()).decode("ascii")
