"""Where the scenarios run: `--handoff-url` and `--handoff-key` parsing, and the skips a
step that needs Handoff's control plane takes against a vendor or a foreign base URL."""

from __future__ import annotations

import pytest

from simulators.bdd.target import Target, TargetError, parse_keys, parse_targets

ADMIN_FEATURE = """
    @billing-tax @fp-4 @failure
    Feature: Needs the control plane
      Scenario: A pack on the tax engine
        Given the scenario "tax-jurisdiction-gap" is applied
    """


def test_a_bare_url_is_the_stack_and_role_urls_replace_roles() -> None:
    stack, replaced = parse_targets(
        ["http://127.0.0.1:8700/", "tax=https://tax.vendor.example/api/"]
    )
    assert stack == "http://127.0.0.1:8700"
    assert replaced == {"tax": "https://tax.vendor.example/api"}
    target = Target(stack_url=stack, replaced=replaced)
    assert target.url("tax") == "https://tax.vendor.example/api"
    assert target.url("mvne") == "http://127.0.0.1:8700/mvne"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (["taxes=https://x.example"], "'taxes' is not a role"),
        (["tax=https://a.example", "tax=https://b.example"], "names tax twice"),
        (["http://a.example", "http://b.example"], "names the stack twice"),
        (["tax=ftp://x.example"], "not an http(s) URL"),
    ],
)
def test_bad_urls_are_refused_naming_the_value(values: list[str], message: str) -> None:
    with pytest.raises(TargetError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_targets(values)


def test_keys_are_partner_equals_key() -> None:
    assert parse_keys(["billing-platform=abc=def"]) == {"billing-platform": "abc=def"}
    with pytest.raises(TargetError):
        parse_keys(["no-key"])


def test_a_vendor_role_cannot_be_steered_and_the_skip_says_why() -> None:
    target = Target(replaced={"tax": "https://tax.vendor.example"})
    target.require_control_plane("mvne")
    with pytest.raises(pytest.skip.Exception, match="tax by https://tax.vendor.example"):
        target.require_control_plane("tax", "mvne")
    foreign = Target(stack_url="https://staging.vendor.example", has_control_plane=False)
    with pytest.raises(pytest.skip.Exception, match="does not serve"):
        foreign.require_control_plane()


def test_admin_steps_skip_against_a_base_that_is_not_handoff(pytester: pytest.Pytester) -> None:
    pytester.makefile(".feature", admin=ADMIN_FEATURE)
    pytester.makepyfile(test_admin='from pytest_bdd import scenarios\nscenarios("admin.feature")\n')
    # Nothing listens on port 9: no Handoff control plane answers there.
    result = pytester.runpytest_inprocess(
        "-p", "simulators.bdd.plugin", "-rs", "--handoff-url", "http://127.0.0.1:9"
    )
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*needs Handoff's control plane (/__admin)*http://127.0.0.1:9*"])


def test_a_bad_handoff_url_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makefile(".feature", admin=ADMIN_FEATURE)
    pytester.makepyfile(test_admin='from pytest_bdd import scenarios\nscenarios("admin.feature")\n')
    result = pytester.runpytest_inprocess("-p", "simulators.bdd.plugin", "--handoff-url", "x=1")
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*'x' is not a role*"])
