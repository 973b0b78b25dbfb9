"""Logins guard every route, and only output/temp/extension-asset files are ever served.

Server under test: `--api --gradio-auth user:secret` with a tiny Gradio Blocks as the UI. A1111 facts: `--api-auth`
is HTTP Basic with `WWW-Authenticate: Basic`; `--gradio-auth` logins guard the UI. Here the UI login is HTTP Basic
too, handed to Gradio as its `auth_dependency` (Gradio's own login page shows the app's API description to anyone),
so pages, Gradio's routes and files all answer 401 without it; with only `--gradio-auth` the API accepts the same
logins, so nothing is left open.
"""

from __future__ import annotations

import base64
import http.client

import httpx
import pytest

from tests.integration.conftest import LiveServer, LiveServerFactory, tiny_blocks

USER, PASSWORD = "user", "secret"


@pytest.fixture(scope="module")
def server(live_server: LiveServerFactory) -> LiveServer:
    srv = live_server(["--api", "--gradio-auth", f"{USER}:{PASSWORD}"], ui=tiny_blocks())
    outputs = srv.data_dir / "outputs" / "txt2img-images"
    outputs.mkdir(parents=True)
    (outputs / "00001-42.png").write_bytes(b"\x89PNG fake image bytes")
    (srv.data_dir / "config.json").write_text('{"secret": "do not serve"}', encoding="utf-8")
    (srv.data_dir / "models" / "Stable-diffusion" / "model.safetensors").write_bytes(b"weights")
    ext = srv.data_dir / "extensions" / "demo-ext"
    (ext / "javascript").mkdir(parents=True)
    (ext / "javascript" / "demo.js").write_text("console.log('demo')", encoding="utf-8")
    (ext / "install.py").write_text("print('code')", encoding="utf-8")
    return srv


def anonymous(server: LiveServer) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=30)


def basic(server: LiveServer, user: str = USER, password: str = PASSWORD) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=30, auth=(user, password))


def raw_get(server: LiveServer, raw_path: str) -> tuple[int, bytes]:
    """GET with the path sent byte for byte (httpx would resolve `..` segments before sending)."""
    port = server.notes["port"]
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    conn.request("GET", raw_path, headers={"Authorization": f"Basic {token}"})
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response.status, body


def api_paths(server: LiveServer) -> list[tuple[str, str]]:
    spec = basic(server).get("/openapi.json").json()
    return [(method.upper(), path) for path, item in spec["paths"].items() for method in item]


def test_every_api_route_needs_a_login(server: LiveServer) -> None:
    routes = api_paths(server)
    assert len(routes) > 35
    with anonymous(server) as client:
        for method, path in routes:
            response = client.request(method, path, json={})
            assert response.status_code == 401, (method, path, response.status_code)
            assert response.headers["www-authenticate"].startswith("Basic")
    with basic(server, password="wrong") as client:
        assert client.get("/sdapi/v1/options").status_code == 401
    with basic(server, user="someone") as client:
        assert client.get("/sdapi/v1/options").status_code == 401


def test_api_accepts_the_ui_logins(server: LiveServer) -> None:
    with basic(server) as client:
        assert client.get("/sdapi/v1/samplers").status_code == 200
        assert client.get("/sdapi/v1/progress").status_code == 200
        assert client.post("/sdapi/v1/interrupt").json() == {}


def test_docs_need_a_login(server: LiveServer) -> None:
    with anonymous(server) as client:
        assert client.get("/docs").status_code == 401
        assert client.get("/openapi.json").status_code == 401
    with basic(server) as client:
        assert client.get("/docs").status_code == 200


def test_ui_and_gradio_routes_need_the_login(server: LiveServer) -> None:
    with anonymous(server) as client:
        for path in ("/", "/?__theme=dark", "/config", "/gradio_api/info", "/gradio_api/queue/data?session_hash=x",
                     "/gradio_api/upload_progress?upload_id=x", "/gradio_api/login_check", "/theme.css",
                     "/gradio_api/heartbeat/abc", "/favicon.ico", "/manifest.json"):
            response = client.get(path)
            assert response.status_code == 401, path
            assert "tiny-test-prompt" not in response.text
            assert response.headers["www-authenticate"].startswith("Basic")
        join = client.post("/gradio_api/queue/join", json={"data": ["hi"], "fn_index": 0, "session_hash": "abc"})
        assert join.status_code == 401
        assert client.post("/gradio_api/run/echo", json={"data": ["hi"]}).status_code == 401
        assert client.post("/gradio_api/upload", files={"files": ("a.txt", b"x")}).status_code == 401
    with basic(server, password="wrong") as client:
        assert client.get("/").status_code == 401 and client.get("/config").status_code == 401


def test_ui_works_with_the_login(server: LiveServer) -> None:
    with basic(server) as client:
        page = client.get("/")
        assert page.status_code == 200 and "tiny-test-prompt" in page.text
        assert "tiny-test-prompt" in client.get("/config").text
        assert client.get("/gradio_api/login_check").status_code == 200
        call = client.post("/gradio_api/call/echo", json={"data": ["hello"]})
        assert call.status_code == 200, call.text
        events = client.get(f"/gradio_api/call/echo/{call.json()['event_id']}")
        assert events.status_code == 200 and "hello" in events.text


def test_output_files_need_a_login(server: LiveServer) -> None:
    target = server.data_dir / "outputs" / "txt2img-images" / "00001-42.png"
    with anonymous(server) as client:
        assert client.get(f"/file={target}").status_code == 401
        assert client.get(f"/gradio_api/file={target}").status_code == 401
    with basic(server) as client:
        response = client.get(f"/file={target}")
        assert response.status_code == 200 and response.content == b"\x89PNG fake image bytes"
        assert client.get(f"/gradio_api/file={target}").content == b"\x89PNG fake image bytes"


@pytest.mark.parametrize(
    "path",
    [
        "{data}/config.json",
        "{data}/outputs/../config.json",
        "{data}/outputs/txt2img-images/../../config.json",
        "{data}/outputs/%2e%2e/config.json",
        "{data}/models/Stable-diffusion/model.safetensors",
        "{data}/extensions/demo-ext/install.py",
        "/etc/passwd",
        "../../../../etc/passwd",
        "modules/server.py",
        "webui.py",
    ],
)
def test_files_outside_outputs_are_never_served(server: LiveServer, path: str) -> None:
    requested = path.format(data=server.data_dir)
    for prefix in ("/file=", "/gradio_api/file="):
        status, body = raw_get(server, prefix + requested)
        assert status in (403, 404), (prefix, requested, status)
        assert b"do not serve" not in body and b"root:" not in body
        assert body not in (b"weights", b"print('code')")


def test_a_served_file_through_a_raw_request(server: LiveServer) -> None:
    status, body = raw_get(server, f"/file={server.data_dir}/outputs/txt2img-images/00001-42.png")
    assert status == 200 and body == b"\x89PNG fake image bytes"
    status, _ = raw_get(server, f"/file={server.data_dir}/outputs/txt2img-images/../../outputs/txt2img-images/"
                                "00001-42.png")
    assert status == 200  # `..` that stays inside the outputs folder is fine


def test_symlink_out_of_outputs_is_refused(server: LiveServer) -> None:
    link = server.data_dir / "outputs" / "escape.json"
    link.symlink_to(server.data_dir / "config.json")
    with basic(server) as client:
        response = client.get(f"/file={link}")
        assert response.status_code == 404 and b"do not serve" not in response.content


def test_extension_assets_are_served_but_not_their_code(server: LiveServer) -> None:
    with basic(server) as client:
        js = client.get(f"/file={server.data_dir}/extensions/demo-ext/javascript/demo.js")
        assert js.status_code == 200 and js.text == "console.log('demo')"
        assert client.get(f"/file={server.data_dir}/extensions/demo-ext/install.py").status_code == 404


def test_separate_api_auth(live_server: LiveServerFactory) -> None:
    srv = live_server(["--api", "--api-auth", "robot:beep", "--gradio-auth", f"{USER}:{PASSWORD}"], ui=tiny_blocks())
    with httpx.Client(base_url=srv.url, auth=("robot", "beep")) as client:
        assert client.get("/sdapi/v1/options").status_code == 200
    with httpx.Client(base_url=srv.url, auth=(USER, PASSWORD)) as client:
        assert client.get("/sdapi/v1/options").status_code == 401  # a UI login is not an API login
        assert client.get("/config").status_code == 200
    with httpx.Client(base_url=srv.url, auth=("robot", "beep")) as client:
        assert client.get("/config").status_code == 401  # nor the other way round


def test_api_only_server_with_api_auth(live_server: LiveServerFactory) -> None:
    srv = live_server(["--nowebui", "--api-auth", "a:b,c:d"])
    with httpx.Client(base_url=srv.url) as client:
        assert client.get("/sdapi/v1/samplers").status_code == 401
        assert client.get("/").status_code == 401
        assert client.get("/file=/etc/passwd").status_code in (401, 404)
        assert client.get("/sdapi/v1/samplers", auth=("c", "d")).status_code == 200


def test_subpath_and_cors(live_server: LiveServerFactory) -> None:
    srv = live_server(["--nowebui", "--subpath", "sd", "--cors-allow-origins", "http://allowed.example"])
    root = srv.url.rsplit("/sd", 1)[0]
    with httpx.Client(base_url=root) as client:
        assert client.get("/sdapi/v1/samplers").status_code == 404
        redirect = client.get("/")
        assert redirect.status_code in (302, 307) and redirect.headers["location"] == "/sd/"
        ok = client.get("/sd/sdapi/v1/samplers", headers={"origin": "http://allowed.example"})
        assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == "http://allowed.example"
        other = client.get("/sd/sdapi/v1/samplers", headers={"origin": "http://evil.example"})
        assert "access-control-allow-origin" not in other.headers
