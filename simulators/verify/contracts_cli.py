"""`handoff contracts`: where the published contracts are, and what changed between two
versions of one."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from ..core.config import CONTRACTS_DIR
from .diff import Change, ContractError, diff_files, shown

# Exit codes of `contracts diff`: CI tells "the new contract breaks partners" (1) from "the
# inputs could not be compared" (2, click's own code for usage errors).
EXIT_BREAKING = 1
EXIT_BAD_INPUT = 2


class BadInput(click.ClickException):
    exit_code = EXIT_BAD_INPUT


def _console() -> Console:
    # Piped output (CI logs) gets a wide console so paths and values are not cut.
    return Console() if sys.stdout.isatty() else Console(width=200)


@click.group(invoke_without_command=True)
@click.pass_context
def contracts(ctx: click.Context) -> None:
    """The published contracts: where they are (no subcommand), and `diff`."""
    if ctx.invoked_subcommand is None:
        for path in sorted(Path(CONTRACTS_DIR).glob("*.yaml")):
            click.echo(str(path))


@contracts.command("diff")
@click.argument("old", type=click.Path(path_type=Path))
@click.argument("new", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the changes as JSON.")
@click.option("--markdown", is_flag=True, help="Print the changes as a Markdown table.")
def diff(old: Path, new: Path, as_json: bool, markdown: bool) -> None:
    """List what changed from contract OLD to contract NEW, breaking changes first.

    Exit status: 0 when nothing breaks a partner built against OLD, 1 when something does,
    2 when a file is missing, not YAML/JSON or not valid OpenAPI 3.0/3.1.

    \b
    git show main:contracts/mvne.yaml > /tmp/mvne-main.yaml
    handoff contracts diff /tmp/mvne-main.yaml contracts/mvne.yaml
    """
    if as_json and markdown:
        raise BadInput("give --json or --markdown, not both")
    try:
        changes = diff_files(old, new)
    except ContractError as error:
        raise BadInput(str(error)) from None
    breaking = sum(change.breaking for change in changes)
    if as_json:
        report = {
            "old": str(old),
            "new": str(new),
            "breaking": breaking,
            "nonBreaking": len(changes) - breaking,
            "changes": [change.as_dict() for change in changes],
        }
        click.echo(json.dumps(report, indent=2, default=str))
    elif markdown:
        click.echo(_markdown(changes, old, new), nl=False)
    else:
        _print_table(changes, old, new, breaking)
    if breaking:
        sys.exit(EXIT_BREAKING)


COLUMNS = ("", "operation", "location", "field", "change", "old", "new")


def _cells(change: Change) -> tuple[str, ...]:
    return (
        "BREAKING" if change.breaking else "ok",
        change.operation,
        change.location,
        change.field or "",
        change.message,
        shown(change.old),
        shown(change.new),
    )


def _summary(changes: list[Change], breaking: int) -> str:
    if not changes:
        return "No changes."
    return f"{breaking} breaking, {len(changes) - breaking} non-breaking."


def _print_table(changes: list[Change], old: Path, new: Path, breaking: int) -> None:
    """One table per operation (operations with a breaking change first): the operation
    names are long, and repeating one on every row would leave the rest no room."""
    console = _console()
    by_operation: dict[str, list[Change]] = {}
    for change in changes:
        by_operation.setdefault(change.operation, []).append(change)
    if changes:
        console.print(f"{old} -> {new}")
    for operation, group in by_operation.items():
        table = Table(*COLUMNS[:1], *COLUMNS[2:], title=operation, title_justify="left")
        for change in group:
            cells = _cells(change)
            style = "red" if change.breaking else "green"
            table.add_row(f"[{style}]{cells[0]}[/{style}]", *cells[2:])
        console.print(table)
    style = "bold red" if breaking else "bold green"
    console.print(f"[{style}]{_summary(changes, breaking)}[/{style}]")


def _markdown(changes: list[Change], old: Path, new: Path) -> str:
    breaking = sum(change.breaking for change in changes)
    lines = [f"### `{old}` → `{new}`", "", _summary(changes, breaking), ""]
    if changes:
        lines.append("| " + " | ".join(column or "severity" for column in COLUMNS) + " |")
        lines.append("|" + "---|" * len(COLUMNS))
        for change in changes:
            severity, operation, location, pointer, message, was, now = _cells(change)
            cells = (
                severity,
                _code(operation),
                location,
                _code(pointer),
                message,
                _code(was),
                _code(now),
            )
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines) + "\n"


def _code(text: str) -> str:
    """A cell as inline code, its pipes escaped (GFM tables split on them even there)."""
    escaped = text.replace("|", "\\|")
    return f"`{escaped}`" if text and "`" not in text else escaped
