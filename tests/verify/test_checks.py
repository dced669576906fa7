"""The domain checks on single answers, without a server: what each rule holds against."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from verify_support import CONTRACT

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
