"""`handoff verify ROLE --base-url URL`: check an implementation against its contract."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table
from schemathesis.engine import events

from . import hints as hint_specs
from . import report
from .contract import ContractError, known_roles, load
from .runner import DEFAULT_MAX_EXAMPLES, PHASES, Options, Outcome, verify

console = Console(stderr=True) if sys.stderr.isatty() else Console(stderr=True, width=200)
out = Console() if sys.stdout.isatty() else Console(width=200)


class BadInput(click.ClickException):
    """A role, contract or URL that cannot be verified: one line, exit 2 (1 means failures)."""

    exit_code = 2


def _phases(
    _ctx: click.Context, _param: click.Parameter, value: tuple[str, ...]
) -> tuple[str, ...]:
    chosen = [name.strip() for item in value for name in item.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(PHASES))
    if unknown:
        raise click.BadParameter(f"{', '.join(unknown)}; phases: {', '.join(PHASES)}")
    return tuple(name for name in PHASES if name in chosen) if chosen else PHASES


class LiveView:
    """One progress bar per phase (operations done of those the contract has) and a
    running count of test cases and findings."""

    def __init__(self, operations: int) -> None:
        self.operations = operations
        self.progress = Progress(
            TextColumn("{task.description:<9}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} operations"),
            TextColumn("{task.fields[cases]} cases, {task.fields[findings]} findings"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self.tasks: dict[str, TaskID] = {}

    def __call__(self, event: events.EngineEvent, outcome: Outcome) -> None:
        if isinstance(event, events.PhaseStarted) and event.phase.name.value in PHASES:
            name = event.phase.name.value
            if name not in self.tasks:
                self.tasks[name] = self.progress.add_task(
                    name, total=self.operations, cases=0, findings=0
                )
        elif isinstance(event, events.ScenarioFinished) and event.phase.value in self.tasks:
            task = self.tasks[event.phase.value]
            advance = 0 if event.phase.value == "stateful" else 1
            self.progress.update(
                task, advance=advance, cases=outcome.cases, findings=len(outcome.findings)
            )
        elif isinstance(event, events.PhaseFinished) and event.phase.name.value in self.tasks:
            task = self.tasks[event.phase.name.value]
            self.progress.update(
                task,
                completed=self.operations,
                cases=outcome.cases,
                findings=len(outcome.findings),
            )


def _print_verdict(outcome: Outcome) -> None:
    table = Table(title=f"{outcome.role} at {outcome.base_url}")
    for column in ("check", "passed", "failed", "score"):
        table.add_column(column, justify="left" if column == "check" else "right")
    for name, tally in outcome.per_check.items():
        score = "-" if tally.score is None else f"{tally.score}%"
        style = "red" if tally.failed else None
        table.add_row(name, str(tally.passed), str(tally.failed), score, style=style)
    for name, reason in outcome.not_run.items():
        table.add_row(name, "", "", f"not run: {reason}", style="dim")
    out.print(table)
    if outcome.not_exercised:
        out.print(
            f"[dim]{len(outcome.not_exercised)} operations only checked for auth_required "
            "(not exercised):[/dim]"
        )
        for label, reason in outcome.not_exercised.items():
            out.print(f"[dim]  {label}: {reason}[/dim]", highlight=False)
    for warning in outcome.warnings:
        out.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)
    for name, applied in outcome.hints.items():
        if applied:
            out.print(f"[dim]--set {name}: put into {applied} request fields[/dim]")
        else:
            out.print(
                f"[yellow]--set {name} reached no request: no field or characteristic "
                "of that name in the generated cases (misspelt?)[/yellow]",
                highlight=False,
            )
    for finding in outcome.findings:
        out.print(
            f"[red]FAIL[/red] {finding.operation} [bold]{finding.title}[/bold] ({finding.check})"
        )
        out.print(f"  {finding.message}", markup=False, highlight=False)
        if finding.curl:
            out.print(f"  {finding.curl.splitlines()[0]}", markup=False, highlight=False)
    for error in outcome.errors:
        out.print(f"[red]ERROR[/red] {error.splitlines()[0]}", highlight=False)
    verdict = "[green]PASS[/green]" if outcome.passed else "[red]FAIL[/red]"
    out.print(
        f"{verdict} {outcome.role}: {len(outcome.findings)} findings, {outcome.cases} test cases "
        f"in {outcome.duration_s:.1f} s ({outcome.cases_per_second:.1f}/s), seed {outcome.seed}"
    )


@click.command()
@click.argument("role")
@click.option(
    "--base-url",
    required=True,
    help="Where the implementation answers; a bare "
    "host:port gets the contract's own prefix (e.g. /fulfillment).",
)
@click.option(
    "--key",
    "keys",
    multiple=True,
    help="A partner's credential (API key, bearer token, or user:password for basic auth); "
    "SCHEME=KEY for one security scheme of the contract, repeatable.",
)
@click.option(
    "--other-key",
    "other_keys",
    multiple=True,
    help="A second partner's credential, for tenancy; SCHEME=KEY as for --key.",
)
@click.option(
    "--callback-url",
    default=None,
    help="Where the vendor can reach the callback "
    "receiver this command runs (default: an ephemeral loopback port).",
)
@click.option(
    "--contract",
    "contract_file",
    type=click.Path(path_type=Path),
    default=None,
    help="Verify against this OpenAPI file instead of contracts/ROLE.yaml.",
)
@click.option("--junit", type=click.Path(path_type=Path), default=None, help="Write JUnit XML.")
@click.option(
    "--json",
    "json_file",
    type=click.Path(path_type=Path),
    default=None,
    help="Write the outcome as JSON.",
)
@click.option(
    "--html",
    type=click.Path(path_type=Path),
    default=None,
    help="Write an HTML report (scores per operation and check, failing curls).",
)
@click.option(
    "--max-examples",
    type=click.IntRange(1, 10000),
    default=DEFAULT_MAX_EXAMPLES,
    show_default=True,
    help="Generated cases per operation and phase.",
)
@click.option(
    "--phases",
    multiple=True,
    callback=_phases,
    help=f"Comma-separated, of: {', '.join(PHASES)} (default: all).",
)
@click.option("--seed", type=int, default=None, help="Reproduce a run (its report names its seed).")
@click.option(
    "--set",
    "hints",
    multiple=True,
    metavar="NAME=VALUE",
    help="Reference data the implementation insists on, put into every positive case where "
    "the field appears: a property (productOffering.id=po-gb-payg), a TMF characteristic "
    "(ICCID=...), or NAME=@FILE for one value per line, used in turn. Repeatable.",
)
@click.option(
    "--callback-wait",
    type=click.FloatRange(0, 300),
    default=10.0,
    show_default=True,
    help="Seconds to wait after the run for callbacks still on their way.",
)
def verify_command(
    role: str,
    base_url: str,
    keys: tuple[str, ...],
    other_keys: tuple[str, ...],
    callback_url: str | None,
    contract_file: Path | None,
    junit: Path | None,
    json_file: Path | None,
    html: Path | None,
    max_examples: int,
    phases: tuple[str, ...],
    seed: int | None,
    hints: tuple[str, ...],
    callback_wait: float,
) -> None:
    """Check an implementation of contracts/ROLE.yaml (ours, or a vendor's staging API):
    schemathesis' phases and checks plus Handoff's conformance rules. Exit 0 on pass,
    1 on failures, 2 on bad input.

    \b
    handoff verify fulfillment --base-url http://127.0.0.1:8700 \\
        --key $ALPHA_KEY --other-key $BRAVO_KEY --html verify.html --junit verify.xml
    handoff verify mno --base-url http://127.0.0.1:8700 --key apiKey=$PLATFORM_KEY \\
        --key wholesaleKey=$ALPHA_WHOLESALE --other-key wholesaleKey=$BRAVO_WHOLESALE
    """
    try:
        contract = load(role, contract_file)
    except ContractError as error:
        raise BadInput(str(error)) from None
    if contract_file is None and role not in known_roles():  # pragma: no cover - load refuses
        raise BadInput(f"unknown role {role!r}")
    try:
        parsed_hints = hint_specs.parse(hints)
    except hint_specs.HintError as error:
        raise BadInput(str(error)) from None
    options = Options(
        role=role,
        base_url=base_url,
        keys=keys,
        other_keys=other_keys,
        callback_url=callback_url,
        contract_file=contract_file,
        phases=phases,
        max_examples=max_examples,
        seed=seed,
        callback_grace_s=callback_wait,
        hints=parsed_hints,
    )
    view = LiveView(len(contract.operations))
    try:
        with view.progress:
            outcome = verify(options, contract, progress=view)
    except ContractError as error:
        raise BadInput(str(error)) from None
    _print_verdict(outcome)
    for path, write in ((junit, report.write_junit), (json_file, report.write_json),
                        (html, report.write_html)):  # fmt: skip
        if path is not None:
            try:
                write(outcome, path)
            except OSError as error:
                raise BadInput(f"cannot write {path}: {error.strerror}") from None
            console.print(f"Wrote {path}")
    sys.exit(0 if outcome.passed else 1)
