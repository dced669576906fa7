"""The domain checks on single answers, without a server: what each rule holds against."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from verify_support import CONTRACT

from simulators.core.identifiers import iccid_with_check_digit
from simulators.verify import checks
from simulators.verify.checks import ConformanceFailure, Verification
from simulators.verify.contract import load


@pytest.fixture
def verification(tmp_path: Path) -> Any:
    path = tmp_path / "orders.yaml"
    path.write_text(yaml.safe_dump(CONTRACT, sort_keys=False))
    with checks.registered(Verification(contract=load("mvne", path))) as running:
        yield running


def answer(method: str, label: str, state: str) -> tuple[Any, Any]:
    case = SimpleNamespace(method=method, operation=SimpleNamespace(label=label))
    body = {"id": "o-1", "@type": "ProductOrder", "state": state}
    response = SimpleNamespace(status_code=201 if method == "POST" else 200,
                               content=json.dumps(body).encode())  # fmt: skip
    return case, response


def judge(method: str, label: str, state: str) -> None:
    case, response = answer(method, label, state)
    checks.lifecycle_transitions(None, response, case)  # type: ignore[arg-type]


def test_a_state_read_going_back_along_the_lifecycle_fails(verification: Verification) -> None:
    judge("GET", "GET /orders/{id}", "inProgress")
    with pytest.raises(ConformanceFailure, match="went back along its lifecycle"):
        judge("GET", "GET /orders/{id}", "acknowledged")


def test_a_replayed_create_may_answer_the_state_it_was_created_in(
    verification: Verification,
) -> None:
    judge("POST", "POST /orders", "acknowledged")
    judge("GET", "GET /orders/{id}", "inProgress")
    # The same create sent again answers its first answer, as the idempotency rule asks.
    judge("POST", "POST /orders", "acknowledged")
    with pytest.raises(ConformanceFailure):
        judge("GET", "GET /orders/{id}", "acknowledged")


@pytest.mark.parametrize(
    "real",
    [
        "8944100000000000000",  # an ICCID: 89 and a valid Luhn check digit kept
        "3f2b9c1e-7d4a-4e8b-9a1c-0d5e6f7a8b9c",  # a UUID stays hex
        "PO-GB-PAYG",
        12345,
    ],
)
def test_the_made_up_id_tenancy_compares_with_has_the_real_ones_shape(real: object) -> None:
    made_up = checks._made_up_value(real)
    assert made_up != real and type(made_up) is type(real)
    assert len(str(made_up)) == len(str(real))
    if isinstance(real, str) and real.startswith("89"):
        assert made_up.startswith("89")
        assert iccid_with_check_digit(made_up[:-1]) == made_up
    if isinstance(real, str) and "-" in real:
        assert [len(part) for part in made_up.split("-")] == [len(p) for p in real.split("-")]
        assert made_up.isupper() == real.isupper()
        assert set(made_up) <= set("0123456789abcdef-") or not set(real) <= set("0123456789abcdef-")
