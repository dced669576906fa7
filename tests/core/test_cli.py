"""`handoff` against a running stack: answers printed as sentences or tables, never as a
Python repr, and what the user types sent as values, never as part of another URL."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from click.testing import CliRunner
from conftest import BASE_URL

from simulators.cli import main


def test_advance_prints_the_new_simulated_time(network):
    moved = CliRunner().invoke(main, ["advance", "--url", BASE_URL, "10800"])
    assert moved.exit_code == 0, moved.output
    assert moved.output == "Clock at 2026-03-02T12:00:00.000Z (frozen).\n"


def test_reset_prints_the_roles_reset_and_the_seed(network, runtime):
    done = CliRunner().invoke(main, ["reset", "--url", BASE_URL, "--role", "tax"])
    assert done.exit_code == 0, done.output
    assert done.output == f"Reset tax (seed {runtime.settings.faker_seed}).\n"


def test_journal_sends_the_correlation_id_as_one_value(network, client):
    typed = "shop-42&limit=1#x"
    shown = CliRunner().invoke(main, ["journal", "--url", BASE_URL, "--correlation-id", typed])
    assert shown.exit_code == 0, shown.output
    sent = parse_qs(urlsplit(network.calls[-1].request.url).query)
    assert sent == {"limit": ["50"], "correlationId": [typed]}
