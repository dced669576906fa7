"""Checks that a vendor, or a new version of its contract, still keeps the contract."""
