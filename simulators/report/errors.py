"""The one error the readiness report raises for bad input: a sentence naming the file."""

from __future__ import annotations


class ReportInputError(Exception):
    """A matrix, results file or features folder the report cannot use; the message is one
    line that names the file and what is wrong with it."""
