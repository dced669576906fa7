"""Handoff: stateful fake vendors for an MVNO's stack, behind published contracts."""

__version__ = "0.1.0"
