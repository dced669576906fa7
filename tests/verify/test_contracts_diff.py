"""`handoff contracts diff`: each kind of change between two contracts, classified."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from simulators.cli import main
from simulators.core.config import CONTRACTS_DIR
from simulators.verify.contracts_cli import contracts


@pytest.fixture(autouse=True)
def fresh_state() -> Iterator[None]:
    """A diff reads two files and touches no store: no stack to reset around these tests."""
    yield


def schema_of(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def operation(
    *,
    operation_id: str = "createOrder",
    request: dict[str, Any] | None = None,
    response: dict[str, Any] | None = None,
    parameters: list[dict[str, Any]] | None = None,
    responses: dict[str, Any] | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {"operationId": operation_id}
    if parameters:
        spec["parameters"] = parameters
    if request is not None:
        spec["requestBody"] = {"required": True, "content": schema_of(request)}
    spec["responses"] = responses or {
        "201": {"description": "Created", "content": schema_of(response or {"type": "object"})}
    }
    return spec


def contract(paths: dict[str, Any], schemas: dict[str, Any] | None = None) -> dict[str, Any]:
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "Orders", "version": "1.0.0"},
        "paths": paths,
    }
    if schemas:
        document["components"] = {"schemas": schemas}
    return document


def orders(**kwargs: Any) -> dict[str, Any]:
    """A contract with one operation, `POST /orders`."""
    return contract({"/orders": {"post": operation(**kwargs)}})


def diff(tmp_path: Path, old: Any, new: Any, *options: str) -> Result:
    old_file, new_file = tmp_path / "old.yaml", tmp_path / "new.yaml"
    old_file.write_text(yaml.safe_dump(old) if not isinstance(old, str) else old)
    new_file.write_text(yaml.safe_dump(new) if not isinstance(new, str) else new)
    return CliRunner().invoke(contracts, ["diff", str(old_file), str(new_file), *options])


def changes(tmp_path: Path, old: Any, new: Any) -> tuple[int, list[dict[str, Any]]]:
    result = diff(tmp_path, old, new, "--json")
    assert result.exit_code in (0, 1), result.output
    report = json.loads(result.output)
    return result.exit_code, report["changes"]


def only_change(tmp_path: Path, old: Any, new: Any) -> tuple[int, dict[str, Any]]:
    exit_code, found = changes(tmp_path, old, new)
    assert len(found) == 1, found
    return exit_code, found[0]


ORDER = {
    "type": "object",
    "required": ["externalId"],
    "properties": {"externalId": {"type": "string", "maxLength": 64}, "note": {"type": "string"}},
}


def with_change(schema: dict[str, Any], path: list[str], value: Any) -> dict[str, Any]:
    """A copy of `schema` with the value at `path` replaced (or removed when None)."""
    changed = copy.deepcopy(schema)
    target = changed
    for key in path[:-1]:
        target = target[key]
    if value is None:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return changed


# (test id, old request schema, new request schema, kind, breaking, field)
REQUEST_CASES = [
    (
        "required property added",
        ORDER,
        with_change(
            with_change(ORDER, ["properties", "channel"], {"type": "string"}),
            ["required"],
            ["externalId", "channel"],
        ),
        "required-property-added",
        True,
        "/channel",
    ),
    (
        "optional property added",
        ORDER,
        with_change(ORDER, ["properties", "channel"], {"type": "string"}),
        "property-added",
        False,
        "/channel",
    ),
    (
        "property became required",
        ORDER,
        with_change(ORDER, ["required"], ["externalId", "note"]),
        "property-became-required",
        True,
        "/note",
    ),
    (
        "property became optional",
        ORDER,
        with_change(ORDER, ["required"], []),
        "property-became-optional",
        False,
        "/externalId",
    ),
    (
        "property removed",
        ORDER,
        with_change(ORDER, ["properties", "note"], None),
        "property-removed",
        True,
        "/note",
    ),
    (
        "maxLength lowered",
        ORDER,
        with_change(ORDER, ["properties", "externalId", "maxLength"], 32),
        "constraint-tightened",
        True,
        "/externalId",
    ),
    (
        "maxLength raised",
        ORDER,
        with_change(ORDER, ["properties", "externalId", "maxLength"], 128),
        "constraint-loosened",
        False,
        "/externalId",
    ),
    (
        "minimum raised",
        {"type": "object", "properties": {"quantity": {"type": "integer", "minimum": 1}}},
        {"type": "object", "properties": {"quantity": {"type": "integer", "minimum": 2}}},
        "constraint-tightened",
        True,
        "/quantity",
    ),
    (
        "pattern added",
        ORDER,
        with_change(ORDER, ["properties", "note", "pattern"], "^[a-z]+$"),
        "constraint-tightened",
        True,
        "/note",
    ),
    (
        "enum narrowed",
        {"type": "object", "properties": {"channel": {"enum": ["web", "retail"]}}},
        {"type": "object", "properties": {"channel": {"enum": ["web"]}}},
        "enum-value-removed",
        True,
        "/channel",
    ),
    (
        "enum widened",
        {"type": "object", "properties": {"channel": {"enum": ["web"]}}},
        {"type": "object", "properties": {"channel": {"enum": ["web", "retail"]}}},
        "enum-value-added",
        False,
        "/channel",
    ),
    (
        "type narrowed",
        {"type": "object", "properties": {"note": {"type": ["string", "null"]}}},
        {"type": "object", "properties": {"note": {"type": "string"}}},
        "type-narrowed",
        True,
        "/note",
    ),
    (
        "type widened",
        {"type": "object", "properties": {"quantity": {"type": "integer"}}},
        {"type": "object", "properties": {"quantity": {"type": "number"}}},
        "type-widened",
        False,
        "/quantity",
    ),
    (
        "type changed",
        {"type": "object", "properties": {"quantity": {"type": "integer"}}},
        {"type": "object", "properties": {"quantity": {"type": "string"}}},
        "type-changed",
        True,
        "/quantity",
    ),
    (
        "unknown properties refused",
        ORDER,
        with_change(ORDER, ["additionalProperties"], False),
        "additional-properties-refused",
        True,
        "",
    ),
    (
        "array item property became required",
        {"type": "array", "items": ORDER},
        {"type": "array", "items": with_change(ORDER, ["required"], ["externalId", "note"])},
        "property-became-required",
        True,
        "/*/note",
    ),
    (
        "oneOf alternative removed",
        {"oneOf": [{"type": "string"}, {"type": "integer"}]},
        {"oneOf": [{"type": "string"}]},
        "alternative-removed",
        True,
        "",
    ),
    (
        "a required readOnly property is not sent",
        ORDER,
        with_change(
            with_change(ORDER, ["properties", "id"], {"type": "string", "readOnly": True}),
            ["required"],
            ["externalId", "id"],
        ),
        None,
        False,
        "",
    ),
]


@pytest.mark.parametrize(
    ("old", "new", "kind", "breaking", "pointer"),
    [case[1:] for case in REQUEST_CASES],
    ids=[case[0] for case in REQUEST_CASES],
)
def test_a_request_body_change_is_classified_from_the_partner_sending_it(
    tmp_path: Path, old: Any, new: Any, kind: str | None, breaking: bool, pointer: str
) -> None:
    exit_code, found = changes(tmp_path, orders(request=old), orders(request=new))

    if kind is None:
        assert found == []
        assert exit_code == 0
        return
    assert [(c["kind"], c["breaking"], c["field"] or "") for c in found] == [
        (kind, breaking, pointer)
    ]
    assert found[0]["location"] == "request body application/json"
    assert exit_code == (1 if breaking else 0)


# The same kinds of change in an answer: what a partner reads.
RESPONSE_CASES = [
    (
        "property removed",
        ORDER,
        with_change(ORDER, ["properties", "note"], None),
        "property-removed",
        True,
    ),
    (
        "property added",
        ORDER,
        with_change(ORDER, ["properties", "channel"], {"type": "string"}),
        "property-added",
        False,
    ),
    (
        "required property made optional",
        ORDER,
        with_change(ORDER, ["required"], []),
        "property-became-optional",
        True,
    ),
    (
        "optional property made required",
        ORDER,
        with_change(ORDER, ["required"], ["externalId", "note"]),
        "property-became-required",
        False,
    ),
    (
        "enum widened",
        {"type": "object", "properties": {"state": {"enum": ["acknowledged", "completed"]}}},
        {
            "type": "object",
            "properties": {"state": {"enum": ["acknowledged", "completed", "held"]}},
        },
        "enum-value-added",
        True,
    ),
    (
        "enum narrowed",
        {"type": "object", "properties": {"state": {"enum": ["acknowledged", "completed"]}}},
        {"type": "object", "properties": {"state": {"enum": ["completed"]}}},
        "enum-value-removed",
        False,
    ),
    (
        "field may now be null",
        ORDER,
        with_change(ORDER, ["properties", "note", "type"], ["string", "null"]),
        "type-widened",
        True,
    ),
    (
        "maxLength raised",
        ORDER,
        with_change(ORDER, ["properties", "externalId", "maxLength"], 128),
        "constraint-loosened",
        True,
    ),
    (
        "maxLength lowered",
        ORDER,
        with_change(ORDER, ["properties", "externalId", "maxLength"], 32),
        "constraint-tightened",
        False,
    ),
    (
        "oneOf alternative added",
        {"oneOf": [{"type": "string"}]},
        {"oneOf": [{"type": "string"}, {"type": "integer"}]},
        "alternative-added",
        True,
    ),
]


@pytest.mark.parametrize(
    ("old", "new", "kind", "breaking"),
    [case[1:] for case in RESPONSE_CASES],
    ids=[case[0] for case in RESPONSE_CASES],
)
def test_a_response_body_change_is_classified_from_the_partner_reading_it(
    tmp_path: Path, old: Any, new: Any, kind: str, breaking: bool
) -> None:
    exit_code, change = only_change(tmp_path, orders(response=old), orders(response=new))

    assert (change["kind"], change["breaking"]) == (kind, breaking)
    assert change["location"] == "response 201 application/json"
    assert exit_code == (1 if breaking else 0)


def test_a_change_names_its_operation_location_field_and_both_values(tmp_path: Path) -> None:
    new = with_change(ORDER, ["properties", "externalId", "maxLength"], 32)

    exit_code, change = only_change(tmp_path, orders(request=ORDER), orders(request=new))

    assert exit_code == 1
    assert change == {
        "kind": "constraint-tightened",
        "breaking": True,
        "message": "maxLength lowered",
        "method": "POST",
        "path": "/orders",
        "operationId": "createOrder",
        "location": "request body application/json",
        "field": "/externalId",
        "old": 64,
        "new": 32,
    }


def test_an_operation_removed_or_added(tmp_path: Path) -> None:
    both = contract({"/orders": {"post": operation(), "get": operation(operation_id="listOrders")}})
    one = contract({"/orders": {"post": operation()}})

    removed_exit, removed = only_change(tmp_path, both, one)
    added_exit, added = only_change(tmp_path, one, both)

    assert (removed["kind"], removed["breaking"], removed["method"]) == (
        "operation-removed",
        True,
        "GET",
    )
    assert removed["operationId"] == "listOrders"
    assert removed_exit == 1
    assert (added["kind"], added["breaking"], added_exit) == ("operation-added", False, 0)


def test_a_path_removed_or_added(tmp_path: Path) -> None:
    one = orders()
    by_id = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
    get_order = operation(operation_id="getOrder", parameters=[by_id])
    two = contract({**one["paths"], "/orders/{id}": {"get": get_order}})

    removed_exit, removed = only_change(tmp_path, two, one)
    added_exit, added = only_change(tmp_path, one, two)

    assert (removed["kind"], removed["path"], removed["old"]) == (
        "path-removed",
        "/orders/{id}",
        ["GET"],
    )
    assert removed_exit == 1
    assert (added["kind"], added["breaking"], added_exit) == ("path-added", False, 0)


def test_a_renamed_path_parameter_is_the_same_operation(tmp_path: Path) -> None:
    def by(name: str) -> dict[str, Any]:
        parameter = {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        return contract(
            {
                f"/orders/{{{name}}}": {
                    "get": operation(operation_id="getOrder", parameters=[parameter])
                }
            }
        )

    exit_code, found = changes(tmp_path, by("id"), by("orderId"))

    assert (exit_code, found) == (0, [])


LIMIT = {"name": "limit", "in": "query", "schema": {"type": "integer", "maximum": 100}}


@pytest.mark.parametrize(
    ("old", "new", "kind", "breaking"),
    [
        ([], [{**LIMIT, "required": True}], "required-parameter-added", True),
        ([], [LIMIT], "optional-parameter-added", False),
        ([LIMIT], [{**LIMIT, "required": True}], "parameter-became-required", True),
        ([{**LIMIT, "required": True}], [LIMIT], "parameter-became-optional", False),
        ([LIMIT], [], "parameter-removed", True),
        (
            [LIMIT],
            [{**LIMIT, "schema": {"type": "integer", "maximum": 50}}],
            "constraint-tightened",
            True,
        ),
    ],
    ids=[
        "required added",
        "optional added",
        "became required",
        "became optional",
        "removed",
        "maximum lowered",
    ],
)
def test_a_parameter_change(
    tmp_path: Path, old: list[Any], new: list[Any], kind: str, breaking: bool
) -> None:
    exit_code, change = only_change(tmp_path, orders(parameters=old), orders(parameters=new))

    assert (change["kind"], change["breaking"]) == (kind, breaking)
    assert change["location"] == "query parameter limit"
    assert exit_code == (1 if breaking else 0)


def response(status: str, media: str = "application/json", **extra: Any) -> dict[str, Any]:
    return {status: {"description": "An answer", "content": {media: {"schema": ORDER}}, **extra}}


@pytest.mark.parametrize(
    ("old", "new", "kind", "breaking", "location"),
    [
        (
            {**response("201"), **response("409")},
            response("201"),
            "response-status-removed",
            True,
            "response 409",
        ),
        (
            response("201"),
            {**response("201"), **response("409")},
            "response-status-added",
            False,
            "response 409",
        ),
        (response("200"), response("201"), "response-status-removed", True, "response 200"),
        (
            response("201"),
            response("201", "application/xml"),
            "media-type-removed",
            True,
            "response 201 application/json",
        ),
        (
            response("201", headers={"Location": {"schema": {"type": "string"}}}),
            response("201"),
            "response-header-removed",
            True,
            "response 201 header Location",
        ),
    ],
    ids=[
        "status removed",
        "status added",
        "status changed",
        "media type replaced",
        "header removed",
    ],
)
def test_a_response_status_media_type_or_header_change(
    tmp_path: Path,
    old: dict[str, Any],
    new: dict[str, Any],
    kind: str,
    breaking: bool,
    location: str,
) -> None:
    exit_code, found = changes(tmp_path, orders(responses=old), orders(responses=new))

    assert (kind, breaking, location) in [(c["kind"], c["breaking"], c["location"]) for c in found]
    assert exit_code == (1 if breaking else 0)


def test_a_request_body_made_required(tmp_path: Path) -> None:
    old = orders(request=ORDER)
    old["paths"]["/orders"]["post"]["requestBody"]["required"] = False

    exit_code, change = only_change(tmp_path, old, orders(request=ORDER))

    assert (change["kind"], change["location"], exit_code) == (
        "request-body-became-required",
        "request body",
        1,
    )


def test_refs_are_followed_and_a_recursive_schema_is_compared_once(tmp_path: Path) -> None:
    def tree(label_max: int) -> dict[str, Any]:
        node = {
            "type": "object",
            "properties": {
                "label": {"type": "string", "maxLength": label_max},
                "children": {"type": "array", "items": {"$ref": "#/components/schemas/Node"}},
            },
        }
        return contract(
            {"/orders": {"post": operation(request={"$ref": "#/components/schemas/Node"})}},
            {"Node": node},
        )

    exit_code, change = only_change(tmp_path, tree(64), tree(32))

    assert (change["kind"], change["field"], exit_code) == ("constraint-tightened", "/label", 1)


def test_a_ref_into_another_file_is_followed(tmp_path: Path) -> None:
    (tmp_path / "common.yaml").write_text(
        yaml.safe_dump(
            {
                "Money": {
                    "type": "object",
                    "required": ["value"],
                    "properties": {"value": {"type": "number"}, "unit": {"type": "string"}},
                }
            }
        )
    )
    old = orders(response={"$ref": "common.yaml#/Money"})
    new = orders(response={"$ref": "common-v2.yaml#/Money"})
    (tmp_path / "common-v2.yaml").write_text(
        yaml.safe_dump({"Money": {"type": "object", "properties": {"value": {"type": "number"}}}})
    )

    exit_code, found = changes(tmp_path, old, new)

    assert sorted((c["kind"], c["field"]) for c in found) == [
        ("property-became-optional", "/value"),
        ("property-removed", "/unit"),
    ]
    assert exit_code == 1


def test_allof_parts_are_compared_as_one_schema(tmp_path: Path) -> None:
    base = {"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]}
    old = orders(response={"allOf": [base, ORDER]})
    new = orders(response={"allOf": [with_change(base, ["required"], []), ORDER]})

    exit_code, change = only_change(tmp_path, old, new)

    assert (change["kind"], change["field"], exit_code) == ("property-became-optional", "/id", 1)


@pytest.mark.parametrize("path", sorted(CONTRACTS_DIR.glob("*.yaml")), ids=lambda path: path.stem)
def test_a_published_contract_against_itself_has_no_changes(path: Path) -> None:
    result = CliRunner().invoke(contracts, ["diff", str(path), str(path), "--json"])

    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["changes"] == []


def test_the_mvne_contract_losing_an_operation_and_gaining_a_required_field_breaks(
    tmp_path: Path,
) -> None:
    mvne = yaml.load((CONTRACTS_DIR / "mvne.yaml").read_text(), Loader=yaml.CSafeLoader)
    del mvne["paths"]["/v1/iccidMappings/{iccid}"]["delete"]
    order = mvne["components"]["schemas"]["ProductOrderCreate"]
    order["properties"]["channel"] = {"type": "string", "enum": ["web", "retail"]}
    order["required"].append("channel")
    (tmp_path / "mvne-next.yaml").write_text(yaml.dump(mvne, Dumper=yaml.CSafeDumper))

    result = CliRunner().invoke(
        contracts,
        ["diff", str(CONTRACTS_DIR / "mvne.yaml"), str(tmp_path / "mvne-next.yaml"), "--json"],
    )

    assert result.exit_code == 1
    found = [
        (
            c["kind"],
            c["breaking"],
            c["method"],
            c["path"],
            c["operationId"],
            c["location"],
            c["field"],
        )
        for c in json.loads(result.output)["changes"]
    ]
    assert found == [
        (
            "operation-removed",
            True,
            "DELETE",
            "/v1/iccidMappings/{iccid}",
            "unmapIccid",
            "operation",
            None,
        ),
        (
            "required-property-added",
            True,
            "POST",
            "/tmf-api/productOrderingManagement/v4/productOrder",
            "createProductOrder",
            "request body application/json",
            "/channel",
        ),
    ]


def test_the_table_names_each_change_and_sums_them_up(tmp_path: Path) -> None:
    new = with_change(ORDER, ["properties", "channel"], {"type": "string"})
    new = with_change(new, ["properties", "note"], None)

    result = diff(tmp_path, orders(response=ORDER), orders(response=new))

    assert result.exit_code == 1
    assert "BREAKING" in result.output and "property removed" in result.output
    assert "POST /orders (createOrder)" in result.output
    assert "1 breaking, 1 non-breaking." in result.output


def test_markdown_is_a_table_of_the_changes(tmp_path: Path) -> None:
    new = with_change(ORDER, ["properties", "channel"], {"type": "string"})

    result = diff(tmp_path, orders(response=ORDER), orders(response=new), "--markdown")

    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert "| severity | operation | location | field | change | old | new |" in lines
    assert (
        "| ok | `POST /orders (createOrder)` | response 201 application/json | `/channel` "
        "| property added |  | `string` |"
    ) in lines


def test_identical_contracts_say_so(tmp_path: Path) -> None:
    result = diff(tmp_path, orders(), orders())

    assert (result.exit_code, result.output.strip()) == (0, "No changes.")


VALID = yaml.safe_dump(orders())


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("openapi: [unclosed\n", VALID, "not YAML or JSON (line 2)"),
        ("- just\n- a list\n", VALID, "not an OpenAPI document"),
        ("title: not a contract\n", VALID, "not an OpenAPI document"),
        ("swagger: '2.0'\n", VALID, "Swagger 2.0"),
        (
            VALID,
            yaml.safe_dump({**orders(), "info": {"title": "no version"}}),
            'not valid OpenAPI 3.1.0: "version" is a required property (at /info)',
        ),
        (
            VALID,
            yaml.safe_dump(orders(response={"$ref": "#/components/schemas/Missing"})),
            "points nowhere",
        ),
    ],
    ids=[
        "not yaml",
        "not a mapping",
        "not openapi",
        "swagger 2",
        "invalid openapi",
        "dangling ref",
    ],
)
def test_an_input_that_is_no_contract_is_refused_in_one_line(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    result = diff(tmp_path, old, new)

    assert result.exit_code == 2
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert "Traceback" not in result.output


def test_a_missing_file_is_refused_in_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        contracts, ["diff", str(tmp_path / "nowhere.yaml"), str(tmp_path / "x.yaml")]
    )

    assert result.exit_code == 2
    assert result.output.strip() == f"Error: {tmp_path / 'nowhere.yaml'}: no such file"


def test_json_and_markdown_together_are_refused(tmp_path: Path) -> None:
    result = diff(tmp_path, orders(), orders(), "--json", "--markdown")

    assert result.exit_code == 2
    assert "not both" in result.output


def test_contracts_without_a_subcommand_lists_the_published_contracts() -> None:
    result = CliRunner().invoke(main, ["contracts"])

    assert result.exit_code == 0
    assert str(CONTRACTS_DIR / "mvne.yaml") in result.output.splitlines()


def secured(*requirements: dict[str, list[str]]) -> dict[str, Any]:
    document = orders()
    document["components"] = {
        "securitySchemes": {
            "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            "oauth": {
                "type": "oauth2",
                "flows": {
                    "clientCredentials": {
                        "tokenUrl": "https://auth.example/token",
                        "scopes": {"orders:read": "read", "orders:write": "write"},
                    }
                },
            },
        }
    }
    document["paths"]["/orders"]["post"]["security"] = list(requirements)
    return document


@pytest.mark.parametrize(
    ("old", "new", "kinds", "exit_code"),
    [
        ([], [{"apiKey": []}], [("security-requirement-removed", "anonymous")], 1),
        (
            [{"oauth": ["orders:write"]}],
            [{"oauth": ["orders:read", "orders:write"]}],
            [("security-requirement-removed", "oauth [orders:write]")],
            1,
        ),
        ([{"apiKey": []}], [{"apiKey": []}, {"oauth": ["orders:write"]}], [], 0),
    ],
    ids=["authentication now required", "scope added", "second way offered"],
)
def test_a_security_change_locks_a_partner_out_or_not(
    tmp_path: Path, old: list[Any], new: list[Any], kinds: list[Any], exit_code: int
) -> None:
    code, found = changes(tmp_path, secured(*old), secured(*new))

    assert [(c["kind"], c["old"]) for c in found if c["breaking"]] == kinds
    assert code == exit_code


def test_a_response_header_added_is_not_breaking(tmp_path: Path) -> None:
    old = orders(responses=response("201"))
    new = orders(responses=response("201", headers={"Location": {"schema": {"type": "string"}}}))

    exit_code, change = only_change(tmp_path, old, new)

    assert (change["kind"], change["location"], exit_code) == (
        "response-header-added",
        "response 201 header Location",
        0,
    )


def test_an_answer_that_may_now_be_null_breaks_its_reader(tmp_path: Path) -> None:
    exit_code, change = only_change(
        tmp_path,
        orders(response=ORDER),
        orders(response={"oneOf": [ORDER, {"type": "null"}]}),
    )

    assert (change["kind"], change["breaking"], change["new"], exit_code) == (
        "alternative-added",
        True,
        "null",
        1,
    )


def test_openapi_3_0_nullable_is_a_type_that_admits_null(tmp_path: Path) -> None:
    def v30(note: dict[str, Any]) -> dict[str, Any]:
        schema = with_change(ORDER, ["properties", "note"], note)
        return {**orders(response=schema), "openapi": "3.0.3"}

    exit_code, change = only_change(
        tmp_path, v30({"type": "string"}), v30({"type": "string", "nullable": True})
    )

    assert (change["kind"], change["field"], change["old"], change["new"], exit_code) == (
        "type-widened",
        "/note",
        "string",
        ["null", "string"],
        1,
    )


def test_a_default_response_keeps_its_name(tmp_path: Path) -> None:
    old = orders(responses={**response("201"), **response("default")})

    exit_code, change = only_change(tmp_path, old, orders(responses=response("201")))

    assert (change["kind"], change["location"], exit_code) == (
        "response-status-removed",
        "response default",
        1,
    )
