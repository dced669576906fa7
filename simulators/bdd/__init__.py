"""The Gherkin step library: a pytest plugin that drives Handoff's roles, or a vendor's.

Bind a folder of `.feature` files with `pytest_bdd.scenarios("features")` and every step
phrase of `handoff steps` is available; `features/STEPS.md` lists them.
"""
