"""One scenario's state: the request being built, the last exchange, what the steps remember.

Every step talks HTTP through `World.send`, in-process or live alike, so the generic
`Then the response ...` steps check the answer of whatever step sent the last request.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote

import requests

from simulators.core import inprocess

from .target import Target

T = TypeVar("T")
# Every scenario starts on this simulated instant (a Monday morning), with the clock frozen.
SCENARIO_START = "2026-03-02T09:00:00Z"
_PLACEHOLDER = re.compile(r"\$\{([^}]+)\}")


class StepFailed(AssertionError):
    """A step's expectation did not hold; the message says what was seen instead."""


@dataclass
class Draft:
    """The request the generic steps are building (CAMARA's "the resource", "the header")."""

    role: str | None = None
    path: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    path_params: dict[str, str] = field(default_factory=dict)
    query: list[tuple[str, str]] = field(default_factory=list)
    body: Any = None
    has_body: bool = False


@dataclass
class Exchange:
    """One request sent and what came back (or how the connection failed)."""

    role: str
    operation: str | None
    method: str
    url: str
    request_headers: dict[str, str]
    response: requests.Response | None
    error: requests.RequestException | None = None

    @property
    def status(self) -> int | None:
        return None if self.response is None else self.response.status_code

    def json(self) -> Any:
        if self.response is None:
            raise StepFailed(f"{self.method} {self.url} got no answer: {self.error}")
        try:
            return self.response.json()
        except ValueError:
            raise StepFailed(
                f"{self.method} {self.url} answered {self.status} with a body that is not JSON: "
                f"{self.response.text[:300]!r}"
            ) from None

    def describe(self) -> str:
        if self.response is None:
            return f"{self.method} {self.url} -> no answer ({self.error})"
        return f"{self.method} {self.url} -> {self.status} {self.response.text[:500]}"


class World:
    """What one scenario knows: the target, the partner it acts for, remembered resources."""

    def __init__(self, target: Target, session: requests.Session) -> None:
        self.target = target
        self.session = session
        self.partner = "mvno-alpha"
        # An identity chosen with `the caller is "..."`, overriding the role's default caller.
        self.identity: str | None = None
        self.draft = Draft()
        self.last: Exchange | None = None
        self.remembered: dict[str, Any] = {}
        # Keys handed out during the scenario (a partner onboarded by a step).
        self.keys: dict[str, str] = {}
        self.counter = 0

    # --- remembering --------------------------------------------------------------------

    def remember(self, name: str, value: T) -> T:
        self.remembered[name] = value
        return value

    def recall(self, name: str) -> Any:
        if name not in self.remembered:
            known = ", ".join(sorted(self.remembered)) or "nothing yet"
            raise StepFailed(f"no {name} in this scenario (it knows: {known})")
        return self.remembered[name]

    def lookup(self, reference: str) -> Any:
        """The remembered value `order.id` names (`sims.0.iccid` indexes a list)."""
        name, *attributes = reference.split(".")
        current = self.recall(name)
        for attribute in attributes:
            if isinstance(current, dict) and attribute in current:
                current = current[attribute]
            elif (
                isinstance(current, list) and attribute.isdigit() and int(attribute) < len(current)
            ):
                current = current[int(attribute)]
            else:
                raise StepFailed(f"${{{reference}}}: {name} has no {attribute!r}")
        return current

    def expand(self, text: str) -> str:
        """Replace `${order.id}`-style placeholders with remembered values."""

        def value(found: re.Match[str]) -> str:
            current = self.lookup(found[1])
            return current if isinstance(current, str) else json.dumps(current)

        return _PLACEHOLDER.sub(value, text)

    def value_of(self, cell: str) -> Any:
        """A data table cell as a JSON value: a lone placeholder keeps the remembered
        value's type, JSON literals (5, true, "5") are parsed, anything else is text."""
        whole = _PLACEHOLDER.fullmatch(cell.strip())
        if whole:
            return self.lookup(whole[1])
        try:
            return json.loads(cell)
        except ValueError:
            return self.expand(cell)

    def unique(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}-{self.counter}"

    # --- credentials --------------------------------------------------------------------

    def caller_for(self, role: str, partner: str | None = None, kind: str = "partner") -> str:
        """Who calls a role in the reference stack, on behalf of the scenario's partner;
        `kind` is the contract's `x-caller` (the MVNE's network and care APIs)."""
        if self.identity is not None and partner is None:
            return self.identity
        mvno = partner or self.partner
        if role == "mvne" and kind == "network":
            return "mno-network"
        if role == "mvne" and kind == "care":
            return f"care-agent-{mvno}"
        if role == "mno" and kind == "wholesale":
            return f"{mvno}-wholesale"
        if role == "mno" and kind == "operations":
            return "mno-settlement-analyst"
        return {
            "mvne": mvno,
            "billing": mvno,
            "care": f"{mvno}-care",
            "mno": "mvne-platform",
            "tax": "billing-platform",
            "payments": "billing-merchant",
        }.get(role, mvno)

    def key_of(self, identity: str) -> str:
        if identity in self.keys:
            return self.keys[identity]
        return self.target.api_key(identity)

    # --- HTTP ---------------------------------------------------------------------------

    def send(
        self,
        role: str,
        method: str,
        path: str,
        *,
        caller: str | None = None,
        operation: str | None = None,
        json_body: Any = None,
        params: dict[str, Any] | list[tuple[str, str]] | None = None,
        headers: dict[str, str] | None = None,
        data: bytes | str | None = None,
        authenticate: bool = True,
    ) -> Exchange:
        """Send a request to a role's API as `caller` (its default caller if None)."""
        url = self.target.url(role) + path
        sent: dict[str, str] = {"Accept": "application/json"}
        if authenticate:
            sent["X-API-Key"] = self.key_of(caller or self.caller_for(role))
        if json_body is not None:
            sent["Content-Type"] = "application/json"
        sent.update(headers or {})
        body = data if data is not None else None
        if json_body is not None and data is None:
            body = json.dumps(json_body)
        try:
            response = inprocess.send(
                self.session, method, url, data=body, params=params, headers=sent, timeout=30
            )
            exchange = Exchange(role, operation, method, url, sent, response)
        except requests.RequestException as exc:
            exchange = Exchange(role, operation, method, url, sent, None, exc)
        self.last = exchange
        return exchange

    def expect(self, exchange: Exchange, *statuses: int) -> Any:
        """The exchange's JSON body, after checking it answered one of `statuses`."""
        if exchange.status not in statuses:
            wanted = " or ".join(str(status) for status in statuses)
            raise StepFailed(f"expected {wanted}: {exchange.describe()}")
        if exchange.response is None or not exchange.response.content:
            return None
        return exchange.json()

    # --- the control plane --------------------------------------------------------------

    def admin(
        self,
        method: str,
        path: str,
        json_body: Any = None,
        *,
        params: dict[str, Any] | None = None,
        roles: tuple[str, ...] = (),
        operation: str | None = None,
    ) -> Any:
        """Call `/__admin` (skipping the scenario where no Handoff control plane serves
        `roles`); the answer must be a success. With `operation`, the answer becomes the
        scenario's last response, for the generic `Then the response ...` steps."""
        self.target.require_control_plane(*roles)
        url = f"{self.target.stack_url}/__admin{path}"
        headers = {"Accept": "application/json"}
        if self.target.admin_token:
            headers["X-Admin-Token"] = self.target.admin_token
        answer = self.session.request(
            method, url, json=json_body, params=params, headers=headers, timeout=60
        )
        if operation is not None:
            self.last = Exchange("admin", operation, method, url, headers, answer)
        if not 200 <= answer.status_code < 300:
            raise StepFailed(
                f"the control plane refused {method} {path}: {answer.status_code} "
                f"{answer.text[:500]}"
            )
        return answer.json() if answer.content else None

    def admin_pages(self, path: str, params: dict[str, Any] | None = None) -> list[Any]:
        """Every item of a paged control-plane list."""
        found: list[Any] = []
        while True:
            page_params = {**(params or {}), "limit": 1000, "offset": len(found)}
            url = f"{self.target.stack_url}/__admin{path}"
            answer = self.session.get(url, params=page_params, timeout=60)
            if answer.status_code != 200:
                raise StepFailed(f"GET /__admin{path}: {answer.status_code} {answer.text[:300]}")
            page = answer.json()
            found += page
            if not page or len(found) >= int(answer.headers.get("X-Total-Count", len(found))):
                return found

    # In-process, what moves time runs on the stack's runtime, as `/__admin` would: a
    # request to the mounted stack holds it while it runs, and the steps and deliveries
    # due meanwhile send their own requests from worker threads.

    def settle(self) -> None:
        runtime = self.target.runtime
        if runtime is not None:
            runtime.settle()
        else:
            self.admin("POST", "/settle")

    def advance(self, seconds: float) -> None:
        runtime = self.target.runtime
        if runtime is not None:
            runtime.advance(seconds)
        else:
            self.admin("POST", "/clock/advance", {"seconds": seconds})

    def set_clock(self, instant: str) -> None:
        runtime = self.target.runtime
        if runtime is not None:
            from simulators.core.clock import parse_iso

            runtime.clock.set(parse_iso(instant), True)
            runtime.settle()
        else:
            self.admin("PUT", "/clock", {"now": instant, "frozen": True})

    def start_scenario(self) -> None:
        """A fresh, seeded stack on a frozen clock (where the stack is Handoff's)."""
        if not self.target.has_control_plane:
            return
        snapshot = self.target.snapshot
        if snapshot is not None and snapshot.rows:
            snapshot.restore()
            return
        self.admin("POST", "/reset", {})
        self.set_clock(SCENARIO_START)
        if snapshot is not None:
            snapshot.capture()


def path_with(template: str, values: dict[str, str]) -> str:
    """Fill a contract path template (`/productOrder/{id}`) with URL-quoted values."""

    def fill(found: re.Match[str]) -> str:
        name = found[1]
        if name not in values:
            raise StepFailed(
                f"the path {template} needs the path parameter {name!r}: "
                f'set it with: Given the path parameter "{name}" is set to "..."'
            )
        return quote(values[name], safe="")

    return re.sub(r"{([^}]+)}", fill, template)


def new_correlator() -> str:
    return str(uuid.uuid4())
