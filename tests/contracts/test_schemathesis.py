"""Every published contract fuzzed in-process by schemathesis, with every check on.

One test per contract (MNO, MVNE, control plane), each over all of its
operations: explicit examples, the coverage phase (boundaries, missing and
malformed parameters, undeclared methods) and fuzzing in positive and
negative modes. The fakes must answer every case as their contract says.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import hypothesis
import pytest
import responses
import schemathesis
from conftest import BASE_URL, api_key
from flask import Flask
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from schemathesis.generation.meta import TestPhase
from schemathesis.specs.openapi import unregister_string_format
from sqlalchemy import select

from simulators.core.contract import load_contract
from simulators.core.identifiers import MSISDN_PATTERN, TEST_MCC, iccid_with_check_digit
from simulators.core.runtime import Runtime
from simulators.mvne.model import sim_table

SEED = 20260302
MAX_EXAMPLES = 30
# The reference partner whose SIM pool and key drive the MVNE partner API.
PARTNER = "mvno-alpha"

# schemathesis' own default for positive_data_acceptance, plus 422: by design a well-formed
# request the domain cannot carry out (ICCID_UNMAPPED, an ICCID outside the partner's pool,
# a reused Idempotency-Key) is refused with 422, which a generator cannot avoid by shape alone.
POSITIVE_DATA_ACCEPTANCE_STATUSES = ["2xx", "3xx", "401", "403", "404", "409", "429", "5xx", "422"]


def _config(credentials: dict[str, str]) -> schemathesis.Config:
    """Every check and phase on, both generation modes, reproducible and writing nothing."""
    return schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "cache": {"enabled": False},
            "generation": {
                "mode": "all",
                "max-examples": MAX_EXAMPLES,
                "deterministic": True,
                "database": "none",
            },
            "checks": {
                "enabled": True,
                "positive_data_acceptance": {
                    "expected-statuses": POSITIVE_DATA_ACCEPTANCE_STATUSES
                },
            },
            # Keyed by the contract's security scheme, so each operation gets its own key.
            **(
                {"auth": {"openapi": {name: {"api_key": key} for name, key in credentials.items()}}}
                if credentials
                else {}
            ),
        }
    )


CONTRACTS = {
    "mno": ("/mno/openapi.json", {"apiKey": api_key("mvne-platform")}),
    "mvne": (
        "/mvne/openapi.json",
        {"partnerKey": api_key(PARTNER), "networkKey": api_key("mno-network")},
    ),
    # Loopback callers need no admin token (see LOOPBACK).
    "admin": ("/__admin/openapi.json", {}),
}
# werkzeug's bare test client leaves REMOTE_ADDR unset, which the control plane refuses with
# 403; like Flask's test client, schemathesis' calls come from loopback. Kept on the retries
# and probes its checks send, unlike a `session`.
LOOPBACK = {"REMOTE_ADDR": "127.0.0.1"}


@pytest.fixture(scope="module", autouse=True)
def hypothesis_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Hypothesis' caches go to a temporary directory, never into the repository."""
    hypothesis.configuration.set_hypothesis_home_dir(tmp_path_factory.mktemp("hypothesis"))
    yield
    hypothesis.configuration.set_hypothesis_home_dir(None)


@pytest.fixture(scope="module")
def custom_formats(runtime: Runtime) -> Iterator[None]:
    """Strategies for the contracts' custom formats, valid by the identifier rules.

    `iccid`: E.118 ICCIDs with a Luhn check digit, half of them from the partner's SIM pool
    so that some orders go through. `imsi`: E.212, the test MCC 001 or one not starting 0.
    """
    with runtime.store.read() as conn:
        pool = (
            conn.execute(
                select(sim_table.c.iccid)
                .where(sim_table.c.partner_id == PARTNER)
                .order_by(sim_table.c.iccid)
            )
            .scalars()
            .all()
        )
    assert pool, f"{PARTNER} has no seeded SIM pool"
    anywhere = st.from_regex(r"89[0-9]{16,17}", fullmatch=True).map(iccid_with_check_digit)
    mcc = st.one_of(st.just(TEST_MCC), st.integers(100, 999).map(str))
    formats = {
        "iccid": st.one_of(st.sampled_from(pool), anywhere),
        "imsi": st.tuples(mcc, st.from_regex(r"[0-9]{3,12}", fullmatch=True)).map("".join),
        "msisdn": st.from_regex(MSISDN_PATTERN, fullmatch=True),
    }
    for name, strategy in formats.items():
        schemathesis.openapi.format(name, strategy)
    yield
    for name in formats:
        unregister_string_format(name)


# The contracts' own formats (simulators.core.contract.FORMAT_CHECKER) and how a value of the
# right shape is brought inside one: the Luhn digit of an ICCID, the MCC of an IMSI.
FORMAT_REPAIRS: dict[str, Callable[[str], str]] = {
    "iccid": lambda value: iccid_with_check_digit(value[:-1]),
    "imsi": lambda value: TEST_MCC + value[3:],
}


def _format_errors(validator: Draft202012Validator, value: Any) -> list[ValidationError]:
    return [
        error
        for error in validator.iter_errors(value)
        if error.validator == "format" and error.validator_value in FORMAT_REPAIRS
    ]


def _repaired(validator: Draft202012Validator, value: Any) -> Any:
    """`value` with every string a custom format refuses brought inside that format."""
    for _ in range(20):
        errors = _format_errors(validator, value)
        if not errors:
            return value
        error = errors[0]
        fixed = FORMAT_REPAIRS[error.validator_value](error.instance)
        if not error.absolute_path:
            value = fixed
            continue
        *parents, last = error.absolute_path
        container = value
        for step in parents:
            container = container[step]
        container[last] = fixed
    return value


def custom_formats_in_coverage(role: str) -> Callable[..., schemathesis.Case]:
    """A `map_case` hook: positive coverage cases hold values the custom formats admit.

    The coverage phase draws a string that has both a `pattern` and a custom `format` from
    the pattern alone (it checks only the standard formats), so its "valid" ICCIDs and
    IMSIs can break the Luhn digit or MCC rule the contract asks for and the fake enforces.
    Fuzzing draws them from the strategies registered below instead. Only format
    violations are repaired, judged by the contract's own validators.
    """
    contract = load_contract(role)

    def map_case(_context: schemathesis.HookContext, case: schemathesis.Case) -> schemathesis.Case:
        meta = case.meta
        if meta is None or meta.phase.name != TestPhase.COVERAGE:
            return case
        if not meta.generation.mode.is_positive:
            return case
        operation = contract.operations[case.operation.definition.raw["operationId"]]
        for parameter in operation.parameters:
            container = {"path": case.path_parameters, "query": case.query}.get(parameter.location)
            if container and isinstance(container.get(parameter.name), str):
                container[parameter.name] = _repaired(
                    parameter.validator, container[parameter.name]
                )
        if operation.body_validator is not None and isinstance(case.body, dict | list):
            case.body = _repaired(operation.body_validator, case.body)
        return case

    return map_case


@pytest.fixture(params=sorted(CONTRACTS))
def contract(
    request: pytest.FixtureRequest, app: Flask, custom_formats: None
) -> schemathesis.BaseSchema:
    location, credentials = CONTRACTS[request.param]
    loaded = schemathesis.openapi.from_wsgi(location, app, config=_config(credentials))
    loaded.hook(custom_formats_in_coverage(request.param))
    return loaded


schema = schemathesis.pytest.from_fixture("contract")


@schema.parametrize()
def test_contract(case: schemathesis.Case, network: responses.RequestsMock) -> None:
    # The fakes' peer calls and callbacks go through `network`; schemathesis reaches the
    # app directly over WSGI, so every call `responses` saw was made by a fake.
    case.call_and_validate(environ_base=LOOPBACK)
    assert all(call.request.url.startswith(BASE_URL) for call in network.calls)
