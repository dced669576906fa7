"""Reading a stack's settings from `HANDOFF_*` variables."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from simulators.core.config import settings_from_env
from simulators.core.outbox import CallbackRefused, check_callback_url


@pytest.fixture
def public_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every allow-listed name resolves to a public address, without asking DNS."""

    def resolve(host: str, port: int, *args: Any, **kwargs: Any) -> list[Any]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", port))]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)


def allow_hosts(value: str) -> tuple[str, ...]:
    env = {"HANDOFF_CALLBACK_ALLOW_HOSTS": value, "HANDOFF_SECRET_KEY": "test-key"}
    return settings_from_env(env).callback_allow_hosts


def test_the_callback_allow_list_is_read_as_check_callback_url_reads_a_host() -> None:
    # Host names are case-insensitive (RFC 3986 section 3.2.2) and `urlsplit().hostname`
    # drops an IPv6 literal's brackets, so the list is kept the same way.
    assert allow_hosts(" Hooks.Example.COM , [FD00::1],, partner.test ") == (
        "hooks.example.com",
        "fd00::1",
        "partner.test",
    )


@pytest.mark.parametrize(
    ("listed", "url"),
    [
        ("Hooks.Example.COM", "https://hooks.example.com/"),
        ("hooks.example.com", "https://HOOKS.example.com/tmf/listener"),
        ("[fd00::1]", "http://[fd00::1]/"),
        ("[FD00::1]", "http://[fd00::1]:8080/hooks"),
    ],
)
def test_a_host_allow_listed_in_any_case_or_in_brackets_takes_callbacks(
    public_dns: None, listed: str, url: str
) -> None:
    check_callback_url(url, allow_hosts(listed))


def test_normalising_the_allow_list_does_not_open_it_to_other_hosts(public_dns: None) -> None:
    listed = allow_hosts("Hooks.Example.COM,[fd00::1]")
    for url in ("https://hooks.example.net/", "http://[fd00::2]/", "http://fd00.example.com/"):
        with pytest.raises(CallbackRefused):
            check_callback_url(url, listed)
