"""`handoff verify` passes a correct implementation and names each broken domain rule."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from conftest import api_key
from flask import Flask, Response, jsonify, request
from verify_support import CONTRACT, STAFF_KEY, TWO_SCHEMES, create_app, serving
from werkzeug.serving import make_server

from simulators.cli import main
from simulators.core.runtime import Runtime

# Few examples: each broken app has one defect, and the first case that meets it fails.
EXAMPLES = "3"


@pytest.fixture
def contract_file(tmp_path: Path) -> Path:
    path = tmp_path / "orders.yaml"
    path.write_text(yaml.safe_dump(CONTRACT, sort_keys=False))
    return path


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["verify", *args])
    return result.exit_code, result.output


def verify_orders(
    contract_file: Path, tmp_path: Path, defect: str | None, app: Flask | None = None
) -> dict:
    """Verify the tiny orders API (as an MVNE, whose product orders have a lifecycle)."""
    report = tmp_path / "report.json"
    with serving(app or create_app(defect)) as url:
        code, output = run(
            "mvne", "--contract", str(contract_file), "--base-url", url,
            "--key", "key-alpha", "--other-key", "key-bravo", "--max-examples", EXAMPLES,
            "--seed", "1", "--callback-wait", "0.5", "--json", str(report),
        )  # fmt: skip
    outcome = json.loads(report.read_text())
    assert code == (0 if outcome["passed"] else 1), output
    return outcome


def test_a_correct_implementation_passes_every_check(contract_file: Path, tmp_path: Path) -> None:
    outcome = verify_orders(contract_file, tmp_path, defect=None)
    assert outcome["passed"], outcome["findings"] or outcome["errors"]
    judged = {name for name, tally in outcome["checks"].items() if tally["passed"]}
    assert {
        "idempotent_retry", "tenant_isolation", "error_model", "correlation_id",
        "auth_required", "lifecycle_transitions", "retry_after", "callbacks_signed",
    } <= judged  # fmt: skip


@pytest.mark.parametrize(
    ("defect", "check", "title"),
    [
        ("replay", "idempotent_retry", "A retried create made a second resource"),
        ("leak", "tenant_isolation", "Another partner's resource is readable"),
        ("plain_error", "error_model", "An error is not the contract's error document"),
        ("no_correlation", "correlation_id", "X-Correlation-ID not echoed"),
        ("no_auth", "auth_required", "A request without credentials was not refused with 401"),
        ("illegal_transition", "lifecycle_transitions", "ProductOrder state moved along an edge"),
        ("no_retry_after", "retry_after", "429 without Retry-After"),
        ("unsigned", "callbacks_signed", "A callback is unsigned"),
    ],
)
def test_each_broken_rule_fails_verification(
    contract_file: Path, tmp_path: Path, defect: str, check: str, title: str
) -> None:
    outcome = verify_orders(contract_file, tmp_path, defect)
    assert not outcome["passed"]
    found = [f for f in outcome["findings"] if f["check"] == check]
    assert found, outcome["findings"]
    assert any(f["title"].startswith(title) for f in found), found
    assert outcome["checks"][check]["failed"] > 0


def refusing_bravo(only_orders_that_exist: bool) -> Flask:
    """The orders API where the second partner's agreement refuses it order reads with 403,
    as the MVNE refuses a partner without QUERY_USAGE: for every id, or (a leak) only for
    the ids that exist, the others being the API's own 404."""
    app = create_app()

    def refuse() -> Response | None:
        if (
            request.method != "GET"
            or request.headers.get("X-API-Key") != "key-bravo"
            or not request.path.startswith("/orders-api/orders/")
        ):
            return None
        if only_orders_that_exist:
            seen = app.test_client().get(request.path, headers={"X-API-Key": "key-alpha"})
            if seen.status_code != 200:
                return None
        code = "CAPABILITY_NOT_GRANTED"
        answer = jsonify({"type": "about:blank", "title": code, "status": 403, "code": code})
        answer.content_type = "application/problem+json"
        answer.status_code = 403
        return answer

    app.before_request_funcs.setdefault(None, []).insert(0, refuse)
    return app


def test_a_second_partner_refused_alike_for_every_id_is_not_a_leak(
    contract_file: Path, tmp_path: Path
) -> None:
    outcome = verify_orders(contract_file, tmp_path, None, refusing_bravo(False))
    assert outcome["passed"], outcome["findings"] or outcome["errors"]
    # Nothing revealed, and nothing proven either: not run, with why.
    assert outcome["not_run"]["tenant_isolation"] == (
        "not conclusive: GET /orders/{id}: --other-key was answered 403 "
        "CAPABILITY_NOT_GRANTED whether the resource existed or not"
    )


def test_a_403_only_for_ids_that_exist_reveals_them(contract_file: Path, tmp_path: Path) -> None:
    outcome = verify_orders(contract_file, tmp_path, None, refusing_bravo(True))
    assert not outcome["passed"]
    [finding] = [f for f in outcome["findings"] if f["check"] == "tenant_isolation"]
    assert finding["title"] == "Another partner's resource is revealed"
    assert (
        "answered 403 CAPABILITY_NOT_GRANTED, and 404 ORDER_NOT_FOUND for an id that "
        in (finding["message"])
    )
    assert finding["status"] == 403 and "key-bravo" not in finding["curl"]


# --- credentials by security scheme ------------------------------------------------------------


@pytest.fixture
def two_schemes_file(tmp_path: Path) -> Path:
    path = tmp_path / "orders-and-report.yaml"
    path.write_text(yaml.safe_dump(TWO_SCHEMES, sort_keys=False))
    return path


def verify_two_schemes(
    contract_file: Path, tmp_path: Path, defect: str | None, *keys: str
) -> tuple[dict, str]:
    report = tmp_path / "report.json"
    with serving(create_app(defect)) as url:
        code, output = run(
            "mvne", "--contract", str(contract_file), "--base-url", url, *keys,
            "--max-examples", EXAMPLES, "--seed", "1", "--callback-wait", "0.5",
            "--json", str(report),
        )  # fmt: skip
    outcome = json.loads(report.read_text())
    assert code == (0 if outcome["passed"] else 1), output
    return outcome, output


def test_each_operation_is_sent_the_key_of_its_own_scheme(
    two_schemes_file: Path, tmp_path: Path
) -> None:
    outcome, _ = verify_two_schemes(
        two_schemes_file, tmp_path, None,
        "--key", "partnerKey=key-alpha", "--key", f"staffKey={STAFF_KEY}",
        "--other-key", "partnerKey=key-bravo",
    )  # fmt: skip
    assert outcome["passed"], outcome["findings"] or outcome["errors"]
    assert outcome["not_exercised"] == {}
    assert outcome["warnings"] == []  # every key worked for its scheme
    report_checks = outcome["operations"]["GET /report"]["checks"]
    # Answered 200 with the staff key: its body was judged against the contract.
    assert report_checks["response_schema_conformance"]["passed"] > 0
    assert outcome["checks"]["tenant_isolation"]["passed"] > 0
    assert outcome["checks"]["callbacks_signed"]["passed"] > 0


def test_a_plain_key_refused_by_one_scheme_is_warned_of_and_not_the_other(
    two_schemes_file: Path, tmp_path: Path
) -> None:
    # A partner's key sent to every scheme: the staff report refuses it every time.
    outcome, output = verify_two_schemes(
        two_schemes_file, tmp_path, None, "--key", "key-alpha", "--other-key", "key-bravo"
    )
    assert len(outcome["warnings"]) == 1, outcome["warnings"]
    assert outcome["warnings"][0].startswith("the key for staffKey was refused with 401 on ")
    assert "warning: the key for staffKey was refused" in output
    assert outcome["statuses"]["POST /orders"]


def test_an_operation_without_a_key_for_its_scheme_is_only_checked_for_401(
    two_schemes_file: Path, tmp_path: Path
) -> None:
    junit = tmp_path / "v.xml"
    outcome, output = verify_two_schemes(
        two_schemes_file, tmp_path, None, "--key", "partnerKey=key-alpha", "--junit", str(junit)
    )
    assert outcome["passed"], outcome["findings"] or outcome["errors"]
    assert '<testcase classname="GET /report" name="not exercised">' in junit.read_text()
    assert outcome["not_exercised"] == {"GET /report": "no --key for staffKey"}
    # One request without credentials: refused with 401, in the contract's error document.
    assert outcome["operations"]["GET /report"]["checks"] == {
        "auth_required": {"passed": 1, "failed": 0},
        "error_model": {"passed": 1, "failed": 0},
    }
    assert "GET /report: no --key for staffKey" in output
    assert outcome["checks"]["idempotent_retry"]["passed"] > 0


def test_an_operation_without_a_key_still_fails_when_it_answers_without_one(
    two_schemes_file: Path, tmp_path: Path
) -> None:
    outcome, _ = verify_two_schemes(
        two_schemes_file, tmp_path, "report_open", "--key", "partnerKey=key-alpha"
    )
    assert not outcome["passed"]
    [finding] = outcome["findings"]
    assert finding["operation"] == "GET /report" and finding["check"] == "auth_required"
    assert finding["status"] == 200 and "curl -X GET" in finding["curl"]


def test_a_hub_that_refuses_the_subscription_leaves_the_rest_of_the_verdict(
    contract_file: Path, tmp_path: Path
) -> None:
    outcome = verify_orders(contract_file, tmp_path, "hub_refuses")
    assert outcome["not_run"]["callbacks_signed"].startswith(
        "POST /hub refused the callback subscription (401)"
    )
    assert outcome["cases"] > 0 and outcome["checks"]["idempotent_retry"]["passed"] > 0
    # The hub's own refusals are what the contract allows: nothing else is held against it.
    assert outcome["passed"], outcome["findings"]


def test_a_key_for_a_scheme_the_contract_lacks_is_one_line_and_exit_2(
    two_schemes_file: Path,
) -> None:
    code, output = run(
        "mvne", "--contract", str(two_schemes_file), "--base-url", "http://127.0.0.1:9",
        "--key", "stafKey=k",
    )  # fmt: skip
    assert code == 2
    assert output.strip() == (
        "Error: --key stafKey=...: the contract has no security scheme 'stafKey'; "
        "its schemes: partnerKey, staffKey"
    )


# --- bad input -----------------------------------------------------------------------------------


def test_an_unknown_role_is_one_line_and_exit_2() -> None:
    code, output = run("nosuch", "--base-url", "http://127.0.0.1:9")
    assert code == 2
    assert (
        output.strip().splitlines() == [output.strip().splitlines()[0]]
        and "unknown role 'nosuch'" in output
    )
    assert "fulfillment" in output and "Traceback" not in output


def test_a_contract_that_is_not_openapi_is_one_line_and_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("openapi: 3.1.0\ninfo: {title: x, version: '1'}\npaths:\n  /a:\n    get: {}\n")
    code, output = run("tax", "--contract", str(bad), "--base-url", "http://127.0.0.1:9")
    assert code == 2
    assert "is not valid OpenAPI: GET /a has no `responses`" in output
    assert len(output.strip().splitlines()) == 1


def test_an_unreachable_base_url_is_one_line_and_exit_2() -> None:
    code, output = run("tax", "--base-url", "http://127.0.0.1:9", "--key", "k")
    assert code == 2
    assert output.strip() == "Error: cannot reach http://127.0.0.1:9/tax: connection refused"


# --- our own stack -------------------------------------------------------------------------------


@pytest.fixture
def served_stack(app: Flask, runtime: Runtime) -> Iterator[str]:
    """The in-process stack behind a real loopback port, as `handoff up` would serve it."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_our_tax_engine_passes_verification_with_every_report(
    served_stack: str, tmp_path: Path
) -> None:
    junit, html, report = tmp_path / "v.xml", tmp_path / "v.html", tmp_path / "v.json"
    code, output = run(
        "tax", "--base-url", served_stack, "--key", api_key("billing-platform"),
        "--max-examples", "2", "--seed", "1",
        "--junit", str(junit), "--html", str(html), "--json", str(report),
    )  # fmt: skip
    assert code == 0, output
    assert "PASS tax" in output
    outcome = json.loads(report.read_text())
    assert outcome["passed"] and outcome["cases"] > 0
    assert outcome["operations"]["POST /v1/quotes"]["score"] == 100.0
    assert 'failures="0"' in junit.read_text() and "<testcase" in junit.read_text()
    page = html.read_text()
    assert "PASS" in page and "POST /v1/quotes" in page and "error_model" in page
