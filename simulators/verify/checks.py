"""Handoff's domain conformance rules as schemathesis checks.

Each check judges one response of the run (and, where the rule is about a second request,
sends that request as a probe recorded beside the case, so the report's `curl` is the
request that broke the rule). They are registered for the length of one verification
only (`registered`), so a process that also runs schemathesis for other reasons (the
project's own contract tests) never runs them by accident.
"""

from __future__ import annotations

import email.utils
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import schemathesis
from schemathesis.checks import CHECKS
from schemathesis.core.failures import Failure, Severity

from ..core.identifiers import iccid_with_check_digit
from .contract import Contract, Credentials, Operation
from .lifecycles import LIFECYCLES, reachable

if TYPE_CHECKING:
    from schemathesis import Case, CheckContext, Response

    from .callbacks import Receiver

# How many probe requests one check may send per operation in a run: enough to prove a
# rule, few enough that a vendor's staging API sees a fuzzing run, not a flood.
PROBES_PER_OPERATION = 2
# How long after the run the callback check waits for deliveries still on their way.
CALLBACK_GRACE_S = 10.0


class ConformanceFailure(Failure):
    """A domain rule of the contract broken; one finding per operation, rule and title."""

    code = "HO901"
    kind_title = "Conformance rule broken"

    @property
    def _unique_key(self) -> str:
        return self.title


@dataclass
class Verification:
    """What the checks of one run share: the contract, the second partner's keys, the
    callback receiver, and what they have seen so far (guarded: workers run in threads)."""

    contract: Contract
    other_keys: Credentials = field(default_factory=Credentials)
    receiver: Receiver | None = None
    callback_grace_s: float = CALLBACK_GRACE_S
    probes_per_operation: int = PROBES_PER_OPERATION
    lock: threading.Lock = field(default_factory=threading.Lock)
    probes: dict[tuple[str, str], int] = field(default_factory=dict)
    states: dict[tuple[str, str, str], str] = field(default_factory=dict)
    # Run-level outcomes (the callback check), by check name: (passed, failures).
    run_results: dict[str, tuple[int, list[Failure]]] = field(default_factory=dict)
    # Operations whose tenancy a run could not judge, and why (the second partner refused
    # alike whether the resource existed or not).
    inconclusive: dict[str, str] = field(default_factory=dict)

    def operation(self, case: Case[Any]) -> Operation | None:
        """The contract's operation, when `case` calls it as declared (not with a method the
        coverage phase swapped in to see it refused)."""
        operation = self.contract.operations.get(case.operation.label)
        if operation is None or case.method.upper() != operation.method:
            return None
        return operation

    def note_inconclusive(self, operation: Operation, reason: str) -> None:
        with self.lock:
            self.inconclusive.setdefault(operation.label, reason)

    def take_probe(self, check: str, operation: Operation) -> bool:
        """Whether `check` may still send a probe for `operation` in this run."""
        with self.lock:
            used = self.probes.get((check, operation.label), 0)
            if used >= self.probes_per_operation:
                return False
            self.probes[(check, operation.label)] = used + 1
            return True


_current: Verification | None = None


def current() -> Verification:
    if _current is None:
        raise RuntimeError("the conformance checks run only inside `registered()`")
    return _current


# --- helpers -----------------------------------------------------------------------------------


def _header(headers: Any, name: str) -> str | None:
    """One header of a case or a response, whatever its case; the first value if several."""
    for key, value in (headers or {}).items():
        if key.lower() == name.lower():
            if isinstance(value, list):
                return str(value[0]) if value else None
            return str(value)
    return None


def _json(response: Response) -> Any:
    try:
        return json.loads(response.content or b"")
    except (ValueError, UnicodeDecodeError):
        return None


def _without(headers: Any, names: set[str]) -> dict[str, Any]:
    return {k: v for k, v in (headers or {}).items() if k.lower() not in names}


def _fail(
    case: Case[Any], title: str, message: str, probe: Case[Any] | None = None
) -> ConformanceFailure:
    return ConformanceFailure(
        operation=case.operation.label,
        title=title,
        message=message,
        case_id=probe.id if probe is not None else None,
        severity=Severity.HIGH,
    )


def _send(
    ctx: CheckContext,
    case: Case[Any],
    headers: dict[str, Any],
    path_parameters: dict[str, Any] | None = None,
) -> tuple[Case[Any], Response]:
    """Send a copy of `case` with exactly these headers (and these path parameters, if
    given), recorded as the case's child."""
    from requests.structures import CaseInsensitiveDict

    probe = case.derive(headers=CaseInsensitiveDict(headers))
    if path_parameters is not None:
        probe.path_parameters = path_parameters
    # The recorder keeps the probe beside its parent so a failure names the probe's curl;
    # schemathesis' own probing checks (ignored_auth) record theirs the same way.
    ctx.internals.record_case(parent_id=case.id, case=probe)
    response = probe.call()
    ctx.internals.record_response(case_id=probe.id, response=response)
    return probe, response


def _credential_headers(operation: Operation) -> set[str]:
    return {scheme.header.lower() for scheme in operation.schemes}


def _is_positive(case: Case[Any]) -> bool:
    """Whether the case is valid by the contract: a probe built on an invalid one would be
    refused for that, not for what the probe tests."""
    return case.meta is None or bool(case.meta.generation.mode.is_positive)


# --- the checks --------------------------------------------------------------------------------


def idempotent_retry(ctx: CheckContext, response: Response, case: Case[Any]) -> bool | None:
    """A create retried with the same Idempotency-Key (or the same externalId) must not
    create a second resource: the retry answers the first answer, or a conflict."""
    verification = current()
    operation = verification.operation(case)
    if (
        operation is None
        or operation.method != "POST"
        or not (operation.idempotency_header or operation.body_has_external_id)
        or not _is_positive(case)
        or not 200 <= response.status_code < 300
    ):
        return True
    first = _json(response)
    if not isinstance(first, dict) or "id" not in first:
        return True
    headers = dict(case.headers or {})
    key_header = operation.idempotency_header
    keyed = key_header is not None and _header(headers, key_header) is not None
    external_id = case.body.get("externalId") if isinstance(case.body, dict) else None
    if not keyed and external_id is None:
        return True
    if not verification.take_probe("idempotent_retry", operation):
        return True
    probe, again = _send(ctx, case, headers)
    second = _json(again)
    what = (
        f"the same {key_header} ({_header(headers, key_header or '')})"
        if keyed
        else (f"the same externalId ({external_id!r})")
    )
    if 200 <= again.status_code < 300:
        if isinstance(second, dict) and second.get("id") != first["id"]:
            raise _fail(
                case,
                "A retried create made a second resource",
                f"Sent twice with {what}: the first answer created {first['id']!r}, "
                f"the retry created {second.get('id')!r}. A retry must answer the first "
                "answer (same id), never create again.",
                probe,
            )
        return None
    if keyed and again.status_code != 429:
        raise _fail(
            case,
            "A retry with the same Idempotency-Key was refused",
            f"Sent twice with {what}: the first answer was {response.status_code}, the retry "
            f"{again.status_code}. A retry with the same key must answer the first answer.",
            probe,
        )
    return None


def tenant_isolation(ctx: CheckContext, response: Response, case: Case[Any]) -> bool | None:
    """A resource one partner reads is no data, and no sign that it exists, for another
    partner: a 404, or the very refusal the other partner gets for an id that does not exist
    (a partner whose agreement lacks the capability is refused alike for every id)."""
    verification = current()
    operation = verification.operation(case)
    other = verification.other_keys.for_operation(operation) if operation is not None else None
    if (
        other is None
        or operation is None
        or operation.method != "GET"
        or "{" not in operation.path
        or not _is_positive(case)
        or not 200 <= response.status_code < 300
    ):
        return True
    if not verification.take_probe("tenant_isolation", operation):
        return True
    headers = _without(case.headers, _credential_headers(operation))
    scheme, key = other
    headers[scheme.header] = scheme.header_value(key)
    probe, answer = _send(ctx, case, headers)
    if answer.status_code == 404:
        return None
    if 200 <= answer.status_code < 300:
        title, why = "Another partner's resource is readable", "answered it"
        raise _isolation_failure(case, response, title, why, probe)
    if answer.status_code == 401:
        title, why = "The second partner's key is refused", "refused the key itself (401)"
        raise _isolation_failure(case, response, title, why, probe)
    # A refusal reveals the resource only if it differs from the answer for an id that does
    # not exist: the control request, the same but with made-up ids of the same shape.
    _, absent = _send(ctx, case, headers, _made_up(case.path_parameters))
    if (absent.status_code, _code(absent)) != (answer.status_code, _code(answer)):
        if absent.status_code in (400, 422, 429) or absent.status_code >= 500:
            # The made-up id was refused for itself (its shape, a rate limit, a fault): no
            # fair comparison, so nothing to judge either way.
            verification.note_inconclusive(
                operation, f"a made-up id to compare with was answered {_status(absent)}"
            )
            return True
        why = (
            f"answered {_status(answer)}, and {_status(absent)} for an id that does not "
            "exist: the difference says the resource exists"
        )
        title = "Another partner's resource is revealed"
        raise _isolation_failure(case, response, title, why, probe)
    # Refused alike whether the resource exists or not: nothing revealed, but nothing proven
    # about isolation either (the other partner never got as far as the lookup).
    verification.note_inconclusive(
        operation,
        f"--other-key was answered {_status(answer)} whether the resource existed or not",
    )
    return True


def _isolation_failure(
    case: Case[Any], response: Response, title: str, why: str, probe: Case[Any]
) -> ConformanceFailure:
    return _fail(
        case,
        title,
        f"{case.operation.label} as the first partner answered {response.status_code}; as the "
        f"second partner (--other-key) it {why}. Another tenant's resource must be a 404, or "
        "answered as an id that does not exist.",
        probe,
    )


def _code(response: Response) -> Any:
    """The error's stable code (RFC 9457 `code`, CAMARA's `code`, OAuth's `error`)."""
    body = _json(response)
    return body.get("code", body.get("error")) if isinstance(body, dict) else None


def _status(response: Response) -> str:
    code = _code(response)
    return f"{response.status_code} {code}" if isinstance(code, str) else str(response.status_code)


def _made_up(parameters: dict[str, Any] | None) -> dict[str, Any]:
    """Path parameters naming nothing that exists, each of the shape of the real one (so a
    vendor that checks the shape first does not refuse it for that)."""
    return {name: _made_up_value(value) for name, value in (parameters or {}).items()}


def _made_up_value(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | str):
        return value
    text = str(value)
    # Only the second half changes: prefixes that carry meaning (an ICCID's 89) stay.
    keep = len(text) // 2
    changed = text[:keep] + "".join(_shifted(char) for char in text[keep:])
    if isinstance(value, int):
        return int(changed)
    if text.isdigit() and len(text) > 1 and iccid_with_check_digit(text[:-1]) == text:
        # An identifier with a Luhn check digit (E.118 ICCID) keeps a valid one.
        changed = iccid_with_check_digit(changed[:-1])
        if changed == text:
            changed = iccid_with_check_digit(changed[:-2] + _shifted(changed[-2]))
    return changed


def _shifted(char: str) -> str:
    """Another character of the same kind: digit, hex letter, other letter, each cased."""
    for alphabet in (
        "0123456789",
        "abcdef",
        "ghijklmnopqrstuvwxyz",
        "ABCDEF",
        "GHIJKLMNOPQRSTUVWXYZ",
    ):
        if char in alphabet:
            return alphabet[(alphabet.index(char) + len(alphabet) // 2) % len(alphabet)]
    return char


def error_model(ctx: CheckContext, response: Response, case: Case[Any]) -> bool | None:
    """Every error is the contract's error document: RFC 9457 with a stable `code`, CAMARA's
    {status, code, message}, or OAuth's {error} on an authorization server."""
    if response.status_code < 400:
        return True
    model = current().contract.error_model
    problems = error_problems(model, response)
    if problems:
        shapes = {
            "problem": "an RFC 9457 problem document (application/problem+json with type, "
            "title, status and a stable code)",
            "camara": "CAMARA's error (status, code, message)",
            "oauth": "an OAuth 2.0 error (RFC 6749 5.2: error)",
        }
        raise _fail(
            case,
            "An error is not the contract's error document",
            f"{response.status_code} answered with {'; '.join(problems)}. Expected "
            f"{shapes[model]}.",
        )
    return None


def error_problems(model: str, response: Any) -> list[str]:
    """How an error answer (schemathesis' or requests' response) departs from `model`."""
    content_type = (_header(response.headers, "Content-Type") or "").split(";")[0].strip()
    body = _json(response)
    problems = []
    if model == "problem" and content_type != "application/problem+json":
        problems.append(f"Content-Type {content_type or 'none'}")
    if model != "problem" and not re.match(r"^application/([a-z0-9.+-]+\+)?json$", content_type):
        problems.append(f"Content-Type {content_type or 'none'}")
    if not isinstance(body, dict):
        return [*problems, "a body that is not a JSON object"]
    shapes: dict[str, dict[str, type]] = {
        "problem": {"type": str, "title": str, "status": int, "code": str},
        "camara": {"status": int, "code": str, "message": str},
        "oauth": {"error": str},
    }
    required = shapes[model]
    for name, kind in required.items():
        if not isinstance(body.get(name), kind) or body.get(name) in ("", None):
            problems.append(f"no {kind.__name__} `{name}`")
    if "status" in required and isinstance(body.get("status"), int):
        if body["status"] != response.status_code:
            problems.append(f"`status` {body['status']} in the body")
    return problems


def correlation_id(ctx: CheckContext, response: Response, case: Case[Any]) -> bool | None:
    """The correlation ID a caller sends comes back on the answer (X-Correlation-ID, or
    CAMARA's x-correlator), so one request can be followed across vendors."""
    verification = current()
    operation = verification.operation(case)
    if operation is None or operation.correlation_header is None:
        return True
    name = operation.correlation_header
    sent = _header(case.headers, name)
    probe = None
    if sent is None:
        # Safe requests only: repeating a create to test a header would create twice.
        if operation.method != "GET" or not verification.take_probe("correlation_id", operation):
            return True
        sent = f"verify-{uuid.uuid4()}"
        probe, response = _send(ctx, case, {**dict(case.headers or {}), name: sent})
    elif operation.correlation_pattern and not re.fullmatch(operation.correlation_pattern, sent):
        return True  # a malformed ID may be withheld rather than echoed
    echoed = _header(response.headers, name)
    if echoed != sent:
        raise _fail(
            case,
            f"{name} not echoed",
            f"Sent {name}: {sent!r}; the answer ({response.status_code}) carried "
            f"{echoed!r}. The contract echoes the caller's correlation ID.",
            probe,
        )
    return None


def auth_required(ctx: CheckContext, response: Response, case: Case[Any]) -> bool | None:
    """Every operation the contract secures answers a request without credentials with 401."""
    verification = current()
    operation = verification.operation(case)
    if (
        operation is None
        or not operation.schemes
        or not _is_positive(case)
        or response.status_code == 401
    ):
        return True
    if not verification.take_probe("auth_required", operation):
        return True
    probe, bare = _send(ctx, case, _without(case.headers, _credential_headers(operation)))
    if bare.status_code != 401:
        raise _fail(
            case,
            "A request without credentials was not refused with 401",
            f"The same request without {', '.join(s.header for s in operation.schemes)} "
            f"answered {bare.status_code}. Every secured operation answers 401 to it.",
            probe,
        )
    return None


def lifecycle_transitions(ctx: CheckContext, response: Response, case: Case[Any]) -> bool | None:
    """A resource's state only moves along its role's state machine: its `stateChange`
    history step by step, and what successive reads show by some path of the machine."""
    verification = current()
    machines = LIFECYCLES.get(verification.contract.role, {})
    if not machines or not 200 <= response.status_code < 300:
        return True
    body = _json(response)
    judged = False
    for resource in _resources(body):
        for (kind, state_field), machine in machines.items():
            if resource.get("@type") != kind or not isinstance(resource.get(state_field), str):
                continue
            judged = True
            _judge_history(case, kind, state_field, machine, resource)
            _judge_observed(case, verification, kind, state_field, machine, resource)
    return None if judged else True


def _resources(body: Any) -> Iterator[dict[str, Any]]:
    if isinstance(body, dict):
        yield body
    elif isinstance(body, list):
        yield from (item for item in body if isinstance(item, dict))


def _judge_history(
    case: Case[Any], kind: str, state_field: str, machine: dict[str, tuple[str, ...]], resource: Any
) -> None:
    history = resource.get(f"{state_field}Change")
    if not isinstance(history, list):
        return
    states = [entry.get(state_field) for entry in history if isinstance(entry, dict)]
    states = [state for state in states if isinstance(state, str)]
    for before, after in zip(states, states[1:], strict=False):
        if before in machine and after != before and after not in machine[before]:
            raise _fail(
                case,
                f"{kind} {state_field} moved along an edge its lifecycle lacks",
                f"{kind} {resource.get('id')!r} went {before} -> {after} in its "
                f"{state_field}Change; from {before} it may go to "
                f"{', '.join(machine[before]) or 'nothing (final)'}.",
            )


def _judge_observed(
    case: Case[Any],
    verification: Verification,
    kind: str,
    state_field: str,
    machine: dict[str, tuple[str, ...]],
    resource: dict[str, Any],
) -> None:
    if "id" not in resource:
        return
    key = (kind, state_field, str(resource["id"]))
    now = resource[state_field]
    with verification.lock:
        before = verification.states.get(key)
        if case.method.upper() == "POST" and before is not None:
            # A create sent again (same Idempotency-Key or externalId) may rightly answer
            # the first answer as it was, not the resource as it is now.
            return
        verification.states[key] = now
    if before is None or before == now or before not in machine or now not in machine:
        return
    if now not in reachable(machine, before):
        raise _fail(
            case,
            f"{kind} {state_field} went back along its lifecycle",
            f"{kind} {resource['id']!r} read {before} earlier and {now} now; {now} is not "
            f"reachable from {before}.",
        )


def retry_after(ctx: CheckContext, response: Response, case: Case[Any]) -> bool | None:
    """A 429 says when to come back: Retry-After in whole seconds (> 0) or an HTTP date
    still ahead (RFC 9110 10.2.3)."""
    if response.status_code != 429:
        return True
    value = _header(response.headers, "Retry-After")
    if value is None:
        raise _fail(case, "429 without Retry-After", "A 429 must say when to retry.")
    if value.strip().isdigit():
        if int(value) > 0:
            return None
        raise _fail(case, "429 with Retry-After 0", "Retry-After: 0 invites an immediate retry.")
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        raise _fail(case, "429 with an unreadable Retry-After", f"Retry-After: {value!r}") from None
    if when <= time.time() - 1:
        raise _fail(case, "429 with a Retry-After in the past", f"Retry-After: {value!r}")
    return None


class callbacks_signed:  # noqa: N801 - schemathesis names a check after its class
    """Events reach the partner's registered endpoint signed with the secret the hub
    returned (Standard Webhooks), each in the TMF envelope (eventId, eventTime, eventType,
    event). Judged once the run is over and the deliveries it caused had time to arrive;
    a run that caused none has nothing to judge (the report says so)."""

    name: ClassVar[str] = "callbacks_signed"

    def after_run(self, ctx: CheckContext) -> None:
        verification = current()
        receiver = verification.receiver
        if receiver is None:
            return
        passed, failures = receiver.judge(grace_s=verification.callback_grace_s)
        if passed or failures:
            verification.run_results[self.name] = (passed, failures)
        if failures:
            raise failures[0]


RESPONSE_CHECKS: tuple[Callable[..., bool | None], ...] = (
    idempotent_retry,
    tenant_isolation,
    error_model,
    correlation_id,
    auth_required,
    lifecycle_transitions,
    retry_after,
)
NAMES = [check.__name__ for check in RESPONSE_CHECKS] + [callbacks_signed.name]


@contextmanager
def registered(verification: Verification) -> Iterator[Verification]:
    """The domain checks, registered with schemathesis for one run."""
    global _current
    _current = verification
    for check in RESPONSE_CHECKS:
        schemathesis.check(check)
    if verification.receiver is not None:
        schemathesis.check(callbacks_signed)
    try:
        yield verification
    finally:
        for name in NAMES:
            if name in CHECKS.get_all_names():
                CHECKS.unregister(name)
        _current = None
