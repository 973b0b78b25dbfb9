"""Rules behind docs/security.md that the acceptance suite cannot reach from outside: secrets in abbreviated flags
and in the sysinfo environment, and the login brake's client key for IPv6 (one /64 is one client)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from modules.api.auth import AuthGuard, LoginThrottle, client_key
from modules.cli.flags import masked_argv
from modules.cli.sysinfo import get_sysinfo


def test_abbreviated_secret_flags_are_masked_and_other_flags_kept() -> None:
    argv = ["--api", "--gradio-au", "bob:hunter2", "--api-a=alice:s3cret", "--ngrok", "tok123", "--listen",
            "--gradio-auth-path", "/srv/logins.txt"]
    shown = masked_argv(argv)
    assert shown == ["--api", "--gradio-au", "bob:***", "--api-a=alice:***", "--ngrok", "***", "--listen",
                     "--gradio-auth-path", "/srv/logins.txt"]


def test_sysinfo_masks_logins_given_in_commandline_args(tmp_path: Any) -> None:
    env = {"COMMANDLINE_ARGS": "--listen --gradio-auth 'bob:hunter 2' --api-auth=alice:s3cret", "GIT": "git"}
    info = get_sysinfo(argv=["--gradio-aut", "carol:pw3"], env=env, root=tmp_path, data_dir=tmp_path)
    text = repr(info)
    assert "hunter" not in text and "s3cret" not in text and "pw3" not in text
    assert "bob:***" in info["Environment"]["COMMANDLINE_ARGS"] and info["Environment"]["GIT"] == "git"
    unsplittable = get_sysinfo(argv=[], env={"COMMANDLINE_ARGS": "--gradio-auth 'bob:pw"}, root=tmp_path,
                               data_dir=tmp_path)
    assert unsplittable["Environment"]["COMMANDLINE_ARGS"] == "***"


def _request(host: str, auth: str | None = None) -> Any:
    headers = {"authorization": auth} if auth else {}
    return SimpleNamespace(client=SimpleNamespace(host=host), headers=headers)


def test_the_brake_counts_an_ipv6_64_as_one_client() -> None:
    assert client_key(_request("2001:db8:1:2::5")) == client_key(_request("2001:db8:1:2:ffff::9")) == \
        "2001:db8:1:2::/64"
    assert client_key(_request("2001:db8:1:3::5")) != client_key(_request("2001:db8:1:2::5"))
    assert client_key(_request("::ffff:192.0.2.7")) == "192.0.2.7" == client_key(_request("192.0.2.7"))
    guard = AuthGuard({"alice": "pw"}, throttle=LoginThrottle(free_attempts=3))
    for suffix in range(3):  # three guesses, each from a fresh address of the same /64
        assert guard.user(_request(f"2001:db8:1:2::{suffix + 1}", "Basic Ym9iOng=")) is None  # bob:x
    assert guard.refusal(_request("2001:db8:1:2::99")).status_code == 429  # the whole /64 waits
    assert guard.refusal(_request("2001:db8:9:9::1")).status_code == 401  # another subscriber does not
