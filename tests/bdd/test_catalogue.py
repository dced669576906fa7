"""The step catalogue: honest examples, an up-to-date STEPS.md, `handoff steps`, and the
nearest phrases an undefined step fails with."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from pytest_bdd import parsers

from simulators.bdd import catalogue
from simulators.cli import main

STEPS_MD = Path(__file__).resolve().parents[2] / "features" / "STEPS.md"


def test_steps_md_is_the_generated_catalogue() -> None:
    assert STEPS_MD.read_text() == catalogue.markdown(), (
        "features/STEPS.md is out of date: handoff steps --markdown > features/STEPS.md"
    )


@pytest.mark.parametrize("entry", catalogue.load(), ids=lambda entry: entry.text)
def test_every_example_is_matched_by_its_own_phrase(entry: catalogue.Phrase) -> None:
    keyword, _, text = entry.example.partition(" ")
    assert keyword.lower() in entry.keywords
    parser = parsers.parse(entry.pattern, extra_types=catalogue.TYPES)
    # Examples of doc-string and table steps describe their argument after the phrase.
    assert parser.is_matching(text) or text.startswith(entry.text + " ("), entry.example


def test_no_example_is_matched_by_another_phrase() -> None:
    entries = catalogue.load()
    for entry in entries:
        keyword, _, text = entry.example.partition(" ")
        rivals = [
            other.line
            for other in entries
            if other is not entry
            and keyword.lower() in other.keywords
            and parsers.parse(other.pattern, extra_types=catalogue.TYPES).is_matching(text)
        ]
        assert not rivals, f"{entry.example!r} is also matched by {rivals}"


def test_the_cli_prints_phrase_example_and_role() -> None:
    answer = CliRunner().invoke(main, ["steps", "--role", "clock"])
    assert answer.exit_code == 0, answer.output
    assert "{amount} {unit} pass" in answer.output and "When 16 days pass" in answer.output
    assert "tax engine" not in answer.output
    markdown = CliRunner().invoke(main, ["steps", "--markdown"])
    assert markdown.output == catalogue.markdown()


def test_the_cli_refuses_a_role_no_step_has() -> None:
    answer = CliRunner().invoke(main, ["steps", "--role", "bogus"])
    assert answer.exit_code == 2, answer.output
    assert "Traceback" not in answer.output
    error = answer.output.strip().splitlines()[-1]
    assert error.startswith("Error: Invalid value for '--role': 'bogus' is not a step role")
    for role in {owner for _phrase, _example, owner in catalogue.rows()}:
        assert role in error


def test_an_undefined_step_is_answered_with_the_nearest_phrases() -> None:
    message = catalogue.undefined_step_message("then", "the response status is 201")
    assert 'No step matches "Then the response status is 201"' in message
    lines = message.splitlines()
    assert lines[2].strip().startswith("Then the response status code is {status}")


def test_a_feature_with_an_undefined_step_fails_naming_the_nearest(
    pytester: pytest.Pytester,
) -> None:
    pytester.makefile(
        ".feature",
        typo="""
        @partner-activation @fp-9 @handling
        Feature: A typo
          Scenario: A misspelt phrase
            When 16 days passes by
        """,
    )
    pytester.makepyfile(test_typo='from pytest_bdd import scenarios\nscenarios("typo.feature")\n')
    result = pytester.runpytest_inprocess("-p", "simulators.bdd.plugin")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            '*No step matches "When 16 days passes by"*',
            "*The nearest phrases are:*",
            "*Given/When {amount} {unit} passes*",
        ]
    )
