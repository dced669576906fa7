"""Where each role lives for a run (in-process, a live stack, a vendor) and whose keys to use."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from simulators.core.config import DEFAULT_STATE_DIR
from simulators.core.tenancy import derive_api_key

# The roles a scenario can address, and the stack's own surfaces.
ROLES = ("mno", "mvne", "tax", "care", "payments", "billing", "fulfillment")
IN_PROCESS_URL = "http://127.0.0.1:8700"


class TargetError(ValueError):
    """A `--handoff-url` or `--handoff-key` value that cannot be used."""


@dataclass
class Target:
    """The stack a run talks to: one Handoff base URL, with some roles replaced by vendors."""

    stack_url: str = IN_PROCESS_URL
    in_process: bool = True
    # Role -> base URL of a vendor implementation standing in for Handoff's fake.
    replaced: dict[str, str] = field(default_factory=dict)
    secret_key: str = ""
    # Partner or peer id -> API key, given explicitly (a vendor's credential).
    keys: dict[str, str] = field(default_factory=dict)
    # Whether `stack_url` serves Handoff's control plane (`/__admin`).
    has_control_plane: bool = True
    # Opens the control plane of a stack reached from off its loopback.
    admin_token: str = ""
    # In-process: the `responses` mock the stack is mounted into, started per scenario,
    # and the stack's runtime.
    mock: Any = field(default=None, repr=False)
    runtime: Any = field(default=None, repr=False)
    # In-process: the seeded store each scenario starts from (see snapshot.py).
    snapshot: Any = field(default=None, repr=False)

    def url(self, role: str) -> str:
        """The base URL of a role's API, without a trailing slash."""
        if role in self.replaced:
            return self.replaced[role]
        return f"{self.stack_url}/{role}"

    def api_key(self, partner_id: str) -> str:
        if partner_id in self.keys:
            return self.keys[partner_id]
        if not self.secret_key:
            pytest.skip(
                f"no API key for {partner_id!r}: pass --handoff-key {partner_id}=KEY, or "
                "--handoff-secret-key (HANDOFF_SECRET_KEY) of the stack"
            )
        return derive_api_key(self.secret_key, partner_id)

    def require_control_plane(self, *roles: str) -> None:
        """Skip the scenario when a step needs Handoff's control plane for these roles."""
        if not self.has_control_plane:
            pytest.skip(
                f"this step needs Handoff's control plane (/__admin), which {self.stack_url} "
                "does not serve: it sets up state or faults only a Handoff stack can"
            )
        vendors = [role for role in roles if role in self.replaced]
        if vendors:
            served = ", ".join(f"{role} by {self.replaced[role]}" for role in vendors)
            pytest.skip(
                f"this step steers {', '.join(vendors)} through Handoff's control plane, "
                f"but {served}: a vendor's faults and data cannot be set from here"
            )


def parse_targets(values: list[str]) -> tuple[str | None, dict[str, str]]:
    """Split `--handoff-url` values into the stack's base URL and per-role replacements.

    `http://127.0.0.1:8700` names the stack; `tax=https://tax.vendor.example` replaces one
    role. Each may be given once.
    """
    stack: str | None = None
    replaced: dict[str, str] = {}
    for value in values:
        head, sep, rest = value.partition("=")
        if sep and "://" not in head:
            role = head.strip()
            if role not in ROLES:
                raise TargetError(
                    f"--handoff-url {value!r}: {role!r} is not a role (one of {', '.join(ROLES)})"
                )
            if role in replaced:
                raise TargetError(f"--handoff-url names {role} twice")
            replaced[role] = _base(rest, value)
        else:
            if stack is not None:
                raise TargetError("--handoff-url names the stack twice")
            stack = _base(value, value)
    return stack, replaced


def parse_keys(values: list[str]) -> dict[str, str]:
    keys: dict[str, str] = {}
    for value in values:
        partner, sep, key = value.partition("=")
        if not sep or not partner.strip() or not key:
            raise TargetError(f"--handoff-key {partner or value!r}... takes PARTNER=KEY")
        keys[partner.strip()] = key
    return keys


def _base(url: str, given: str) -> str:
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise TargetError(f"--handoff-url {given!r}: not an http(s) URL")
    return url


def live_secret_key(explicit: str | None) -> str:
    """The master key a live stack derives its API keys from: given, from the environment,
    or the one `handoff up` keeps in its state directory."""
    if explicit:
        return explicit
    if os.environ.get("HANDOFF_SECRET_KEY"):
        return os.environ["HANDOFF_SECRET_KEY"]
    path = Path(os.environ.get("HANDOFF_STATE_DIR") or DEFAULT_STATE_DIR) / "secret.key"
    return path.read_text().strip() if path.exists() else ""


def serves_control_plane(session: requests.Session, stack_url: str) -> bool:
    """Whether a base URL is a Handoff stack: its `/__admin/health` answers as Handoff's."""
    try:
        answer = session.get(f"{stack_url}/__admin/health", timeout=5)
        body = answer.json() if answer.status_code == 200 else None
    except (requests.RequestException, ValueError):
        return False
    return isinstance(body, dict) and body.get("status") == "ok" and "roles" in body
