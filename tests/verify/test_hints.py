"""`handoff verify --set`: the vendor's reference data reaches every positive case, and only
those; a hint that reaches nothing is said, and a malformed one is bad input."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from flask import request
from verify_support import CONTRACT, create_app, serving

from simulators.cli import main
from simulators.verify import hints
from simulators.verify.report import render_html
from simulators.verify.runner import Outcome


def case(body: Any = None, query: dict[str, Any] | None = None, path: dict[str, Any] | None = None,
         positive: bool = True) -> SimpleNamespace:  # fmt: skip
    mode = SimpleNamespace(is_positive=positive)
    meta = SimpleNamespace(generation=SimpleNamespace(mode=mode))
    return SimpleNamespace(body=body, query=query, path_parameters=path, meta=meta)


def activation() -> dict[str, Any]:
    return {
        "externalId": "shop-1",
        "productOrderItem": [
            {
                "id": "1",
                "productOffering": {"id": "generated"},
                "product": {
                    "productCharacteristic": [
                        {"name": "ICCID", "value": "8900000000000000000"},
                        {"name": "plan", "value": "x"},
                    ]
                },
            }
        ],
    }


def test_a_dotted_hint_sets_only_the_property_at_that_tail_of_the_path() -> None:
    (hint,) = hints.parse(["productOffering.id=po-gb-payg"])
    body = activation()
    hints.apply([hint], case(body))
    item = body["productOrderItem"][0]
    assert item["productOffering"]["id"] == "po-gb-payg"
    assert item["id"] == "1"  # another `id`, not inside productOffering
    assert hint.applied == 1


def test_a_hint_named_like_a_characteristic_sets_its_value() -> None:
    (hint,) = hints.parse(["ICCID=8944000000000000017"])
    body = activation()
    hints.apply([hint], case(body))
    characteristics = body["productOrderItem"][0]["product"]["productCharacteristic"]
    assert characteristics == [
        {"name": "ICCID", "value": "8944000000000000017"},
        {"name": "plan", "value": "x"},
    ]


def test_values_from_a_file_are_used_in_turn(tmp_path: Path) -> None:
    values = tmp_path / "iccids.txt"
    values.write_text("8944000000000000017\n\n8944000000000000025\n")
    (hint,) = hints.parse([f"ICCID=@{values}"])
    taken = []
    for _ in range(3):
        body = activation()
        hints.apply([hint], case(body))
        taken.append(body["productOrderItem"][0]["product"]["productCharacteristic"][0]["value"])
    assert taken == ["8944000000000000017", "8944000000000000025", "8944000000000000017"]


def test_query_and_path_parameters_take_a_plain_name_and_keep_their_type() -> None:
    limit, status, order = hints.parse(["limit=5", "resourceStatus=available", "id=ord-1"])
    query = {"limit": 17, "resourceStatus": "reserved"}
    path = {"id": "generated"}
    hints.apply([limit, status, order], case(query=query, path=path))
    assert query == {"limit": 5, "resourceStatus": "available"}
    assert path == {"id": "ord-1"}


def test_negative_cases_are_left_as_generated() -> None:
    (hint,) = hints.parse(["productOffering.id=po-gb-payg"])
    hook = hints.hook([hint], lambda _context, generated: generated)
    body = activation()
    hook(None, case(body, positive=False))
    assert body["productOrderItem"][0]["productOffering"]["id"] == "generated"
    hook(None, case(body, positive=True))
    assert body["productOrderItem"][0]["productOffering"]["id"] == "po-gb-payg"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("ICCID", "--set 'ICCID': expected NAME=VALUE (or NAME=@FILE)"),
        ("productOffering.=x", "--set 'productOffering.=x': expected NAME=VALUE (or NAME=@FILE)"),
        ("ICCID=@/nonexistent/iccids.txt", "--set ICCID: cannot read /nonexistent/iccids.txt"),
    ],
)
def test_a_hint_that_cannot_be_used_is_one_line_and_exit_2(spec: str, message: str) -> None:
    result = CliRunner().invoke(
        main, ["verify", "tax", "--base-url", "http://127.0.0.1:9", "--set", spec]
    )
    assert result.exit_code == 2
    assert result.output.strip().startswith(f"Error: {message}"), result.output
    assert len(result.output.strip().splitlines()) == 1


def test_an_empty_file_of_values_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "none.txt"
    empty.write_text("\n")
    with pytest.raises(hints.HintError, match="holds no values"):
        hints.parse([f"ICCID=@{empty}"])


def test_hints_reach_the_implementation_and_a_misspelt_one_is_reported(tmp_path: Path) -> None:
    contract = tmp_path / "orders.yaml"
    contract.write_text(yaml.safe_dump(CONTRACT, sort_keys=False))
    values = tmp_path / "external-ids.txt"
    values.write_text("hinted\nhintedb\n")
    app = create_app(None)
    external_ids: list[Any] = []

    @app.before_request
    def record() -> None:
        body = request.get_json(silent=True) if request.method == "POST" else None
        if isinstance(body, dict) and "externalId" in body:
            external_ids.append(body["externalId"])

    report = tmp_path / "report.json"
    with serving(app) as url:
        result = CliRunner().invoke(main, [
            "verify", "mvne", "--contract", str(contract), "--base-url", url,
            "--key", "key-alpha", "--other-key", "key-bravo", "--max-examples", "3",
            "--seed", "1", "--callback-wait", "0.5", "--json", str(report),
            "--html", str(tmp_path / "report.html"),
            "--set", f"externalId=@{values}", "--set", "externalID=typo",
        ])  # fmt: skip
    outcome = json.loads(report.read_text())
    assert result.exit_code == 0, result.output
    assert outcome["hints"]["externalId"] > 0 and outcome["hints"]["externalID"] == 0
    assert {"hinted", "hintedb"} <= {value for value in external_ids if isinstance(value, str)}
    assert "--set externalID reached no request" in result.output
    page = (tmp_path / "report.html").read_text()
    assert "externalID filled 0 request fields (none: misspelt?)" in page


def test_the_html_report_leads_with_the_warnings() -> None:
    outcome = Outcome(
        role="mno", contract="contracts/mno.yaml", base_url="http://127.0.0.1:8700/mno",
        started="2026-12-03T22:00:00+00:00", phases=["examples"], max_examples=1, seed=1,
        warnings=["the key for wholesaleKey was refused with 401 on 9 of 9 requests"],
    )  # fmt: skip
    page = render_html(outcome)
    assert "Warnings (1)" in page
    assert page.index("the key for wholesaleKey was refused") < page.index("Conformance by check")
