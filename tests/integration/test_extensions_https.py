"""Extensions installed over real HTTPS: a bare git repository served on 127.0.0.1 with a test CA.

The server speaks git's "dumb" HTTP protocol (static files after `git update-server-info`), so the install goes
through the manager's https-only path (no `allow_local`) with TLS verification on; the test CA reaches git only
through the manager's `git_env` (`GIT_SSL_CAINFO`).  Covers the issue's list: install, update, disable, refusal
with --listen, and one-line messages for TLS and network failures with nothing half-installed left behind.
"""

from __future__ import annotations

import datetime
import functools
import http.server
import ipaddress
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from modules.cli.flags import parse_flags
from modules.extensions import manager

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
from cryptography import x509  # noqa: E402  (a test requirement: makes the test CA)
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID  # noqa: E402

LOOPBACK = "127.0.0.1"
SCRIPT = "from modules.extensions.api import Script\nclass Hello(Script):\n    def title(self): return 'Hello'\n"


def _git(cwd: Path, *args: str) -> str:
    config = ["-c", "user.name=Test", "-c", "user.email=test@example.com", "-c", "init.defaultBranch=main"]
    return subprocess.run(["git", *config, *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


@dataclass
class CertSet:
    ca: Path  # the CA certificate git is told to trust
    cert: Path  # server certificate for IP 127.0.0.1, signed by the CA
    key: Path


def _make_ca(folder: Path, label: str) -> CertSet:
    """A CA and a server certificate for IP 127.0.0.1 signed by it (EC keys: fast to generate)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    start, end = now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=1)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{label} test CA")])
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
               .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(start).not_valid_after(end)
               .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                            data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                            crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
               .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, LOOPBACK)]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(end)
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(LOOPBACK))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    folder.mkdir(parents=True, exist_ok=True)
    out = CertSet(folder / "ca.pem", folder / "cert.pem", folder / "key.pem")
    out.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    out.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    out.key.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return out


@pytest.fixture(scope="module")
def trusted_ca(tmp_path_factory: pytest.TempPathFactory) -> CertSet:
    return _make_ca(tmp_path_factory.mktemp("trusted"), "trusted")


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> CertSet:
    return _make_ca(tmp_path_factory.mktemp("other"), "other")


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class _TLSServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that rejects our certificate aborts the handshake; that is the test, not an error


def _serve_https(root: Path, tls: CertSet) -> tuple[_TLSServer, threading.Thread]:
    """Static files under `root` over HTTPS on 127.0.0.1 (free port); handshakes run in the handler threads."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls.cert, tls.key)
    server = _TLSServer((LOOPBACK, 0), functools.partial(_QuietHandler, directory=str(root)))
    server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    return server, thread


@dataclass
class Remote:
    url: str
    work: Path  # the developer's checkout that pushes to the served bare repository
    bare: Path

    def publish(self, filename: str, text: str) -> None:
        """Commit a file and push it; `update-server-info` refreshes what the dumb HTTP protocol reads."""
        (self.work / filename).write_text(text, encoding="utf-8")
        _git(self.work, "add", ".")
        _git(self.work, "commit", "-q", "-m", f"add {filename}")
        _git(self.work, "push", "-q", "origin", "main")
        _git(self.bare, "update-server-info")


def _make_remote(tmp_path: Path, tls: CertSet) -> Iterator[Remote]:
    served = tmp_path / "served"
    bare = served / "myext.git"
    bare.mkdir(parents=True)
    _git(bare, "init", "-q", "--bare")
    work = tmp_path / "work"
    (work / "scripts").mkdir(parents=True)
    (work / "scripts" / "hello.py").write_text(SCRIPT, encoding="utf-8")
    (work / "install.py").write_text("open('installed.txt', 'w').write('yes')\n", encoding="utf-8")
    (work / "metadata.ini").write_text("[Extension]\nName=My Ext\n", encoding="utf-8")
    _git(work, "init", "-q")
    _git(work, "remote", "add", "origin", str(bare))
    remote = Remote("", work, bare)
    remote.publish("README.md", "first\n")
    server, thread = _serve_https(served, tls)
    remote.url = f"https://{LOOPBACK}:{server.server_address[1]}/myext.git"
    try:
        yield remote
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def remote(tmp_path: Path, trusted_ca: CertSet) -> Iterator[Remote]:
    yield from _make_remote(tmp_path, trusted_ca)


@pytest.fixture
def untrusted_remote(tmp_path: Path, other_ca: CertSet) -> Iterator[Remote]:
    yield from _make_remote(tmp_path, other_ca)


def _git_env(ca: CertSet) -> dict[str, str]:
    # NO_PROXY: a proxy configured on the machine must not be asked for a loopback address
    return {"GIT_SSL_CAINFO": str(ca.ca), "NO_PROXY": f"{LOOPBACK},localhost", "no_proxy": f"{LOOPBACK},localhost"}


class FakeSettings:
    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def get(self, key: str) -> Any:
        return self.values.get(key)

    def set(self, key: str, value: Any) -> bool:
        self.values[key] = value
        return True


def _assert_nothing_left(extensions_dir: Path) -> None:
    assert not (extensions_dir / "myext").exists()
    assert not [p for p in extensions_dir.parent.iterdir() if p.name.startswith(".install-")]


def _assert_one_line(message: str, *needles: str) -> None:
    assert "\n" not in message and "Traceback" not in message, message
    for needle in needles:
        assert needle in message, message


def test_install_update_disable_over_https(tmp_path: Path, remote: Remote, trusted_ca: CertSet) -> None:
    extensions_dir = tmp_path / "data" / "extensions"
    env = _git_env(trusted_ca)
    target = manager.install_extension(remote.url, extensions_dir, git_env=env)
    assert target == extensions_dir / "myext"  # folder named after the URL, ".git" dropped
    assert (target / "installed.txt").read_text() == "yes"  # install.py ran in the extension folder
    assert not [p for p in extensions_dir.parent.iterdir() if p.name.startswith(".install-")]

    [ext] = manager.discover_extensions(extensions_dir)
    assert ext.canonical_name == "my ext" and ext.metadata["Extension"]["Name"] == "My Ext"
    assert ext.git is not None and ext.git.remote == remote.url and ext.git.branch == "main"
    assert ext.git.version == _git(remote.work, "rev-parse", "HEAD").strip()[:8]
    first = ext.git.commit_hash

    assert manager.check_for_updates(ext, git_env=env) == "latest"
    remote.publish("CHANGELOG.md", "second\n")
    assert manager.check_for_updates(ext, git_env=env) == "behind"
    info = manager.update_extension(ext, git_env=env)
    assert info.commit_hash != first and info.commit_hash == _git(remote.work, "rev-parse", "HEAD").strip()
    assert (target / "CHANGELOG.md").read_text() == "second\n"
    assert manager.check_for_updates(ext, git_env=env) == "latest"

    settings = FakeSettings()
    manager.set_extension_enabled(settings, "myext", False)
    found = manager.discover_extensions(extensions_dir, disabled=manager.disabled_names(settings))
    assert [e.name for e in found if e.enabled] == [] and [e.name for e in found] == ["myext"]
    manager.set_extension_enabled(settings, "myext", True)
    found = manager.discover_extensions(extensions_dir, disabled=manager.disabled_names(settings))
    assert [e.name for e in found if e.enabled] == ["myext"]


def test_the_test_ca_is_needed(tmp_path: Path, remote: Remote) -> None:
    """Without GIT_SSL_CAINFO git checks the system CAs, which do not know the test CA: verification is on."""
    extensions_dir = tmp_path / "extensions"
    env = {"NO_PROXY": LOOPBACK, "no_proxy": LOOPBACK}
    with pytest.raises(manager.ExtensionError) as caught:
        manager.install_extension(remote.url, extensions_dir, git_env=env)
    _assert_one_line(str(caught.value), remote.url, "certificate")
    _assert_nothing_left(extensions_dir)


def test_untrusted_certificate_gives_one_line_and_leaves_nothing(tmp_path: Path, untrusted_remote: Remote,
                                                                 trusted_ca: CertSet) -> None:
    extensions_dir = tmp_path / "extensions"
    with pytest.raises(manager.ExtensionError) as caught:
        manager.install_extension(untrusted_remote.url, extensions_dir, git_env=_git_env(trusted_ca))
    _assert_one_line(str(caught.value), f"could not reach the remote {untrusted_remote.url}",
                     "TLS certificate is not trusted", "GIT_SSL_CAINFO")
    _assert_nothing_left(extensions_dir)


def test_connection_refused_gives_a_network_message(tmp_path: Path, trusted_ca: CertSet) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago and has nothing listening now
        probe.bind((LOOPBACK, 0))
        port = probe.getsockname()[1]
    url = f"https://{LOOPBACK}:{port}/myext.git"
    extensions_dir = tmp_path / "extensions"
    with pytest.raises(manager.ExtensionError) as caught:
        manager.install_extension(url, extensions_dir, git_env=_git_env(trusted_ca))
    _assert_one_line(str(caught.value), f"could not reach the remote {url}", "connection was refused", "proxy")
    _assert_nothing_left(extensions_dir)


def test_listen_without_insecure_access_is_refused(tmp_path: Path, remote: Remote, trusted_ca: CertSet) -> None:
    extensions_dir = tmp_path / "extensions"
    env = _git_env(trusted_ca)
    exposed = parse_flags(["--listen"], env={})
    with pytest.raises(manager.ExtensionError, match="--enable-insecure-extension-access"):
        manager.install_extension(remote.url, extensions_dir, git_env=env, flags=exposed)
    assert not extensions_dir.exists()  # refused before anything was created or cloned

    allowed = parse_flags(["--listen", "--enable-insecure-extension-access"], env={})
    target = manager.install_extension(remote.url, extensions_dir, git_env=env, flags=allowed)
    [ext] = manager.discover_extensions(extensions_dir)
    remote.publish("CHANGELOG.md", "second\n")
    with pytest.raises(manager.ExtensionError, match="--enable-insecure-extension-access"):
        manager.update_extension(ext, git_env=env, flags=exposed)
    assert not (target / "CHANGELOG.md").exists()
    manager.update_extension(ext, git_env=env, flags=parse_flags([], env={}))
    assert (target / "CHANGELOG.md").exists()


def test_git_env_cannot_turn_verification_off(tmp_path: Path, remote: Remote) -> None:
    for key in ("GIT_SSL_NO_VERIFY", "GIT_CONFIG_PARAMETERS", "GIT_CONFIG_COUNT"):
        with pytest.raises(manager.ExtensionError, match=key):
            manager.install_extension(remote.url, tmp_path / "extensions", git_env={key: "1"})
        assert not (tmp_path / "extensions").exists()


@pytest.mark.parametrize(("stderr", "cause"), [
    # the seeds' messages, as git prints them
    ("Cloning into 'x'...\nfatal: unable to access 'https://github.com/a/b/': OpenSSL SSL_read: Connection was "
     "reset, errno 10054\n", "connection was reset"),
    ("fatal: unable to access 'https://github.com/a/b/': gnutls_handshake() failed: The TLS connection was "
     "non-properly terminated.\n", "TLS/SSL handshake with the server failed"),
    ("fatal: unable to access 'https://github.com/a/b/': server certificate verification failed. CAfile: "
     "/etc/ssl/certs/ca-certificates.crt CRLfile: none\n", "TLS certificate is not trusted"),
    ("fatal: unable to access 'https://github.com/a/b/': Could not resolve host: github.com\n",
     "host name could not be resolved"),
    ("fatal: unable to access 'https://github.com/a/b/': Failed to connect to github.com port 443 after 21000 ms: "
     "Timed out\n", "timed out"),
])
def test_seed_failures_are_described(stderr: str, cause: str) -> None:
    message = manager.describe_git_failure("clone", "https://github.com/a/b", stderr)
    _assert_one_line(message, "could not reach the remote https://github.com/a/b", cause)
    assert message.endswith(f"[{stderr.strip().splitlines()[-1]}]")  # git's own line kept for searching


def test_missing_repository_is_not_called_a_network_problem() -> None:
    message = manager.describe_git_failure(
        "clone", "https://github.com/a/b", "fatal: could not read Username for 'https://github.com': "
        "terminal prompts disabled\n")
    _assert_one_line(message, "https://github.com/a/b", "not found or needs a login")
