"""Strategies for the custom string formats the contracts use (`iccid`, `imsi`, `msisdn`),
so that generated positive data is valid by the identifier rules a vendor enforces."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import schemathesis
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from schemathesis.generation.meta import TestPhase
from schemathesis.specs.openapi.formats import STRING_FORMATS, unregister_string_format

from ..core.contract import FORMAT_CHECKER
from ..core.identifiers import MSISDN_PATTERN, TEST_MCC, iccid_with_check_digit
from .contract import Contract, resolve

FORMATS = {
    # E.118 with its Luhn check digit.
    "iccid": st.from_regex(r"89[0-9]{16,17}", fullmatch=True).map(iccid_with_check_digit),
    # E.212 on the test MCC 001, or any MCC not starting with 0.
    "imsi": st.tuples(
        st.one_of(st.just(TEST_MCC), st.integers(100, 999).map(str)),
        st.from_regex(r"[0-9]{3,12}", fullmatch=True),
    ).map("".join),
    "msisdn": st.from_regex(MSISDN_PATTERN, fullmatch=True),
}


@contextmanager
def custom_formats() -> Iterator[None]:
    """The formats, for one run; a format someone else registered first is left to them."""
    added = [name for name in FORMATS if name not in STRING_FORMATS]
    for name in added:
        schemathesis.openapi.format(name, FORMATS[name])
    try:
        yield
    finally:
        for name in added:
            unregister_string_format(name)


# How a string of the right shape is brought inside each custom format.
REPAIRS: dict[str, Callable[[str], str]] = {
    "iccid": lambda value: iccid_with_check_digit(value[:-1]),
    "imsi": lambda value: TEST_MCC + value[3:],
}
Validators = tuple[list[tuple[str, str, Draft202012Validator]], Draft202012Validator | None]


def coverage_repair(contract: Contract) -> Callable[..., schemathesis.Case[Any]]:
    """A `map_case` hook: positive coverage cases hold values the custom formats admit.

    The coverage phase draws a string with both a `pattern` and a custom `format` from the
    pattern alone, so its "valid" ICCIDs and IMSIs can break the Luhn digit or the MCC rule
    the contract sets; a vendor refusing them is right. Only those values are repaired, as
    the contract's own schemas (with the identifier formats) judge them.
    """
    validators = _validators(contract)

    def map_case(
        _context: schemathesis.HookContext, case: schemathesis.Case[Any]
    ) -> schemathesis.Case[Any]:
        meta = case.meta
        if meta is None or meta.phase.name != TestPhase.COVERAGE:
            return case
        if not meta.generation.mode.is_positive:
            return case
        parameters, body = validators.get(case.operation.label, ([], None))
        for location, name, validator in parameters:
            values = {"path": case.path_parameters, "query": case.query}[location]
            if values and isinstance(values.get(name), str):
                values[name] = repaired(validator, values[name])
        if body is not None and isinstance(case.body, dict | list):
            case.body = repaired(body, case.body)
        return case

    return map_case


def _validators(contract: Contract) -> dict[str, Validators]:
    document = contract.document
    components = document.get("components", {})

    def checker(schema: dict[str, Any]) -> Draft202012Validator:
        return Draft202012Validator(
            {**schema, "components": components}, format_checker=FORMAT_CHECKER
        )

    found: dict[str, Validators] = {}
    for label, operation in contract.operations.items():
        item = resolve(document, document["paths"][operation.path])
        spec = item[operation.method.lower()]
        declared = [*item.get("parameters", []), *spec.get("parameters", [])]
        parameters = [resolve(document, raw) for raw in declared]
        content: dict[str, Any] = resolve(document, spec.get("requestBody", {})).get("content", {})
        media: dict[str, Any] = next(iter(content.values()), {})
        body = media.get("schema")
        found[label] = (
            [
                (p["in"], p["name"], checker(p.get("schema", {})))
                for p in parameters
                if p.get("in") in ("path", "query")
            ],
            checker(body) if body is not None else None,
        )
    return found


def _format_error(validator: Draft202012Validator, value: Any) -> ValidationError | None:
    for error in validator.iter_errors(value):
        if error.validator == "format" and error.validator_value in REPAIRS:
            return error
    return None


def repaired(validator: Draft202012Validator, value: Any) -> Any:
    """`value` with every string a custom format refuses brought inside that format."""
    for _ in range(100):
        error = _format_error(validator, value)
        if error is None:
            break
        fixed = REPAIRS[error.validator_value](error.instance)
        if not error.absolute_path:
            return fixed
        *parents, last = error.absolute_path
        container = value
        for step in parents:
            container = container[step]
        container[last] = fixed
    return value
