"""`handoff report`: the readiness report of every integration point, as HTML and Markdown."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click


@click.command("report")
@click.option(
    "--matrix",
    "matrix_path",
    required=True,
    type=click.Path(path_type=Path),
    help="The responsibility matrix (YAML), e.g. examples/responsibility.yaml.",
)
@click.option(
    "--results",
    "result_paths",
    multiple=True,
    type=click.Path(path_type=Path),
    help="pytest JUnit XML or `handoff verify` JSON; repeat it, or list more files after it.",
)
@click.argument("more_results", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--features",
    type=click.Path(path_type=Path),
    default=Path("features"),
    show_default=True,
    help="The folder of .feature files the JUnit results ran.",
)
@click.option("--out", type=click.Path(path_type=Path), help="Write readiness.html and .md here.")
@click.option("--html", "html_path", type=click.Path(path_type=Path), help="Write the page here.")
@click.option(
    "--markdown", "markdown_path", type=click.Path(path_type=Path), help="Write Markdown here."
)
@click.option("--fail-on-gaps", is_flag=True, help="Exit 1 while any gap remains (for CI).")
def report(
    matrix_path: Path,
    result_paths: tuple[Path, ...],
    more_results: tuple[Path, ...],
    features: Path,
    out: Path | None,
    html_path: Path | None,
    markdown_path: Path | None,
    fail_on_gaps: bool,
) -> None:
    """The readiness report: every integration point with its owners (RACI), escalation
    chain, the scenarios and verify results that prove it, and the gaps to close before
    launch. With no --out, --html or --markdown, prints the Markdown."""
    from . import render
    from .errors import ReportInputError
    from .matrix import known_points, load_matrix
    from .model import assess
    from .results import load_features, read_results

    try:
        matrix = load_matrix(matrix_path, known_points(features))
        results = read_results([*result_paths, *more_results])
        readiness = assess(
            matrix,
            load_features(features),
            results,
            generated_at=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        )
    except ReportInputError as exc:
        raise click.ClickException(str(exc)) from None

    if out is not None:
        html_path = html_path or out / "readiness.html"
        markdown_path = markdown_path or out / "readiness.md"
    written = []
    for path, text in (
        (html_path, render.html(readiness) if html_path else ""),
        (markdown_path, render.markdown(readiness) if markdown_path else ""),
    ):
        if path is None:
            continue
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        except OSError as exc:
            raise click.ClickException(f"{path}: cannot be written ({exc.strerror})") from None
        written.append(str(path))
    if not written:
        click.echo(render.markdown(readiness), nl=False)

    counts = readiness.counts()
    gaps = len(readiness.gaps)
    summary = ", ".join(f"{count} {status}" for status, count in counts.items())
    click.echo(
        f"{len(readiness.points)} integration points: {summary}; {gaps} gaps"
        + (f". Wrote {', '.join(written)}" if written else ""),
        err=True,
    )
    if fail_on_gaps and gaps:
        raise click.exceptions.Exit(1)
