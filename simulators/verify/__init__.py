"""Conformance of any implementation (ours or a vendor's) to a role's published contract:
schemathesis' phases and checks plus Handoff's domain rules, reported as JUnit, JSON, HTML;
and the difference between two versions of a contract (`diff`)."""
