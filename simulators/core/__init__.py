"""Machinery every fake vendor shares; imports no vendor."""
