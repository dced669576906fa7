"""One verification: schemathesis' engine over the role's contract with every phase and
check on, the domain checks beside them, and what it found gathered into an `Outcome`."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests
import schemathesis
from schemathesis.core.failures import Failure
from schemathesis.engine import Status, events, from_schema

from . import checks
from .callbacks import Receiver, _reason
from .checks import ConformanceFailure, Verification
from .contract import Contract, ContractError
from .formats import coverage_repair, custom_formats

PHASES = ("examples", "coverage", "fuzzing", "stateful")
DEFAULT_MAX_EXAMPLES = 20
REQUEST_TIMEOUT_S = 10.0
# schemathesis' positive_data_acceptance statuses plus 422: a well-formed request the domain
# cannot carry out (an offering outside the agreement, a reused key) is a 422 by design.
ACCEPTED_STATUSES = ["2xx", "3xx", "401", "403", "404", "409", "422", "429", "5xx"]
# An authorization server refuses every grant it cannot carry out with 400 (RFC 6749 5.2).
OAUTH_ACCEPTED_STATUSES = [*ACCEPTED_STATUSES, "400"]
# The event hubs are the resources a partner creates and deletes; schemathesis cannot infer
# their links (`HubCreated` is an `allOf`), so they are declared: register -> read, delete.
HUB_LINK_SUFFIXES = ("Listener",)


@dataclass
class Tally:
    passed: int = 0
    failed: int = 0

    @property
    def score(self) -> float | None:
        total = self.passed + self.failed
        return round(100.0 * self.passed / total, 1) if total else None


@dataclass
class Finding:
    """One rule broken, once per operation, check and title, with how often it was seen."""

    operation: str
    check: str
    title: str
    message: str
    curl: str
    phase: str
    status: int | None = None  # what the failing request was answered
    response: str = ""  # the start of that answer's body
    occurrences: int = 1


@dataclass
class Outcome:
    role: str
    contract: str
    base_url: str
    started: str
    phases: list[str]
    max_examples: int
    seed: int
    duration_s: float = 0.0
    cases: int = 0
    operations: dict[str, dict[str, Tally]] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    not_run: dict[str, str] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not self.findings and not self.errors

    @property
    def per_check(self) -> dict[str, Tally]:
        totals: dict[str, Tally] = {}
        for by_check in self.operations.values():
            for name, tally in by_check.items():
                total = totals.setdefault(name, Tally())
                total.passed += tally.passed
                total.failed += tally.failed
        return dict(sorted(totals.items()))

    def per_operation(self) -> dict[str, Tally]:
        result = {}
        for label, by_check in sorted(self.operations.items()):
            tally = Tally()
            for item in by_check.values():
                tally.passed += item.passed
                tally.failed += item.failed
            result[label] = tally
        return result

    @property
    def cases_per_second(self) -> float:
        return self.cases / self.duration_s if self.duration_s else 0.0


@dataclass
class Options:
    role: str
    base_url: str
    key: str | None = None
    other_key: str | None = None
    callback_url: str | None = None
    contract_file: Path | None = None
    phases: tuple[str, ...] = PHASES
    max_examples: int = DEFAULT_MAX_EXAMPLES
    # Random unless given: a replayed run would resend the same Idempotency-Keys and
    # externalIds, and a vendor rightly answers those with what it created the first time.
    seed: int | None = None
    callback_grace_s: float = checks.CALLBACK_GRACE_S


Progress = Callable[[events.EngineEvent, "Outcome"], None]


def _config(contract: Contract, options: Options, base_url: str) -> schemathesis.Config:
    settings: dict[str, Any] = {
        "base-url": base_url,
        "seed": options.seed,
        "request-timeout": REQUEST_TIMEOUT_S,
        "cache": {"enabled": False},
        "phases": {name: {"enabled": name in options.phases} for name in PHASES},
        "generation": {
            "mode": "all",
            "max-examples": options.max_examples,
            "deterministic": True,
            "database": "none",
        },
        "checks": {
            "enabled": True,
            "positive_data_acceptance": {
                "expected-statuses": OAUTH_ACCEPTED_STATUSES
                if contract.error_model == "oauth"
                else ACCEPTED_STATUSES
            },
        },
    }
    schemes = {s.name: s for op in contract.operations.values() for s in op.schemes}
    if options.key and schemes:
        # Keyed by security scheme, so each operation is sent the credential it declares.
        settings["auth"] = {
            "openapi": {name: scheme.credential(options.key) for name, scheme in schemes.items()}
        }
    return schemathesis.Config.from_dict(settings)


def _with_hub_links(contract: Contract) -> dict[str, Any]:
    """The document, with the hub's register -> read / unregister links spelled out."""
    import copy

    document = copy.deepcopy(contract.document)
    hub = contract.hub
    if hub is None:
        return document
    item = document["paths"][hub.path]
    register = item["post"]
    by_id = document["paths"].get(hub.path.rstrip("/") + "/{id}", {})
    read, delete = by_id.get("get"), by_id.get("delete")
    created = next((code for code in ("201", "200") if code in register.get("responses", {})), None)
    if created is None or read is None:
        return document
    links = {
        "ReadListener": {
            "operationId": read.get("operationId"),
            "parameters": {"id": "$response.body#/id"},
        }
    }
    if delete is not None:
        links["UnregisterListener"] = {
            "operationId": delete.get("operationId"),
            "parameters": {"id": "$response.body#/id"},
        }
    response = register["responses"][created]
    if "$ref" not in response:
        response.setdefault("links", {}).update(links)
    return document


def _no_null_path_parameters(
    _context: schemathesis.HookContext, case: schemathesis.Case[Any]
) -> bool:
    """A `filter_case` hook: schemathesis (4.32) may follow an inferred link to a null value
    and send it as the text "None" in a case it calls positive; no contract admits that."""
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return True
    return not any(value is None for value in (case.path_parameters or {}).values())


def _check_reachable(base_url: str) -> None:
    try:
        requests.get(base_url, timeout=REQUEST_TIMEOUT_S)
    except requests.RequestException as error:
        raise ContractError(f"cannot reach {base_url}: {_reason(error)}") from None


def verify(options: Options, contract: Contract, progress: Progress | None = None) -> Outcome:
    """Run every enabled phase against the implementation at `options.base_url`."""
    base_url = contract.base_url(options.base_url)
    _check_reachable(base_url)
    if options.seed is None:
        options.seed = random.randrange(2**32)
    outcome = Outcome(
        role=contract.role,
        contract=str(contract.path),
        base_url=base_url,
        started=datetime.now(UTC).isoformat(timespec="seconds"),
        phases=list(options.phases),
        max_examples=options.max_examples,
        seed=options.seed,
    )
    receiver = None
    if contract.hub is not None and options.key:
        receiver = Receiver.start(options.callback_url)
    elif contract.hub is not None:
        outcome.not_run["callbacks_signed"] = "no --key to subscribe to the hub with"
    else:
        outcome.not_run["callbacks_signed"] = "the role has no event hub"
    if options.other_key is None:
        outcome.not_run["tenant_isolation"] = "no --other-key (a second partner's key)"
    try:
        schema = schemathesis.openapi.from_dict(
            _with_hub_links(contract), config=_config(contract, options, base_url)
        )
        schema.hook("map_case")(coverage_repair(contract))
        schema.hook("filter_case")(_no_null_path_parameters)
        if receiver is not None and contract.hub is not None:
            scheme = contract.hub.schemes[0] if contract.hub.schemes else None
            headers = {scheme.header: scheme.header_value(str(options.key))} if scheme else {}
            receiver.subscribe(contract, base_url, headers, REQUEST_TIMEOUT_S)
        verification = Verification(
            contract=contract,
            other_key=options.other_key,
            receiver=receiver,
            callback_grace_s=options.callback_grace_s,
        )
        started = time.monotonic()
        with checks.registered(verification), custom_formats():
            for event in from_schema(schema).execute():
                _collect(event, outcome)
                if progress is not None:
                    progress(event, outcome)
        outcome.duration_s = time.monotonic() - started
        if receiver is not None and "callbacks_signed" not in verification.run_results:
            outcome.not_run["callbacks_signed"] = (
                f"no event reached {receiver.public_url} within {options.callback_grace_s:g} s"
            )
        for name, (passed, failures) in verification.run_results.items():
            label = receiver.hub_label if receiver is not None else "callbacks"
            tally = outcome.operations.setdefault(label, {}).setdefault(name, Tally())
            tally.passed += passed
            tally.failed += len(failures)
            for failure in failures:
                _add_finding(outcome, failure, name, curl="", phase="after run")
    finally:
        if receiver is not None:
            receiver.stop()
    return outcome


def _collect(event: events.EngineEvent, outcome: Outcome) -> None:
    if isinstance(event, events.ScenarioFinished) and event.is_test_scenario:
        recorder = event.recorder
        outcome.cases += sum(1 for i in recorder.interactions.values() if i.response is not None)
        for case_id, nodes in recorder.checks.items():
            node = recorder.cases.get(case_id)
            label = node.value.operation.label if node is not None else (event.label or "?")
            by_check = outcome.operations.setdefault(label, {})
            for check in nodes:
                tally = by_check.setdefault(check.name, Tally())
                if check.status == Status.SUCCESS:
                    tally.passed += 1
                elif check.status == Status.FAILURE:
                    tally.failed += 1
                    info = check.failure_info
                    if info is not None:
                        interaction = recorder.interactions.get(info.failure.case_id or case_id)
                        answer = interaction.response if interaction is not None else None
                        _add_finding(
                            outcome,
                            info.failure,
                            check.name,
                            curl=info.code_sample,
                            phase=event.phase.value,
                            status=answer.status_code if answer is not None else None,
                            response=(answer.content or b"")[:500].decode(errors="replace")
                            if answer is not None
                            else "",
                        )
    elif isinstance(event, events.NonFatalError):
        outcome.errors.append(f"{event.label}: {event.info.title}: {event.info.message}".strip())
    elif isinstance(event, events.FatalError):
        outcome.errors.append(f"{type(event.exception).__name__}: {event.exception}")
    elif isinstance(event, events.EngineFinished):
        for failure in event.failures:
            # The callback check reports through `run_results`, with its tallies.
            if not isinstance(failure, ConformanceFailure):
                _add_finding(outcome, failure, "after_run", curl="", phase="after run")


def _add_finding(
    outcome: Outcome,
    failure: Failure,
    check: str,
    curl: str,
    phase: str,
    status: int | None = None,
    response: str = "",
) -> None:
    operation = failure.operation or "run"
    for finding in outcome.findings:
        if (finding.operation, finding.check, finding.title) == (operation, check, failure.title):
            finding.occurrences += 1
            return
    outcome.findings.append(
        Finding(
            operation=operation,
            check=check,
            title=failure.title,
            message=failure.message,
            curl=curl,
            phase=phase,
            status=status,
            response=response,
        )
    )
