"""The Gherkin lint over features/, and the coverage it promises: every failure point of
DOMAIN.md whose roles exist has a scenario showing the failure and one its handling."""

from __future__ import annotations

from pathlib import Path

from gherkin.parser import Parser

from simulators.bdd import tags

FEATURES = Path(__file__).resolve().parents[2] / "features"
# Every failure point of DOMAIN.md: each role it concerns has features now.
COVERED = (1, 2, 3, 4, 5, 6, 7, 8, 9)


def scenario_tags() -> list[tuple[str, set[str]]]:
    found = []
    for path in sorted(FEATURES.rglob("*.feature")):
        feature = Parser().parse(path.read_text())["feature"]
        shared = {tag["name"].lstrip("@") for tag in feature["tags"]}
        for child in feature["children"]:
            if "scenario" in child:
                own = {tag["name"].lstrip("@") for tag in child["scenario"]["tags"]}
                found.append((child["scenario"]["name"], shared | own))
    return found


def test_every_feature_passes_the_lint() -> None:
    report = tags.lint(FEATURES)
    assert not report.findings, "\n".join(str(finding) for finding in report.findings)
    assert report.scenarios >= 60


def test_every_folder_is_a_registered_handoff() -> None:
    folders = {path.name for path in FEATURES.iterdir() if path.is_dir()}
    assert folders == set(tags.HANDOFFS)


def test_every_failure_point_shows_the_failure_and_its_handling() -> None:
    found = scenario_tags()
    for number in COVERED:
        kinds = {
            kind
            for _, names in found
            if f"fp-{number}" in names
            for kind in tags.KINDS
            if kind in names
        }
        assert kinds == {"failure", "handling"}, f"fp-{number} has only {kinds or 'nothing'}"


def test_the_lint_finds_what_it_forbids(tmp_path: Path) -> None:
    folder = tmp_path / "tenancy"
    folder.mkdir()
    steps = "\n".join(f'    Given the partner "p{number}"' for number in range(16))
    (folder / "bad.feature").write_text(
        "@tenancy\nFeature: Bad\n\n  @fp-7 @handling\n  Scenario: Twice\n"
        f'{steps}\n\n  @bogus\n  Scenario: Twice\n    Given the partner "x"\n'
    )
    messages = [finding.message for finding in tags.lint(tmp_path).findings]
    assert any("begins without the comment block" in m for m in messages)
    assert any("has 16 steps" in m for m in messages)
    assert any("also used in" in m for m in messages)
    assert any("@bogus is not registered" in m for m in messages)
    assert any("needs a failure point tag" in m for m in messages)
    assert any("needs one of @failure or @handling" in m for m in messages)
