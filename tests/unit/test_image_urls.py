"""Image URLs in API requests: resolved once per hop, connected to the checked address, redirects checked."""

from __future__ import annotations

import http.server
import io
import threading
from collections.abc import Iterator
from urllib.parse import quote, unquote

import pytest
from PIL import Image

from modules.api.errors import ApiError
from modules.api.images_b64 import fetch_image_url, is_public_address, resolve_host

SETTINGS = {"api_enable_requests": True, "api_forbid_local_requests": True}


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (3, 2), "blue").save(out, format="PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[int, list[str]]]:
    """127.0.0.1:<port>: `/img.png` is an image, `/to-local` redirects to it by the loopback address."""
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(f"{self.headers.get('Host')} {self.path}")
            if self.path == "/img.png":
                body = _png()
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            elif self.path.startswith("/redirect/"):  # /redirect/<quoted Location>
                self.send_response(302)
                self.send_header("Location", unquote(self.path[len("/redirect/"):]))
                self.end_headers()
            else:
                self.send_response(302)
                self.send_header("Location", f"http://127.0.0.1:{self.server.server_port}/img.png")
                self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_port, hits
    httpd.shutdown()


def test_local_and_special_addresses_are_not_public() -> None:
    for address in ("127.0.0.1", "10.1.2.3", "192.168.0.5", "172.16.0.1", "169.254.169.254", "0.0.0.0", "::1",
                    "::ffff:127.0.0.1", "100.64.0.1", "fd00::1", "224.0.0.1",
                    # IPv6 forms that carry a local IPv4 address: IPv4-compatible, 6to4, NAT64 (both prefixes)
                    "::127.0.0.1", "2002:7f00:1::", "2002:a00:1::1", "64:ff9b::127.0.0.1", "64:ff9b:1::a00:1"):
        assert not is_public_address(address), address
    assert is_public_address("93.184.216.34") and is_public_address("2606:4700::1111")


def test_local_urls_are_refused_before_any_connection(server: tuple[int, list[str]]) -> None:
    port, hits = server
    before = len(hits)
    for url in (f"http://127.0.0.1:{port}/img.png", f"http://localhost:{port}/img.png",
                f"http://0.0.0.0:{port}/img.png", f"http://[::ffff:127.0.0.1]:{port}/img.png"):
        with pytest.raises(ApiError) as raised:
            fetch_image_url(url, "init_images[0]", SETTINGS)
        assert raised.value.status_code == 422 and "local" in str(raised.value), url
    assert len(hits) == before, "nothing may be fetched from a local address"


def test_one_resolution_per_hop_and_the_checked_address_is_used(server: tuple[int, list[str]]) -> None:
    """`rebind.test` (unknown to the system's DNS) resolves once through our resolver; the request goes to that
    address with the URL's host name, so a second, different DNS answer could never be used."""
    port, hits = server
    calls: list[str] = []

    def resolve(host: str) -> list[str]:
        calls.append(host)
        return ["127.0.0.1"]

    data = fetch_image_url(f"http://rebind.test:{port}/img.png", "init_images[0]", SETTINGS, resolve=resolve,
                           allowed=lambda address: True)
    assert Image.open(io.BytesIO(data)).size == (3, 2)
    assert calls == ["rebind.test"]
    assert hits[-1] == f"rebind.test:{port} /img.png"


def test_every_redirect_hop_is_checked(server: tuple[int, list[str]]) -> None:
    port, hits = server
    public_once = {"first.test"}

    def resolve(host: str) -> list[str]:
        return ["127.0.0.1"] if host in ("first.test", "127.0.0.1") else []

    def allowed(address: str) -> bool:  # "first.test" passes as public; the redirect's loopback address must not
        return bool(public_once and public_once.pop())

    before = len(hits)
    with pytest.raises(ApiError) as raised:
        fetch_image_url(f"http://first.test:{port}/to-local", "init_images[0]", SETTINGS, resolve=resolve,
                        allowed=allowed)
    assert "local" in str(raised.value)
    assert hits[before:] == [f"first.test:{port} /to-local"]  # the redirect target was never fetched


def test_redirects_to_local_addresses_in_any_spelling_are_refused(server: tuple[int, list[str]]) -> None:
    """A public first hop redirecting to this machine written as 0.0.0.0, an IPv4-mapped or 6to4/NAT64 IPv6
    address, a decimal or hex IPv4 number, or the cloud metadata address: every hop is resolved and checked."""
    port, hits = server
    for target in (f"http://0.0.0.0:{port}/img.png", f"http://[::ffff:127.0.0.1]:{port}/img.png",
                   f"http://2130706433:{port}/img.png", f"http://0x7f.1:{port}/img.png",
                   f"http://[2002:7f00:1::]:{port}/img.png", f"http://[64:ff9b::7f00:1]:{port}/img.png",
                   f"http://localhost.:{port}/img.png", "http://169.254.169.254/latest/meta-data/"):
        first_hop = [True]

        def allowed(address: str, first_hop: list[bool] = first_hop) -> bool:  # "public.test" passes once;
            return first_hop.pop() if first_hop else is_public_address(address)  # later hops: the real rule

        def resolve(host: str) -> list[str]:
            return ["127.0.0.1"] if host == "public.test" else resolve_host(host)

        before = len(hits)
        with pytest.raises(ApiError) as raised:
            fetch_image_url(f"http://public.test:{port}/redirect/{quote(target, safe='')}", "init_images[0]",
                            SETTINGS, resolve=resolve, allowed=allowed)
        assert raised.value.status_code == 422 and "local" in str(raised.value), (target, str(raised.value))
        assert len(hits) == before + 1, (target, hits[before:])  # only the first hop was ever fetched
