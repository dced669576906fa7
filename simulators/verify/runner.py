"""One verification: schemathesis' engine over the role's contract with every phase and
check on, the domain checks beside them, and what it found gathered into an `Outcome`."""

from __future__ import annotations

import copy
import json
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests
import schemathesis
from schemathesis.core.failures import Failure
from schemathesis.engine import Status, events, from_schema

from . import checks, hints
from .callbacks import Receiver, _reason
from .checks import ConformanceFailure, Verification
from .contract import HTTP_METHODS, Contract, ContractError, Credentials, Operation, resolve
from .formats import coverage_repair, custom_formats
from .lifecycles import LIFECYCLES

PHASES = ("examples", "coverage", "fuzzing", "stateful")
DEFAULT_MAX_EXAMPLES = 20
REQUEST_TIMEOUT_S = 10.0
# schemathesis' positive_data_acceptance statuses plus 422: a well-formed request the domain
# cannot carry out (an offering outside the agreement, a reused key) is a 422 by design.
ACCEPTED_STATUSES = ["2xx", "3xx", "401", "403", "404", "409", "422", "429", "5xx"]
# An authorization server refuses every grant it cannot carry out with 400 (RFC 6749 5.2).
OAUTH_ACCEPTED_STATUSES = [*ACCEPTED_STATUSES, "400"]


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
    # Operations only checked for refusing a request without credentials, and why.
    not_exercised: dict[str, str] = field(default_factory=dict)
    # Each `--set` hint and the number of request fields it filled.
    hints: dict[str, int] = field(default_factory=dict)
    # Answers per operation to its own method, by status code.
    statuses: dict[str, dict[int, int]] = field(default_factory=dict)
    # What the run suggests is wrong with its own input (a key refused everywhere).
    warnings: list[str] = field(default_factory=list)

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
    # Each `KEY` (every scheme) or `SCHEME=KEY` (one security scheme of the contract).
    keys: tuple[str, ...] = ()
    other_keys: tuple[str, ...] = ()
    callback_url: str | None = None
    contract_file: Path | None = None
    phases: tuple[str, ...] = PHASES
    max_examples: int = DEFAULT_MAX_EXAMPLES
    # Random unless given: a replayed run would resend the same Idempotency-Keys and
    # externalIds, and a vendor rightly answers those with what it created the first time.
    seed: int | None = None
    callback_grace_s: float = checks.CALLBACK_GRACE_S
    # Vendor reference data put into positive cases (`--set`).
    hints: list[hints.Hint] = field(default_factory=list)


Progress = Callable[[events.EngineEvent, "Outcome"], None]


def _config(
    contract: Contract, options: Options, base_url: str, keys: Credentials
) -> schemathesis.Config:
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
    # Keyed by security scheme, so each operation is sent the credential it declares.
    credentials = {
        name: scheme.credential(key)
        for name, scheme in contract.schemes.items()
        if (key := keys.get(name)) is not None
    }
    if credentials:
        settings["auth"] = {"openapi": credentials}
    return schemathesis.Config.from_dict(settings)


def _document(contract: Contract, excluded: set[str]) -> dict[str, Any]:
    """The document schemathesis runs: without the operations no credential can exercise
    (and the links to them), and with the hub's register -> read / unregister links
    spelled out where the contract declares none to those operations."""
    document = copy.deepcopy(contract.document)
    gone = set()
    for label in excluded:
        operation = contract.operations[label]
        document["paths"][operation.path].pop(operation.method.lower(), None)
        gone.add(operation.operation_id)
    if gone:
        _drop_links_to(document, gone)
    _add_hub_links(contract, document, excluded)
    return document


def _responses(document: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for item in document.get("paths", {}).values():
        for method in HTTP_METHODS:
            spec = item.get(method) if isinstance(item, dict) else None
            if isinstance(spec, dict):
                yield from (r for r in spec.get("responses", {}).values() if isinstance(r, dict))
    yield from document.get("components", {}).get("responses", {}).values()


def _link_target(document: dict[str, Any], link: dict[str, Any]) -> str | None:
    if "operationId" in link:
        return str(link["operationId"])
    ref = str(link.get("operationRef", ""))
    try:
        target = resolve(document, {"$ref": ref}) if ref.startswith("#/") else None
    except (KeyError, TypeError):
        return None
    return str(target.get("operationId")) if isinstance(target, dict) else None


def _drop_links_to(document: dict[str, Any], operation_ids: set[str]) -> None:
    for response in _responses(document):
        links = response.get("links")
        if not isinstance(links, dict):
            continue
        for name in [
            n for n, link in links.items() if _link_target(document, link) in operation_ids
        ]:
            del links[name]
        if not links:
            del response["links"]


def _add_hub_links(contract: Contract, document: dict[str, Any], excluded: set[str]) -> None:
    # The event hubs are the resources a partner creates and deletes; schemathesis cannot
    # infer their links (`HubCreated` is an `allOf`), so a contract that declares none gets
    # register -> read, register -> unregister.
    hub = contract.hub
    if hub is None or hub.label in excluded:
        return
    register = document["paths"][hub.path]["post"]
    by_id = contract.document["paths"].get(hub.path.rstrip("/") + "/{id}", {})
    created = next((code for code in ("201", "200") if code in register.get("responses", {})), None)
    if created is None or "$ref" in register["responses"][created]:
        return
    response = register["responses"][created]
    declared = {_link_target(document, link) for link in response.get("links", {}).values()}
    for name, method in (("ReadListener", "get"), ("UnregisterListener", "delete")):
        target = by_id.get(method)
        label = f"{method.upper()} {hub.path.rstrip('/')}/{{id}}"
        if not isinstance(target, dict) or label in excluded:
            continue
        if target.get("operationId") is None or target["operationId"] in declared:
            continue
        response.setdefault("links", {})[name] = {
            "operationId": target["operationId"],
            "parameters": {"id": "$response.body#/id"},
        }


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
    keys = Credentials.parse(options.keys, contract, "--key")
    other_keys = Credentials.parse(options.other_keys, contract, "--other-key")
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
    # An operation whose schemes have no credential can only be asked to refuse a request
    # without one; its generated cases would all be 401s, proving nothing else.
    unkeyed = {
        label: operation
        for label, operation in contract.operations.items()
        if operation.schemes and keys.for_operation(operation) is None
    }
    for label, operation in unkeyed.items():
        outcome.not_exercised[label] = "no --key for " + " or ".join(
            s.name for s in operation.schemes
        )
    if not other_keys:
        outcome.not_run["tenant_isolation"] = "no --other-key (a second partner's key)"
    receiver = _subscribe(contract, options, keys, base_url, outcome)
    try:
        verification = Verification(
            contract=contract,
            other_keys=other_keys,
            receiver=receiver,
            callback_grace_s=options.callback_grace_s,
        )
        started = time.monotonic()
        if len(unkeyed) < len(contract.operations):
            schema = schemathesis.openapi.from_dict(
                _document(contract, set(unkeyed)),
                config=_config(contract, options, base_url, keys),
            )
            schema.hook("map_case")(hints.hook(options.hints, coverage_repair(contract)))
            schema.hook("filter_case")(_no_null_path_parameters)
            with checks.registered(verification), custom_formats():
                for event in from_schema(schema).execute():
                    _collect(event, outcome)
                    if progress is not None:
                        progress(event, outcome)
        for operation in unkeyed.values():
            _refuses_without_credentials(contract, operation, base_url, outcome)
        outcome.duration_s = time.monotonic() - started
        outcome.hints = {hint.name: hint.applied for hint in options.hints}
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
        _explain_silent_checks(contract, outcome, other_keys, verification.inconclusive)
        _warn_of_refused_keys(contract, keys, outcome)
    finally:
        if receiver is not None:
            receiver.stop()
    return outcome


def _subscribe(
    contract: Contract, options: Options, keys: Credentials, base_url: str, outcome: Outcome
) -> Receiver | None:
    """The callback receiver, subscribed to the role's hub; None (and callbacks_signed not
    run, with the reason) when the role has no hub, no credential for it, or the hub refuses:
    the rest of the contract is still worth its verdict."""
    hub = contract.hub
    if hub is None:
        outcome.not_run["callbacks_signed"] = "the role has no event hub"
        return None
    credential = keys.for_operation(hub) if hub.schemes else None
    if hub.schemes and credential is None:
        outcome.not_run["callbacks_signed"] = (
            f"no --key for {' or '.join(s.name for s in hub.schemes)} to subscribe to "
            f"{hub.label} with"
        )
        return None
    receiver = Receiver.start(options.callback_url)
    headers = {}
    if credential is not None:
        scheme, key = credential
        headers[scheme.header] = scheme.header_value(key)
    try:
        receiver.subscribe(contract, base_url, headers, REQUEST_TIMEOUT_S)
    except ContractError as error:
        receiver.stop()
        outcome.not_run["callbacks_signed"] = str(error)
        return None
    return receiver


def _why_no_tenancy(
    operations: list[Operation], other_keys: Credentials, inconclusive: dict[str, str]
) -> str:
    reads = [op for op in operations if op.method == "GET" and "{" in op.path and op.schemes]
    if not reads:
        return "no operation reads a resource by its id"
    if not any(other_keys.for_operation(op) for op in reads):
        schemes = sorted({s.name for op in reads for s in op.schemes})
        return f"no --other-key for {' or '.join(schemes)}"
    if inconclusive:
        return "not conclusive: " + "; ".join(
            f"{label}: {reason}" for label, reason in sorted(inconclusive.items())
        )
    return "no resource read by its id answered 2xx"


def _explain_silent_checks(
    contract: Contract,
    outcome: Outcome,
    other_keys: Credentials,
    inconclusive: dict[str, str],
) -> None:
    """Name why a domain check judged nothing, so a pass is never read as proof of a rule
    the run never met (`inconclusive`: the reads tenancy could not judge, and why)."""
    judged = outcome.per_check
    operations = [
        op for label, op in contract.operations.items() if label not in outcome.not_exercised
    ]
    reasons = {
        "idempotent_retry": "no create took an Idempotency-Key or externalId"
        if any(op.idempotency_header or op.body_has_external_id for op in operations)
        and any(op.method == "POST" for op in operations)
        else "no exercised create declares an Idempotency-Key or externalId",
        "tenant_isolation": _why_no_tenancy(operations, other_keys, inconclusive),
        "error_model": "no error was answered",
        "correlation_id": "no exercised operation declares a correlation header"
        if not any(op.correlation_header for op in operations)
        else "no answer to judge",
        "auth_required": "no exercised operation is secured",
        "lifecycle_transitions": "the role declares no lifecycle"
        if not LIFECYCLES.get(contract.role)
        else "no resource with a lifecycle was answered",
        "retry_after": "no 429 was answered",
    }
    for name, reason in reasons.items():
        if name not in judged and name not in outcome.not_run:
            outcome.not_run[name] = reason


def _warn_of_refused_keys(contract: Contract, keys: Credentials, outcome: Outcome) -> None:
    """A key answered with nothing but 401 is most likely the wrong one for its scheme
    (a plain `--key` goes to every scheme): say so, since the checks behind it judged
    only refusals."""
    answered: dict[str, Counter[int]] = {}
    for label, by_status in outcome.statuses.items():
        operation = contract.operations.get(label)
        chosen = keys.for_operation(operation) if operation is not None else None
        if chosen is not None:
            answered.setdefault(chosen[0].name, Counter()).update(by_status)
    for scheme, by_status in sorted(answered.items()):
        total = sum(by_status.values())
        refused = by_status.get(401, 0)
        # Some answers come before the key is looked at (a malformed header: 400).
        if not any(200 <= status < 300 for status in by_status) and refused >= 0.8 * total:
            outcome.warnings.append(
                f"the key for {scheme} was refused with 401 on {refused} of {total} requests "
                "and nothing succeeded: is it that scheme's key?"
            )


def _sample(document: dict[str, Any], parameter: dict[str, Any]) -> Any:
    schema = resolve(document, parameter.get("schema", {}))
    for value in (parameter.get("example"), schema.get("example"), schema.get("default")):
        if value is not None:
            return value
    if schema.get("enum"):
        return schema["enum"][0]
    return {"integer": 1, "number": 1, "boolean": True}.get(schema.get("type"), "verify-probe")


def _refuses_without_credentials(
    contract: Contract, operation: Operation, base_url: str, outcome: Outcome
) -> None:
    """auth_required for an operation the run had no credential for: one request shaped
    by the contract (its examples where it gives them), sent without credentials."""
    document = contract.document
    item = resolve(document, document["paths"][operation.path])
    spec = item[operation.method.lower()]
    path, query, headers = operation.path, {}, {}
    for raw in [*item.get("parameters", []), *spec.get("parameters", [])]:
        parameter = resolve(document, raw)
        value = _sample(document, parameter)
        if parameter.get("in") == "path":
            path = path.replace("{" + parameter["name"] + "}", str(value))
        elif parameter.get("in") == "query" and parameter.get("required"):
            query[parameter["name"]] = value
    body = resolve(document, spec.get("requestBody", {}))
    payload = None
    if body:
        media = body.get("content", {}).get("application/json")
        if media is not None:
            schema = resolve(document, media.get("schema", {}))
            payload = media.get("example", schema.get("example", {}))
    if operation.correlation_header:
        headers[operation.correlation_header] = "verify-auth-probe"
    url = base_url + path
    try:
        answer = requests.request(
            operation.method,
            url,
            params=query,
            json=payload,
            headers=headers,
            timeout=REQUEST_TIMEOUT_S,
        )
    except requests.RequestException as error:
        outcome.errors.append(f"{operation.label}: {_reason(error)}")
        return
    outcome.cases += 1
    by_check = outcome.operations.setdefault(operation.label, {})
    curl = f"curl -X {operation.method} '{answer.request.url}'"
    if payload is not None:
        curl += f" -H 'Content-Type: application/json' -d '{json.dumps(payload)}'"
    if answer.status_code >= 400:
        problems = checks.error_problems(contract.error_model, answer)
        judged = by_check.setdefault("error_model", Tally())
        judged.passed += not problems
        judged.failed += bool(problems)
        if problems:
            _add_finding(
                outcome,
                ConformanceFailure(
                    operation=operation.label,
                    title="An error is not the contract's error document",
                    message=f"{answer.status_code} answered with {'; '.join(problems)}.",
                ),
                "error_model",
                curl=curl,
                phase="auth probe",
                status=answer.status_code,
                response=answer.text[:500],
            )
    tally = by_check.setdefault("auth_required", Tally())
    if answer.status_code == 401:
        tally.passed += 1
        return
    tally.failed += 1
    _add_finding(
        outcome,
        ConformanceFailure(
            operation=operation.label,
            title="A request without credentials was not refused with 401",
            message=f"{operation.label} without "
            f"{', '.join(sorted({s.header for s in operation.schemes}))} answered "
            f"{answer.status_code}. Every secured operation answers 401 to it.",
        ),
        "auth_required",
        curl=curl,
        phase="auth probe",
        status=answer.status_code,
        response=answer.text[:500],
    )


def _collect(event: events.EngineEvent, outcome: Outcome) -> None:
    if isinstance(event, events.ScenarioFinished) and event.is_test_scenario:
        recorder = event.recorder
        for case_id, exchange in recorder.interactions.items():
            if exchange.response is None:
                continue
            outcome.cases += 1
            asked = recorder.cases.get(case_id)
            if asked is None:
                continue
            if exchange.request.method.upper() != asked.value.operation.method.upper():
                continue  # a probe with another method (unsupported_method) answers 405
            by_status = outcome.statuses.setdefault(asked.value.operation.label, {})
            status = exchange.response.status_code
            by_status[status] = by_status.get(status, 0) + 1
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
