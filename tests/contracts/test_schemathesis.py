"""Every published contract fuzzed in-process by schemathesis, with every check on.

One test per contract (MNO, MVNE, control plane), each over all of its
operations: explicit examples, the coverage phase (boundaries, missing and
malformed parameters, undeclared methods) and fuzzing in positive and
negative modes. The fakes must answer every case as their contract says.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import hypothesis
import pytest
import responses
import schemathesis
from conftest import BASE_URL, api_key
from flask import Flask
from hypothesis import strategies as st
from sqlalchemy import select

from schemathesis.generation.meta import TestPhase
from schemathesis.specs.openapi import unregister_string_format

from simulators.core.identifiers import iccid_with_check_digit
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
    # Loopback callers need no admin token; the WSGI client calls from 127.0.0.1.
    "admin": ("/__admin/openapi.json", {}),
}


@pytest.fixture(scope="module", autouse=True)
def hypothesis_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Hypothesis' caches go to a temporary directory, never into the repository."""
    hypothesis.configuration.set_hypothesis_home_dir(tmp_path_factory.mktemp("hypothesis"))
    yield
    hypothesis.configuration.set_hypothesis_home_dir(None)


@pytest.fixture(scope="module")
def iccids(runtime: Runtime) -> Iterator[None]:
    """`format: iccid`: E.118 ICCIDs with a valid Luhn digit, some from the partner's pool."""
    with runtime.store.read() as conn:
        pool = conn.execute(
            select(sim_table.c.iccid)
            .where(sim_table.c.partner_id == PARTNER)
            .order_by(sim_table.c.iccid)
        ).scalars().all()
    assert pool, f"{PARTNER} has no seeded SIM pool"
    anywhere = st.from_regex(r"89[0-9]{16,17}", fullmatch=True).map(iccid_with_check_digit)
    schemathesis.openapi.format("iccid", st.one_of(st.sampled_from(pool), anywhere))
    yield
    unregister_string_format("iccid")


ICCID_SHAPE = re.compile(r"89[0-9]{17,18}")


def _luhn_fixed(value: Any) -> Any:
    """Every ICCID-shaped string in `value` with its Luhn check digit set right."""
    if isinstance(value, str) and ICCID_SHAPE.fullmatch(value):
        return iccid_with_check_digit(value[:-1])
    if isinstance(value, dict):
        return {key: _luhn_fixed(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_luhn_fixed(item) for item in value]
    return value


def map_case(_context: schemathesis.HookContext, case: schemathesis.Case) -> schemathesis.Case:
    """Positive coverage cases carry ICCIDs that `format: iccid` admits.

    The coverage phase draws a string with both `pattern` and a custom `format` from the
    pattern alone (it checks only the standard formats), so its "valid" ICCIDs fail the Luhn
    digit the contract asks for. Fuzzing draws them from the registered strategy instead.
    """
    meta = case.meta
    if meta is not None and meta.phase.name == TestPhase.COVERAGE and meta.generation.mode.is_positive:
        case.path_parameters = _luhn_fixed(case.path_parameters)
        case.query = _luhn_fixed(case.query)
        case.body = _luhn_fixed(case.body)
    return case


@pytest.fixture(params=sorted(CONTRACTS))
def contract(request: pytest.FixtureRequest, app: Flask, iccids: None) -> schemathesis.BaseSchema:
    location, credentials = CONTRACTS[request.param]
    loaded = schemathesis.openapi.from_wsgi(location, app, config=_config(credentials))
    loaded.hook(map_case)
    return loaded


schema = schemathesis.pytest.from_fixture("contract")


@schema.parametrize()
def test_contract(case: schemathesis.Case, network: responses.RequestsMock) -> None:
    # The fakes' peer calls and callbacks go through `network`; schemathesis reaches the
    # app directly over WSGI, so every call `responses` saw was made by a fake.
    case.call_and_validate()
    assert all(call.request.url.startswith(BASE_URL) for call in network.calls)
